"""Benchmark: the service under load on loopback, with N synthetic reports in PostgreSQL.

One run:
- N synthetic ESP-XML reports (cached in bench/work/, shared with the ingest benchmark) ingested into a fresh PostgreSQL
  database of its own (created and dropped on the server at 127.0.0.1:5432, or TIPTRIAGE_TEST_POSTGRES_URL), then triaged
  by the pipeline (enrich, match, link, assess, route), each stage timed;
- one agency given every report (``report_agency`` with its queue sort keys, one INSERT ... SELECT), then VACUUM ANALYZE
  (what autovacuum does soon after a bulk load), and one analyst account of that agency per client, each logged in over
  HTTP (password + TOTP, banner accepted);
- the service as a user would start it, ``uvicorn --factory tiptriage.server.app:app_from_env`` in a subprocess on
  127.0.0.1 with a few worker processes; plain HTTP on loopback (TLS would sit in front; the session cookie is sent
  as a header since an HTTP client keeps Secure cookies for https only);
- C concurrent clients (asyncio, one keep-alive connection each, HTTP spoken directly on the stream since httpx cost
  more CPU than the server's work; in this process, a different one from the server's) for S seconds,
  each request at random half GET /api/queue?limit=50&offset=<random> and half GET /api/reports/<random id>, after a
  short warm-up that is not counted; latency percentiles per endpoint, requests/s, and every error (non-200 or
  exception) counted. Every request sent in the window is counted with its whole latency, so "seconds" runs from the
  end of the warm-up until the last of them is answered (longer than S when answers are slow);
- a diagnostic pass (BENCH_SERVER_DIAG_SECONDS, 15; 0 skips it) with the detail endpoint alone, to tell its cost from the
  queue's (not the measurement the target is about);
- a profile of one request's parts, measured in this process without concurrency: the queue's SQL (count, page and the
  page's rows: one statement), the report endpoint's read (agency check and report in one query, decrypted), the agency
  check and the decrypted report each alone, the session check, and one audit append (every read writes a hash-chained
  audit entry, serialised by a row lock on the chain head: by design, so it is measured, never switched off), and appends
  per second from 32 threads through the service's group appender (concurrent appends share one transaction).

Client and server share the machine's cores (2 on the reference machine, shared with whatever else runs). The CPU time of
each side per request is recorded from /proc: the client's (``client_cpu_ms_per_request``), the server's processes'
(``server_cpu_ms_per_request``) and every PostgreSQL process's (``postgresql_cpu_ms_per_request``: the database is on the
same machine; anything else using that server in the window counts too). With latency dominated by queueing for the two
cores, these say where the time goes. Sizes: BENCH_SERVER_N reports (100,000), BENCH_SERVER_CLIENTS (50),
BENCH_SERVER_SECONDS (30), BENCH_SERVER_WORKERS (uvicorn workers, 2); the server's own settings (TIPTRIAGE_SERVER_THREADS,
TIPTRIAGE_DB_POOL_SIZE) pass through from the environment and are recorded.

The server reads case data as the row-level-security application role (``tiptriage_bench_app``, applied to the database as
``tiptriage db secure`` would, then named in TIPTRIAGE_APP_DATABASE_URL), as a production service does; intake goes through
the owner's URL.

Populating 100,000 reports takes several minutes (ingest and triage). BENCH_SERVER_KEEP_DATABASE=NAME keeps the populated
database under that name instead of dropping it, with its data key and the accounts' TOTP secrets in
bench/work/server-load-NAME.json; a later run with the same NAME (and the same N, and no more clients) reuses it as it is:
no ingest or triage, the populate timings are those of the run that made it. The audit log and the sessions grow with each
run. BENCH_SERVER_PROFILE=0 skips the profile of one request's parts.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import platform
import random
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyotp
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work"
AGENCY = "bench-agency"
PASSWORD = "bench-harbour-lantern-4821"
PAGE = 50
KEY_ENV = "TIPTRIAGE_DATA_KEY"
KEY_FILE_ENV = "TIPTRIAGE_DATA_KEY_FILE"
TARGET = {"p99_ms": 100, "errors": 0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _percentiles(latencies: list[float]) -> dict[str, Any]:
    if not latencies:
        return {"requests": 0}
    a = np.asarray(latencies)
    return {"requests": len(latencies), "p50_ms": _ms(float(np.percentile(a, 50))), "p95_ms": _ms(float(np.percentile(a, 95))),
            "p99_ms": _ms(float(np.percentile(a, 99))), "max_ms": _ms(float(a.max())), "mean_ms": _ms(float(a.mean()))}


def _data(n: int) -> Path:
    """The N synthetic submissions, generated once (seed 1, as the ingest benchmark's) and kept in bench/work/."""
    from tiptriage import synth

    data_dir = WORK / f"ingest-{n}"
    if not (data_dir / "truth.json").exists():
        print(f"generating {n} synthetic submissions in {data_dir} (cached for later runs)", file=sys.stderr)
        synth.write(synth.generate(n, seed=1), data_dir, "xml")
    return data_dir / "submissions"


def _populate(url: str, subs: Path, n: int, users: int) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """Ingest and triage into ``url``; give AGENCY every report; enroll one analyst per client. Returns the timings, the
    report ids, and each username's TOTP secret."""
    from tiptriage import pipeline
    from tiptriage.server.auth import Authenticator
    from tiptriage.store import Store
    from tiptriage.store.schema import assessments, reports
    from tiptriage.store.users import Role, report_agency

    timings: dict[str, Any] = {}
    store = Store(url)
    try:
        t = time.perf_counter()
        ingested = pipeline.ingest(store, [subs], workers=min(4, os.cpu_count() or 1))
        timings["ingest_s"] = round(time.perf_counter() - t, 1)
        timings["accepted"] = ingested.accepted
        print(f"ingest: {ingested.accepted} reports in {timings['ingest_s']} s", file=sys.stderr)
        # the known-content bank that goes with the data, as a unit would have it: without it every file is "unknown to every
        # hash set" and the queue has no possession tier (earlier runs had tiers 1, 2 and 4 only)
        pipeline.import_hashset(store, subs.parent / "hashsets" / "known.csv", "known")
        t = time.perf_counter()
        triaged = pipeline.triage(store)
        timings["triage_s"] = round(time.perf_counter() - t, 1)
        timings["assessed"] = triaged.assessed
        timings["by_tier"] = triaged.by_tier
        print(f"triage: {triaged.assessed} assessed in {timings['triage_s']} s", file=sys.stderr)
        t = time.perf_counter()
        now = datetime.now(UTC)
        with store.engine.begin() as conn:
            conn.execute(report_agency.delete().where(report_agency.c.agency_id == AGENCY))
            # the queue's sort keys (tier, score, received time) are filled here as store.queue_keys would fill them
            conn.execute(report_agency.insert().from_select(
                ["report_id", "agency_id", "via", "assigned_at", "tier", "score", "received_at"],
                sa.select(reports.c.id, sa.literal(AGENCY), sa.literal("routed"), sa.literal(now, sa.DateTime(timezone=True)),
                          assessments.c.tier, assessments.c.score, reports.c.received_at)
                .select_from(reports.outerjoin(assessments, assessments.c.report_id == reports.c.id))))
        # what autovacuum does to a table soon after a bulk load (its insert threshold is far exceeded), done now rather
        # than at a time that would fall inside the measurement: planner statistics, and the visibility map that lets the
        # queue's count and page be index-only scans
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
        timings["report_agency_s"] = round(time.perf_counter() - t, 1)
        ids = store.report_ids()
        auth = Authenticator(store)
        t = time.perf_counter()
        totp = {f"bench-analyst-{i:03d}": auth.enroll(f"bench-analyst-{i:03d}", AGENCY, Role.ANALYST, PASSWORD, by="bench").totp_secret
                for i in range(users)}
        timings["enroll_s"] = round(time.perf_counter() - t, 1)
    finally:
        store.dispose()
    assert len(ids) >= n * 0.99, f"only {len(ids)} of {n} reports stored"
    return timings, ids, totp


def _server_stack() -> dict[str, str]:
    """What uvicorn runs the service on (its "auto" choices, as ``tiptriage serve`` gets them): the C HTTP parser and event
    loop when installed (the service depends on both), else its pure-Python ones."""
    from importlib.util import find_spec

    import uvicorn

    return {"uvicorn": uvicorn.__version__, "http": "httptools" if find_spec("httptools") else "h11",
            "loop": "uvloop" if find_spec("uvloop") else "asyncio"}


def _start_server(env: dict[str, str], port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "tiptriage.server.app:app_from_env", "--host", "127.0.0.1", "--port",
           str(port), "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        with suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/api/banner", timeout=2).status_code == 200:
                return proc
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"the server did not answer within 120 s:\n{log.read_text()[-3000:]}")


