"""Benchmark: ingest N synthetic ESP-XML submissions into SQLite and PostgreSQL.

Runs ``tiptriage ingest`` as a user would (a subprocess, fresh database), samples the resident memory
of its whole process tree, and compares in the same run with
- the same ingest with one process (``--workers 1``), and
- a parse-only floor: defusedxml parsing of every document, no model, no store.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from defusedxml.ElementTree import fromstring

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work"
EXE = str(Path(sys.executable).parent / "tiptriage")


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            pass
        stack.extend(children.get(p, []))
    return total


def run_ingest(subs: Path, url: str, workers: int) -> dict[str, Any]:
    env = {**os.environ, "TIPTRIAGE_DATABASE_URL": url}
    # migrate first so the timing is the ingest alone
    subprocess.run([sys.executable, "-c", "from tiptriage.store import Store; Store().dispose()"], env=env, check=True)
    start = time.perf_counter()
    proc = subprocess.Popen([EXE, "ingest", str(subs), "--json", "--workers", str(workers)], env=env, stdout=subprocess.PIPE, text=True)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.25)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, _ = proc.communicate()
    elapsed = time.perf_counter() - start
    stop.set()
    t.join()
    res = json.loads(out)
    return {"workers": workers, "seconds": round(elapsed, 2), "accepted": res["accepted"], "quarantined": res["quarantined"],
            "reports_per_s": round(res["accepted"] / elapsed, 1), "peak_rss_mb": round(peak / 2**20, 1)}


def parse_only(subs: Path) -> dict[str, Any]:
    start = time.perf_counter()
    docs = 0
    for folder in sorted(subs.iterdir()):
        for f in folder.iterdir():
            fromstring(f.read_bytes(), forbid_dtd=True)
            docs += 1
    elapsed = time.perf_counter() - start
    n = sum(1 for _ in subs.iterdir())
    return {"seconds": round(elapsed, 2), "documents": docs, "reports_per_s": round(n / elapsed, 1)}


def main(n: int = 100_000) -> dict[str, Any]:
    from tiptriage import synth

    data_dir = WORK / f"ingest-{n}"
    subs = data_dir / "submissions"
    if not (data_dir / "truth.json").exists():
        print(f"generating {n} synthetic submissions in {data_dir} (cached for later runs)", file=sys.stderr)
        synth.write(synth.generate(n, seed=1), data_dir, "xml")
    results: dict[str, Any] = {"benchmark": "ingest", "reports": n, "format": "cybertip-xml folders",
                               "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                               "target": {"reports_per_s": 2000, "peak_rss_mb": 1024}}
    results["parse_only_floor"] = parse_only(subs)
    backends: dict[str, str] = {}
    db = WORK / "ingest-bench.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    backends["sqlite"] = f"sqlite:///{db}"
    pg_admin = os.environ.get("TIPTRIAGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    pg_db = f"tiptriage_bench_{uuid.uuid4().hex[:8]}"
    pg_ok = False
    try:
        import sqlalchemy as sa

        admin = sa.create_engine(pg_admin, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{pg_db}"'))
        backends["postgresql"] = sa.engine.make_url(pg_admin).set(database=pg_db).render_as_string(hide_password=False)
        pg_ok = True
    except Exception as exc:  # the bench still reports SQLite when no server is reachable
        results["postgresql_skipped"] = str(exc).splitlines()[0]
    try:
        for name, url in backends.items():
            results[name] = run_ingest(subs, url, workers=min(4, os.cpu_count() or 1))
            print(name, results[name], file=sys.stderr)
        # the single-process alternative, same data, fresh SQLite file
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        results["sqlite_one_process"] = run_ingest(subs, backends["sqlite"], workers=1)
        results["speedup_vs_one_process"] = round(results["sqlite"]["reports_per_s"] / results["sqlite_one_process"]["reports_per_s"], 2)
    finally:
        if pg_ok:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)'))
    return results


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000), indent=2))
