"""The two endpoints read most under load (the queue and a report) write their answers without the models' round trip; these
tests hold them to what the models would have written, keep every read audited and every refusal the same, and check the
pool's idle ping that replaced SQLAlchemy's pre-ping on every checkout."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa
from service_fixtures import Service

from tiptriage.model import Report
from tiptriage.server.app import QueuePage, worker_threads
from tiptriage.store import db
from tiptriage.store.audit import audit_log
from tiptriage.store.users import Role


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