def _stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()  # uvicorn's supervisor stops its workers on SIGTERM
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _login(base: str, totp: dict[str, str]) -> list[tuple[str, str]]:
    """One session per account: (session cookie header value, CSRF token)."""
    from tiptriage.server.auth import SESSION_COOKIE

    sessions = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for username, secret in totp.items():
            r = client.post("/api/login", json={"username": username, "password": PASSWORD, "totp": pyotp.TOTP(secret).now(),
                                                "banner_accepted": True})
            if r.status_code != 200:
                raise RuntimeError(f"login of {username} failed: {r.status_code} {r.text[:500]}")
            token = r.cookies.get(SESSION_COOKIE)
            if not token:
                raise RuntimeError(f"no session cookie for {username}: {r.headers.get_list('set-cookie')}")
            sessions.append((f"{SESSION_COOKIE}={token}", str(r.json()["csrf_token"])))
            client.cookies.clear()
    return sessions


class _Connection:
    """One client's HTTP/1.1 keep-alive connection, spoken directly over asyncio streams: GET, read the status line, the
    headers and a Content-Length body. httpx's AsyncClient cost 4.2 ms of CPU per request with 50 connections in its pool
    (1.6 ms with a client of its own per connection), on the two cores the server shares; this costs about 0.1 ms, so the
    load measures the server, not the client. The client's own CPU time is recorded with the results."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str, headers: dict[str, str]) -> int:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}:{self.port}", *(f"{k}: {v}" for k, v in headers.items())]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
            status = int(head[0].split(b" ", 2)[1])
            fields = {k.strip().lower(): v.strip() for k, v in (line.split(b":", 1) for line in head[1:] if b":" in line)}
            if b"content-length" not in fields:
                raise ConnectionError("an answer without Content-Length")
            await reader.readexactly(int(fields[b"content-length"]))
            if fields.get(b"connection", b"").lower() == b"close":
                self.close()
            return status
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


def _cpu_seconds(pids: Callable[[int, str, int], bool]) -> float:
    """User + system CPU seconds of the processes ``pids(pid, name, parent)`` selects, from /proc (Linux); a PostgreSQL
    postmaster (parent 1) adds its reaped backends' time, so connections closed within the window still count."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # ended meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if not pids(int(entry), name, int(fields[1])):
            continue
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        total += (utime + stime + ((cutime + cstime) if name == "postgres" and fields[1] == "1" else 0)) / tick
    return total


