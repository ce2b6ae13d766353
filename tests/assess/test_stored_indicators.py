"""Re-assessment from stored indicators: exactly the per-report assessment, without reading the reports again; only what
changed is written, and what it replaced is kept with the change and its cause. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tiptriage import pipeline, synth
from tiptriage.assess.indicators import STATIC_INDICATORS
from tiptriage.assess.policy import Indicator, evaluate, load_default_policy
from tiptriage.hashes.flood import FloodRule
from tiptriage.model import Report
from tiptriage.store import Store
from tiptriage.store import indicators as stored_indicators
from tiptriage.store.indicators import IndicatorRepository
from tiptriage.store.schema import assessment_history, assessments, report_indicators

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)

KNOWN_FIRST = """\
name: known-content-first
version: 1
default_tier: 3
indicators:
  known_files: {type: int, kind: risk, description: Files that matched a hash set}
  sextortion: {type: bool, kind: risk, description: Report annotation sextortion}
  victim_band: {type: str, kind: context, description: Age band}
  location_resolved: {type: bool, kind: context, description: The estimated location needs no review}
  informational: {type: bool, kind: mitigating, description: Report annotation informational}
rules:
  - id: known-content
    when: {indicator: known_files, ge: 1}
    tier_floor: 2
    points: 30
    reason: Files matched known imagery
    source: design choice (test)
  - id: sextortion
    when: {indicator: sextortion, is: true}
    tier_floor: 1
    points: 30
    reason: Sextortion
    source: design choice (test)
  - id: young-or-unplaced
    when:
      any:
        - {indicator: victim_band, in: [infant_toddler, prepubescent]}
        - not: {indicator: location_resolved, is: true}
    points: 3
    reason: A young child, or no settled location
    source: design choice (test)
  - id: informational
    when: {indicator: informational, is: true}
    tier_cap: 4
    reason: Informational
    source: design choice (test)
