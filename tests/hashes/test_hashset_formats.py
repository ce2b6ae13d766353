"""Hash-set readers: NCMEC fixtures read in place, VICS and CSV documents built here, hostile inputs, streaming."""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tiptriage.hashes.entries import HashEntry, HashSetItem, Refusal, Tombstone
from tiptriage.hashes.formats import FORMATS, HashSetLimits, csvset, ncmec, sniff, vics
from tiptriage.model import HashType

NS = "https://hashsharing.ncmec.org/hashsharing/v2"
FIXTURES = "ncmec_hashsharing_fixtures"
OTHER_DOCUMENTS = {
    "status_xml.xml": "status",
    "feedback_reasons_xml.xml": "availableFeedbackReasons",
    "affirmative_feedback_xml.xml": "feedbackSubmission",
    "negative_feedback_xml.xml": "feedbackSubmission",
    "update_feedback_result_xml.xml": "submissionResult",
}


def split(items: Iterator[HashSetItem]) -> tuple[list[HashEntry], list[Tombstone], list[Refusal]]:
    entries: list[HashEntry] = []
    tombstones: list[Tombstone] = []
    refusals: list[Refusal] = []
    for item in items:
        if isinstance(item, HashEntry):
            entries.append(item)
        elif isinstance(item, Tombstone):
            tombstones.append(item)
        else:
            refusals.append(item)
    return entries, tombstones, refusals


def peak_while(read: Callable[[], int]) -> tuple[int, int]:
    """Run ``read`` under tracemalloc; its result and the peak bytes it allocated."""
    tracemalloc.start()
    try:
        n = read()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return n, peak


# ---- NCMEC hash-sharing XML ------------------------------------------------------------------


def test_ncmec_entries_fixture_read_in_place(reference: Path) -> None:
    entries, tombstones, refusals = split(ncmec.iter_items(reference / FIXTURES / "entries_xml.xml"))
    assert refusals == []
    assert tombstones == [Tombstone("image4"), Tombstone("video4")]
    got = {(e.media_id, e.hash_type): e for e in entries}
    assert len(entries) == len(got) == 5
    assert set(got) == {
        ("image1", HashType.MD5),
        ("image1", HashType.SHA1),
        ("image1", HashType.PHOTODNA),
        ("video1", HashType.MD5),
        ("video1", HashType.SHA1),
    }
    assert got["image1", HashType.MD5].value == "a1" * 16
    assert got["image1", HashType.SHA1].value == "a1" * 20
    assert got["image1", HashType.PHOTODNA].value.startswith("a1a1")  # opaque: kept as written
    assert got["video1", HashType.MD5].value == "b1" * 16
    assert got["image1", HashType.MD5].category == "A1"
    assert got["video1", HashType.MD5].category is None
    assert got["image1", HashType.MD5].updated_at == datetime(2017, 10, 24, 15, 0, tzinfo=UTC)


def test_ncmec_entries_fixture_without_data(reference: Path) -> None:
    assert list(ncmec.iter_items(reference / FIXTURES / "entries_no_data_xml.xml")) == []


@pytest.mark.parametrize("name", sorted(OTHER_DOCUMENTS))
def test_ncmec_other_api_documents_are_one_clear_refusal(reference: Path, name: str) -> None:
    items = list(ncmec.iter_items(reference / FIXTURES / name))
    assert len(items) == 1 and isinstance(items[0], Refusal)
    assert "not a hash-sharing entries document" in items[0].reason
    assert f"<{OTHER_DOCUMENTS[name]}>" in items[0].reason


def _ncmec_doc(body: str, ns: str = f' xmlns="{NS}"', prefix: str = "") -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{prefix}queryResult{ns}>\n{body}\n</{prefix}queryResult>\n'


