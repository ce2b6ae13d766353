"""A subject's tier-1 report lifts the subject's other reports to at least tier 2, with that reason; the lift follows what
becomes of the tier-1 report (a policy change, an outcome, a link decision), the previous assessments are kept with the
change, and open cases move their SLA clock with the tier. On SQLite and PostgreSQL, through the real pipeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tiptriage import pipeline
from tiptriage.intake.cybertip_xml_writer import write_submission
from tiptriage.model import Account, Email, EstimatedLocation, IncidentType, Person, Report, ReportAnnotation
from tiptriage.store import Store
from tiptriage.store.indicators import IndicatorRepository
from tiptriage.store.schema import assessments
from tiptriage.work import cases
from tiptriage.work.states import due_at

T0 = datetime.now(UTC) - timedelta(days=2)
LIFT = "subject-has-tier1-report"


def _report(rid: str, account: str, email: str, *, escalated: bool = False, informational: bool = False) -> Report:
    return Report(
        id=rid, received_at=T0, incident_type=IncidentType.CHILD_PORNOGRAPHY, incident_datetime=T0,
        escalate_to_high_priority="Escalated: category code E1" if escalated else None,
        report_annotations=[ReportAnnotation.INFORMATIONAL] if informational else [],
        reported_people=[Account(esp_service="ServiceL", esp_identifier=account, person=Person(emails=[Email(address=email)]),
                                 estimated_location=EstimatedLocation(country_code="GB", region="ENG", verified=True, timestamp=T0))],
    )


@pytest.fixture
def subject(store: Store, tmp_path: Path) -> Store:
    folder = tmp_path / "subs"
    write_submission(_report("L-1", "100", "person.l@example.org", escalated=True), folder)  # tier 1 on its own
    write_submission(_report("L-2", "100", "person.l@example.org"), folder)  # tier 3 on its own
    write_submission(_report("L-3", "101", "Person.L@example.org"), folder)  # tier 3 on its own; the same person by e-mail
    write_submission(_report("L-4", "200", "someone.else@example.net"), folder)  # another person
    write_submission(_report("L-5", "100", "person.l@example.org", informational=True), folder)  # informational: set aside
    assert pipeline.ingest(store, [folder]).accepted == 5
    pipeline.triage(store)
    return store


def _fired(a: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["rule_id"]: f for f in a["fired"]}


def _get(store: Store, rid: str) -> dict[str, Any]:
    a = store.assessments.get(rid)
    assert a is not None
    return a


def _policy_without_escalation(tmp_path: Path) -> Path:
    text = resources.files("tiptriage.data").joinpath("policy_default.yaml").read_text("utf-8")
    start = text.index("  - id: provider-escalation")
    end = text.index("  - id: planned-meeting")
    path = tmp_path / "no-escalation.yaml"
    path.write_text(text[:start] + text[end:], "utf-8")
    return path


def test_a_tier1_report_lifts_its_subjects_other_reports_with_the_reason(subject: Store) -> None:
    store = subject
    l1, l2, l3, l4, l5 = (_get(store, r) for r in ("L-1", "L-2", "L-3", "L-4", "L-5"))
    assert (l1["tier"], l1["own_tier"]) == (1, 1)
    assert (l2["tier"], l2["own_tier"]) == (2, 3)
    lift = _fired(l2)[LIFT]
    assert lift["tier_floor"] == 2 and "tier 1" in lift["reason"] and lift["source"]
    assert any("linked report L-1" in ev and "tier 1" in ev for ev in lift["evidence"])
    # the same person's report on another account is lifted too, with L-1 as the evidence
    assert (l3["tier"], l3["own_tier"]) == (2, 3) and any("L-1" in ev for ev in _fired(l3)[LIFT]["evidence"])
    # an informational report of the person is set aside all the same: the person is first through L-1 already
    assert (l5["tier"], l5["own_tier"]) == (4, 4) and LIFT not in _fired(l5) and "informational-report" in _fired(l5)
    assert l5["indicators"]["subject_tier1_reports"]["value"] == 1  # the indicator is there; the default policy's rule excludes it
    # the tier-1 report is not lifted by its own siblings, and another person's report is untouched
    assert LIFT not in _fired(l1) and l1["indicators"]["subject_tier1_reports"]["value"] == 0
    assert (l4["tier"], l4["own_tier"]) == (3, 3) and LIFT not in _fired(l4)
    # every point still comes from a named rule
    assert l2["score"] == sum(f["points"] for f in l2["fired"])
    # the queue shows the lift's reason
    top = {r["report_id"]: r for r in store.assessments.queue()}
    assert any("tier 1" in reason for reason in top["L-2"]["reasons"])


def test_both_assessment_paths_give_the_same_lift(subject: Store) -> None:
    store = subject

    def snapshot() -> dict[str, dict[str, Any]]:
        with store.engine.connect() as conn:
            rows = conn.execute(sa.select(assessments).order_by(assessments.c.report_id)).mappings().all()
        return {r["report_id"]: {k: v for k, v in r.items() if k != "assessed_at"} for r in rows}

    now = datetime.now(UTC)
    pipeline.assess(store, now=now)
    stored = snapshot()
    res = pipeline.assess(store, now=now, per_report=True)
    assert res.changed == 0 and snapshot() == stored
    assert stored["L-2"]["tier"] == 2


def test_the_lift_follows_the_tier1_report_and_moves_the_case_clock(subject: Store, tmp_path: Path) -> None:
    store = subject
    case = store.work.case("L-2")
    assert case is not None and case["due_at"] - case["opened_at"].replace(tzinfo=UTC) == timedelta(hours=72)  # opened at tier 2
    # a policy without the escalation rule: L-1 is no longer tier 1, so L-2 and L-3 drop back to their own tiers
    res = pipeline.assess(store, policy_path=_policy_without_escalation(tmp_path), trigger="policy without escalation")
    assert _get(store, "L-1")["tier"] == 3
    l2, l3 = _get(store, "L-2"), _get(store, "L-3")
    assert (l2["tier"], l3["tier"]) == (3, 3) and LIFT not in _fired(l2)
    history = IndicatorRepository(store.engine).history("L-2")
    assert history[0]["tier"] == 2 and history[0]["new_tier"] == 3 and LIFT in history[0]["change"]["rules_removed"]
    assert history[0]["trigger"] == "policy without escalation"
    # the open case follows the tier: the clock of tier 3 from when it was opened, and an event that says why
    case = store.work.case("L-2")
    assert case is not None and case["due_at"] == due_at(3, case["opened_at"].replace(tzinfo=UTC))
    assert "tier 2 -> 3" in case["events"][-1]["note"] and "policy without escalation" in case["events"][-1]["note"]
    assert res.cases_retimed >= 3  # L-1, L-2 and L-3 changed tier

    # only L-1 is assessed again under the default policy: its subject's reports assessed earlier are lifted again
    before = datetime.now(UTC)
    res = pipeline.assess(store, report_ids=["L-1"], trigger="back to the default")
    assert res.relifted == 3 and res.by_tier == {1: 1}  # L-2, L-3 and L-5
    assert (_get(store, "L-2")["tier"], _get(store, "L-3")["tier"]) == (2, 2)
    case = store.work.case("L-2")
    assert case is not None and before + timedelta(hours=72) <= case["due_at"] <= datetime.now(UTC) + timedelta(hours=72)
    assert "a linked report's own tier went to or from 1" in IndicatorRepository(store.engine).history("L-2")[0]["trigger"]


def test_an_arrest_on_one_report_is_context_for_the_subjects_others(subject: Store) -> None:
    store = subject
    actor = cases.Actor("investigator-1", "gb-nca-ceop")
    cases.assign(store, "L-1", "investigator-1", actor)
    cases.close(store, "L-1", "arrest", None, actor)
    l2 = _get(store, "L-2")
    assert l2["indicators"]["subject_arrest"]["value"] is True
    assert "subject-arrested" in _fired(l2) and any("L-1" in ev for ev in _fired(l2)["subject-arrested"]["evidence"])
    assert "closed with outcome arrest by investigator-1" in IndicatorRepository(store.engine).history("L-2")[0]["trigger"]
    assert "subject-arrested" not in _fired(_get(store, "L-4"))  # another person's report is not touched
    assert _get(store, "L-1")["indicators"]["subject_arrest"]["value"] is False  # its own outcome is not context for itself


def test_splitting_an_account_off_ends_the_lift_of_its_reports(subject: Store) -> None:
    store = subject
    assert store.links.subject_of("servicel:101") == store.links.subject_of("servicel:100")
    _, res = pipeline.decide_link(store, "split", "servicel:101", None, "different person per the provider", "analyst-1")
    assert store.links.subject_of("servicel:101") != store.links.subject_of("servicel:100")
    assert res.assessed == 4  # L-1, L-2, L-3 and L-5: every report of the subjects before and after
    l3 = _get(store, "L-3")
    assert l3["tier"] == 3 and LIFT not in _fired(l3)
    assert IndicatorRepository(store.engine).history("L-3")[0]["trigger"] == "link decision by analyst-1: split"
    # confirming the link again restores it
    pipeline.decide_link(store, "confirm", "servicel:100", "servicel:101", "same person after all", "analyst-1")
    assert _get(store, "L-3")["tier"] == 2


def test_explain_says_what_sets_the_tier_and_what_would_change_it(subject: Store, db_url: str) -> None:
    import json
    import os
    import subprocess
    import sys

    exe = str(Path(sys.executable).parent / "tiptriage")
    env = {**os.environ, "TIPTRIAGE_DATABASE_URL": db_url, "COLUMNS": "200"}
    done = subprocess.run([exe, "explain", "L-2", "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    changes = json.loads(done.stdout)["tier_changes"]
    # tier 2 comes from the lift; without it, the report's own tier
    assert changes["set_by"] == [LIFT] and changes["without"] == 3 and changes["tier"] == 2
    more = {e["rule_id"]: e for e in changes["more_urgent"]}
    assert more["provider-escalation"]["tier"] == 1 and "escalated" in more["provider-escalation"]["when"]
    assert all(e["tier"] < 2 for e in changes["more_urgent"]) and LIFT not in more
    text = subprocess.run([exe, "explain", "L-2"], capture_output=True, text=True, env=env, timeout=120).stdout
    assert "on its own indicators tier 3" in text and f"tier 2 is set by {LIFT}; without it, tier 3" in text


def test_assessing_an_unknown_id_assesses_the_rest(subject: Store) -> None:
    res = pipeline.assess(subject, report_ids=["L-2", "NO-SUCH-REPORT"], trigger="mixed ids")
    assert res.assessed == 1 and res.by_tier == {2: 1}
