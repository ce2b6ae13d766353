"""The two endpoints read most under load (the queue and a report) write their answers without the models' round trip; these
tests hold them to what the models would have written, keep every read audited and every refusal the same, and check the
pool's idle ping that replaced SQLAlchemy's pre-ping on every checkout."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from service_fixtures import PASSWORD, Service

from tiptriage.model import Report
from tiptriage.server.app import QueuePage, create_app, worker_threads
from tiptriage.server.auth import SESSION_COOKIE, Authenticator, AuthError, Principal, token_hash
from tiptriage.store import Store, db
from tiptriage.store.audit import audit_log
from tiptriage.store.schema import metadata
from tiptriage.store.users import (
    USER_TABLES,
    ReportAccessRepository,
    Role,
    Session,
    SessionRead,
    User,
    UserRepository,
    session_and_user,
)


def _reads(service: Service, object_type: str) -> list[dict[str, Any]]:
    with service.store.engine.connect() as conn:
        rows = conn.execute(sa.select(audit_log.c.username, audit_log.c.object_id, audit_log.c.outcome)
                            .where(audit_log.c.action == "read", audit_log.c.object_type == object_type)
                            .order_by(audit_log.c.seq)).mappings()
        return [dict(r) for r in rows]


def test_the_queue_answer_is_what_the_page_model_writes(service: Service) -> None:
    client, _ = service.client(Role.ANALYST)
    for limit, offset in ((3, 0), (5, 4), (200, 0), (2, 10_000)):
        r = client.get(f"/api/queue?limit={limit}&offset={offset}")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        page = QueuePage.model_validate_json(r.content)
        assert r.content == page.model_dump_json().encode()
        assert page.total == len(service.reports["agency-a"]) and len(page.items) == max(0, min(limit, page.total - offset))
        assert {i.report_id for i in page.items} <= set(service.reports["agency-a"])
    by_id = {i.report_id: i for i in QueuePage.model_validate_json(client.get("/api/queue?limit=200").content).items}
    for rid, item in by_id.items():
        assessment = service.store.assessments.get(rid)
        assert assessment is not None
        assert item.reasons == [f["reason"] for f in assessment["fired"]] and (item.tier, item.score) == (assessment["tier"], assessment["score"])
    reads = _reads(service, "queue")
    assert len(reads) == 5 and {(r["username"], r["object_id"], r["outcome"]) for r in reads} == {("analyst-a", "agency-a", "ok")}


def test_a_report_is_sent_as_the_model_writes_it_and_every_read_is_audited(service: Service) -> None:
    client, _ = service.client(Role.INVESTIGATOR)
    mine = service.reports["agency-a"]
    for rid in mine:
        r = client.get(f"/api/reports/{rid}")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        stored = service.store.get_report(rid)
        assert stored is not None
        # the stored text, sent as read, is byte for byte what validating it and writing it out again gives
        assert r.text == Report.model_validate_json(r.content).model_dump_json(exclude_none=True) == stored.model_dump_json(exclude_none=True)
    theirs = service.reports["agency-b"][0]
    hidden, unknown = client.get(f"/api/reports/{theirs}"), client.get("/api/reports/SYN-NO-SUCH-REPORT")
    assert hidden.status_code == unknown.status_code == 404 and hidden.json()["detail"] == unknown.json()["detail"]
    reads = _reads(service, "report")
    assert [(r["object_id"], r["outcome"]) for r in reads] == [(rid, "ok") for rid in mine] + [(theirs, "denied"), ("SYN-NO-SUCH-REPORT", "denied")]


@pytest.mark.parametrize("role", [Role.AGENCY_ADMIN, Role.SYSTEM_ADMIN])
def test_roles_without_case_data_are_refused_on_the_fast_paths(service: Service, role: Role) -> None:
    client, _ = service.client(role)
    assert client.get("/api/queue").status_code == 403
    assert client.get(f"/api/reports/{service.reports['agency-a'][0]}").status_code == 404
    assert {r["outcome"] for r in _reads(service, "queue") + _reads(service, "report")} == {"denied"}


def test_the_fast_paths_refuse_a_missing_or_ended_session(service: Service) -> None:
    anonymous, _ = service.client()
    rid = service.reports["agency-a"][0]
    assert anonymous.get("/api/queue").status_code == 401 and anonymous.get(f"/api/reports/{rid}").status_code == 401
    client, _ = service.client(Role.ANALYST)
    assert client.get(f"/api/reports/{rid}").status_code == 200
    user = service.auth.users.by_username("analyst-a")
    assert user is not None
    service.auth.disable_account(user, by="test", reason="administrator")
    assert client.get(f"/api/reports/{rid}").status_code == 401  # disabling ends the session: refused at its next request
    assert client.get("/api/queue").status_code == 401


def test_the_server_threads_fit_in_the_connection_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIPTRIAGE_SERVER_THREADS", raising=False)
    monkeypatch.delenv("TIPTRIAGE_DB_POOL_SIZE", raising=False)
    engine = db.make_engine("postgresql+psycopg://tiptriage@127.0.0.1:1/none")  # not connected: only the pool's size is read
    assert worker_threads() <= engine.pool.size()  # type: ignore[attr-defined]  # QueuePool
    engine.dispose()


def test_a_connection_idle_in_the_pool_is_pinged_and_replaced_when_dead(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("the idle ping is PostgreSQL's (SQLite has no server connection to lose)")
    monkeypatch.setattr(db, "PING_IDLE_AFTER_S", 0.2)
    engine, admin = db.make_engine(db_url), sa.create_engine(db_url)
    pings: list[object] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    try:
        with engine.connect() as conn:  # a new connection: no ping
            first = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with engine.connect() as conn:  # in use a moment ago: no ping, the same connection
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() == first
        assert pings == []
        with admin.connect() as conn:
            conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(first)})")
        time.sleep(0.3)
        with engine.connect() as conn:  # idle long enough: pinged, found dead, replaced, no error
            second = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        assert second != first and len(pings) == 1
    finally:
        engine.dispose()
        admin.dispose()


# -- the session check and the read in one pipelined transaction (PostgreSQL) ------------------------------------------------


def _postgresql(service: Service) -> None:
    if service.store.engine.dialect.name != "postgresql":
        pytest.skip("the one-transaction reads go through PostgreSQL's driver; SQLite keeps the general path")


def _session_id(client: TestClient) -> str:
    token = client.cookies.get(SESSION_COOKIE)
    assert token
    return token_hash(token)


def test_the_one_transaction_reads_give_what_the_general_reads_give(service: Service) -> None:
    _postgresql(service)
    client, _ = service.client(Role.ANALYST)
    sid, engine = _session_id(client), service.store.engine
    access = ReportAccessRepository(engine)
    general = session_and_user(UserRepository(engine), sid)
    assert general is not None and general[1] is not None
    for limit, offset in ((3, 0), (5, 4), (200, 0), (2, 10_000)):
        with SessionRead(engine, sid) as reads:
            assert reads.session() == general
            assert reads.queue("agency-a", limit, offset) == access.queue("agency-a", limit, offset)
    mine, theirs = service.reports["agency-a"], service.reports["agency-b"][0]
    for rid in [*mine, theirs, "SYN-NO-SUCH-REPORT"]:
        with SessionRead(engine, sid) as reads:
            assert reads.session() == general
            assert reads.readable_report(rid, "agency-a") == access.readable_report(rid, "agency-a")
    assert all(SessionRead(engine, sid).session() is not None for _ in range(2))  # left open: rolled back when dropped
    with SessionRead(engine, "0" * 64) as reads:
        assert reads.session() is None == session_and_user(UserRepository(engine), "0" * 64)


def test_a_one_transaction_read_is_for_the_sessions_own_agency_only(service: Service) -> None:
    _postgresql(service)
    client, _ = service.client(Role.ANALYST)
    with SessionRead(service.store.engine, _session_id(client)) as reads:
        assert reads.session() is not None
        with pytest.raises(PermissionError):
            reads.readable_report(service.reports["agency-b"][0], "agency-b")
    with SessionRead(service.store.engine, _session_id(client)) as reads, pytest.raises(PermissionError):
        reads.queue("agency-a", 5)  # before the session is read, no agency is bound


def _audited(store: Store, after: int) -> list[tuple[Any, ...]]:
    return [(e.user, e.agency, e.object_type, e.object_id, e.action, e.outcome, e.detail)
            for e in store.audit.iter_entries(after + 1)]


def test_the_api_answers_alike_in_one_transaction_and_on_the_general_path(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same requests, on the same sessions, through the app with the one-transaction reads answered before FastAPI's
    routing and through one without either: the same status, headers and bytes, the same audit entries; the plain requests
    went the short way (the one-transaction reads, and never FastAPI's route), every other one FastAPI's."""
    import fastapi.routing

    _postgresql(service)
    general_app = create_app(service.store, session_reads=False)
    used: list[str] = []
    for name in ("queue", "readable_report"):
        real = getattr(SessionRead, name)
        monkeypatch.setattr(SessionRead, name, lambda self, *a, _real=real, _name=name: (used.append(_name), _real(self, *a))[1])
    routed: list[str] = []
    handle = fastapi.routing.APIRoute.handle

    async def counted(self: fastapi.routing.APIRoute, scope: Any, receive: Any, send: Any) -> None:
        routed.append(scope["path"])
        await handle(self, scope, receive, send)

    monkeypatch.setattr(fastapi.routing.APIRoute, "handle", counted)
    mine, theirs = service.reports["agency-a"], service.reports["agency-b"][0]
    plain = [f"/api/queue?limit={limit}&offset={offset}" for limit, offset in ((3, 0), (5, 4), (200, 0), (2, 10_000))]
    plain += ["/api/queue", "/api/queue?offset=2", "/api/queue?limit=4&limit=2&other=x"]
    plain += [f"/api/reports/{rid}" for rid in (*mine[:4], theirs, "SYN-NO-SUCH-REPORT", "SYN%20SPACE")]
    others = ["/api/queue?limit=0", "/api/queue?limit=201", "/api/queue?limit=+5", "/api/queue?limit=05", "/api/queue?limit=",
              "/api/queue?offset=-1", "/api/queue?limit=x", "/api/queue/", "/api/reports/", f"/api/reports/{mine[0]}/", "/api/reports/a%2Fb"]
    valid_others = 0
    for role in (Role.ANALYST, Role.AUDITOR, Role.AGENCY_ADMIN, None):
        client, _ = service.client(role)
        general = TestClient(general_app, base_url="https://testserver", cookies=dict(client.cookies), follow_redirects=False)
        for path in plain + others:
            seq, routed_before = service.store.audit.head().seq, len(routed)
            fast = client.get(path)
            fast_audit = _audited(service.store, seq)
            if path in plain:  # the short way; a queue request with parameters to validate goes through FastAPI's route
                assert len(routed) == routed_before, path
            elif path.startswith("/api/queue?"):
                assert len(routed) == routed_before + 1, path
            seq = service.store.audit.head().seq
            slow = general.get(path)
            assert (fast.status_code, fast.headers.multi_items(), fast.content) == (slow.status_code, slow.headers.multi_items(), slow.content), path
            assert fast_audit == _audited(service.store, seq), path
            valid_others += role is Role.ANALYST and path not in plain and fast.status_code == 200
    # the analyst and the auditor: 7 plain queue pages, the pages FastAPI found valid among the others (its route reads in
    # the session's transaction too) and 7 reports each; the admin has no case data, and the anonymous client no session
    assert used.count("queue") == 2 * (7 + valid_others) and used.count("readable_report") == 2 * 7


