"""Benchmark: the cost of encryption at rest.

On SQLite and PostgreSQL, the same N synthetic ESP-XML submissions are ingested twice into fresh databases: once as the store
runs (AES-256-GCM on report JSON and original bytes, in the writer) and once with a pass-through cipher, the floor without
encryption. Then, on both databases, detail reads (a report's canonical JSON; its original documents) of the same random
reports, the stored size of the report JSON, a full key rotation of the encrypted database (rows/s), and the primitives
alone (seal, open, keyed hash) on a report-sized value.
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tiptriage import pipeline, synth
from tiptriage.store import Store
from tiptriage.store.crypto import Cipher, Keyring, aad, attach, generate_key
from tiptriage.store.rotation import rotate
from tiptriage.store.schema import reports

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work"
READS = 2000


class PassThrough(Cipher):
    """The floor: the store's code path with sealing and opening replaced by copies (keyed hashes stay: joins need them)."""

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        return bytes(plaintext)

    def open(self, sealed: bytes, context: bytes) -> bytes:
        return bytes(sealed)

    def seal_text(self, text: str, context: bytes) -> str:
        return text

    def open_text(self, sealed: str, context: bytes) -> str:
        return sealed


def _store(url: str, ring: Keyring, encrypted: bool) -> Store:
    store = Store(url, keyring=ring)
    if not encrypted:
        store.cipher = PassThrough(ring, store.engine)
        attach(store.engine, store.cipher)
    return store


@contextmanager
def _databases() -> Iterator[dict[str, list[str]]]:
    """Two fresh databases per backend (encrypted, pass-through); PostgreSQL when a server is reachable."""
    WORK.mkdir(parents=True, exist_ok=True)
    urls: dict[str, list[str]] = {"sqlite": []}
    for name in ("crypto-enc.db", "crypto-clear.db"):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{WORK / name}{suffix}").unlink(missing_ok=True)
        urls["sqlite"].append(f"sqlite:///{WORK / name}")
    admin_url = os.environ.get("TIPTRIAGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    made: list[str] = []
    admin: sa.Engine | None = None
    try:
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for _ in range(2):
                made.append(f"tiptriage_bench_{uuid.uuid4().hex[:8]}")
                conn.execute(sa.text(f'CREATE DATABASE "{made[-1]}"'))
        urls["postgresql"] = [sa.engine.make_url(admin_url).set(database=d).render_as_string(hide_password=False) for d in made]
    except Exception as exc:  # the bench still reports SQLite when no server is reachable
        print(f"postgresql skipped: {str(exc).splitlines()[0]}", file=sys.stderr)
    try:
        yield urls
    finally:
        if admin is not None:
            with admin.connect() as conn:
                for d in made:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{d}" WITH (FORCE)'))
            admin.dispose()


def _ingest(store: Store, subs: Path) -> dict[str, Any]:
    start = time.perf_counter()
    res = pipeline.ingest(store, [subs], workers=pipeline.default_workers())
    secs = time.perf_counter() - start
    return {"seconds": round(secs, 2), "accepted": res.accepted, "reports_per_s": round(res.accepted / secs, 1)}


def _reads(store: Store, ids: list[str], digests: dict[str, str]) -> dict[str, Any]:
    timings: dict[str, list[float]] = {"report_us": [], "originals_us": []}
    for rid in ids:
        t = time.perf_counter()
        assert store.get_report(rid) is not None
        timings["report_us"].append((time.perf_counter() - t) * 1e6)
        t = time.perf_counter()
        assert store.original_documents(digests[rid])
        timings["originals_us"].append((time.perf_counter() - t) * 1e6)
    out: dict[str, Any] = {"reads": len(ids)}
    for k, v in timings.items():
        v.sort()
        out[k] = {"median": round(statistics.median(v), 1), "p99": round(v[int(len(v) * 0.99) - 1], 1)}
    return out


def _json_bytes(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.sum(sa.func.length(reports.c.data)))).scalar_one() or 0)


def _primitives(sample: str, ring: Keyring) -> dict[str, Any]:
    cipher = Cipher(ring, index_key=generate_key())
    ctx = aad("reports", "data", "R1")
    n = 20_000
    t = time.perf_counter()
    sealed = [cipher.seal_text(sample, ctx) for _ in range(n)]
    seal_us = (time.perf_counter() - t) / n * 1e6
    t = time.perf_counter()
    for s in sealed[:n]:
        cipher.open_text(s, ctx)
    open_us = (time.perf_counter() - t) / n * 1e6
    t = time.perf_counter()
    for i in range(n):
        cipher.index(f"email:someone{i}@example.org")
    hmac_us = (time.perf_counter() - t) / n * 1e6
    return {"value_bytes": len(sample.encode()), "seal_text_us": round(seal_us, 2), "open_text_us": round(open_us, 2),
            "keyed_hash_us": round(hmac_us, 2), "stored_bytes": len(sealed[0])}


def main(n: int = 20_000) -> dict[str, Any]:
    data_dir = WORK / f"crypto-{n}"
    subs = data_dir / "submissions"
    if not (data_dir / "truth.json").exists():
        print(f"generating {n} synthetic submissions in {data_dir} (cached for later runs)", file=sys.stderr)
        synth.write(synth.generate(n, seed=3), data_dir, "xml")
    ring = Keyring.of(generate_key())
    results: dict[str, Any] = {"benchmark": "crypto", "reports": n, "format": "cybertip-xml folders",
                               "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                               "what": "ingest and detail reads with AES-256-GCM at rest vs a pass-through cipher (same code path)"}
    with _databases() as urls:
        for backend, (enc_url, clear_url) in urls.items():
            print(f"{backend}: ingest {n} without, then with encryption", file=sys.stderr)
            clear = _store(clear_url, ring, encrypted=False)
            enc = _store(enc_url, ring, encrypted=True)
            try:
                row: dict[str, Any] = {"ingest_clear": _ingest(clear, subs), "ingest_encrypted": _ingest(enc, subs)}
                row["ingest_overhead_pct"] = round((row["ingest_encrypted"]["seconds"] / row["ingest_clear"]["seconds"] - 1) * 100, 1)
                ids = random.Random(5).sample(enc.report_ids(), min(READS, n))
                with enc.engine.connect() as conn:
                    digests = {r: d for r, d in conn.execute(sa.text("SELECT id, submission_digest FROM reports"))}
                for store in (clear, enc):  # warm both caches the same way first
                    _reads(store, ids[:200], digests)
                row["reads_clear"] = _reads(clear, ids, digests)
                row["reads_encrypted"] = _reads(enc, ids, digests)
                row["report_json_bytes"] = {"clear": _json_bytes(clear), "encrypted": _json_bytes(enc)}
                sample = enc.get_report(ids[0])
                assert sample is not None
                if backend == "sqlite":
                    results["primitives"] = _primitives(sample.model_dump_json(exclude_none=True), ring)
                enc_engine = enc.engine
                print(f"{backend}: rotate the encrypted database to a new key", file=sys.stderr)
                t = time.perf_counter()
                rot = rotate(enc_engine, ring.with_current(Keyring.of(generate_key()).current), by="bench")
                secs = time.perf_counter() - t
                row["rotation"] = {"seconds": round(secs, 2), "rows_rewritten": rot.rewritten, "rows_per_s": round(rot.rewritten / secs, 1),
                                   "complete": rot.complete}
            finally:
                clear.dispose()
                enc.dispose()
            results[backend] = row
    return results


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000), indent=2))
