"""Indicators and assessment through the real pipeline: what an investigator sees in the queue and in explain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tiptriage import pipeline, synth
from tiptriage.assess.indicators import Context, Match, extract
from tiptriage.hashes.flood import FloodRule
from tiptriage.model import (
    Account,
    Email,
    EventName,
    FileAnnotation,
    FileHash,
    HashType,
    IncidentType,
    IndustryClassification,
    IpCaptureEvent,
    Person,
    Report,
    ReportAnnotation,
    ReportedFile,
    Victim,
)
from tiptriage.store import Store

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def test_indicators_carry_values_and_evidence() -> None:
    r = Report(
        id="R1", received_at=T0, incident_type=IncidentType.ONLINE_ENTICEMENT, incident_datetime=T0,
        escalate_to_high_priority="Escalated: see category codes", additional_info="the reported user proposed meeting the minor in person",
        report_annotations=[ReportAnnotation.SEXTORTION],
        victims=[Victim(person=Person(age=9))],
        reported_people=[Account(esp_service="S", esp_identifier="1", person=Person(emails=[Email(address="a@example.com")]), prior_report_ids=["CT-9"])],
        files=[
            ReportedFile(file_id="F1", original_file_name="a.mp4", uploaded_at=T0, industry_classification=IndustryClassification.A1,
                         hashes=[FileHash(hash_type=HashType.MD5, value="1" * 32)]),
            ReportedFile(file_id="F2", ip_event=IpCaptureEvent(ip_address="192.0.2.1", event_name=EventName.UPLOAD),
                         annotations=[FileAnnotation.INFANT], publicly_available=True, hashes=[FileHash(hash_type=HashType.MD5, value="2" * 32)]),
        ],
    )
    ctx = Context(hash_summary={"known_files": 1}, matches=[Match(file_id="F2", bank="b", match_type="exact", distance=0,
                                                                  series="S1", victim_identified=False, suppressed_by=None)])
    ind = extract(r, ctx, T0 + timedelta(days=3))
    assert ind["escalated"].value is True and "escalate_to_high_priority" in ind["escalated"].evidence[0]
    assert ind["planned_meeting"].value is True and "additional_info" in ind["planned_meeting"].evidence[0]
    assert (ind["victim_age_min"].value, ind["victim_band"].value) == (9, "prepubescent")
    assert ind["novel_uploaded_files"].value == 1 and "F1" in ind["novel_uploaded_files"].evidence[0]
    assert ind["offence_production"].value is True and ind["offence_distribution"].value is True
    assert ind["unidentified_victim_series"].value is True
    assert ind["image_equivalents"].value == 1 + 75  # one image, one video
    assert ind["days_since_incident"].value == 3
    assert ind["repeat_subject"].value is True and "CT-9" in ind["repeat_subject"].evidence[0]
    assert ind["industry_a1"].value is True and ind["file_infant"].value is True and ind["sextortion"].value is True


@pytest.fixture
def triaged(store: Store, tmp_path: Path) -> tuple[Store, dict[str, object], Path]:
    data = synth.generate(1500, seed=31)
    synth.write(data, tmp_path, "xml")
    pipeline.ingest(store, [tmp_path / "submissions"])
    pipeline.import_hashset(store, tmp_path / "hashsets" / "known.csv", "known")
    pipeline.triage(store, FloodRule(accounts=5, days=7))
    return store, data.truth, tmp_path


def test_live_victim_classes_come_first_and_every_point_is_explained(triaged: tuple[Store, dict[str, object], Path]) -> None:
    store, truth, _ = triaged
    res = pipeline.evaluate_truth(store, truth)
    classes = res["classes"]
    assert res["assessed"] == 1500
    # imminent danger is at the very top, the classes with a child at risk ahead of known possession and viral re-shares
    for live in ("imminent_danger", "sextortion", "enticement_meeting", "suspected_production"):
        assert classes[live]["median_position"] < classes["known_possession"]["median_position"], live
        assert classes[live]["median_position"] < classes[live]["fifo_median_position"], live
    assert classes["imminent_danger"]["tiers"] == {"1": classes["imminent_danger"]["reports"]}
    assert classes["viral_reshare"]["median_position"] > classes["known_possession"]["median_position"]
    assert res["live_victim_recall_tier12"] >= 0.95
    top = store.assessments.queue(limit=50)
    assert all(r["tier"] == 1 for r in top[:5])
    for row in top:
        a = store.assessments.get(row["report_id"])
        assert a is not None
        assert a["score"] == sum(f["points"] for f in a["fired"])  # every point comes from a named rule
        assert all(f["rule_id"] and f["reason"] and f["source"] for f in a["fired"])


def test_agency_records_raise_a_subject(triaged: tuple[Store, dict[str, object], Path]) -> None:
    store, truth, tmp = triaged
    reports = truth["reports"]
    assert isinstance(reports, dict)
    rid = next(r for r, t in reports.items() if t["class"] == "known_possession")
    before = store.assessments.get(rid)
    report = store.get_report(rid)
    assert before is not None and report is not None and report.reported_people[0].person is not None
    email = report.reported_people[0].person.emails[0].address
    csv_path = tmp / "records.csv"
    csv_path.write_text(f"record_id,agency,email,access_to_children,prior_contact_offence\nREC-1,Agency A,{email.upper()},true,false\n")
    n, refused = pipeline.import_records(store, csv_path)
    assert (n, refused) == (1, [])
    pipeline.assess(store)
    after = store.assessments.get(rid)
    assert after is not None and after["indicators"]["access_to_children"]["value"] is True
    assert after["tier"] < before["tier"]
    assert any("REC-1" in ev for f in after["fired"] for ev in f["evidence"])