class _Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def test_accept_takes_only_a_session_the_general_check_would_take_without_doing_anything(store: Store) -> None:
    """``Authenticator.accept`` against ``authenticate``: where accept gives a principal, authenticate gives the same one
    and writes nothing; every other case (a state-changing method, idle, too old, disabled, no session, the idle clock due
    to move) is left to authenticate."""
    metadata.create_all(store.engine, tables=list(USER_TABLES))
    clock = _Clock()
    auth = Authenticator(store, clock=clock)
    secret = auth.enroll("ann", "agency-a", Role.ANALYST, "violet-harbour-lantern-91", by="test").totp_secret
    login = auth.login("ann", "violet-harbour-lantern-91", pyotp.TOTP(secret).at(clock.now), True, "10.0.0.1")
    sid = token_hash(login.token)

    def found() -> tuple[Session, User | None] | None:
        return session_and_user(auth.users, sid)

    def general(method: str = "GET") -> Principal:
        return auth.authenticate(login.token, method=method, csrf_token=None, source="10.0.0.1", path="/api/queue")

    clock.now += timedelta(seconds=59)
    accepted = auth.accept(found(), method="GET", source="10.0.0.1")
    before = auth.users.session(sid)
    assert accepted is not None and accepted == general() and auth.users.session(sid) == before  # nothing written either way
    assert auth.accept(found(), method="POST", source="10.0.0.1") is None
    with pytest.raises(AuthError):
        general("POST")  # no CSRF token
    assert auth.accept(None, method="GET", source="10.0.0.1") is None
    clock.now += timedelta(seconds=1)  # the idle clock is due to move: left to authenticate, which moves it
    assert auth.accept(found(), method="GET", source="10.0.0.1") is None
    assert general() == accepted and auth.users.session(sid) != before
    assert auth.accept(found(), method="GET", source="10.0.0.1") == accepted
    clock.now += timedelta(minutes=30)  # idle
    assert auth.accept(found(), method="GET", source="10.0.0.1") is None
    with pytest.raises(AuthError):
        general()
    login = auth.login("ann", "violet-harbour-lantern-91", pyotp.TOTP(secret).at(clock.now), True, "10.0.0.1")
    sid = token_hash(login.token)
    start = clock.now
    while clock.now - start < timedelta(hours=12) - timedelta(minutes=29):  # active every 29 minutes
        clock.now += timedelta(minutes=29)
        general()
    clock.now += timedelta(minutes=29)  # never idle, but past 12 hours since the login
    assert auth.accept(found(), method="GET", source="10.0.0.1") is None
    with pytest.raises(AuthError):
        general()
    user = auth.users.by_username("ann")
    assert user is not None
    login = auth.login("ann", "violet-harbour-lantern-91", pyotp.TOTP(secret).at(clock.now + timedelta(seconds=30)), True, "10.0.0.1")
    sid = token_hash(login.token)
    assert auth.accept(found(), method="GET", source="10.0.0.1") is not None
    auth.users.disable(user.id, "administrator", clock.now)  # ends the sessions too; a disabled account's row alone:
    row = found()
    assert row is None
    session = Session(sid, user.id, clock.now, clock.now, "x" * 64, None)
    disabled = auth.users.by_username("ann")
    assert disabled is not None and disabled.disabled
    assert auth.accept((session, disabled), method="GET", source="10.0.0.1") is None
    assert auth.accept((session, None), method="GET", source="10.0.0.1") is None