def _backend_of(database: str) -> Callable[[int, str, int], bool]:
    """A PostgreSQL backend connected to ``database`` (its process title names the database), or the WAL writer, which
    flushes every backend's commits; not the backends of other databases on the same server."""
    def select(pid: int, name: str, _parent: int) -> bool:
        if name != "postgres":
            return False
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").split()
        except OSError:
            return False
        return database in title or "walwriter" in title

    return select


def _cpu_probe(server_pid: int, database: str) -> Callable[[], dict[str, float]] | None:
    """CPU seconds so far of the server (uvicorn's supervisor and its workers), of every PostgreSQL process on this machine
    (the database is local on the reference machine; whatever else uses that server in the window is counted too: a CI run's
    test databases, another benchmark), and of this database's backends alone with the WAL writer (``postgresql_own``: a
    backend that ended within the window is not counted there; the pools keep theirs open). None where /proc cannot be read."""
    if not Path(f"/proc/{server_pid}/stat").exists():
        return None
    return lambda: {"server": _cpu_seconds(lambda pid, _name, parent: server_pid in (pid, parent)),
                    "postgresql": _cpu_seconds(lambda _pid, name, _parent: name == "postgres"),
                    "postgresql_own": _cpu_seconds(_backend_of(database))}


async def _load(base: str, sessions: list[tuple[str, str]], ids: list[str], total: int, seconds: float, warmup: float,
                queue_share: float = 0.5, seed: int = 7, cpu_probe: Callable[[], dict[str, float]] | None = None) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {"queue": [], "report": []}
    errors: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    rng = random.Random(seed)
    max_offset = max(0, total - PAGE)
    url = httpx.URL(base)
    host, port = str(url.host), int(url.port or 80)
    start = time.perf_counter()
    measure_from, stop = start + warmup, start + warmup + seconds
    cpu_at: list[float] = []
    others_at: dict[str, float] = {}

    async def one_client(cookie: str) -> None:
        headers = {"Cookie": cookie}
        conn = _Connection(host, port)
        try:
            while (now := time.perf_counter()) < stop:
                if rng.random() < queue_share:
                    kind, path = "queue", f"/api/queue?limit={PAGE}&offset={rng.randint(0, max_offset)}"
                else:
                    kind, path = "report", f"/api/reports/{rng.choice(ids)}"
                if now >= measure_from and not cpu_at:
                    cpu_at.append(time.process_time())
                    if cpu_probe is not None:
                        others_at.update(cpu_probe())
                t = time.perf_counter()
                try:
                    status = str(await asyncio.wait_for(conn.get(path, headers), timeout=30))
                except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError, IndexError) as exc:
                    status = type(exc).__name__
                elapsed = time.perf_counter() - t
                if now < measure_from or t >= stop:
                    continue  # warm-up, or sent after the end
                statuses[f"{kind} {status}"] += 1
                if status == "200":
                    latencies[kind].append(elapsed)
                else:
                    errors[f"{kind} {status}"] += 1
        finally:
            conn.close()

    await asyncio.gather(*(one_client(cookie) for cookie, _ in sessions))
    wall = time.perf_counter() - measure_from
    client_cpu = time.process_time() - (cpu_at[0] if cpu_at else time.process_time())
    others = {k: v - others_at[k] for k, v in cpu_probe().items()} if cpu_probe is not None and others_at else {}
    done = sum(len(v) for v in latencies.values()) + sum(errors.values())
    return {"seconds": round(wall, 2), "requests": done, "requests_per_s": round(done / wall, 1),
            "errors": sum(errors.values()), "errors_by_kind": dict(errors), "statuses": dict(statuses),
            "queue": _percentiles(latencies["queue"]), "report": _percentiles(latencies["report"]),
            "all": _percentiles(latencies["queue"] + latencies["report"]),
            "client_cpu_ms_per_request": round(client_cpu * 1000 / max(done, 1), 3),
            **{f"{k}_cpu_ms_per_request": round(v * 1000 / max(done, 1), 3) for k, v in others.items()}}


