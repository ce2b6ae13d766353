"""The service connected as the row-level-security application role (PostgreSQL): every transaction is bound to the caller's
agency, so the database itself refuses another agency's rows even where a query forgot to scope itself."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from service_fixtures import PASSWORD, seed

from tiptriage.server.app import service_app
from tiptriage.server.auth import CSRF_HEADER
from tiptriage.store import Store, rls
from tiptriage.store.rls import current_agency
from tiptriage.store.users import Role


@pytest.fixture
def under_rls(db_url: str, tmp_path: Path) -> Iterator[tuple[Store, str, dict[str, list[str]], dict[str, str]]]:
    if not db_url.startswith("postgresql"):
        pytest.skip("row-level security is a PostgreSQL feature; on SQLite isolation is the service layer's (tests/server)")
    owner = Store(db_url)
    split, secrets = seed(owner, tmp_path)
    role = f"tt_app_{uuid.uuid4().hex[:8]}"
    rls.apply(owner.engine, role)
    app_url = sa.engine.make_url(db_url).set(username=role).render_as_string(hide_password=False)
    yield owner, app_url, split, secrets
    with owner.engine.begin() as conn:
        conn.execute(sa.text(f"DROP OWNED BY {role}"))
        conn.execute(sa.text(f"DROP ROLE {role}"))
    owner.dispose()


def test_the_service_as_the_application_role_sees_only_the_callers_agency(under_rls: tuple[Store, str, dict[str, list[str]], dict[str, str]]) -> None:
    import pyotp
    from fastapi.testclient import TestClient

    owner, app_url, split, secrets = under_rls
    app = service_app(owner.url, app_url)
    client = TestClient(app, base_url="https://testserver")
    name = "supervisor-a"
    r = client.post("/api/login", json={"username": name, "password": PASSWORD, "totp": pyotp.TOTP(secrets[name]).now(), "banner_accepted": True})
    assert r.status_code == 200, r.text
    csrf = r.json()["csrf_token"]
    queue = client.get("/api/queue?limit=200").json()
    assert {i["report_id"] for i in queue["items"]} == set(split["agency-a"])
    mine, theirs = split["agency-a"][0], split["agency-b"][0]
    assert client.get(f"/api/reports/{mine}").status_code == 200
    assert client.get(f"/api/reports/{theirs}").status_code == 404
    r = client.post(f"/api/cases/{mine}/assign", json={"assignee": "investigator-a"}, headers={CSRF_HEADER: csrf})
    assert r.status_code == 200, r.text
    assert client.get(f"/reports/{mine}").status_code == 200  # the page path binds the agency too

    # beneath the service: the application role's store, bound to agency A, cannot see B's rows at all
    as_app = Store(app_url, migrate_schema=False)
    rls.bind_to_request_agency(as_app.engine)
    try:
        token = current_agency.set("agency-a")
        assert as_app.get_report(mine) is not None
        assert as_app.get_report(theirs) is None
        assert as_app.work.case(theirs) is None
        current_agency.reset(token)
        assert as_app.get_report(mine) is None  # no agency in context: no case rows
    finally:
        as_app.dispose()


def test_intake_through_the_service_goes_through_the_owner(under_rls: tuple[Store, str, dict[str, list[str]], dict[str, str]],
                                                            tmp_path: Path) -> None:
    import pyotp
    from fastapi.testclient import TestClient

    from tiptriage import synth

    owner, app_url, _, secrets = under_rls
    client = TestClient(service_app(owner.url, app_url), base_url="https://testserver")
    name = f"{Role.ANALYST.value}-a"
    r = client.post("/api/login", json={"username": name, "password": PASSWORD, "totp": pyotp.TOTP(secrets[name]).now(), "banner_accepted": True})
    assert r.status_code == 200
    synth.write(synth.generate(2, seed=123), tmp_path / "new", "xml")
    path = next((tmp_path / "new" / "submissions").rglob("*.xml"))
    before = len(owner.report_ids())
    with path.open("rb") as f:
        r = client.post("/api/submissions", files={"file": ("r.xml", f, "application/xml")}, headers={CSRF_HEADER: r.json()["csrf_token"]})
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    assert len(owner.report_ids()) == before + 1


def test_an_outcome_reassesses_the_subjects_reports_at_another_agency(under_rls: tuple[Store, str, dict[str, list[str]], dict[str, str]]) -> None:
    """An agency's connection cannot see another agency's rows, yet an outcome is context for the same person's reports
    wherever they are routed: the service assesses those again through the owner, and tells the caller nothing of them."""
    import pyotp
    from fastapi.testclient import TestClient

    from tiptriage import pipeline

    owner, app_url, split, secrets = under_rls

    def account(rid: str) -> str:
        report = owner.get_report(rid)
        assert report is not None and report.reported_people
        return f"{report.reported_people[0].esp_service}:{report.reported_people[0].esp_identifier}".lower()

    mine, theirs = split["agency-a"][0], split["agency-b"][0]
    pipeline.decide_link(owner, "confirm", account(mine), account(theirs), "one person (test)", "analyst-test")
    before = owner.assessments.get(theirs)
    assert before is not None and before["indicators"]["subject_arrest"]["value"] is False
    client = TestClient(service_app(owner.url, app_url), base_url="https://testserver")
    name = "investigator-a"
    r = client.post("/api/login", json={"username": name, "password": PASSWORD, "totp": pyotp.TOTP(secrets[name]).now(), "banner_accepted": True})
    csrf = {CSRF_HEADER: r.json()["csrf_token"]}
    assert client.post(f"/api/cases/{mine}/assign", json={"assignee": name}, headers=csrf).status_code == 200
    r = client.post(f"/api/cases/{mine}/outcome", json={"outcome": "arrest"}, headers=csrf)
    assert r.status_code == 200, r.text
    assert theirs not in r.text
    after = owner.assessments.get(theirs)
    assert after is not None and after["indicators"]["subject_arrest"]["value"] is True
    assert "subject-arrested" in {f["rule_id"] for f in after["fired"]}


def test_the_session_transaction_is_bound_to_the_sessions_agency_by_the_database(
        under_rls: tuple[Store, str, dict[str, list[str]], dict[str, str]]) -> None:
    """The queue and report endpoints check the session and read in one transaction (``SessionRead``), bound to the agency by
    the statement that reads the session: as the application role, its reads see the session's agency's rows and nothing of
    another's, even where the query's own agency check is left out."""
    import pyotp
    from fastapi.testclient import TestClient

    from tiptriage.server.auth import SESSION_COOKIE, token_hash
    from tiptriage.store.users import SessionRead

    owner, app_url, split, secrets = under_rls
    client = TestClient(service_app(owner.url, app_url), base_url="https://testserver")
    name = "analyst-a"
    r = client.post("/api/login", json={"username": name, "password": PASSWORD, "totp": pyotp.TOTP(secrets[name]).now(), "banner_accepted": True})
    assert r.status_code == 200
    sid = token_hash(client.cookies[SESSION_COOKIE])
    as_app = Store(app_url, migrate_schema=False)
    try:
        mine, theirs = split["agency-a"][0], split["agency-b"][0]
        with SessionRead(as_app.engine, sid) as reads:
            found = reads.session()
            assert found is not None and found[1] is not None and found[1].agency_id == "agency-a"
            via, text = reads.readable_report(mine, "agency-a")
            assert via == "routed" and text is not None and mine in text
        with SessionRead(as_app.engine, sid) as reads:
            assert reads.session() is not None
            page, total = reads.queue("agency-a", 200)
            assert {i["report_id"] for i in page} == set(split["agency-a"]) and total == len(split["agency-a"])
        # beneath the query's agency check: the transaction's own binding hides agency B's rows from the application role
        with SessionRead(as_app.engine, sid) as reads:
            assert reads.session() is not None
            seen = reads._tx.send("SELECT id FROM reports WHERE id = ANY(%(ids)s)", {"ids": [mine, theirs]})
            agencies = reads._tx.send("SELECT DISTINCT agency_id FROM report_agency")
            reads._tx.end()
            assert [r[0] for r in seen.fetchall()] == [mine] and agencies.fetchall() == [("agency-a",)]
        assert client.get(f"/api/reports/{theirs}").status_code == 404 and client.get(f"/api/reports/{mine}").status_code == 200
    finally:
        as_app.dispose()
