"""Row-level security on the tables that hold one agency's rows outside the report-scoped ones (PostgreSQL): access rows,
agency records, case events, deconfliction notices, submissions, accounts and sessions. Connected as the application role
bound to agency A, a statement sees and changes none of agency B's rows, and the inserts that would give A anything of B's
are refused; the few ways across (migration 0013's functions) answer only what their path needs."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from service_fixtures import PASSWORD, seed

from tiptriage.link.records import account_key
from tiptriage.store import Store, queue_keys, rls
from tiptriage.store.schema import account_links
from tiptriage.store.users import UserRepository
from tiptriage.store.views import ServiceViews
from tiptriage.work import cases

A, B = "agency-a", "agency-b"
T0 = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass
class Secured:
    owner: Store
    app: sa.Engine
    role: str
    app_url: str
    reports: dict[str, list[str]]  # agency → its reports
    ids: dict[str, dict[str, list[Any]]]  # agency → what identifies its rows: case ids, submission digests, user ids
    secrets: dict[str, str]  # username → TOTP secret


@pytest.fixture
def secured(db_url: str, tmp_path: Path) -> Iterator[Secured]:
    if not db_url.startswith("postgresql"):
        pytest.skip("row-level security is a PostgreSQL feature; on SQLite isolation is the service layer's (tests/server)")
    owner = Store(db_url)
    split, secrets = seed(owner, tmp_path, n=16)
    users = UserRepository(owner.engine)
    ids: dict[str, dict[str, list[Any]]] = {}
    notices = []
    for agency, other in ((A, B), (B, A)):
        mine = split[agency]
        case = cases.find(owner, mine[0])
        cases.assign(owner, str(case["id"]), f"investigator-{agency[-1]}", cases.Actor("test-setup"))
        account = next(u for u in users.in_agency(agency))
        users.create_session(f"{uuid.uuid4().hex}{agency[-1]:0>32}", account.id, T0, "0" * 64, None)
        notices.append({"subject_id": "S-test", "agency_id": agency, "report_id": mine[0], "other_agency_id": other,
                        "other_case_ref": str(cases.find(owner, split[other][0])["id"]), "created_at": T0})
        with owner.engine.connect() as conn:
            ids[agency] = {
                "cases": list(conn.execute(sa.text("select id from cases where agency_id = :a"), {"a": agency}).scalars()),
                "digests": list(conn.execute(sa.text("select digest from submissions where report_id = any(:r)"), {"r": mine}).scalars()),
                "users": [u.id for u in users.in_agency(agency)],
            }
    owner.work.replace_deconfliction(notices)
    _link_rows(owner, split, ids)
    with owner.engine.begin() as conn:
        conn.execute(sa.text("insert into agency_records (record_id, agency, key, access_to_children, prior_contact_offence, imported_at) "
                             "values ('rec-a', :a, 'k-a', true, false, :t), ('rec-b', :b, 'k-b', false, true, :t)"), {"a": A, "b": B, "t": T0})
    role = f"tt_app_{uuid.uuid4().hex[:8]}"
    rls.apply(owner.engine, role)
    app_url = sa.engine.make_url(db_url).set(username=role).render_as_string(hide_password=False)
    app = sa.create_engine(app_url)
    yield Secured(owner, app, role, app_url, split, ids, secrets)
    app.dispose()
    with owner.engine.begin() as conn:
        conn.execute(sa.text(f"DROP OWNED BY {role}"))
        conn.execute(sa.text(f"DROP ROLE {role}"))
    owner.dispose()


def _link_rows(owner: Store, split: dict[str, list[str]], ids: dict[str, dict[str, list[Any]]]) -> None:
    """Rows of the subject graph that only each agency's reports name (a link, an analyst's decision and a bundle each,
    beside the subjects the triage built), and which rows of it A may see: the rows naming only accounts of A's reports.
    Agency B's rows, for these tables, are all the others (mixed ones included: A may see none of them)."""
    with owner.engine.connect() as conn:
        keys = {ag: set(conn.execute(sa.text("select account_key from report_accounts where report_id = any(:r)"), {"r": split[ag]}).scalars())
                for ag in (A, B)}
    for ag, other in ((A, B), (B, A)):
        # an account only this agency's reports name, through the repositories so the sealed columns open as they should
        report, key = next((r, k) for r in owner.get_reports(split[ag]) if r.reported_people
                           and owner.links.cipher.index(k := account_key(r, 0)) in keys[ag] - keys[other])
        owner.links.decide("split", key, None, "test", "test-setup")
        sealed = owner.links._link({"subject_id": owner.links.subject_of(key), "a": key, "b": key, "kind": "confirmed", "probability": 1.0,
                                    "evidence": "[]"})
        with owner.engine.begin() as conn:
            conn.execute(account_links.insert(), [sealed])
            conn.execute(sa.text("insert into bundles (id, key_kind, key_value, representative_report_id, reports, accounts, first_seen, last_seen) "
                                 "values (:b, 'viral-hash', 'x', :r, 1, 1, :t, :t)"), {"b": f"BT-{ag}", "r": report.id, "t": T0})
            conn.execute(sa.text("insert into bundle_reports (bundle_id, report_id) values (:b, :r)"), {"b": f"BT-{ag}", "r": report.id})
    mine = keys[A]
    with owner.engine.connect() as conn:
        members: dict[str, set[str]] = {}
        for sid, key in conn.execute(sa.text("select subject_id, account_key from subject_accounts")):
            members.setdefault(str(sid), set()).add(str(key))
        links = conn.execute(sa.text("select id, a, b from account_links")).all()
        decisions = conn.execute(sa.text("select id, a, b from link_decisions")).all()
        bundles = {str(b): set(r) for b, r in conn.execute(sa.text("select bundle_id, array_agg(report_id) from bundle_reports group by bundle_id"))}
    visible = {
        "subject_accounts": {k for m in members.values() for k in m if k in mine},
        "subjects": {sid for sid, m in members.items() if m & mine},
        "account_links": {i for i, a, b in links if a in mine and b in mine},
        "link_decisions": {i for i, a, b in decisions if a in mine and (b is None or b in mine)},
        "bundles": {b for b, reports in bundles.items() if reports & set(split[A])},
    }
    every = {"subject_accounts": {k for m in members.values() for k in m}, "subjects": set(members),
             "account_links": {i for i, _, _ in links}, "link_decisions": {i for i, _, _ in decisions}, "bundles": set(bundles)}
    for table, seen in visible.items():
        ids[A][table], ids[B][table] = sorted(seen), sorted(every[table] - seen)


