"""The service core against a real store: login (banner, password, TOTP), lockout, idle and re-authentication limits,
cookies and CSRF, account disabling, the password policy, and that no agency ever sees another agency's report."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pyotp
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tiptriage import pipeline, synth
from tiptriage.audit.chain import AuditEntry
from tiptriage.server.app import create_app
from tiptriage.server.auth import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, Authenticator, PasswordPolicyError, password_problems
from tiptriage.store import Store
from tiptriage.store.schema import metadata
from tiptriage.store.users import USER_TABLES, ReportAccessRepository, Role, UserRepository, sessions

PASSWORD = "violet-harbour-lantern-91"
NEW_PASSWORD = "quiet-meadow-compass-27"


class Clock:
    """An injectable clock: starts now (UTC) and moves only when told."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Env:
    store: Store
    clock: Clock
    auth: Authenticator
    app: FastAPI
    secrets: dict[str, str] = field(default_factory=dict)

    def client(self) -> TestClient:
        return TestClient(self.app, base_url="https://testserver")  # Secure cookies are sent over https only

    def enroll(self, username: str, agency: str = "agency-a", role: Role = Role.ANALYST, password: str = PASSWORD) -> None:
        self.secrets[username] = self.auth.enroll(username, agency, role, password, by="test-admin").totp_secret

    def code(self, username: str) -> str:
        return pyotp.TOTP(self.secrets[username]).at(self.clock.now)

    def login(self, client: TestClient, username: str, password: str = PASSWORD, *, totp: str | None = None,
              banner: bool = True) -> httpx.Response:
        body = {"username": username, "password": password, "totp": totp if totp is not None else self.code(username), "banner_accepted": banner}
        return client.post("/api/login", json=body)

    def logged_in(self, username: str) -> tuple[TestClient, str]:
        """A client with a session, and its CSRF token. Moves the clock one TOTP step so every login has a fresh code."""
        self.clock.advance(seconds=30)
        client = self.client()
        r = self.login(client, username)
        assert r.status_code == 200, r.text
        return client, r.json()["csrf_token"]

    def audit(self, **match: Any) -> list[AuditEntry]:
        return [e for e in self.store.audit.iter_entries() if all(getattr(e, k) == v for k, v in match.items())]


@pytest.fixture
def env(store: Store) -> Iterator[Env]:
    metadata.create_all(store.engine, tables=list(USER_TABLES))  # a no-op once the migration creates them
    clock = Clock()
    yield Env(store, clock, Authenticator(store, clock=clock), create_app(store, clock=clock))


def _set_cookies(r: httpx.Response) -> dict[str, str]:
    """Each Set-Cookie header by cookie name, whole."""
    return {h.split("=", 1)[0]: h for h in r.headers.get_list("set-cookie")}


def _attrs(header: str) -> set[str]:
    return {part.strip().lower() for part in header.split(";")[1:]}


# -- login --------------------------------------------------------------------------------------------------------


def test_login_requires_the_banner_the_password_and_the_totp_and_every_attempt_is_audited(env: Env) -> None:
    env.enroll("ana")
    c = env.client()
    banner = c.get("/api/banner").json()
    assert banner["must_accept"] is True and "monitored" in banner["text"]

    refused = [
        env.login(c, "ana", banner=False),  # the notice not accepted
        env.login(c, "ana", "wrong-password-entirely"),  # wrong password, right code
        env.login(c, "ana", totp="000000" if env.code("ana") != "000000" else "111111"),  # right password, wrong code
        env.login(c, "nobody-here", totp="123456"),  # unknown user
    ]
    assert [r.status_code for r in refused] == [400, 401, 401, 401]
    assert all(r.headers["content-type"] == "application/problem+json" for r in refused)
    assert all("set-cookie" not in r.headers for r in refused)
    # the same answer whatever was wrong, so a guesser learns nothing
    assert len({r.json()["detail"] for r in refused[1:]}) == 1
    malformed = c.post("/api/login", json={"username": "ana", "password": PASSWORD})  # no code at all
    assert malformed.status_code == 422 and malformed.headers["content-type"] == "application/problem+json"
    as_form = c.post("/api/login", content=b"username=ana", headers={"content-type": "application/x-www-form-urlencoded"})
    assert as_form.status_code == 422  # only JSON logs in: a cross-site form cannot
    assert c.get("/api/queue").status_code == 401

    ok = env.login(c, "ana")
    assert ok.status_code == 200 and ok.json()["role"] == "analyst" and ok.json()["agency_id"] == "agency-a"
    assert c.get("/api/queue").status_code == 200

    failed = env.audit(action="login_failed")
    assert len(failed) == 6 and all(e.outcome == "failed" for e in failed)
    reasons = [e.detail["reason"] for e in failed]
    assert reasons == ["banner not accepted", "wrong credentials", "wrong credentials", "unknown user",
                       "malformed login request", "malformed login request"]
    assert failed[1].detail["password_ok"] is False and failed[1].detail["totp_ok"] is True
    assert failed[2].detail["password_ok"] is True and failed[2].detail["totp_ok"] is False
    assert all(e.source_address == "testclient" for e in failed)
    logins = env.audit(action="login")
    assert len(logins) == 1 and logins[0].user == "ana" and logins[0].agency == "agency-a" and logins[0].outcome == "ok"


