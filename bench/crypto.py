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
REPEATS = 2


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


class _Databases:
    """Fresh databases on demand: SQLite files under bench/work, PostgreSQL databases when a server is reachable (dropped at
    the end)."""

    def __init__(self) -> None:
        WORK.mkdir(parents=True, exist_ok=True)
        self.made: list[str] = []
        self.files: list[Path] = []
        self.admin_url = os.environ.get("TIPTRIAGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
        self.admin: sa.Engine | None = None
        try:
            self.admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
            with self.admin.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:  # the bench still reports SQLite when no server is reachable
            print(f"postgresql skipped: {str(exc).splitlines()[0]}", file=sys.stderr)
            self.admin = None

    @property
    def backends(self) -> list[str]:
        return ["sqlite", "postgresql"] if self.admin is not None else ["sqlite"]

    def fresh(self, backend: str) -> str:
        name = f"crypto_{uuid.uuid4().hex[:8]}"
        if backend == "sqlite":
            path = WORK / f"{name}.db"
            self.files.append(path)
            return f"sqlite:///{path}"
        assert self.admin is not None
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self.made.append(name)
        return sa.engine.make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def close(self) -> None:
        for path in self.files:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        if self.admin is not None:
            with self.admin.connect() as conn:
                for d in self.made:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{d}" WITH (FORCE)'))
            self.admin.dispose()


@contextmanager
def _databases() -> Iterator[_Databases]:
    dbs = _Databases()
    try:
        yield dbs
    finally:
        dbs.close()


def _ingest(store: Store, subs: Path) -> dict[str, Any]:
    start = time.perf_counter()
    res = pipeline.ingest(store, [subs], workers=pipeline.default_workers())
    secs = time.perf_counter() - start
    return {"seconds": round(secs, 2), "accepted": res.accepted, "reports_per_s": round(res.accepted / secs, 1)}


def _reads(stores: dict[str, Store], ids: list[str], digests: dict[str, str]) -> dict[str, Any]:
    """Detail reads of the same reports from each store, interleaved report by report, so both see the same machine load."""
    timings: dict[str, dict[str, list[float]]] = {label: {"report_us": [], "originals_us": []} for label in stores}
    for rid in ids:
        for label, store in stores.items():
            t = time.perf_counter()
            assert store.get_report(rid) is not None
            timings[label]["report_us"].append((time.perf_counter() - t) * 1e6)
            t = time.perf_counter()
            assert store.original_documents(digests[rid])
            timings[label]["originals_us"].append((time.perf_counter() - t) * 1e6)
    out: dict[str, Any] = {"reads": len(ids)}
    for label, kinds in timings.items():
        out[label] = {}
        for k, v in kinds.items():
            v.sort()
            out[label][k] = {"median": round(statistics.median(v), 1), "p99": round(v[int(len(v) * 0.99) - 1], 1)}
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
                               "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                           "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
                               "what": "ingest and detail reads with AES-256-GCM at rest vs a pass-through cipher (same code path)"}
    with _databases() as dbs:
        for backend in dbs.backends:
            row: dict[str, Any] = {"ingest": {"clear": [], "encrypted": []}}
            stores: dict[str, Store] = {}
            for repeat in range(REPEATS):  # alternated, each into a fresh database: the best of each says most on a busy machine
                for label, encrypted in (("clear", False), ("encrypted", True)):
                    print(f"{backend}: ingest {n} ({label}, run {repeat + 1} of {REPEATS})", file=sys.stderr)
                    store = _store(dbs.fresh(backend), ring, encrypted)
                    row["ingest"][label].append(_ingest(store, subs))
                    if label in stores:
                        stores[label].dispose()
                    stores[label] = store
            best = {label: min(runs, key=lambda r: r["seconds"]) for label, runs in row["ingest"].items()}
            row["ingest_best"] = best
            row["ingest_overhead_pct"] = round((best["encrypted"]["seconds"] / best["clear"]["seconds"] - 1) * 100, 1)
            enc = stores["encrypted"]
            try:
                ids = random.Random(5).sample(enc.report_ids(), min(READS, n))
                with enc.engine.connect() as conn:
                    digests = {r: d for r, d in conn.execute(sa.text("SELECT id, submission_digest FROM reports"))}
                _reads(stores, ids[:200], digests)  # warm both the same way first
                row["reads"] = _reads(stores, ids, digests)
                row["report_json_bytes"] = {label: _json_bytes(s) for label, s in stores.items()}
                sample = enc.get_report(ids[0])
                assert sample is not None
                if backend == "sqlite":
                    results["primitives"] = _primitives(sample.model_dump_json(exclude_none=True), ring)
                print(f"{backend}: rotate the encrypted database to a new key", file=sys.stderr)
                t = time.perf_counter()
                rot = rotate(enc.engine, ring.with_current(Keyring.of(generate_key()).current), by="bench")
                secs = time.perf_counter() - t
                row["rotation"] = {"seconds": round(secs, 2), "rows_rewritten": rot.rewritten, "rows_per_s": round(rot.rewritten / secs, 1),
                                   "complete": rot.complete}
            finally:
                for s in stores.values():
                    s.dispose()
            results[backend] = row
    return results


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000), indent=2))