def test_ncmec_any_namespace_tombstones_and_refused_fingerprints(tmp_path: Path) -> None:
    body = f"""
    <h:images count="4">
      <h:image><h:id>p1</h:id><h:classification>B2</h:classification><h:timestamp>2020-01-01T00:00:00</h:timestamp>
        <h:fingerprints><h:pdq>{"AB" * 32}</h:pdq><h:md5>{"C" * 32}</h:md5></h:fingerprints></h:image>
      <h:image><h:id>p2</h:id><h:fingerprints><h:pdq>{"0" * 64}</h:pdq><h:sha1>{"d" * 39}</h:sha1></h:fingerprints></h:image>
      <h:image><h:id>p3</h:id><h:fingerprints><h:tmk_pdqf>opaque</h:tmk_pdqf></h:fingerprints></h:image>
      <h:deletedImage><h:id>gone1</h:id></h:deletedImage>
      <h:deletedImage><h:timestamp>2020-01-01T00:00:00Z</h:timestamp></h:deletedImage>
    </h:images>
    <h:videos><h:deletedVideo><h:id>gone2</h:id></h:deletedVideo></h:videos>"""
    path = tmp_path / "prefixed.xml"
    path.write_text(_ncmec_doc(body, ns=f' xmlns:h="{NS}"', prefix="h:"), encoding="utf-8")
    entries, tombstones, refusals = split(ncmec.iter_items(path))
    assert [(e.media_id, e.hash_type, e.value) for e in entries] == [
        ("p1", HashType.PDQ, "ab" * 32),
        ("p1", HashType.MD5, "c" * 32),
    ]
    # The timestamp has no zone: the entry is kept, its time left unset.
    assert entries[0].category == "B2" and entries[0].updated_at is None
    assert tombstones == [Tombstone("gone1"), Tombstone("gone2")]
    places = {r.place: r.reason for r in refusals}
    assert "all zeros" in places["/queryResult/images/image[2]/fingerprints/pdq"]
    assert "40 hex digits" in places["/queryResult/images/image[2]/fingerprints/sha1"]
    assert "tmk_pdqf" in places["/queryResult/images/image[3]"]
    assert "without an <id>" in places["/queryResult/images/deletedImage[2]"]
    assert len(refusals) == 4

    plain = tmp_path / "plain.xml"
    plain.write_text(_ncmec_doc(f"<images><image><id>n1</id><fingerprints><md5>{'e' * 32}</md5></fingerprints></image></images>", ns=""))
    assert [e.media_id for e in split(ncmec.iter_items(plain))[0]] == ["n1"]


def test_ncmec_billion_laughs_refused_before_expansion(tmp_path: Path) -> None:
    lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    doc = f'<?xml version="1.0"?><!DOCTYPE queryResult [<!ENTITY l0 "lol">{lol}]><queryResult><images><image><id>&l9;</id></image></images></queryResult>'
    path = tmp_path / "laughs.xml"
    path.write_text(doc)
    started = time.perf_counter()
    items = list(ncmec.iter_items(path))
    assert time.perf_counter() - started < 1.0
    assert len(items) == 1 and isinstance(items[0], Refusal)
    assert "DTD" in items[0].reason


def test_ncmec_external_entity_refused(tmp_path: Path) -> None:
    doc = '<?xml version="1.0"?><!DOCTYPE queryResult [<!ENTITY x SYSTEM "file:///etc/hostname">]><queryResult><images><image><id>&x;</id></image></images></queryResult>'
    path = tmp_path / "xxe.xml"
    path.write_text(doc)
    items = list(ncmec.iter_items(path))
    assert len(items) == 1 and isinstance(items[0], Refusal) and "DTD" in items[0].reason


def test_ncmec_truncated_keeps_entries_before_the_cut(reference: Path, tmp_path: Path) -> None:
    text = (reference / FIXTURES / "entries_xml.xml").read_text(encoding="utf-8")
    cut = tmp_path / "cut.xml"
    cut.write_text(text[: text.index("<videos")], encoding="utf-8")
    entries, tombstones, refusals = split(ncmec.iter_items(cut))
    assert {e.media_id for e in entries} == {"image1"} and tombstones == [Tombstone("image4")]
    assert len(refusals) == 1 and refusals[0].place.startswith("line ") and "not well-formed" in refusals[0].reason


