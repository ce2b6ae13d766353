"""The service's API on a seeded store (SQLite and PostgreSQL): the case workflow with its audit entries, the isolation
matrix (every role against another agency's objects, for read, write and delete), subjects and packages cut to what the
agency may see, the supervisor's figures, the audit view, hash-set administration and submissions."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from service_fixtures import Service

from tiptriage import synth
from tiptriage.server.auth import CSRF_HEADER
from tiptriage.store.users import Role
from tiptriage.store.views import ServiceViews


def _case_id(service: Service, report_id: str) -> str:
    case = service.store.work.case(report_id)
    assert case is not None
    return str(case["id"])


def test_a_case_goes_through_its_workflow_and_every_change_is_audited(service: Service) -> None:
    rid = service.reports["agency-a"][0]
    cid = _case_id(service, rid)
    sup, sup_csrf = service.client(Role.SUPERVISOR)
    inv, inv_csrf = service.client(Role.INVESTIGATOR)
    investigator = service.user(Role.INVESTIGATOR)

    r = sup.post(f"/api/cases/{cid}/assign", json={"assignee": investigator}, headers={CSRF_HEADER: sup_csrf})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "assigned" and r.json()["assignee"] == investigator
    r = inv.post(f"/api/cases/{rid}/transition", json={"state": "in_progress", "note": "started"}, headers={CSRF_HEADER: inv_csrf})
    assert r.status_code == 200 and r.json()["state"] == "in_progress"
    r = inv.post(f"/api/cases/{cid}/outcome", json={"outcome": "no_action"}, headers={CSRF_HEADER: inv_csrf})
    assert r.status_code == 409 and "needs a reason" in r.json()["detail"]
    r = inv.post(f"/api/cases/{cid}/outcome", json={"outcome": "child_safeguarded"}, headers={CSRF_HEADER: inv_csrf})
    assert r.status_code == 200
    closed = r.json()
    assert closed["state"] == "closed" and closed["outcome"] == "child_safeguarded" and closed["sla"] == "closed"
    assert [(e["from_state"], e["to_state"]) for e in closed["events"]][-3:] == [("new", "assigned"), ("assigned", "in_progress"),
                                                                                 ("in_progress", "closed")]
    r = inv.post(f"/api/cases/{cid}/transition", json={"state": "in_progress"}, headers={CSRF_HEADER: inv_csrf})
    assert r.status_code == 409 and "closed" in r.json()["detail"]

    changes = [e for e in service.store.audit.iter_entries() if e.action == "change" and e.object_id == cid]
    assert [(e.outcome, e.detail.get("transition")) for e in changes] == [
        ("ok", "new->assigned"), ("ok", "assigned->in_progress"), ("failed", None), ("ok", "in_progress->closed"), ("failed", None)]
    assert {e.user for e in changes if e.outcome == "ok"} == {service.user(Role.SUPERVISOR), investigator}
    assert service.store.audit.verify().ok


def test_roles_may_do_only_their_part_of_the_workflow(service: Service) -> None:
    rid = service.reports["agency-a"][1]
    analyst, a_csrf = service.client(Role.ANALYST)
    auditor, au_csrf = service.client(Role.AUDITOR)
    inv, inv_csrf = service.client(Role.INVESTIGATOR)
    # an analyst and an auditor read the case but may not move it; an investigator may take it but not give it to someone else
    assert analyst.get(f"/api/cases/{rid}").status_code == 200
    assert analyst.post(f"/api/cases/{rid}/assign", json={"assignee": "analyst-a"}, headers={CSRF_HEADER: a_csrf}).status_code == 403
    assert auditor.post(f"/api/cases/{rid}/transition", json={"state": "assigned"}, headers={CSRF_HEADER: au_csrf}).status_code == 403
    other = service.user(Role.SUPERVISOR)
    assert inv.post(f"/api/cases/{rid}/assign", json={"assignee": other}, headers={CSRF_HEADER: inv_csrf}).status_code == 403
    r = inv.post(f"/api/cases/{rid}/assign", json={"assignee": service.user(Role.INVESTIGATOR)}, headers={CSRF_HEADER: inv_csrf})
    assert r.status_code == 200 and r.json()["assignee"] == service.user(Role.INVESTIGATOR)
    case = service.store.work.case(rid)
    assert case is not None and case["state"] == "assigned"


def test_no_role_of_one_agency_reads_changes_or_deletes_another_agencys_objects(service: Service) -> None:
    theirs = service.reports["agency-b"]
    before = {rid: service.store.work.case(rid) for rid in theirs}
    secrets_of_b = set()
    for rid in theirs:
        report = service.store.get_report(rid)
        assert report is not None
        secrets_of_b |= {p.person.emails[0].address for p in report.reported_people if p.person and p.person.emails}
        secrets_of_b.add(_case_id(service, rid))
    assert secrets_of_b
    attempts = 0
    for role in Role:
        client, csrf = service.client(role, "agency-a")
        h = {CSRF_HEADER: csrf}
        for rid in theirs[:3]:
            cid = _case_id(service, rid)
            calls = [
                ("GET", f"/api/reports/{rid}", None), ("GET", f"/api/reports/{rid}/explain", None),
                ("GET", f"/api/reports/{rid}/subject", None), ("GET", f"/api/reports/{rid}/package?format=json", None),
                ("GET", f"/api/cases/{cid}", None), ("GET", f"/api/cases/{rid}", None),
                ("POST", f"/api/reports/{rid}/notes", {"text": "note"}),
                ("POST", f"/api/cases/{cid}/assign", {"assignee": service.user(role)}),
                ("POST", f"/api/cases/{cid}/transition", {"state": "assigned"}),
                ("POST", f"/api/cases/{cid}/outcome", {"outcome": "unfounded"}),
                ("DELETE", f"/api/reports/{rid}", None), ("DELETE", f"/api/cases/{cid}", None),
                ("GET", f"/reports/{rid}", None),
            ]
            for method, url, body in calls:
                r = client.request(method, url, json=body, headers=h)
                attempts += 1
                assert r.status_code in (403, 404, 405), (role, method, url, r.status_code, r.text[:300])
                leaked = [s for s in secrets_of_b if s in r.text and s not in url]
                assert not leaked, (role, method, url, leaked)
        queue = client.get("/api/queue?limit=200")
        if queue.status_code == 200:
            assert not {i["report_id"] for i in queue.json()["items"]} & set(theirs)
    assert attempts == len(Role) * 3 * 13
    assert {rid: service.store.work.case(rid) for rid in theirs} == before  # nothing of B's moved
    denied = [e for e in service.store.audit.iter_entries() if e.outcome == "denied" and e.agency == "agency-a"]
    assert len(denied) >= len(Role) * 3 * 6  # every refused read and change of case data is on record
    # the positive control: the same calls on B's own objects work for B's supervisor
    own, _own_csrf = service.client(Role.SUPERVISOR, "agency-b")
    assert own.get(f"/api/reports/{theirs[0]}").status_code == 200
    assert own.get(f"/api/cases/{theirs[0]}").status_code == 200


def test_a_subject_and_a_package_show_only_what_the_agency_may_see(service: Service) -> None:
    mine = set(service.reports["agency-a"])
    theirs = set(service.reports["agency-b"])
    client, _ = service.client(Role.INVESTIGATOR)
    spanning = 0
    for rid in sorted(mine):
        r = client.get(f"/api/reports/{rid}/subject")
        if r.status_code == 404:
            continue
        assert r.status_code == 200, r.text
        subject = r.json()
        seen = {x["report_id"] for x in subject["report_accounts"]}
        assert rid in seen and seen <= mine
        full = service.store.links.subject(subject["id"])
        assert full is not None
        if {x["report_id"] for x in full["report_accounts"]} & theirs:
            spanning += 1
            for url in (f"/api/reports/{rid}/package?format=json", f"/api/reports/{rid}/package?format=html",
                        f"/api/reports/{rid}/explain", f"/reports/{rid}"):
                r = client.get(url)
                assert r.status_code == 200, url
                assert not [t for t in theirs if t in r.text], url  # another agency's reports are not even named
    assert spanning >= 1, "the seeded data should hold a subject with reports in both agencies"


def test_packages_export_in_every_format_and_each_export_is_audited(service: Service) -> None:
    rid = service.reports["agency-a"][0]
    client, _ = service.client(Role.INVESTIGATOR)
    for fmt, start in (("json", b"{"), ("html", b"<!"), ("pdf", b"%PDF"), ("case", b"{")):
        r = client.get(f"/api/reports/{rid}/package?format={fmt}")
        assert r.status_code == 200, (fmt, r.text[:200])
        assert r.content.lstrip()[:4].upper().startswith(start.upper()), fmt
        assert "attachment" in r.headers["content-disposition"]
    assert json.loads(client.get(f"/api/reports/{rid}/package?format=json").text)["report"]["id"] == rid
    exports = [e for e in service.store.audit.iter_entries() if e.action == "export" and e.object_id == rid]
    assert [e.detail["format"] for e in exports] == ["json", "html", "pdf", "case", "json"]
    auditor, _ = service.client(Role.AUDITOR)
    assert auditor.get(f"/api/reports/{rid}/package?format=json").status_code == 403


def test_the_dashboard_counts_the_agencys_open_cases(service: Service) -> None:
    sup, csrf = service.client(Role.SUPERVISOR)
    r = sup.get("/api/dashboard")
    assert r.status_code == 200
    d = r.json()
    open_cases = [c for c in service.store.work.agency_queue("agency-a")]
    assert sum(n for _, n in d["backlog_aging"]) == len(open_cases)
    assert d["unassigned"] + sum(n for _, n in d["load"]) == len(open_cases)
    assert sum(sum(v) for v in d["volume_by_tier"].values()) == len(service.reports["agency-a"])
    assert d["capacity"] == 25 and d["over_capacity"] == []
    inv, _ = service.client(Role.INVESTIGATOR)
    assert inv.get("/api/dashboard").status_code == 403
    # capacity: assign two cases to one investigator and ask with a capacity of one
    for rid in service.reports["agency-a"][:2]:
        assert sup.post(f"/api/cases/{rid}/assign", json={"assignee": "investigator-a"}, headers={CSRF_HEADER: csrf}).status_code == 200
    figures = ServiceViews(service.store.engine).dashboard("agency-a", datetime.now(UTC), capacity=1)
    assert figures["over_capacity"] == ["investigator-a"] and ("investigator-a", 2) in figures["load"]


def test_an_auditor_reads_only_the_agencys_audit_entries_and_verifies_the_chain(service: Service) -> None:
    service.client(Role.SUPERVISOR, "agency-b")[0].get("/api/queue")
    auditor, _ = service.client(Role.AUDITOR)
    r = auditor.get("/api/audit?limit=200")
    assert r.status_code == 200
    page = r.json()
    assert page["total"] >= 1 and {i["agency"] for i in page["items"]} == {"agency-a"}
    v = auditor.get("/api/audit/verify").json()
    assert v["ok"] is True and v["entries"] > page["total"]
    assert service.client(Role.INVESTIGATOR)[0].get("/api/audit").status_code == 403


def test_hash_sets_and_submissions_are_administered_over_the_api(service: Service, tmp_path: Path) -> None:
    data = synth.generate(3, seed=99)
    synth.write(data, tmp_path, "xml")
    admin, admin_csrf = service.client(Role.SYSTEM_ADMIN)
    known = tmp_path / "hashsets" / "known.csv"
    with known.open("rb") as f:
        r = admin.post("/api/hashsets/uploaded-bank", files={"file": ("known.csv", f, "text/csv")}, data={"format": "csv"},
                       headers={CSRF_HEADER: admin_csrf})
    assert r.status_code == 200, r.text
    assert r.json()["added"] > 0
    banks = {b["name"]: b for b in admin.get("/api/hashsets").json()}
    assert sum(banks["uploaded-bank"]["entries"].values()) == r.json()["added"]
    sup, sup_csrf = service.client(Role.SUPERVISOR)
    assert sup.get("/api/hashsets").status_code == 403

    submission = next((tmp_path / "submissions").rglob("*.xml"))
    analyst, a_csrf = service.client(Role.ANALYST)
    before = len(service.store.report_ids())
    with submission.open("rb") as f:
        r = analyst.post("/api/submissions", files={"file": ("report.xml", f, "application/xml")}, headers={CSRF_HEADER: a_csrf})
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1 and len(service.store.report_ids()) == before + 1
    with submission.open("rb") as f:
        again = analyst.post("/api/submissions", files={"file": ("report.xml", f, "application/xml")}, headers={CSRF_HEADER: a_csrf})
    assert again.json()["duplicates"] == 1
    broken = tmp_path / "broken.xml"
    broken.write_bytes(b"<report><incidentSummary>")
    with broken.open("rb") as f:
        bad = analyst.post("/api/submissions", files={"file": ("broken.xml", f, "application/xml")}, headers={CSRF_HEADER: a_csrf})
    assert bad.status_code == 200 and bad.json()["quarantined"] == 1 and bad.json()["errors"][0]["reason"]
    with submission.open("rb") as f:
        assert sup.post("/api/submissions", files={"file": ("r.xml", f, "application/xml")}, headers={CSRF_HEADER: sup_csrf}).status_code == 403


@pytest.mark.parametrize("path", ["/api/dashboard", "/api/audit", "/api/hashsets", "/api/cases/C-0"])
def test_every_new_endpoint_needs_a_session(service: Service, path: str) -> None:
    anonymous, _ = service.client()
    r = anonymous.get(path)
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")