def test_a_wrong_or_replayed_totp_code_fails(env: Env) -> None:
    env.enroll("ben")
    c = env.client()
    secret = pyotp.TOTP(env.secrets["ben"])
    stale = secret.at(env.clock.now - timedelta(minutes=2))  # outside the ±1 step window
    assert env.login(c, "ben", totp=stale).status_code == 401
    previous = secret.at(env.clock.now - timedelta(seconds=30))
    assert env.login(c, "ben", totp=previous).status_code == 200  # one step of drift is allowed
    code = env.code("ben")
    assert env.login(env.client(), "ben", totp=code).status_code == 200  # a later step: fine
    assert env.login(env.client(), "ben", totp=code).status_code == 401  # the same code again: a replay
    assert env.login(env.client(), "ben", totp=previous).status_code == 401  # an earlier one: also used up
    env.clock.advance(seconds=30)
    assert env.login(env.client(), "ben").status_code == 200
    assert env.audit(action="login_failed")[-1].detail["reason"] == "one-time code already used"


def test_five_failures_within_15_minutes_lock_the_account_for_30_minutes(env: Env) -> None:
    env.enroll("cal")
    c = env.client()
    for _ in range(5):  # at 0, 3, 6, 9 and 12 minutes
        assert env.login(c, "cal", "not-the-password-at-all").status_code == 401
        env.clock.advance(minutes=3)
    user = UserRepository(env.store.engine).by_username("cal")
    assert user is not None and user.locked_until is not None
    assert env.login(c, "cal").status_code == 401  # right password and code, but locked
    assert env.audit(action="login_failed")[-1].detail["reason"] == "account locked"
    assert [e.detail["change"] for e in env.audit(action="change", object_id="cal")][-1] == "lock"
    env.clock.advance(minutes=30)
    assert env.login(c, "cal").status_code == 200


def test_failures_spread_over_more_than_15_minutes_do_not_lock(env: Env) -> None:
    env.enroll("dee")
    c = env.client()
    for _ in range(4):
        assert env.login(c, "dee", "not-the-password-at-all").status_code == 401
    env.clock.advance(minutes=16)
    assert env.login(c, "dee", "not-the-password-at-all").status_code == 401  # only one inside the window now
    env.clock.advance(seconds=30)
    assert env.login(c, "dee").status_code == 200


# -- sessions -----------------------------------------------------------------------------------------------------


def test_a_session_idle_for_30_minutes_ends(env: Env) -> None:
    env.enroll("eve")
    c, _ = env.logged_in("eve")
    for _ in range(3):  # activity keeps it alive
        env.clock.advance(minutes=29)
        assert c.get("/api/queue").status_code == 200
    env.clock.advance(minutes=30)
    r = c.get("/api/queue")
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("session-expired")
    assert SESSION_COOKIE in _set_cookies(r)  # the dead cookie is cleared
    assert env.audit(action="logout")[-1].detail["reason"] == "idle timeout"
    env.clock.advance(seconds=1)
    assert c.get("/api/queue").status_code == 401


def test_a_session_must_reauthenticate_after_12_hours(env: Env) -> None:
    env.enroll("fay")
    c, _ = env.logged_in("fay")
    start = env.clock.now
    while env.clock.now - start < timedelta(hours=12) - timedelta(minutes=25):
        env.clock.advance(minutes=25)
        assert c.get("/api/queue").status_code == 200
    env.clock.advance(minutes=25)  # past 12 hours, never idle
    r = c.get("/api/queue")
    assert r.status_code == 401 and r.json()["type"].endswith("session-expired")
    assert env.audit(action="logout")[-1].detail["reason"] == "re-authentication required"