def test_the_fast_path_keeps_the_session_rules(service: Service) -> None:
    """Idle lock, disabled accounts and the idle clock, on the endpoints that check the session in their read's transaction."""
    _postgresql(service)
    clock = _Clock()
    app = create_app(service.store, clock=clock)
    c = TestClient(app, base_url="https://testserver")
    name = service.user(Role.ANALYST)
    r = c.post("/api/login", json={"username": name, "password": PASSWORD, "totp": service.code(name), "banner_accepted": True})
    assert r.status_code == 200
    sid = _session_id(c)
    seen = service.auth.users.session(sid)
    assert seen is not None
    clock.now += timedelta(seconds=30)
    assert c.get("/api/queue?limit=1").status_code == 200 and service.auth.users.session(sid) == seen  # accepted as it was
    clock.now += timedelta(seconds=31)
    assert c.get("/api/queue?limit=1").status_code == 200
    moved = service.auth.users.session(sid)
    assert moved is not None and moved.last_seen_at > seen.last_seen_at  # the idle clock moved (the general path)
    clock.now += timedelta(minutes=31)
    r = c.get(f"/api/reports/{service.reports['agency-a'][0]}")
    assert r.status_code == 401 and r.json()["type"].endswith("session-expired")
    assert service.auth.users.session(sid) is None
    code = pyotp.TOTP(service.secrets[name]).at(clock.now)  # the app's clock, half an hour ahead
    r = c.post("/api/login", json={"username": name, "password": PASSWORD, "totp": code, "banner_accepted": True})
    assert r.status_code == 200 and c.get("/api/queue?limit=1").status_code == 200
    user = service.auth.users.by_username(name)
    assert user is not None
    service.auth.users.disable(user.id, "administrator", clock.now)
    assert c.get("/api/queue?limit=1").status_code == 401