# table → the condition naming one agency's rows, with parameters computed by the owner (a subquery would itself be filtered
# by the application role's policies on the table it reads, and so could hide a leak)
ROWS_OF: dict[str, tuple[str, str]] = {
    "report_agency": ("agency_id = :agency", "agency"),
    "agency_records": ("agency = :agency", "agency"),
    "case_events": ("case_id = any(:ids)", "cases"),
    "route_events": ("report_id = any(:ids)", "reports"),
    "deconfliction_notices": ("agency_id = :agency", "agency"),
    "submissions": ("digest = any(:ids)", "digests"),
    "submission_documents": ("digest = any(:ids)", "digests"),
    "users": ("agency_id = :agency", "agency"),
    "sessions": ("user_id = any(:ids)", "users"),
    "subjects": ("id = any(:ids)", "subjects"),
    "subject_accounts": ("account_key = any(:ids)", "subject_accounts"),
    "account_links": ("id = any(:ids)", "account_links"),
    "link_decisions": ("id = any(:ids)", "link_decisions"),
    "bundles": ("id = any(:ids)", "bundles"),
}


def _params(s: Secured, agency: str, kind: str) -> dict[str, Any]:
    if kind == "agency":
        return {"agency": agency}
    return {"ids": s.reports[agency] if kind == "reports" else s.ids[agency][kind]}


def _count(conn: sa.Connection, table: str, s: Secured, agency: str) -> int:
    where, kind = ROWS_OF[table]
    return int(conn.execute(sa.text(f"select count(*) from {table} where {where}"), _params(s, agency, kind)).scalar_one())