def test_cookies_are_secure_httponly_samesite_strict_and_the_token_has_256_bits(env: Env) -> None:
    env.enroll("gus")
    c = env.client()
    r = env.login(c, "gus")
    cookies = _set_cookies(r)
    session, csrf = cookies[SESSION_COOKIE], cookies[CSRF_COOKIE]
    assert {"secure", "httponly", "samesite=strict", "path=/"} <= _attrs(session)
    assert not any(a.startswith("domain") for a in _attrs(session))  # __Host- cookies carry no Domain
    assert {"secure", "samesite=strict"} <= _attrs(csrf) and "httponly" not in _attrs(csrf)  # the page's script reads it
    token = SimpleCookie(session)[SESSION_COOKIE].value
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert len(raw) * 8 >= 128 and len(raw) == 32
    env.clock.advance(seconds=30)
    other = SimpleCookie(_set_cookies(env.login(env.client(), "gus"))[SESSION_COOKIE])[SESSION_COOKIE].value
    assert other != token
    with env.store.engine.connect() as conn:  # only the token's hash is stored
        stored = [tuple(str(v) for v in row) for row in conn.execute(sa.select(sessions))]
    assert hashlib.sha256(token.encode()).hexdigest() in {row[0] for row in stored}
    assert not any(token in value or other in value for row in stored for value in row)


def test_a_state_changing_request_without_the_csrf_token_is_refused(env: Env) -> None:
    env.enroll("hal")
    c, csrf = env.logged_in("hal")
    post_routes = [r.path for r in env.app.routes
                   if isinstance(r, APIRoute) and "POST" in r.methods and r.path.startswith("/api/") and r.path != "/api/login"]
    assert set(post_routes) >= {"/api/logout", "/api/password", "/api/reports/{report_id}/notes"}
    for path in post_routes:
        url = path.replace("{report_id}", "SOME-REPORT").replace("{ref}", "C-0").replace("{name}", "bank")
        for headers in ({}, {CSRF_HEADER: "not-the-token"}, {CSRF_HEADER: ""}):
            r = c.post(url, json={}, headers=headers)
            assert r.status_code == 403, (url, headers, r.text)
            assert r.json()["type"].endswith("csrf-token-invalid")
    denied = env.audit(action="change", outcome="denied", object_type="request")
    assert len(denied) == 3 * len(post_routes)
    assert c.get("/api/queue").status_code == 200  # still logged in: the refusals changed nothing
    assert c.post("/api/logout", headers={CSRF_HEADER: csrf}).status_code == 204
    assert c.get("/api/queue").status_code == 401


def test_disabling_an_account_ends_its_sessions(env: Env) -> None:
    env.enroll("ivy")
    c1, _ = env.logged_in("ivy")
    c2, _ = env.logged_in("ivy")
    users = UserRepository(env.store.engine)
    user = users.by_username("ivy")
    assert user is not None and len(users.sessions_of(user.id)) == 2
    assert env.auth.disable_account(user, by="test-admin", reason="administrator") == 2
    assert users.sessions_of(user.id) == []
    assert c1.get("/api/queue").status_code == 401 and c2.get("/api/queue").status_code == 401
    env.clock.advance(seconds=30)
    assert env.login(env.client(), "ivy").status_code == 401
    assert env.audit(action="login_failed")[-1].detail["reason"] == "account disabled"
    change = env.audit(action="change", object_id="ivy")[-1]
    assert change.detail == {"change": "disable", "reason": "administrator", "sessions_ended": 2} and change.user == "test-admin"


def test_an_account_idle_for_90_days_is_disabled(env: Env) -> None:
    env.enroll("jon")
    env.enroll("kim")
    env.enroll("lee")
    c, csrf = env.logged_in("jon")
    assert c.post("/api/logout", headers={CSRF_HEADER: csrf}).status_code == 204
    env.clock.advance(days=80)
    env.logged_in("lee")  # lee was active 10 days before the cut-off
    env.clock.advance(days=10)
    # jon: disabled at the next login attempt, even with the right password and code
    assert env.login(env.client(), "jon").status_code == 401
    assert env.audit(action="login_failed")[-1].detail["reason"] == "account inactive: disabled now"
    users = UserRepository(env.store.engine)
    jon = users.by_username("jon")
    assert jon is not None and jon.disabled and jon.disabled_reason == "inactive"
    # kim (never logged in): disabled by the daily sweep; lee is kept
    assert env.auth.disable_inactive_accounts() == ["kim"]
    kim, lee = users.by_username("kim"), users.by_username("lee")
    assert kim is not None and kim.disabled and lee is not None and not lee.disabled
    # re-enabled by an administrator, the account works again
    users.enable(jon.id, env.clock.now)
    env.clock.advance(seconds=30)
    assert env.login(env.client(), "jon").status_code == 200


