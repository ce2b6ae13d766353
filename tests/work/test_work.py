"""Routing into agency queues, the case workflow, SLA clocks and deconfliction, through the real pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tiptriage import pipeline, synth
from tiptriage.intake.cybertip_xml_writer import write_submission
from tiptriage.model import Account, Email, EstimatedLocation, IncidentType, Person, Report, ReportAnnotation
from tiptriage.store import Store
from tiptriage.work.states import TransitionError, aging, check_outcome, check_transition, due_at

T0 = datetime(2026, 10, 1, tzinfo=UTC)
EXE = str(Path(sys.executable).parent / "tiptriage")


def test_workflow_rules() -> None:
    check_transition("new", "assigned")
    check_transition("legal_process", "in_progress")
    with pytest.raises(TransitionError, match="allowed: assigned"):
        check_transition("new", "closed")
    with pytest.raises(TransitionError, match="closed"):
        check_transition("closed", "in_progress")
    with pytest.raises(TransitionError, match="needs a reason"):
        check_outcome("no_action", None)
    check_outcome("child_safeguarded", None)
    due = due_at(1, T0)
    assert due == T0 + timedelta(hours=24)
    assert aging(due, T0 + timedelta(hours=25)) == "overdue" and aging(due, T0 + timedelta(hours=20)) == "due soon"
    assert due_at(4, T0) is None


def _report(rid: str, account: str, email: str, country: str, region: str) -> Report:
    return Report(
        id=rid, received_at=T0, incident_type=IncidentType.CHILD_PORNOGRAPHY, incident_datetime=T0,
        report_annotations=[ReportAnnotation.SEXTORTION],
        reported_people=[Account(esp_service="ServiceQ", esp_identifier=account, person=Person(emails=[Email(address=email)]),
                                 estimated_location=EstimatedLocation(country_code=country, region=region, verified=True, timestamp=T0))],
    )


def test_routing_cases_and_deconfliction(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "subs"
    # one person, two accounts, one seen in the UK and one in Australia: two agencies hold the same subject
    write_submission(_report("DC-1", "111", "same.person@example.org", "GB", "ENG"), folder)
    write_submission(_report("DC-2", "222", "Same.Person@example.org", "AU", "NSW"), folder)
    write_submission(_report("DC-3", "333", "other@example.net", "ZZ", ""), folder)
    assert pipeline.ingest(store, [folder]).accepted == 3
    res = pipeline.triage(store)
    assert res.routed == {"gb-nca-ceop": 1, "au-afp-accce": 1, "review": 1}
    r1, r3 = store.work.route_of("DC-1"), store.work.route_of("DC-3")
    assert r1 is not None and r1["agency_id"] == "gb-nca-ceop" and "GB" in r1["reason"]
    assert r3 is not None and r3["agency_id"] == "review"  # an unknown place goes to review, never to a guess
    notices = {n["report_id"]: n for n in store.work.notices_for()}
    c2 = store.work.case("DC-2")
    assert c2 is not None
    assert notices["DC-1"]["other_agency_id"] == "au-afp-accce" and notices["DC-1"]["other_case_ref"] == c2["id"]
    assert notices["DC-2"]["other_agency_id"] == "gb-nca-ceop"
    assert set(notices["DC-1"]) == {"id", "subject_id", "agency_id", "report_id", "other_agency_id", "other_case_ref", "created_at"}
    a1 = store.assessments.get("DC-1")
    assert a1 is not None and a1["indicators"]["deconfliction"]["value"] is True
    assert any("au-afp-accce" in ev for ev in a1["indicators"]["deconfliction"]["evidence"])
    from tiptriage.store.users import ReportAccessRepository

    access = ReportAccessRepository(store.engine)
    assert access.agencies_of("DC-1") == {"gb-nca-ceop": "routed"} and access.via("DC-2", "gb-nca-ceop") is None  # the service follows the route
    case = store.work.case("DC-1")
    assert case is not None and case["state"] == "new" and case["due_at"] is not None
    assert case["due_at"] - case["opened_at"].replace(tzinfo=UTC) == timedelta(hours=24)  # sextortion is tier 1


def run_cli(args: list[str], db_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIPTRIAGE_DATABASE_URL": db_url, "COLUMNS": "200"}
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, timeout=300)


def test_queue_assign_transition_outcome_from_the_command_line(db_url: str, tmp_path: Path) -> None:
    data = synth.generate(80, seed=4)
    synth.write(data, tmp_path, "xml")
    assert run_cli(["ingest", str(tmp_path / "submissions")], db_url).returncode == 0
    assert run_cli(["triage"], db_url).returncode == 0
    answer = json.loads(run_cli(["queue", "--format", "json", "--limit", "100"], db_url).stdout)
    q = answer["items"]
    assert answer["total"] == len(q) == 80 and all(r["agency_id"] for r in q)
    assert [r["tier"] for r in q] == sorted(r["tier"] for r in q)
    agency = next(r["agency_id"] for r in q if r["agency_id"] != "review")
    mine = json.loads(run_cli(["queue", "--agency", agency, "--format", "json"], db_url).stdout)["items"]
    assert mine and {r["agency_id"] for r in mine} == {agency}
    case = q[0]["case_id"]
    bad = run_cli(["transition", case, "legal_process"], db_url)
    assert bad.returncode == 1 and "cannot move" in bad.stderr
    assert run_cli(["assign", case, "--to", "inv.a"], db_url).returncode == 0
    assert run_cli(["transition", case, "in_progress"], db_url).returncode == 0
    assert run_cli(["outcome", case, "no_action"], db_url).returncode == 1  # a reason is required
    assert run_cli(["outcome", case, "child_safeguarded"], db_url).returncode == 0
    store = Store(db_url)
    c = store.work.case(case)
    assert c is not None and c["state"] == "closed" and c["outcome"] == "child_safeguarded"
    assert [(e["from_state"], e["to_state"]) for e in c["events"]] == [("new", "assigned"), ("assigned", "in_progress"), ("in_progress", "closed")]
    evaluated = json.loads(run_cli(["evaluate", "--outcomes", "--json"], db_url).stdout)
    assert evaluated["closed"] == 1
    ((tier, by),) = evaluated["by_tier"].items()
    assert tier == str(q[0]["tier"]) and by["action_share"] == 1.0 and by["outcomes"] == {"child_safeguarded": 1}
    assert run_cli(["evaluate"], db_url).returncode == 2  # one of --truth or --outcomes
    summary = json.loads(run_cli(["queue", "--summary", "--format", "json"], db_url).stdout)
    assert sum(s["open"] for s in summary) == 79 and sum(s["closed"] for s in summary) == 1
    rid = q[1]["report_id"]
    assert run_cli(["route", "transfer", rid, "--to", "gb-nca-ceop", "--reason", "subject moved"], db_url).returncode == 0
    moved = store.work.route_of(rid)
    assert moved is not None and moved["agency_id"] == "gb-nca-ceop" and [e["action"] for e in moved["events"]] == ["route", "transfer"]
    store.dispose()


def test_lead_packages_from_the_command_line(db_url: str, tmp_path: Path) -> None:
    data = synth.generate(60, seed=6)
    synth.write(data, tmp_path, "xml")
    run_cli(["ingest", str(tmp_path / "submissions")], db_url)
    run_cli(["hashset", "import", str(tmp_path / "hashsets" / "known.csv"), "--name", "known"], db_url)
    run_cli(["triage"], db_url)
    rid = next(r for r, t in data.truth["reports"].items() if t["class"] == "known_possession")
    for fmt in ("json", "html", "case"):
        res = run_cli(["package", rid, "--format", fmt, "--out", str(tmp_path / f"p.{fmt}")], db_url)
        assert res.returncode == 0, res.stderr
    pkg = json.loads((tmp_path / "p.json").read_text())
    assert pkg["report"]["id"] == rid and pkg["assessment"]["tier"] in (1, 2, 3, 4) and pkg["hash_matches"]
    assert pkg["routing"]["agency_id"] and pkg["deadlines"]
    html = (tmp_path / "p.html").read_text()
    assert rid in html and "DRAFT" in html
    (tmp_path / "p.jsonld").write_text((tmp_path / "p.case").read_text())
    validated = subprocess.run([str(Path(sys.executable).parent / "case_validate"), str(tmp_path / "p.jsonld")],
                               capture_output=True, text=True, timeout=300)
    assert "Conforms: True" in validated.stdout, validated.stdout[-2000:]
    missing = run_cli(["package", "NOPE", "--format", "json", "--out", str(tmp_path / "x.json")], db_url)
    assert missing.returncode == 1 and "no assessed report" in missing.stderr