def test_ncmec_invalid_utf8_is_refused(tmp_path: Path) -> None:
    good = f"<image><id>u1</id><fingerprints><md5>{'1' * 32}</md5></fingerprints></image>"
    path = tmp_path / "bad.xml"
    path.write_bytes(_ncmec_doc(f"<images>{good}<image><id>u\xff</id></image></images>").encode("latin-1"))
    entries, _, refusals = split(ncmec.iter_items(path))
    assert [e.media_id for e in entries] == ["u1"]
    assert len(refusals) == 1 and "not well-formed" in refusals[0].reason


def test_ncmec_streams_in_flat_memory(tmp_path: Path) -> None:
    path = tmp_path / "many.xml"
    pad = "p" * 600
    with path.open("w", encoding="utf-8") as fh:
        fh.write(f'<?xml version="1.0" encoding="UTF-8"?><queryResult xmlns="{NS}"><images count="10000">')
        for i in range(10_000):
            fh.write(
                f"<image><timestamp>2017-10-24T15:00:00Z</timestamp><id>m{i}</id><classification>A1</classification>"
                f"<fingerprints><md5>{i:032x}</md5></fingerprints><feedback>{pad}</feedback></image>"
            )
        fh.write("</images></queryResult>")
    size = path.stat().st_size
    n, peak = peak_while(lambda: sum(1 for _ in ncmec.iter_items(path)))
    assert n == 10_000
    assert peak < size / 10, f"peak {peak} bytes while reading a {size}-byte file"


# ---- Project VIC VICS JSON -------------------------------------------------------------------