# -- passwords ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("Sh0rt!pass", "at least 12"),
        ("password1234", "commonly used"),
        ("P@ssw0rd2024!!", "commonly used"),
        ("qwertyqwertyqwerty", "commonly used"),
        ("!!Sunshine1987!!", "commonly used"),
        ("aaaaaaaaaaaaaaaa", "fewer than 4"),
        ("marta-the-analyst-01", "username"),
    ],
)
def test_weak_passwords_are_refused(password: str, why: str) -> None:
    problems = password_problems(password, "marta")
    assert any(why in p for p in problems), problems


def test_the_password_policy_applies_at_enrolment_and_when_changing_it(env: Env) -> None:
    assert password_problems(PASSWORD, "mia") == [] and password_problems(NEW_PASSWORD, "mia") == []
    with pytest.raises(PasswordPolicyError):
        env.enroll("mia", password="monkey")
    with pytest.raises(PasswordPolicyError):
        env.enroll("mia", password="Football123456")
    assert UserRepository(env.store.engine).by_username("mia") is None
    env.enroll("mia")
    c, csrf = env.logged_in("mia")
    other, _ = env.logged_in("mia")
    h = {CSRF_HEADER: csrf}
    short = c.post("/api/password", json={"current": PASSWORD, "new": "tooshort"}, headers=h)
    common = c.post("/api/password", json={"current": PASSWORD, "new": "baseball12345"}, headers=h)
    assert short.status_code == common.status_code == 400
    assert "12 characters" in short.json()["detail"] and "commonly used" in common.json()["detail"]
    assert c.post("/api/password", json={"current": "guessing-wrongly-1", "new": NEW_PASSWORD}, headers=h).status_code == 403
    done = c.post("/api/password", json={"current": PASSWORD, "new": NEW_PASSWORD}, headers=h)
    assert done.status_code == 200 and done.json() == {"other_sessions_ended": 1}
    assert other.get("/api/queue").status_code == 401 and c.get("/api/queue").status_code == 200
    env.clock.advance(seconds=30)
    assert env.login(env.client(), "mia", NEW_PASSWORD).status_code == 200
    assert [e.outcome for e in env.audit(action="change", object_id="mia") if e.detail.get("change") == "password"] == [
        "failed", "failed", "failed", "ok"]


# -- agencies -----------------------------------------------------------------------------------------------------


@pytest.fixture
def seeded(env: Env, tmp_path: Path) -> tuple[Env, list[str], list[str], str]:
    """Synthetic reports, ingested and triaged: some for agency A, some for agency B, one shared by deconfliction."""
    data = synth.generate(9, seed=5)
    synth.write(data, tmp_path, "xml")
    pipeline.ingest(env.store, [tmp_path / "submissions"])
    pipeline.triage(env.store)
    ids = env.store.report_ids()
    assert len(ids) == 9
    a_only, b_only, shared = ids[:4], ids[4:8], ids[8]
    access = ReportAccessRepository(env.store.engine)
    for rid in a_only:
        access.assign(rid, "agency-a", "routed", env.clock.now)
    for rid in [*b_only, shared]:
        access.assign(rid, "agency-b", "routed", env.clock.now)
    access.assign(shared, "agency-a", "deconfliction", env.clock.now)
    for role in Role:
        env.enroll(f"a-{role.value}", "agency-a", role)
        env.enroll(f"b-{role.value}", "agency-b", role)
    return env, a_only, b_only, shared


CASE_ROLES = {Role.ANALYST, Role.INVESTIGATOR, Role.SUPERVISOR, Role.AUDITOR}