@pytest.mark.parametrize("table", sorted(ROWS_OF))
def test_the_role_bound_to_one_agency_reads_its_own_rows_and_none_of_anothers(secured: Secured, table: str) -> None:
    with secured.owner.engine.connect() as conn:
        assert _count(conn, table, secured, A) > 0 and _count(conn, table, secured, B) > 0, f"the fixture has {table} rows of both agencies"
    with secured.app.begin() as conn:
        rls.scoped(conn, A)
        assert _count(conn, table, secured, B) == 0, f"{table}: agency {A} sees {B}'s rows"
        assert _count(conn, table, secured, A) > 0, f"{table}: agency {A} does not see its own rows"
        everything = int(conn.execute(sa.text(f"select count(*) from {table}")).scalar_one())
        assert everything == _count(conn, table, secured, A), f"{table}: an unscoped read sees more than the agency's rows"
    with secured.app.begin() as conn:  # bound to no agency: nothing
        assert int(conn.execute(sa.text(f"select count(*) from {table}")).scalar_one()) == 0


# the columns a write may name: one each table the role may update or delete in
WRITABLE = {"report_agency": "via = via", "users": "disabled_reason = 'x'", "sessions": "source_address = 'x'"}


@pytest.mark.parametrize("table", sorted(WRITABLE))
def test_updates_and_deletes_touch_none_of_another_agencys_rows(secured: Secured, table: str) -> None:
    where, kind = ROWS_OF[table]
    params = _params(secured, B, kind)
    with secured.owner.engine.connect() as conn:
        before = _count(conn, table, secured, B)
    with secured.app.connect() as conn:  # rolled back at the end
        rls.scoped(conn, A)
        assert conn.execute(sa.text(f"update {table} set {WRITABLE[table]} where {where}"), params).rowcount == 0
        assert conn.execute(sa.text(f"update {table} set {WRITABLE[table]}")).rowcount == _count(conn, table, secured, A)
        if table != "users":  # the role has no DELETE on accounts (they are disabled, never deleted)
            assert conn.execute(sa.text(f"delete from {table} where {where}"), params).rowcount == 0
    with secured.owner.engine.connect() as conn:
        assert _count(conn, table, secured, B) == before


# a column of each table the service only reads (or, for case events, appends to)
READ_ONLY = {"agency_records": "agency", "case_events": "note", "deconfliction_notices": "other_case_ref", "submissions": "path",
             "submission_documents": "name", "subjects": "built_at", "subject_accounts": "account_enc", "account_links": "evidence",
             "link_decisions": "reason", "bundles": "last_seen"}


@pytest.mark.parametrize("table", sorted(READ_ONLY))
def test_the_tables_the_service_only_reads_or_appends_to_refuse_updates_and_deletes(secured: Secured, table: str) -> None:
    for stmt in (f"update {table} set {READ_ONLY[table]} = {READ_ONLY[table]}", f"delete from {table}"):
        _refused(secured.app, A, stmt, {})


@pytest.mark.parametrize("table", ["blobs", "blob_chunks", "quarantine"])
def test_original_bytes_and_the_quarantine_are_no_agencys(secured: Secured, table: str) -> None:
    with secured.app.connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        rls.scoped(conn, A)
        conn.execute(sa.text(f"select count(*) from {table}"))


def _refused(app: sa.Engine, agency: str, stmt: str, params: dict[str, Any]) -> None:
    with app.connect() as conn, pytest.raises(sa.exc.DBAPIError, match=r"row-level security|permission denied"):
        rls.scoped(conn, agency)
        conn.execute(sa.text(stmt), params)


