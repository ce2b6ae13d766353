"""schemathesis against the service's own OpenAPI document: every operation, as several roles with a real session and as
nobody, on a store with synthetic triaged reports and open cases. No answer may be a 5xx, and every answer must match
what the document says of that operation: schemathesis' ``not_a_server_error`` and ``response_schema_conformance``, and
also ``status_code_conformance`` (the status is documented) and ``content_type_conformance``.

Each (role, operation) pair gets a few positive and a few negative examples; path parameters are drawn half the time from
the objects that really exist (the agency's own reports and cases, another agency's, a shared one), so the fuzzing reaches
the handlers' happy paths and the isolation checks, not only the 404 for a random id. The first positive example of each
pair always names the agency's own objects: Hypothesis also draws strings from the constants of the modules loaded in
the process, so which objects the other draws land on changes with the tests that ran before, and the happy path must
be reached whichever they are. Generation is derandomized, so a failure reproduces in the same run order; every failure is collected (role, operation, curl command, status, body or traceback) and reported
together at the end rather than at the first one.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pyotp
import pytest
import schemathesis
import sqlalchemy as sa
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.python.asgi import ASGIClient
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from tiptriage import pipeline, synth
from tiptriage.link.records import account_key
from tiptriage.server.app import create_app
from tiptriage.server.auth import CSRF_HEADER, SESSION_COOKIE, Authenticator
from tiptriage.store import Store
from tiptriage.store.schema import cases, metadata
from tiptriage.store.users import USER_TABLES, ReportAccessRepository, Role

PASSWORD = "violet-harbour-lantern-91"
BASE_URL = "https://testserver"  # the cookies are Secure: they travel over https only
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
ROLES = (Role.ANALYST, Role.SUPERVISOR, Role.AUDITOR, Role.SYSTEM_ADMIN)
EXAMPLES = {GenerationMode.POSITIVE: 5, GenerationMode.NEGATIVE: 2}  # per role and operation
FEWER = {"POST /api/password": {GenerationMode.POSITIVE: 3, GenerationMode.NEGATIVE: 1}}  # each example hashes with argon2id
ANONYMOUS_EXAMPLES = 2  # without a session every operation but banner and login answers 401 at once
SESSION_ENDING = ("POST /api/logout", "POST /api/password")  # run last for each role: they end the session or change the password


class Clock:
    """Moves only when told, so each login gets a fresh TOTP step and no session idles out mid-run."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Seeded:
    store: Store
    clock: Clock
    app: FastAPI
    secrets: dict[str, str]
    known: dict[str, list[str]]  # path parameter name -> values that exist (of agency A first, of B, shared)
    assignees: list[str]


@dataclass
class Failure:
    who: str
    operation: str
    mode: str
    request: str
    outcome: str

    def __str__(self) -> str:
        return f"[{self.who}] {self.operation} ({self.mode})\n  {self.request}\n  {self.outcome}"


@dataclass
class Tally:
    failures: list[Failure] = field(default_factory=list)
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    requests: int = 0

    def count(self, operation: str, status: int, seconds: float) -> None:
        self.requests += 1
        self.seconds[operation] = self.seconds.get(operation, 0.0) + seconds
        per = self.statuses.setdefault(operation, {})
        per[status] = per.get(status, 0) + 1