@pytest.mark.timeout(60)
def test_no_role_of_agency_a_can_read_a_report_of_agency_b(seeded: tuple[Env, list[str], list[str], str]) -> None:
    env, a_only, b_only, shared = seeded
    for role in Role:
        username = f"a-{role.value}"
        c, csrf = env.logged_in(username)
        before = len(env.audit(user=username, outcome="denied"))
        for rid in b_only:
            for path in (f"/api/reports/{rid}", f"/api/reports/{rid}/explain"):
                r = c.get(path)
                # exactly what an id that does not exist gets: the answer says nothing about B's report
                nothing = c.get(path.replace(rid, "NO-SUCH-REPORT"))
                assert r.status_code == nothing.status_code == 404, (role, path)
                assert r.headers["content-type"] == "application/problem+json"
                assert r.json() == {**nothing.json(), "instance": path}
            note = c.post(f"/api/reports/{rid}/notes", json={"text": "x"}, headers={CSRF_HEADER: csrf})
            assert note.status_code == 404
        denied = [e for e in env.audit(user=username, outcome="denied")][before:]
        on_b = [(e.object_type, e.object_id) for e in denied if e.object_id in b_only]
        assert sorted(on_b) == sorted([("report", rid) for rid in b_only] * 2 + [("assessment", rid) for rid in b_only])
        assert all(e.agency == "agency-a" and e.action in {"read", "change"} for e in denied)
        # the queue: only A's reports (and the shared one), never B's; no queue at all for roles without case data
        q = c.get("/api/queue", params={"limit": 200})
        if role in CASE_ROLES:
            assert q.status_code == 200
            seen = {item["report_id"] for item in q.json()["items"]}
            assert seen == {*a_only, shared}
            assert {item["via"] for item in q.json()["items"] if item["report_id"] == shared} == {"deconfliction"}
        else:
            assert q.status_code == 403
        assert not any(rid in q.text for rid in b_only)
        # its own agency's reports: readable by the case roles, 404 (no case data) for the administrators
        own = c.get(f"/api/reports/{a_only[0]}")
        explained = c.get(f"/api/reports/{shared}/explain")
        if role in CASE_ROLES:
            assert own.status_code == 200 and own.json()["id"] == a_only[0]
            assert explained.status_code == 200 and explained.json()["report_id"] == shared
            assert explained.json()["score"] == sum(f["points"] for f in explained.json()["fired"])
            changes = explained.json()["tier_changes"]  # what sets the tier, and what would change it
            assert changes["tier"] == explained.json()["tier"] and all(e["tier"] < changes["tier"] for e in changes["more_urgent"])
        else:
            assert own.status_code == explained.status_code == 404
        note = c.post(f"/api/reports/{a_only[0]}/notes", json={"text": "seen"}, headers={CSRF_HEADER: csrf})
        assert note.status_code == {Role.AUDITOR: 403, Role.AGENCY_ADMIN: 404, Role.SYSTEM_ADMIN: 404}.get(role, 202)
    # every successful read of case data was audited as such
    reads = env.audit(action="read", outcome="ok", object_type="report")
    assert {(e.user, e.object_id) for e in reads} == {(f"a-{r.value}", a_only[0]) for r in CASE_ROLES}
    notes = env.audit(action="change", outcome="ok", object_type="report")
    assert {e.user for e in notes} == {"a-analyst", "a-investigator", "a-supervisor"} and all(e.detail["stored"] is False for e in notes)


def test_the_queue_is_paginated(seeded: tuple[Env, list[str], list[str], str]) -> None:
    env, a_only, _, shared = seeded
    c, _ = env.logged_in("a-analyst")
    first = c.get("/api/queue", params={"limit": 2}).json()
    assert (len(first["items"]), first["total"], first["next_offset"]) == (2, 5, 2)
    rest = c.get("/api/queue", params={"limit": 2, "offset": 2}).json()
    last = c.get("/api/queue", params={"limit": 2, "offset": 4}).json()
    assert last["next_offset"] is None
    ids = [i["report_id"] for page in (first, rest, last) for i in page["items"]]
    assert sorted(ids) == sorted([*a_only, shared]) and len(set(ids)) == 5
    assert [(i["tier"], -i["score"]) for page in (first, rest, last) for i in page["items"]] == sorted(
        (i["tier"], -i["score"]) for page in (first, rest, last) for i in page["items"])
    bad = c.get("/api/queue", params={"limit": 0})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert c.get("/api/queue", params={"limit": 201}).status_code == 422


# -- the API as published -----------------------------------------------------------------------------------------


def test_openapi_is_published_and_errors_are_problem_json(env: Env) -> None:
    c = env.client()
    doc = c.get("/openapi.json").json()
    assert {"/api/login", "/api/logout", "/api/banner", "/api/queue", "/api/reports/{report_id}", "/api/reports/{report_id}/explain",
            "/api/reports/{report_id}/notes"} <= set(doc["paths"])
    assert {"session", "csrf"} <= set(doc["components"]["securitySchemes"])
    assert doc["paths"]["/api/reports/{report_id}"]["get"]["responses"]["404"]["content"].keys() == {"application/problem+json"}
    assert doc["paths"]["/api/reports/{report_id}/notes"]["post"]["security"] == [{"session": [], "csrf": []}]  # both required
    for r in (c.get("/docs"), c.get("/api/nowhere"), c.get("/api/queue"), c.delete("/api/banner")):
        assert r.status_code in {401, 404, 405}
        assert r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert body["status"] == r.status_code and body["title"] and "type" in body
    assert c.get("/api/banner").headers["cache-control"] == "no-store"