def _profile(url: str, ids: list[str], total: int, token: str, repeat: int = 200, seed: int = 11) -> dict[str, Any]:
    """The parts of one request, each timed alone in this process with the server idle: median and p95 in ms. ``token``: a
    live session (the session check reads the session and the account and records the activity)."""
    from tiptriage.server.auth import Authenticator
    from tiptriage.store import Store
    from tiptriage.store.users import ReportAccessRepository

    rng = random.Random(seed)
    store = Store(url)
    access = ReportAccessRepository(store.engine)
    auth = Authenticator(store)

    def timed(fn: Any) -> dict[str, float]:
        samples = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
        return {"p50_ms": _ms(statistics.median(samples)), "p95_ms": _ms(float(np.percentile(samples, 95)))}

    def commit_probe() -> None:  # one small durable write: the floor under every transaction that writes
        with store.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO bench_commit_probe VALUES (1)"))

    try:
        with store.engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE IF NOT EXISTS bench_commit_probe (x integer)"))
        parts: dict[str, Any] = {
            "insert_and_commit": timed(commit_probe),
            "queue_page_and_count": timed(lambda: access.queue(AGENCY, PAGE, rng.randint(0, max(0, total - PAGE)))),
            "queue_first_page": timed(lambda: access.queue(AGENCY, PAGE, 0)),
            "report_readable_decrypted": timed(lambda: access.readable_report(rng.choice(ids), AGENCY)),
            "agency_check": timed(lambda: access.via(rng.choice(ids), AGENCY)),
            "get_report_decrypted": timed(lambda: store.get_report(rng.choice(ids))),
            "audit_append": timed(lambda: store.audit.append("bench-profile", "read", object_type="report", object_id=rng.choice(ids),
                                                             agency=AGENCY, source_address="127.0.0.1", detail={"via": "routed"})),
            "session_check": timed(lambda: auth.authenticate(token, method="GET", csrf_token=None, source="127.0.0.1", path="/api/queue")),
        }
        parts["audit_group_appends_per_s_32_threads"] = _grouped_appends(store, ids, threads=32, each=40)
    finally:
        store.dispose()
    # every audited read appends under one lock on the chain head, held until its commit: one append at a time
    parts["audit_serial_ceiling_req_per_s"] = round(1000 / parts["audit_append"]["p50_ms"], 1)
    return parts