@pytest.fixture
def seeded(store: Store, tmp_path: Path) -> Iterator[Seeded]:
    """12 synthetic reports, ingested and triaged (which routes each to an agency and opens its case). Agency A is the
    agency with the most reports, agency B another one; one of B's reports is shared with A by deconfliction. One user
    per fuzzed role in agency A, and an analyst in B (an assignee A may name but not assign)."""
    metadata.create_all(store.engine, tables=list(USER_TABLES))  # a no-op once the migration creates them
    data = synth.generate(12, seed=11)
    synth.write(data, tmp_path, "xml")
    pipeline.ingest(store, [tmp_path / "submissions"])
    pipeline.triage(store)
    assert len(store.report_ids()) == 12
    with store.engine.connect() as conn:
        opened = conn.execute(sa.select(cases.c.id, cases.c.report_id, cases.c.agency_id).order_by(cases.c.report_id)).all()
    by_agency: dict[str, list[tuple[str, str]]] = {}
    for cid, rid, agency in opened:
        by_agency.setdefault(agency, []).append((cid, rid))
    agencies = sorted(by_agency, key=lambda a: (-len(by_agency[a]), a))
    assert len(agencies) >= 2, by_agency
    a, b = by_agency[agencies[0]], by_agency[agencies[1]]
    clock = Clock()
    ReportAccessRepository(store.engine).assign(b[-1][1], agencies[0], "deconfliction", clock.now)
    auth = Authenticator(store, clock=clock)
    secrets = {f"a-{role.value}": auth.enroll(f"a-{role.value}", agencies[0], role, PASSWORD, by="test-admin").totp_secret for role in ROLES}
    auth.enroll("b-analyst", agencies[1], Role.ANALYST, PASSWORD, by="test-admin")
    # the agency's own subjects first: the first positive example of each (role, operation) names known[...][0]
    own_subjects = {_subject(store, rid) for _, rid in a}
    subjects = sorted({sid for _, rid, _ in opened if (sid := _subject(store, rid)) is not None}, key=lambda sid: (sid not in own_subjects, sid))
    known = {"report_id": [a[0][1], a[1][1], b[0][1], b[-1][1]], "ref": [a[0][0], a[1][0], a[2][1], b[0][0], b[1][1]],
             "subject_id": subjects[:3] or ["S-none"]}
    yield Seeded(store, clock, create_app(store, clock=clock), secrets, known, ["a-analyst", "a-supervisor", "b-analyst"])


def _subject(store: Store, report_id: str) -> str | None:
    """The subject of the report's first reported account (as ``GET /api/reports/{id}/subject`` finds it)."""
    report = store.get_report(report_id)
    if report is None or not report.reported_people:
        return None
    return store.links.subject_of(account_key(report, 0))


def _login(env: Seeded, client: ASGIClient, username: str) -> tuple[dict[str, str], dict[str, str]]:
    """A fresh session for ``username``: its cookie and the CSRF header. The clock moves one TOTP step first, as a
    code is good for one login only."""
    env.clock.now += timedelta(seconds=30)
    code = pyotp.TOTP(env.secrets[username]).at(env.clock.now)
    r = client.post(f"{BASE_URL}/api/login", json={"username": username, "password": PASSWORD, "totp": code, "banner_accepted": True})
    assert r.status_code == 200, r.text
    token = r.cookies.get(SESSION_COOKIE)
    assert token, r.headers
    client.cookies.clear()
    return {SESSION_COOKIE: token}, {CSRF_HEADER: str(r.json()["csrf_token"])}


def _fuzz(env: Seeded, client: ASGIClient, operation: Any, who: str, cookies: dict[str, str], headers: dict[str, str],
          examples: dict[GenerationMode, int], tally: Tally) -> None:
    for mode, n in examples.items():
        try:
            strategy = operation.as_strategy(generation_mode=mode)
        except Exception:  # an operation with nothing to negate
            continue
        _fuzz_mode(env, client, operation, strategy, who, mode, n, cookies, headers, tally)


def _fuzz_mode(env: Seeded, client: ASGIClient, operation: Any, strategy: st.SearchStrategy[Any], who: str, mode: GenerationMode,
               n: int, cookies: dict[str, str], headers: dict[str, str], tally: Tally) -> None:
    label = f"{operation.method.upper()} {operation.path}"
    own_first = [mode is GenerationMode.POSITIVE]  # the first positive example names the agency's own objects

    @settings(max_examples=n, deadline=None, database=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy, data=st.data())
    def run(case: Any, data: st.DataObject) -> None:
        own, own_first[0] = own_first[0], False
        for name in case.path_parameters or {}:
            if name in env.known and own:
                case.path_parameters[name] = env.known[name][0]
            elif name in env.known and data.draw(st.booleans(), label=f"real {name}"):
                case.path_parameters[name] = data.draw(st.sampled_from(env.known[name]), label=name)
        if isinstance(case.body, dict) and "assignee" in case.body and data.draw(st.booleans(), label="real assignee"):
            case.body["assignee"] = data.draw(st.sampled_from(env.assignees), label="assignee")
        if isinstance(case.body, dict) and "banner_accepted" in case.body and data.draw(st.booleans(), label="past the banner"):
            case.body["banner_accepted"] = True  # reaches the credential checks; "b-analyst" may get locked out, no one else
            if data.draw(st.booleans(), label="real user"):
                case.body["username"] = "b-analyst"
        if isinstance(case.body, dict) and "current" in case.body and data.draw(st.booleans(), label="real password"):
            case.body["current"] = PASSWORD  # reaches the password policy (400) and, if the new one passes it, the change
        request = case.as_curl_command(headers=headers)
        start = time.perf_counter()
        try:
            response = case.call(base_url=BASE_URL, session=client, headers=dict(headers), cookies=dict(cookies))
        except Exception:  # the application raised: a 500 a real server would have answered
            trace = traceback.format_exc().splitlines()  # the framework's frames first, the service's last
            tally.failures.append(Failure(who, label, mode.value, request, "raised:\n" + "\n".join(trace[-40:])))
            return
        finally:
            client.cookies.clear()
        tally.count(label, response.status_code, time.perf_counter() - start)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Exception, FailureGroup) as exc:  # a FailureGroup is a BaseExceptionGroup
            tally.failures.append(Failure(who, label, mode.value, request,
                                          f"{response.status_code} {response.text[:2000]}\n  {str(exc)[:3000]}"))

    try:
        run()
    except Unsatisfiable:  # nothing of the operation can be made invalid (GET /api/banner has no input at all)
        assert mode is GenerationMode.NEGATIVE, label


