"""Hash-set import and matching through the store (SQLite and PostgreSQL): what an analyst would see."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tiptriage import pipeline
from tiptriage.hashes.flood import FloodRule, busiest_window
from tiptriage.hashes.matcher import Hit, resolve
from tiptriage.intake.cybertip_xml_writer import write_submission
from tiptriage.model import Account, FileHash, HashType, IncidentType, Report, ReportedFile
from tiptriage.store import Store

T0 = datetime(2026, 10, 1, tzinfo=UTC)
rng = random.Random(99)


def hx(nbytes: int) -> str:
    return rng.getrandbits(nbytes * 8).to_bytes(nbytes, "big").hex()


def flip(pdq: str, bits: int) -> str:
    v = int(pdq, 16)
    for b in rng.sample(range(256), bits):
        v ^= 1 << b
    return f"{v:064x}"


def report(rid: str, files: dict[str, dict[HashType, str]], account: str = "acct1", when: datetime = T0) -> Report:
    return Report(
        id=rid, received_at=when, incident_type=IncidentType.CHILD_PORNOGRAPHY, incident_datetime=when,
        reported_people=[Account(esp_service="ServiceA", esp_identifier=account)],
        files=[ReportedFile(file_id=fid, uploaded_at=when, hashes=[FileHash(hash_type=t, value=v) for t, v in hs.items()]) for fid, hs in files.items()],
    )


def ingest(store: Store, tmp: Path, reports: list[Report]) -> None:
    folder = tmp / f"batch-{rng.randrange(10**9)}"
    for r in reports:
        write_submission(r, folder)
    res = pipeline.ingest(store, [folder])
    assert res.accepted == len(reports), res.errors


def bank_csv(path: Path, rows: list[tuple[str, str, str, str, str, str]]) -> Path:
    path.write_text("hash_type,value,category,series,victim_identified,media_id\n" + "".join(",".join(r) + "\n" for r in rows))
    return path


def test_exact_and_perceptual_matching_with_thresholds(store: Store, tmp_path: Path) -> None:
    known_md5, known_pdq, far_pdq = hx(16), hx(32), hx(32)
    bank_csv(tmp_path / "bank.csv", [("MD5", known_md5.upper(), "1", "S7", "false", "M1"), ("PDQ", known_pdq, "1", "S7", "false", "M1"),
                                      ("PDQ", far_pdq, "2", "", "", "M2")])
    imp = pipeline.import_hashset(store, tmp_path / "bank.csv", "known", max_distance=20)
    assert (imp.added, imp.refused) == (3, 0)
    ingest(store, tmp_path, [
        report("R-EXACT", {"f1": {HashType.MD5: known_md5}}),
        report("R-NEAR", {"f1": {HashType.PDQ: flip(known_pdq, 20)}}),  # exactly at the bank's threshold
        report("R-FAR", {"f1": {HashType.PDQ: flip(known_pdq, 21)}}),  # one bit beyond it
        report("R-NOVEL", {"f1": {HashType.MD5: hx(16)}, "f2": {HashType.PDQ: hx(32)}}),
        report("R-NOHASH", {"f1": {}}),
    ])
    res = pipeline.triage(store)
    assert res.reports_matched == 5
    hs = store.hashsets
    exact = hs.matches_of("R-EXACT")
    assert [(m["bank"], m["match_type"], m["distance"], m["series"], m["victim_identified"]) for m in exact] == [("known", "exact", 0, "S7", False)]
    exact_summary = hs.summary_of("R-EXACT")
    assert exact_summary is not None and exact_summary["unidentified_victim_series"] is True
    near = hs.matches_of("R-NEAR")
    assert [(m["match_type"], m["distance"]) for m in near] == [("perceptual", 20)]
    assert hs.matches_of("R-FAR") == []
    novel = hs.summary_of("R-NOVEL")
    assert novel is not None and (novel["known_files"], novel["novel_files"]) == (0, 2)
    bare = hs.summary_of("R-NOHASH")
    assert bare is not None and (bare["files"], bare["unhashed_files"], bare["novel_files"]) == (1, 1, 0)
    # raising the bank's threshold re-matches the stored reports on the next run
    pipeline.import_hashset(store, tmp_path / "bank.csv", "known", max_distance=31)
    pipeline.triage(store)
    assert [m["distance"] for m in hs.matches_of("R-FAR")] == [21]


def test_negative_bank_suppresses_and_says_so(store: Store, tmp_path: Path) -> None:
    pdq = hx(32)
    bank_csv(tmp_path / "pos.csv", [("PDQ", pdq, "1", "", "", "P1")])
    bank_csv(tmp_path / "neg.csv", [("PDQ", flip(pdq, 3), "", "", "", "N1")])
    pipeline.import_hashset(store, tmp_path / "pos.csv", "known")
    pipeline.import_hashset(store, tmp_path / "neg.csv", "false-positives", negative=True)
    ingest(store, tmp_path, [report("R1", {"f1": {HashType.PDQ: flip(pdq, 2)}})])
    pipeline.triage(store)
    (m,) = store.hashsets.matches_of("R1")
    assert m["bank"] == "known" and m["suppressed_by"] == "false-positives"
    summary = store.hashsets.summary_of("R1")
    assert summary is not None and summary["known_files"] == 0


def test_reimport_updates_in_place_and_tombstones_remove(store: Store, tmp_path: Path) -> None:
    md5, pdq = hx(16), hx(32)
    bank_csv(tmp_path / "b.csv", [("MD5", md5, "2", "", "", "M1"), ("PDQ", pdq, "2", "", "", "M1")])
    pipeline.import_hashset(store, tmp_path / "b.csv", "known")
    ingest(store, tmp_path, [report("R1", {"f1": {HashType.MD5: md5, HashType.PDQ: pdq}})])
    pipeline.triage(store)
    assert {m["category"] for m in store.hashsets.matches_of("R1")} == {"2"}
    again = pipeline.import_hashset(store, bank_csv(tmp_path / "b2.csv", [("MD5", md5, "1", "S1", "true", "M1")]), "known")
    assert (again.added, again.updated) == (0, 1)
    pipeline.triage(store)
    by_type = {m["hash_type"]: m for m in store.hashsets.matches_of("R1")}
    assert by_type["MD5"]["category"] == "1" and by_type["MD5"]["series"] == "S1"
    tomb = tmp_path / "tomb.xml"
    tomb.write_text(
        '<?xml version="1.0" encoding="UTF-8"?><queryResult xmlns="https://hashsharing.ncmec.org/hashsharing/v2">'
        "<images><deletedImage><id>M1</id></deletedImage></images></queryResult>"
    )
    gone = pipeline.import_hashset(store, tomb, "known", fmt="ncmec")
    assert gone.removed == 2
    res = pipeline.triage(store)
    assert res.index_changes == 2
    assert store.hashsets.matches_of("R1") == []
    assert store.hashsets.entry_counts() == {}
    # the withdrawn item comes back: matched again without rebuilding anything
    pipeline.import_hashset(store, tmp_path / "b.csv", "known")
    pipeline.triage(store)
    assert {m["hash_type"] for m in store.hashsets.matches_of("R1")} == {"MD5", "PDQ"}


def test_index_updates_incrementally_and_survives_a_restart(store: Store, tmp_path: Path) -> None:
    base = [("PDQ", hx(32), "1", "", "", f"B{i}") for i in range(300)]
    pipeline.import_hashset(store, bank_csv(tmp_path / "a.csv", base), "known")
    ingest(store, tmp_path, [report("R1", {"f1": {HashType.PDQ: base[5][1]}})])
    first = pipeline.triage(store)
    assert first.index_changes == 300 and (store.index_dir / "manifest.json").exists()
    extra = hx(32)
    pipeline.import_hashset(store, bank_csv(tmp_path / "b.csv", [("PDQ", extra, "1", "", "", "X1")]), "known")
    ingest(store, tmp_path, [report("R2", {"f1": {HashType.PDQ: flip(extra, 4)}})])
    reopened = Store(store.url)  # a new process: the saved index is loaded, only the change is applied
    second = pipeline.triage(reopened)
    assert second.index_changes == 1
    assert [m["distance"] for m in reopened.hashsets.matches_of("R2")] == [4]
    assert [m["distance"] for m in reopened.hashsets.matches_of("R1")] == [0]
    reopened.dispose()


def test_corrupt_entries_are_refused_and_the_rest_goes_in(store: Store, tmp_path: Path) -> None:
    rows = [("MD5", hx(16), "1", "", "", "A"), ("MD5", "xyz", "1", "", "", "B"), ("PDQ", "0" * 64, "1", "", "", "C"),
            ("SHA1", hx(16), "1", "", "", "D"), ("PDQ", hx(32), "1", "", "", "E")]
    res = pipeline.import_hashset(store, bank_csv(tmp_path / "c.csv", rows), "known")
    assert (res.added, res.refused) == (2, 3)
    assert [r["place"] for r in res.refusals] == ["line 3", "line 4", "line 5"]
    assert "all zeros" in res.refusals[1]["reason"]


def test_flood_protection_marks_viral_hashes(store: Store, tmp_path: Path) -> None:
    burst, slow = hx(16), hx(16)
    reports = [report(f"B{i}", {"f": {HashType.MD5: burst}}, account=f"u{i}", when=T0 + timedelta(hours=i)) for i in range(8)]
    reports += [report(f"S{i}", {"f": {HashType.MD5: slow}}, account=f"v{i}", when=T0 + timedelta(days=10 * i)) for i in range(8)]
    ingest(store, tmp_path, reports)
    res = pipeline.triage(store, FloodRule(accounts=5, days=7))
    assert res.viral_hashes == 1
    (row,) = store.hashsets.viral_rows()
    assert row["value"] == burst and row["accounts"] == 8
    summary = store.hashsets.summary_of("B3")
    assert summary is not None and summary["viral_files"] == 1


def test_busiest_window_counts_distinct_accounts() -> None:
    t = [T0 + timedelta(days=d) for d in (0, 1, 2, 9, 10, 10, 11)]
    s = list(zip(t, ["a", "b", "a", "c", "d", "e", "c"], strict=True))
    assert busiest_window(s, 7)[0] == 3  # c, d, e (c twice) within days 9–11
    assert busiest_window(s, 30)[0] == 5


def test_quality_floor_applies_where_quality_is_known() -> None:
    entry = {"deleted": False, "negative": False, "max_distance": 31, "min_quality": 50, "bank": "b", "category": None, "series": None, "victim_identified": None}
    hits = [Hit("R", "f1", 1, HashType.PDQ, 3), Hit("R", "f2", 1, HashType.PDQ, 3)]
    rows = [{"report_id": "R", "file_id": f, "hash_type": "PDQ", "value": "x"} for f in ("f1", "f2")]
    matches, (summary,) = resolve(hits, {1: entry}, rows, {"R": 2}, set(), 1, T0, quality={("R", "f1"): 30, ("R", "f2"): 90})
    assert [m["file_id"] for m in matches] == ["f2"]
    assert (summary["known_files"], summary["novel_files"]) == (1, 1)


def test_a_recreated_database_never_reuses_a_stale_index(tmp_path: Path) -> None:
    db = tmp_path / "re.db"
    old_md5 = hx(16)
    first = Store(f"sqlite:///{db}")
    pipeline.import_hashset(first, bank_csv(tmp_path / "old.csv", [("MD5", old_md5, "1", "", "", "O")]), "known")
    pipeline.triage(first)
    first.dispose()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    second = Store(f"sqlite:///{db}")  # same path, new database: same import numbers, other content
    pipeline.import_hashset(second, bank_csv(tmp_path / "new.csv", [("MD5", hx(16), "1", "", "", "N")]), "known")
    ingest(second, tmp_path, [report("R1", {"f1": {HashType.MD5: old_md5}})])
    pipeline.triage(second)
    assert second.hashsets.matches_of("R1") == []
    second.dispose()