def _grouped_appends(store: Any, ids: list[str], threads: int, each: int) -> float:
    """Appends per second from ``threads`` threads at once through the service's appender (``GroupAppender``: the appends
    that arrive while one transaction holds the chain head are written together, in the next one)."""
    import threading

    from tiptriage.audit.chain import AuditEvent
    from tiptriage.store.audit import GroupAppender

    appender = GroupAppender(store.audit)

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(each):
            appender.submit(AuditEvent(user="bench-profile", action="read", object_type="report", object_id=rng.choice(ids), agency=AGENCY,
                                       source_address="127.0.0.1", detail={"via": "routed"}))

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    t = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return round(threads * each / (time.perf_counter() - t), 1)


def _sessions_opened(url: str) -> int:
    """Connections opened to the database so far (PostgreSQL 14+): a pool smaller than the requests in flight opens and closes
    one for each request beyond it, a fork and a cold backend each time."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")).scalar_one())
    except sa.exc.SQLAlchemyError:
        return -1
    finally:
        engine.dispose()


def _audit_entries(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM audit_log")).scalar_one())
    except sa.exc.SQLAlchemyError:
        return -1
    finally:
        engine.dispose()


APP_ROLE = "tiptriage_bench_app"


def _database_exists(admin: sa.Engine, name: str) -> bool:
    with admin.connect() as conn:
        return conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is not None


def _as_app_role(url: str) -> str:
    """Row-level security for ``APP_ROLE`` applied as the owner (what ``tiptriage db secure`` does), and the URL the service
    connects to for case data as that role: the service is measured as it runs in production, every transaction bound to the
    caller's agency under the agency policies."""
    from tiptriage.store import rls

    engine = sa.create_engine(url)
    try:
        rls.apply(engine, APP_ROLE)
    finally:
        engine.dispose()
    return sa.engine.make_url(url).set(username=APP_ROLE).render_as_string(hide_password=False)