def _write_json(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_vics_media_set(tmp_path: Path) -> None:
    doc = {
        "@odata.context": "http://example.invalid/DataModels/2.0.xml/Default/$metadata#Media",
        "value": [
            {
                "MediaID": 1,
                "Category": 1,
                "MD5": "A" * 32,
                "SHA1": "B" * 40,
                "PhotoDNA": "UExBQ0VIT0xERVI=",
                "VictimIdentified": "true",
                "OffenderIdentified": "false",
                "IsDistributed": True,
                "Series": "S-1",
                "DateUpdated": "2023-06-07T02:31:49.8300Z",
                "MediaSize": 2835,
                "UnknownKey": {"nested": [1, 2]},
            },
            {"mediaid": "2", "category": "2", "md5": "not-a-hash", "sha1": "c" * 40, "victimidentified": False},
            {"MediaID": 3, "Category": 0, "SHA256": "D" * 64, "Series": {"Name": "S-3"}, "DateUpdated": "2023-06-07T02:31:49"},
        ],
    }
    entries, _, refusals = split(vics.iter_items(_write_json(tmp_path / "set.json", doc)))
    by = {(e.media_id, e.hash_type): e for e in entries}
    assert set(by) == {("1", HashType.MD5), ("1", HashType.SHA1), ("1", HashType.PHOTODNA), ("2", HashType.SHA1), ("3", HashType.SHA256)}
    first = by["1", HashType.MD5]
    assert first.value == "a" * 32 and by["1", HashType.SHA1].value == "b" * 40
    assert by["1", HashType.PHOTODNA].value == "UExBQ0VIT0xERVI="
    assert (first.category, first.series, first.victim_identified, first.offender_identified, first.is_distributed) == (
        "1",
        "S-1",
        True,
        False,
        True,
    )
    assert first.updated_at == datetime(2023, 6, 7, 2, 31, 49, 830000, tzinfo=UTC)
    assert all(by["1", t].category == "1" and by["1", t].series == "S-1" for t in (HashType.SHA1, HashType.PHOTODNA))
    assert by["2", HashType.SHA1].victim_identified is False and by["2", HashType.SHA1].category == "2"
    third = by["3", HashType.SHA256]
    assert (third.value, third.category, third.series, third.updated_at) == ("d" * 64, "0", "S-3", None)
    assert [r.place for r in refusals] == ["/value/1/md5"]


def test_vics_case_shape_and_streamed_big_case(tmp_path: Path) -> None:
    media = [{"MediaID": i, "Category": 2, "MD5": f"{i:032X}", "MediaFiles": [{"FileName": "f", "MD5": f"{i:032x}"}]} for i in range(1, 41)]
    media[4]["MD5"] = "12345"
    media[5]["AlternativeHashes"] = [{"HashName": "SHA1", "HashValue": "E" * 40}]
    doc = {
        "@odata.context": "http://example.invalid/$metadata#Cases",
        "value": [{"CaseID": "c-1", "Media": media, "SourceApplicationName": "x"}],
    }
    path = _write_json(tmp_path / "case.json", doc)
    for limits in (None, HashSetLimits(max_field_chars=600)):  # the small limit makes the reader descend into the case
        entries, _, refusals = split(vics.iter_items(path, limits))
        assert len(entries) == 40  # 39 good MD5s plus one alternative SHA1
        assert {e.media_id for e in entries} == {str(i) for i in range(1, 41) if i != 5} | {"6"}
        assert ("6", HashType.SHA1, "e" * 40) in {(e.media_id, e.hash_type, e.value) for e in entries}
        assert [r.place for r in refusals] == ["/value/0/Media/4/MD5"]


def test_vics_pdq_degenerate_refused(tmp_path: Path) -> None:
    doc = {"value": [{"MediaID": 1, "PDQ": "0" * 64}, {"MediaID": 2, "PDQ": "F" * 64}, {"MediaID": 3, "PDQ": "0f" * 32}]}
    entries, _, refusals = split(vics.iter_items(_write_json(tmp_path / "pdq.json", doc)))
    assert [(e.media_id, e.value) for e in entries] == [("3", "0f" * 32)]
    assert [r.place for r in refusals] == ["/value/0/PDQ", "/value/1/PDQ"]


def test_vics_unreadable_flag_is_unset_and_hash_kept(tmp_path: Path) -> None:
    doc = {"value": [{"MediaID": 1, "MD5": "1" * 32, "VictimIdentified": "perhaps", "IsDistributed": 1}, {"MediaID": 2}]}
    entries, _, refusals = split(vics.iter_items(_write_json(tmp_path / "flag.json", doc)))
    assert [(e.media_id, e.victim_identified, e.is_distributed) for e in entries] == [("1", None, True)]
    assert [r.place for r in refusals] == ["/value/1"]
    assert "no hash" in refusals[0].reason


def test_vics_malformed_record_is_skipped_and_reading_resyncs(tmp_path: Path) -> None:
    filler = ",".join(json.dumps({"MediaID": i, "MD5": f"{i:032x}", "Comments": "c" * 200}) for i in range(2000))
    text = (
        '{"value":[' + filler + ',{"MediaID": 9001, "MD5": nope, "X": [1, {"y": "}]"}]},' + '{"MediaID": 9002, "MD5": "' + "f" * 32 + '"}]}'
    )
    path = tmp_path / "broken.json"
    path.write_text(text, encoding="utf-8")
    assert path.stat().st_size > 2 * 2**18  # the broken record sits beyond the first read chunks
    entries, _, refusals = split(vics.iter_items(path))
    assert len(entries) == 2001 and entries[-1].media_id == "9002"
    assert len(refusals) == 1 and refusals[0].place == "/value/2000"
    offset = text.encode().index(b"nope")
    assert f"byte offset {offset}" in refusals[0].reason


def test_vics_truncated_is_one_final_refusal(tmp_path: Path) -> None:
    text = json.dumps({"value": [{"MediaID": i, "MD5": f"{i:032x}"} for i in range(5)]})
    path = tmp_path / "cut.json"
    path.write_text(text[: text.index('"MediaID": 3') + 5], encoding="utf-8")
    entries, _, refusals = split(vics.iter_items(path))
    assert [e.media_id for e in entries] == ["0", "1", "2"]
    assert len(refusals) == 1 and refusals[0].place.startswith("byte ") and "truncated" in refusals[0].reason


def test_vics_broken_structure_stops_with_byte_offset(tmp_path: Path) -> None:
    text = '{"value":[{"MD5":"' + "a" * 32 + '"},{"MD5": [1, 2}, {"MD5":"' + "b" * 32 + '"}]}'
    path = tmp_path / "unbalanced.json"
    path.write_text(text)
    entries, _, refusals = split(vics.iter_items(path))
    assert [e.value for e in entries] == ["a" * 32]
    assert [r.place for r in refusals] == ["/value/1", f"byte {text.index('}, {')}"]


def test_vics_invalid_utf8_stops_at_its_byte(tmp_path: Path) -> None:
    data = b'\xef\xbb\xbf{"value":[{"MD5":"' + b"a" * 32 + b'"},{"MD5":"' + b"b" * 32 + b'","Series":"\xc3\x28"}]}'
    path = tmp_path / "utf8.json"
    path.write_bytes(data)
    entries, _, refusals = split(vics.iter_items(path))
    assert [e.value for e in entries] == ["a" * 32]
    offset = data.index(b"\xc3\x28")
    assert refusals == [Refusal(f"byte {offset}", f"invalid UTF-8 at byte offset {offset}")]


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "empty"), ("[]", "not a VICS JSON document"), ('{"odata.metadata": "x"}', 'no top-level "value"'), ('{"value": 5}', "'['")],
)
def test_vics_not_a_vics_document(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "other.json"
    path.write_text(text)
    items = list(vics.iter_items(path))
    assert len(items) == 1 and isinstance(items[0], Refusal) and reason in items[0].reason


def test_vics_deep_nesting_does_not_crash(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    tail = ',{"MD5":"' + "a" * 32 + '"}]}'
    # Too deep for the decoder's recursion, shallow enough to step over: that record alone is refused.
    path.write_text('{"value":[' + "[" * 5000 + "]" * 5000 + tail)
    entries, _, refusals = split(vics.iter_items(path))
    assert [e.value for e in entries] == ["a" * 32]
    assert len(refusals) == 1 and refusals[0].place == "/value/0" and "nested too deeply" in refusals[0].reason
    path.write_text('{"value":[' + "[" * 200_000 + "]" * 200_000 + tail)
    entries, _, refusals = split(vics.iter_items(path))
    assert entries == [] and [r.place for r in refusals] == ["/value/0", "byte 10010"]
    assert "nested more than" in refusals[1].reason


def test_vics_non_ascii_across_chunk_boundaries(tmp_path: Path) -> None:
    series = "Sé-日本-✓"
    doc = {"value": [{"MediaID": i, "MD5": f"{i:032x}", "Series": series} for i in range(20_000)]}
    path = tmp_path / "utf8.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(doc, ensure_ascii=False).encode("utf-8"))
    entries, _, refusals = split(vics.iter_items(path))
    assert refusals == [] and len(entries) == 20_000 and {e.series for e in entries} == {series}


def test_vics_streams_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    pad = "x" * 650
    with path.open("w", encoding="utf-8") as fh:
        fh.write('{"@odata.context":"http://example.invalid/$metadata#Media","value":[')
        for i in range(25_000):
            fh.write(
                ("," if i else "")
                + f'{{"MediaID":{i},"Category":{i % 3},"MD5":"{i:032x}","Comments":"{pad}","MediaFiles":[{{"FilePath":"{pad}"}}]}}'
            )
        fh.write("]}")
    size = path.stat().st_size
    assert size > 30_000_000
    n, peak = peak_while(lambda: sum(1 for _ in vics.iter_items(path)))
    assert n == 25_000
    assert peak < size / 10, f"peak {peak} bytes while reading a {size}-byte file"


# ---- CSV -------------------------------------------------------------------------------------


def test_csv_good_and_bad_rows(tmp_path: Path) -> None:
    rows = [
        "Hash_Type,Value,Category,Series,victim_identified,media_id,offender_identified,updated_at,notes",
        f"md5,{'A' * 32},1,S-1,true,m1,false,2024-05-01T12:00:00Z,x",
        "",
        f'SHA-1,{"b" * 40},2,"S,2",,m2,,,',
        "sha3,abcd,1,,,,,,",
        f"sha256,{'c' * 63},1,,,,,,",
        "sha1,,1,,,,,,",
        f"pdq,{'f' * 64},1,,,,,,",
        f"md5,{'d' * 32},1,,maybe,,,,",
        f"md5,{'e' * 32},1,,,,,2024-05-01T12:00:00,",
        'PhotoDNA,UExBQ0VIT0xERVI=,CAT1,"multi\nline",FALSE,m3,,,',
        f"md5,{'1' * 32},1,,,,,,,,surplus",
    ]
    path = tmp_path / "set.csv"
    path.write_text("\r\n".join(rows) + "\r\n", encoding="utf-8")
    entries, _, refusals = split(csvset.iter_items(path))
    assert [(e.hash_type, e.value, e.media_id) for e in entries] == [
        (HashType.MD5, "a" * 32, "m1"),
        (HashType.SHA1, "b" * 40, "m2"),
        (HashType.PHOTODNA, "UExBQ0VIT0xERVI=", "m3"),
    ]
    first = entries[0]
    assert (first.category, first.series, first.victim_identified, first.offender_identified) == ("1", "S-1", True, False)
    assert first.updated_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert entries[1].series == "S,2" and entries[1].victim_identified is None
    assert entries[2].series == "multi\nline" and entries[2].victim_identified is False
    reasons = {r.place: r.reason for r in refusals}
    assert list(reasons) == ["line 5", "line 6", "line 7", "line 8", "line 9", "line 10", "line 13"]
    assert "unknown hash_type 'sha3'" in reasons["line 5"]
    assert "64 hex digits" in reasons["line 6"]
    assert reasons["line 7"] == "missing value"
    assert "all zeros or all ones" in reasons["line 8"]
    assert "victim_identified" in reasons["line 9"]
    assert "no time zone" in reasons["line 10"]
    assert "header names 9 columns" in reasons["line 13"]


def test_csv_header_without_required_columns_is_one_refusal(tmp_path: Path) -> None:
    path = tmp_path / "nohead.csv"
    path.write_text(f"type,hash\nmd5,{'a' * 32}\n")
    items = list(csvset.iter_items(path))
    assert len(items) == 1 and isinstance(items[0], Refusal) and items[0].place == "line 1"
    assert "hash_type" in items[0].reason and "value" in items[0].reason


def test_csv_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    items = list(csvset.iter_items(path))
    assert len(items) == 1 and isinstance(items[0], Refusal) and "empty" in items[0].reason


def test_csv_invalid_utf8_costs_only_its_row(tmp_path: Path) -> None:
    data = b"hash_type,value,series\n" + b"md5," + b"a" * 32 + b",S\xff\n" + b"md5," + b"b" * 32 + b",S\n"
    path = tmp_path / "utf8.csv"
    path.write_bytes(data)
    entries, _, refusals = split(csvset.iter_items(path))
    assert [e.value for e in entries] == ["b" * 32]
    offset = data.index(b"\xff")
    assert refusals == [Refusal("line 2", f"invalid UTF-8 at byte offset {offset}; the row is skipped")]


def test_csv_overlong_line_stops(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text(f"hash_type,value\nmd5,{'a' * 32}\nmd5,{'b' * 5000}\nmd5,{'c' * 32}\n")
    entries, _, refusals = split(csvset.iter_items(path, HashSetLimits(max_field_chars=100)))
    assert [e.value for e in entries] == ["a" * 32]
    assert len(refusals) == 1 and refusals[0].place == "line 3" and "reading stops" in refusals[0].reason


# ---- the package -----------------------------------------------------------------------------


def test_sniff_and_registry(tmp_path: Path) -> None:
    cases = {"a.json": '  {"value": []}', "b.dat": "\ufeff<queryResult/>", "c.txt": "hash_type,value\n", "d.xml": "", "e.json": ""}
    for name, text in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert [sniff(tmp_path / n) for n in cases] == ["vics", "ncmec", "csv", "ncmec", "vics"]
    assert dict(FORMATS) == {"vics": vics.iter_items, "ncmec": ncmec.iter_items, "csv": csvset.iter_items}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_max_file_bytes_refuses_outright(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "f"
    path.write_text("x" * 100)
    items = list(FORMATS[fmt](path, HashSetLimits(max_file_bytes=10)))
    assert items == [Refusal("-", "file is 100 bytes, over the limit of 10")]
