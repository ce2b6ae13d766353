"""Ingest into a real store (SQLite and PostgreSQL): idempotency, quarantine with original bytes, retry."""

from __future__ import annotations

from pathlib import Path

from tiptriage import pipeline, synth
from tiptriage.intake import Limits
from tiptriage.store import Store

GOOD = (
    b'<?xml version="1.0" encoding="UTF-8"?><report><incidentSummary><incidentType>Child Sex Tourism</incidentType>'
    b"<incidentDateTime>2026-10-01T08:00:00Z</incidentDateTime></incidentSummary><additionalInfo>neutral placeholder</additionalInfo></report>"
)


def test_synthetic_batch_is_stored_once_and_reads_back(store: Store, tmp_path: Path) -> None:
    data = synth.generate(120, seed=3)
    subs = synth.write(data, tmp_path, "xml")
    first = pipeline.ingest(store, [subs], batch_size=50)
    assert (first.accepted, first.duplicates, first.quarantined) == (120, 0, 0)
    again = pipeline.ingest(store, [subs], batch_size=50)
    assert (again.accepted, again.duplicates, again.quarantined) == (0, 120, 0)
    assert store.count_reports() == 120
    for original in data.reports[:20]:
        stored = store.get_report(original.id)
        assert stored is not None and stored.source is not None
        stored.source = None
        expected = original.model_copy(update={"received_at": stored.received_at, "provider": None})  # ESP XML names no provider
        assert stored == expected
    counts = store.incident_type_counts()
    assert sum(counts.values()) == 120


def test_bad_submissions_go_to_quarantine_with_their_bytes_and_the_rest_goes_on(store: Store, tmp_path: Path) -> None:
    (tmp_path / "a-good.xml").write_bytes(GOOD)
    bad = GOOD.replace(b"Child Sex Tourism", b"Not A Type")
    (tmp_path / "b-bad.xml").write_bytes(bad)
    (tmp_path / "c-empty.xml").write_bytes(b"")
    (tmp_path / "d-good.xml").write_bytes(GOOD.replace(b"08:00:00Z", b"09:00:00Z"))
    res = pipeline.ingest(store, [tmp_path])
    assert (res.accepted, res.quarantined) == (2, 2)
    assert {Path(e["path"]).name for e in res.errors} == {"b-bad.xml", "c-empty.xml"}
    entries = store.quarantine_entries()
    by_name = {Path(e.path).name: e for e in entries}
    assert by_name["b-bad.xml"].rule == "enumeration"
    assert by_name["b-bad.xml"].place == "/report/incidentSummary/incidentType"
    assert store.original_documents(by_name["b-bad.xml"].digest) == [("b-bad.xml", bad)]
    # the same bad bytes again: still reported, not stored twice
    res2 = pipeline.ingest(store, [tmp_path / "b-bad.xml"])
    assert res2.quarantined == 1 and len(store.quarantine_entries()) == 2


def test_retry_after_a_limit_is_raised_stores_the_report(store: Store, tmp_path: Path) -> None:
    big = GOOD.replace(b"neutral placeholder", b"x" * 5000)
    p = tmp_path / "big.xml"
    p.write_bytes(big)
    res = pipeline.ingest(store, [p], limits=Limits(max_document_bytes=1000))
    assert res.quarantined == 1
    (entry,) = store.quarantine_entries()
    assert entry.rule == "size-limit"
    assert store.original_documents(entry.digest) == [("big.xml", big)]  # streamed in, byte for byte
    still = pipeline.retry_quarantine(store, limits=Limits(max_document_bytes=1000))
    assert still.resolved == [] and still.failing[0][1].rule == "size-limit"
    done = pipeline.retry_quarantine(store, limits=Limits(max_document_bytes=100_000))
    assert len(done.resolved) == 1
    report = store.get_report(done.resolved[0][1])
    assert report is not None and report.additional_info == "x" * 5000
    assert store.quarantine_entries() == [] and store.quarantine_entries(None)[0].status == "resolved"


def test_same_id_with_different_bytes_is_quarantined_not_overwritten(store: Store, tmp_path: Path) -> None:
    for n, body in (("one", GOOD), ("two", GOOD.replace(b"08:00:00Z", b"10:00:00Z"))):
        folder = tmp_path / n / "CT-5"
        folder.mkdir(parents=True)
        (folder / "report.xml").write_bytes(body)
    first = pipeline.ingest(store, [tmp_path / "one"])
    second = pipeline.ingest(store, [tmp_path / "two"])
    assert first.accepted == 1 and second.quarantined == 1
    assert "already stored from different bytes" in second.errors[0]["reason"]
    stored = store.get_report("CT-5")
    assert stored is not None and stored.incident_datetime.hour == 8


def test_csv_rows_each_stand_alone(store: Store, tmp_path: Path) -> None:
    data = synth.generate(30, seed=5)
    subs = synth.write(data, tmp_path, "csv")
    csv_path = subs / "reports.csv"
    lines = csv_path.read_bytes().splitlines(keepends=True)
    target = next(i for i in range(2, len(lines)) if b"Child Pornography" in lines[i])
    lines[target] = lines[target].replace(b"Child Pornography", b"Kinder")  # now an unknown incident type
    csv_path.write_bytes(b"".join(lines))
    res = pipeline.ingest(store, [csv_path])
    assert (res.accepted, res.quarantined) == (29, 1)
    (entry,) = store.quarantine_entries()
    assert entry.path.endswith(f"reports.csv:{target + 1}") and entry.rule == "enumeration"
    ((_, original),) = store.original_documents(entry.digest)
    assert original == lines[0] + lines[target]
    stored = store.get_report(data.reports[0].id)
    assert stored is not None and stored.files[0].hashes == data.reports[0].files[0].hashes