def _without_tuples(node: Any) -> Any:
    """The document with each tuple (``prefixItems``) relaxed to an array of any of its item schemas.

    schemathesis 4.32 converts ``prefixItems`` to the draft-7 ``items: [...]`` form for response schemas and then validates
    with a Draft 2020-12 validator, which rejects that form ("[...] is not of types boolean, object"): every answer with a
    tuple in its schema (``GET /api/dashboard``: ``backlog_aging``, ``load``) would fail for schemathesis' sake, not the
    service's. The relaxed form still checks the length and that each item is one of the declared types."""
    if isinstance(node, list):
        return [_without_tuples(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _without_tuples(v) for k, v in node.items() if k != "prefixItems"}
    if "prefixItems" in node and "items" not in node:
        out["items"] = {"anyOf": _without_tuples(node["prefixItems"])}
    return out


def _load_schema(app: FastAPI) -> Any:
    """What ``schemathesis.openapi.from_asgi("/openapi.json", app)`` loads, read through the app itself, tuples relaxed."""
    with ASGIClient(cast(Any, app), BASE_URL) as client:
        document = client.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(_without_tuples(document))
    schema.app = app
    schema.location = "/openapi.json"
    return schema


@pytest.mark.timeout(400)  # about 30 s on an idle 2-core machine; much more when it is shared
def test_every_operation_answers_within_its_schema_and_never_with_a_server_error(seeded: Seeded) -> None:
    env = seeded
    schema = _load_schema(env.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {f"{op.method.upper()} {op.path}": op for op in operations}
    assert {"GET /api/queue", "GET /api/reports/{report_id}", "POST /api/login", "POST /api/submissions"} <= set(labels)
    ordered = [op for label, op in labels.items() if label not in SESSION_ENDING] + [labels[label] for label in SESSION_ENDING]
    tally = Tally()
    client = ASGIClient(cast(Any, env.app), BASE_URL)
    with client:
        for operation in ordered:
            _fuzz(env, client, operation, "anonymous", {}, {}, {GenerationMode.POSITIVE: ANONYMOUS_EXAMPLES}, tally)
        for role in ROLES:
            username = f"a-{role.value}"
            cookies, headers = _login(env, client, username)
            for operation in ordered:
                if f"{operation.method.upper()} {operation.path}" in SESSION_ENDING:
                    cookies, headers = _login(env, client, username)  # each gets a session of its own
                examples = FEWER.get(f"{operation.method.upper()} {operation.path}", EXAMPLES)
                _fuzz(env, client, operation, username, cookies, headers, examples, tally)
    summary = f"{tally.requests} requests\n" + "\n".join(f"{label}: {dict(sorted(per.items()))} {tally.seconds[label]:.1f} s"
                                                       for label, per in sorted(tally.statuses.items()))
    assert not tally.failures, f"{len(tally.failures)} failures in {tally.requests} requests:\n\n" + "\n\n".join(
        map(str, tally.failures)) + "\n\nstatuses seen:\n" + summary
    # the fuzzing reached past authentication: the case roles read reports, queues and cases for real
    for label in ("GET /api/queue", "GET /api/reports/{report_id}", "GET /api/cases/{ref}", "GET /api/reports/{report_id}/explain"):
        assert tally.statuses.get(label, {}).get(200, 0) > 0, (label, summary)
    assert tally.requests > 300, summary
    print(summary)  # shown with -rP: what the fuzzing reached, by operation and status