def test_an_agency_cannot_grant_itself_or_route_a_report_it_does_not_hold(secured: Secured) -> None:
    theirs, mine = secured.reports[B][0], secured.reports[A][0]
    insert = "insert into report_agency (report_id, agency_id, via, assigned_at) values (:r, :a, :via, now())"
    for report, agency, via in ((theirs, A, "deconfliction"), (theirs, A, "routed"), (theirs, "agency-c", "deconfliction"),
                                (mine, "agency-c", "routed")):
        _refused(secured.app, A, insert, {"r": report, "a": agency, "via": via})
    # sharing a report it holds, by deconfliction, is what the role may do: the other agency then sees it, A still does not
    # see the other agency's row
    with secured.app.begin() as conn:
        rls.scoped(conn, A)
        conn.execute(sa.text(insert), {"r": mine, "a": B, "via": "deconfliction"})
        assert conn.execute(sa.text("select count(*) from report_agency where report_id = :r"), {"r": mine}).scalar_one() == 1
    with secured.app.begin() as conn:
        rls.scoped(conn, B)
        assert conn.execute(sa.text("select via from report_agency where report_id = :r"), {"r": mine}).scalar_one() == "deconfliction"
        assert conn.execute(sa.text("select count(*) from reports where id = :r"), {"r": mine}).scalar_one() == 1
    # nor can an agency move its own row to another agency
    _refused(secured.app, A, "update report_agency set agency_id = :b where report_id = :r and agency_id = :a",
             {"a": A, "b": B, "r": secured.reports[A][1]})


def test_case_events_accounts_and_sessions_of_another_agency_cannot_be_written(secured: Secured) -> None:
    b_case, a_case = secured.ids[B]["cases"][0], secured.ids[A]["cases"][0]
    event = """insert into case_events (case_id, from_state, to_state, "by", "at") values (:c, 'new', 'new', 'x', now())"""
    _refused(secured.app, A, event, {"c": b_case})
    with secured.app.begin() as conn:  # its own case's history takes the event
        rls.scoped(conn, A)
        conn.execute(sa.text(event), {"c": a_case})
    _refused(secured.app, A, "insert into users (username, agency_id, role, password_hash, totp_secret, disabled, failed_logins, "
             "last_activity_at, password_changed_at, created_at) values ('planted', :b, 'analyst', 'x', 'x', false, '[]', now(), now(), now())",
             {"b": B})
    _refused(secured.app, A, "insert into sessions (id, user_id, created_at, last_seen_at, csrf_token_hash) values (:i, :u, now(), now(), :h)",
             {"i": "f" * 64, "u": secured.ids[B]["users"][0], "h": "0" * 64})
    for table, values in (("agency_records", "('rec-x', :a, 'k-x', true, true, now(), null)"),
                          ("deconfliction_notices", "(default, 'S', :a, 'r', 'o', 'c', now())")):
        _refused(secured.app, A, f"insert into {table} values {values}", {"a": A})


def test_the_cross_agency_functions_answer_only_their_question(secured: Secured) -> None:
    mine, theirs = secured.reports[A][0], secured.reports[B][0]
    # redaction: of the ids named, which are stored reports the agency does not hold; under RLS the reports table itself
    # hides them, so only the function can tell
    assert ServiceViews(secured.app).hidden_among(A, {mine, theirs, "no-such-report"}) == {theirs}
    with secured.app.connect() as conn:
        rls.scoped(conn, A)
        assert conn.execute(sa.text("select tiptriage_agency_holds(:r)"), {"r": mine}).scalar_one() is True
        assert conn.execute(sa.text("select tiptriage_agency_holds(:r)"), {"r": theirs}).scalar_one() is False
        assert conn.execute(sa.text("select tiptriage_user_agency('analyst-b')")).scalar_one() == B
        assert conn.execute(sa.text("select count(*) from tiptriage_session_user('no-such-session')")).scalar_one() == 0
    # each is its owner's, runs as its owner with a pinned search_path, and only the application role may call it
    stranger = f"tt_other_{uuid.uuid4().hex[:8]}"
    with secured.owner.engine.begin() as conn:
        conn.execute(sa.text(f"CREATE ROLE {stranger} NOLOGIN"))
        try:
            for signature in rls.CROSS_AGENCY_FUNCTIONS:
                definer, config = conn.execute(sa.text("select prosecdef, proconfig from pg_proc where oid = cast(:f as regprocedure)"),
                                               {"f": signature}).one()
                assert definer and "search_path=pg_catalog, pg_temp" in config, signature
                for who, may in ((secured.role, True), (stranger, False)):
                    q = sa.text("select has_function_privilege(:who, :f, 'EXECUTE')")
                    assert conn.execute(q, {"who": who, "f": signature}).scalar_one() is may, (signature, who)
        finally:
            conn.execute(sa.text(f"DROP ROLE {stranger}"))