def main(n: int = 100_000) -> dict[str, Any]:
    from tiptriage.server.app import worker_threads

    clients = int(os.environ.get("BENCH_SERVER_CLIENTS", 50))
    seconds = float(os.environ.get("BENCH_SERVER_SECONDS", 30))
    workers = int(os.environ.get("BENCH_SERVER_WORKERS", 2))
    keep = os.environ.get("BENCH_SERVER_KEEP_DATABASE", "")
    warmup = 3.0
    if keep and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", keep):
        raise ValueError(f"BENCH_SERVER_KEEP_DATABASE={keep!r}: lower-case letters, digits and _ only")
    results: dict[str, Any] = {
        "benchmark": "server_load", "reports": n, "clients": clients, "seconds": seconds, "server_workers": workers,
        "endpoints": {"queue": f"GET /api/queue?limit={PAGE}&offset=<random>", "report": "GET /api/reports/<random id>"},
        "mix": "half and half, at random", "transport": "HTTP/1.1 keep-alive on loopback, no TLS", "server_stack": _server_stack(), "target": TARGET,
        "client": ("one keep-alive connection per client over asyncio streams (bench/server_load.py _Connection), not httpx: "
                   "httpx's AsyncClient cost 4.2 ms of CPU per request with 50 pooled connections, against about 0.1 ms; "
                   "the client's own CPU per request is in load.client_cpu_ms_per_request"),
        "database_role": f"case data as the row-level-security application role ({APP_ROLE}, TIPTRIAGE_APP_DATABASE_URL); "
                         "intake through the owner",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average_at_start": os.getloadavg()},
        "server_threads_per_worker": worker_threads(), "db_pool_size_per_worker": int(os.environ.get("TIPTRIAGE_DB_POOL_SIZE", "20")),
    }
    pg_admin = os.environ.get("TIPTRIAGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    db_name = keep or f"tiptriage_load_{uuid.uuid4().hex[:8]}"
    # a kept database's data key and accounts' TOTP secrets, beside the generated data (bench/work/ is not committed)
    kept_file = WORK / f"server-load-{db_name}.json"
    admin = sa.create_engine(pg_admin, isolation_level="AUTOCOMMIT")
    url = sa.engine.make_url(pg_admin).set(database=db_name).render_as_string(hide_password=False)
    reuse = bool(keep) and kept_file.exists() and _database_exists(admin, db_name)
    kept: dict[str, Any] = json.loads(kept_file.read_text()) if reuse else {}
    if reuse:
        if kept["reports"] != n or len(kept["totp"]) < clients:
            raise ValueError(f"{db_name} holds {kept['reports']} reports and {len(kept['totp'])} accounts, not {n} and {clients}")
        os.environ[KEY_ENV] = kept["data_key"]
        os.environ.pop(KEY_FILE_ENV, None)
    elif not os.environ.get(KEY_ENV) and not os.environ.get(KEY_FILE_ENV):
        os.environ[KEY_ENV] = base64.b64encode(secrets.token_bytes(32)).decode()  # this run's data key
    if not reuse:
        subs = _data(n)
        with admin.connect() as conn:
            if keep:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{db_name}"'))
    proc: subprocess.Popen[bytes] | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="tiptriage-load-") as tmp:
            os.environ["TIPTRIAGE_INDEX_DIR"] = tmp  # the triage's saved hash indexes: not in the home folder
            if reuse:
                results["populate"] = {**kept["populate"], "reused_database": db_name}
                totp = dict(list(kept["totp"].items())[:clients])
                from tiptriage.store import Store

                store = Store(url)
                try:
                    ids = store.report_ids()
                finally:
                    store.dispose()
            else:
                timings, ids, totp = _populate(url, subs, n, clients)
                results["populate"] = timings
                if keep:
                    WORK.mkdir(parents=True, exist_ok=True)
                    kept_file.write_text(json.dumps({"reports": n, "data_key": os.environ.get(KEY_ENV), "totp": totp, "populate": timings}))
            env = {**os.environ, "TIPTRIAGE_DATABASE_URL": url, "TIPTRIAGE_APP_DATABASE_URL": _as_app_role(url)}
            port = _free_port()
            base = f"http://127.0.0.1:{port}"
            proc = _start_server(env, port, workers, Path(tmp) / "server.log")
            sessions = _login(base, totp)
            first = httpx.get(f"{base}/api/queue?limit=1", headers={"Cookie": sessions[0][0]}, timeout=60)
            first.raise_for_status()
            total = int(first.json()["total"])
            results["queue_total"] = total
            audit_before, opened_before = _audit_entries(url), _sessions_opened(url)
            print(f"load: {clients} clients for {seconds} s against {base}", file=sys.stderr)
            probe = _cpu_probe(proc.pid, db_name)
            results["load"] = asyncio.run(_load(base, sessions, ids, total, seconds, warmup, cpu_probe=probe))
            audit_after, opened_after = _audit_entries(url), _sessions_opened(url)
            results["load"]["audit_entries_written"] = audit_after - audit_before
            # pg_stat_database.sessions: with the harness's own probes and any first fill of the pools, so an upper bound
            results["load"]["database_connections_opened"] = opened_after - opened_before
            results["load"]["load_average_after"] = os.getloadavg()
            # a diagnostic, not the measurement: the detail endpoint alone, to separate its cost from the queue's
            diag = float(os.environ.get("BENCH_SERVER_DIAG_SECONDS", 15))
            if diag > 0:
                print(f"diagnostic: report detail only, {diag} s", file=sys.stderr)
                results["diagnostic_report_only"] = asyncio.run(_load(base, sessions, ids, total, diag, warmup, queue_share=0.0, cpu_probe=probe))
            _stop_server(proc)
            proc = None
            if os.environ.get("BENCH_SERVER_PROFILE", "1") != "0":
                results["profile_one_request_parts"] = _profile(url, ids, total, sessions[0][0].split("=", 1)[1])
    finally:
        if proc is not None:
            _stop_server(proc)
        if not keep:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        admin.dispose()
    load = results["load"]
    results["met_target"] = {"p99_under_100_ms": all(load[k].get("p99_ms", 1e9) < TARGET["p99_ms"] for k in ("queue", "report")),
                             "zero_errors": load["errors"] == 0}
    return results


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000), indent=2))