"""


def snapshot(store: Store) -> dict[str, dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(assessments).order_by(assessments.c.report_id)).mappings().all()
    return {r["report_id"]: {k: v for k, v in r.items() if k != "assessed_at"} for r in rows}


@pytest.fixture
def triaged(store: Store, tmp_path: Path) -> Store:
    data = synth.generate(300, seed=23)
    synth.write(data, tmp_path, "xml")
    pipeline.ingest(store, [tmp_path / "submissions"])
    pipeline.import_hashset(store, tmp_path / "hashsets" / "known.csv", "known")
    # agency records for a few reported people, so the records part of the context is exercised too
    emails = [p.emails[0].address for r in store.get_reports(store.report_ids()[:40])
              for p in [r.reported_people[0].person if r.reported_people else None] if p is not None and p.emails][:3]
    csv_path = tmp_path / "records.csv"
    csv_path.write_text("record_id,agency,email,access_to_children,prior_contact_offence\n"
                        + "".join(f"REC-{i},Agency A,{e},{i % 2 == 0},{i % 2 == 1}\n" for i, e in enumerate(emails)))
    assert pipeline.import_records(store, csv_path)[1] == []
    pipeline.triage(store, FloodRule(accounts=5, days=7))
    # one agency runs its own policy (with an any/not rule), so the batch evaluates two policies side by side
    agency = max((a for a in store.work.agency_summary() if a["agency_id"] != "review"), key=lambda a: a["open"])["agency_id"]
    pipeline.set_agency_policy(store, agency, KNOWN_FIRST, "tester")
    return store


def test_stored_indicators_give_exactly_the_per_report_assessment(triaged: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store = triaged
    n = store.count_reports()
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(report_indicators)).scalar_one() == n  # derived once, kept

    ref = pipeline.assess(store, now=NOW, per_report=True, trigger="reference")
    reference = snapshot(store)
    assert ref.assessed == n and {r["policy_agency"] for r in reference.values()} - {None}, "both policies are in use"

    def no_report_json(ids: list[str]) -> list[Report]:
        raise AssertionError(f"re-assessment read the report JSON of {len(ids)} reports")

    monkeypatch.setattr(store, "get_reports", no_report_json)
    again = pipeline.assess(store, now=NOW)  # the stored path: every row it computes equals the stored reference row
    assert (again.assessed, again.changed, again.history, again.facts_derived) == (n, 0, 0, 0)
    assert snapshot(store) == reference

    # the other way round, a day later (days_since_incident moves): the stored path writes, the reference finds it all the same
    later = pipeline.assess(store, now=NOW + timedelta(days=1))
    assert later.changed == n and later.facts_derived == 0
    assert later.history < n, "a day more since the incident is not a new reason: only crossing a recency threshold is"
    stored_rows = snapshot(store)
    monkeypatch.undo()
    check = pipeline.assess(store, now=NOW + timedelta(days=1), per_report=True)
    assert check.changed == 0 and snapshot(store) == stored_rows
    assert stored_rows != reference
    tiers = {r["tier"] for r in stored_rows.values()}
    assert tiers >= {1, 3, 4}, "a realistic mix of tiers, not a degenerate set"


def test_an_assessment_is_stored_compact_and_read_back_whole(triaged: Store, tmp_path: Path) -> None:
    """The row keeps the fired rules without their evidence and only the context indicators; reading it gives every
    indicator and each rule's evidence and values exactly as evaluating the policy on those indicators gives them, and a
    replaced assessment goes to the history whole."""
    store = triaged
    pipeline.assess(store, now=NOW)
    policy, version = load_default_policy()
    rows = snapshot(store)
    mine = [rid for rid, r in rows.items() if r["policy_version"] == version]
    assert len(mine) > 100
    for rid in mine:
        raw = rows[rid]
        assert '"evidence"' not in raw["fired"] and not set(json.loads(raw["indicators"])) & set(STATIC_INDICATORS)
        a = store.assessments.get(rid)
        assert a is not None and set(a["indicators"]) >= set(STATIC_INDICATORS) - {"victim_age_min"}
        again = evaluate(policy, {k: Indicator.model_validate(v) for k, v in a["indicators"].items()})
        assert (again.tier, again.score) == (a["tier"], a["score"]) and a["fired"] == [f.model_dump() for f in again.fired]
    assert sum(len(r["fired"]) + len(r["indicators"]) for r in rows.values()) / len(rows) < 3200, "rows stay compact"

    # a row written before the context indicators were stored as name -> [value, evidence] reads back the same
    rid = mine[0]
    as_read = store.assessments.get(rid)
    old_layout = {n: {"name": n, "value": v, "evidence": ev} for n, (v, ev) in json.loads(rows[rid]["indicators"]).items()}
    with store.engine.begin() as conn:
        conn.execute(assessments.update().where(assessments.c.report_id == rid).values(indicators=json.dumps(old_layout)))
    assert store.assessments.get(rid) == as_read

    whole = {rid: store.assessments.get(rid) for rid in mine}
    stricter = tmp_path / "stricter.yaml"
    stricter.write_text(pipeline.policy_text().replace("name: icac-default", "name: icac-stricter").replace("points: 20", "points: 21"))
    pipeline.assess(store, policy_path=stricter, now=NOW)
    repo = IndicatorRepository(store.engine)
    replaced = {rid: h for rid in mine if (h := repo.history(rid))}
    assert replaced
    for rid, h in replaced.items():
        assert h[0]["fired"] == whole[rid]["fired"], "the history keeps the replaced rules with the evidence they had"
    assert any(f["evidence"] for h in replaced.values() for f in h[0]["fired"])


def test_worker_processes_compute_what_one_process_computes(triaged: Store, tmp_path: Path) -> None:
    """Batches computed in worker processes while this one writes store exactly what one process assessing batch by batch
    stores, the subject lift across batches included: under the default policy with an unidentified victim's series made
    tier 1, many own tiers go to 1 at once, so a batch computed beside another reads own tiers the other is about to change."""
    store = triaged
    n = store.count_reports()
    policy = tmp_path / "known-tier1.yaml"
    unidentified = "points: 10\n    reason: A file matched a series whose victim is not yet identified"
    assert unidentified in pipeline.policy_text()
    policy.write_text(pipeline.policy_text().replace(unidentified, unidentified.replace("points: 10", "tier_floor: 1\n    points: 10")))
    par = pipeline.assess(store, policy_path=policy, now=NOW + timedelta(days=2), batch=40, workers=2)
    assert par.changed >= n and par.assessed == n and par.relifted > 0  # some written again after a neighbour's lift
    parallel = snapshot(store)
    one = pipeline.assess(store, policy_path=policy, now=NOW + timedelta(days=2), batch=40, workers=1)
    assert one.changed == 0, "one process computes a row the worker processes did not store"
    assert snapshot(store) == parallel and one.by_tier == par.by_tier
    assert any(r["tier"] < r["own_tier"] for r in parallel.values()), "the set has lifted reports, so the lift is compared too"


def test_reassessment_writes_only_what_changed_and_keeps_what_it_replaced(triaged: Store, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    store = triaged
    pipeline.assess(store, now=NOW)
    before = snapshot(store)
    rid = next(r for r, a in before.items() if a["tier"] == 3 and a["policy_agency"] is None)
    report = store.get_report(rid)
    assert report is not None and report.reported_people and report.reported_people[0].person is not None
    ident = report.reported_people[0].person
    column, value = ("email", ident.emails[0].address) if ident.emails else ("username", report.reported_people[0].screen_name)
    if value is None:
        pytest.skip("the chosen report names no identifier")
    csv_path = tmp_path / "more-records.csv"
    csv_path.write_text(f"record_id,agency,{column},access_to_children,prior_contact_offence\nREC-NEW,Agency B,{value},true,false\n")
    assert pipeline.import_records(store, csv_path)[1] == []  # re-assesses the reports the new record can move, and only those

    after = snapshot(store)
    changed = {r for r in after if after[r] != before[r]}
    assert rid in changed and len(changed) <= 10, "only the reports of that person are written again"
    assert after[rid]["tier"] == 2 and '"access-to-children"' in after[rid]["fired"]
    history = IndicatorRepository(store.engine).history(rid)
    assert history[0]["trigger"] == "agency records imported from more-records.csv"
    assert history[0]["tier"] == 3 and history[0]["new_tier"] == 2
    assert history[0]["change"]["rules_added"] == ["access-to-children"] and history[0]["change"]["tier"] == [3, 2]
    assert "access-to-children" not in {f["rule_id"] for f in history[0]["fired"]}  # the assessment as it was, reasons and all

    # a new extractor version (or index key) makes every stored row stale: derived again once, and nothing else changes
    pipeline.assess(store, now=NOW)  # the import assessed at the wall-clock time: back to NOW for every report
    monkeypatch.setattr(stored_indicators, "FACTS_VERSION", 999)
    stale = pipeline.assess(store, now=NOW, only_stale=True)
    assert stale.facts_derived == store.count_reports() and stale.changed == 0
    assert pipeline.assess(store, now=NOW, only_stale=True).assessed == 0
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(assessment_history)).scalar_one() >= len(changed)


def _reasons_and_fired(store: Store) -> dict[str, tuple[list[str], list[str]]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(assessments.c.report_id, assessments.c.reasons, assessments.c.fired)).all()
    return {rid: (json.loads(reasons), [f["reason"] for f in json.loads(fired)]) for rid, reasons, fired in rows}


def test_the_stored_reasons_are_those_of_the_fired_rules_in_order(triaged: Store) -> None:
    """What the queue shows of a report (``assessments.reasons``) is its fired rules' reasons, on both paths, under both
    policies, after a subject lift, and in the queues that read it."""
    store = triaged
    for per_report in (True, False):
        pipeline.assess(store, now=NOW + timedelta(days=3 if per_report else 4), per_report=per_report, trigger="test")
        pairs = _reasons_and_fired(store)
        assert len(pairs) == store.count_reports()
        assert all(stored == fired for stored, fired in pairs.values()), [k for k, (s, f) in pairs.items() if s != f][:5]
    assert sum(1 for s, _ in pairs.values() if len(s) > 1) > 10  # most reports have several reasons, in policy order
    with store.engine.connect() as conn:
        lifted = conn.execute(sa.select(assessments.c.report_id).where(assessments.c.own_tier != assessments.c.tier)).scalars().all()
    assert lifted and all(pairs[rid][0] for rid in lifted), "lifted reports keep the lift's reason"
    top = store.assessments.queue(limit=50)
    assert [r["reasons"] for r in top] == [pairs[r["report_id"]][1] for r in top]


def test_the_migration_fills_the_reasons_of_assessments_already_there(triaged: Store, db_url: str) -> None:
    from alembic import command

    from tiptriage.store.db import _alembic_config, migrate

    store = triaged
    before = _reasons_and_fired(store)
    with store.engine.begin() as conn:
        command.downgrade(_alembic_config(conn), "0014")  # as a database written before the column was
        assert "reasons" not in {c["name"] for c in sa.inspect(conn).get_columns("assessments")}
    store.dispose()
    migrate(store.engine)
    after = _reasons_and_fired(store)
    assert after == before and all(s == f for s, f in after.values())