def test_queue_keys_follow_the_assessment_on_every_agencys_row_of_a_shared_report(secured: Secured) -> None:
    """A report A shares with B: when its assessment changes, the refresh made in A's transaction moves B's sort keys too,
    though A cannot see B's row (the owner's function writes them)."""
    mine = secured.reports[A][0]
    with secured.app.begin() as conn:
        rls.scoped(conn, A)
        conn.execute(sa.text("insert into report_agency (report_id, agency_id, via, assigned_at) values (:r, :b, 'deconfliction', now())"),
                     {"r": mine, "b": B})
    with secured.owner.engine.begin() as conn:  # the assessment changes without a refresh
        conn.execute(sa.text("update assessments set tier = 1, score = 997 where report_id = :r"), {"r": mine})
    with secured.app.begin() as conn:
        rls.scoped(conn, A)
        queue_keys.refresh(conn, [mine])
    with secured.owner.engine.connect() as conn:
        keys = dict(conn.execute(sa.text("select agency_id, score from report_agency where report_id = :r"), {"r": mine}).all())
        counted = conn.execute(sa.text("select n from report_agency_counts where agency_id = :b and tier = 1 and score = 997"),
                               {"b": B}).scalar_one()
    assert keys == {A: 997, B: 997} and counted == 1


def test_the_service_under_rls_links_deconflicts_and_redacts_across_agencies(secured: Secured) -> None:
    """One person behind a report of each agency: the service, connected as the application role, logs in users of both
    agencies, tells each the other agency's case (the deconfliction notice addressed to it), and hides the other agency's
    report id where the evidence names it."""
    import pyotp
    from fastapi.testclient import TestClient

    from tiptriage import pipeline
    from tiptriage.server.app import service_app
    from tiptriage.server.context import HIDDEN_REPORT

    owner = secured.owner
    mine, theirs = secured.reports[A][0], secured.reports[B][0]

    def account(rid: str) -> str:
        report = owner.get_report(rid)
        assert report is not None and report.reported_people
        return f"{report.reported_people[0].esp_service}:{report.reported_people[0].esp_identifier}".lower()

    pipeline.decide_link(owner, "confirm", account(mine), account(theirs), "one person (test)", "analyst-test")
    pipeline.triage(owner)
    told = {(n["agency_id"], n["report_id"], n["other_agency_id"]) for n in owner.work.notices_for()}
    assert (A, mine, B) in told and (B, theirs, A) in told
    owner_view = owner.assessments.get(mine)
    assert owner_view is not None and theirs in str(owner_view), "the evidence of A's report names B's linked report"

    client = TestClient(service_app(owner.url, secured.app_url), base_url="https://testserver")
    for name in ("analyst-b", "analyst-a"):  # the last one stays logged in
        totp = pyotp.TOTP(secured.secrets[name]).now()
        r = client.post("/api/login", json={"username": name, "password": PASSWORD, "totp": totp, "banner_accepted": True})
        assert r.status_code == 200, r.text
        assert {i["report_id"] for i in client.get("/api/queue?limit=200").json()["items"]} == set(secured.reports[f"agency-{name[-1]}"])
    explained = client.get(f"/api/reports/{mine}/explain")
    assert explained.status_code == 200, explained.text
    assert theirs not in explained.text and HIDDEN_REPORT in explained.text
    subject = client.get(f"/api/reports/{mine}/subject")
    assert subject.status_code == 200, subject.text
    view = subject.json()
    assert {r["report_id"] for r in view["report_accounts"]} <= set(secured.reports[A]) and theirs not in subject.text
    assert {(n["agency_id"], n["other_agency_id"]) for n in view["deconfliction"]} == {(A, B)}
