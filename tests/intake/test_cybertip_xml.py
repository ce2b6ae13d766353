"""The ESP XML reader on the published examples, on our own writer's output, and on hostile input."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tiptriage.intake import IntakeError, Limits, iter_submissions, read
from tiptriage.intake.cybertip_xml_writer import file_details_xml, report_xml, write_submission
from tiptriage.model import (
    Account,
    BatchedReportReason,
    DetailsType,
    Email,
    EstimatedLocation,
    EventName,
    FileAnnotation,
    FileHash,
    FileRelevance,
    HashType,
    IncidentType,
    IndustryClassification,
    IpCaptureEvent,
    NameValue,
    Person,
    Phone,
    Report,
    ReportAnnotation,
    ReportedFile,
    Victim,
    WebPageIncident,
)

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
GOOD_SUMMARY = (
    "<incidentSummary><incidentType>Child Sex Tourism</incidentType>"
    "<incidentDateTime>2026-10-01T08:00:00Z</incidentDateTime></incidentSummary>"
)


def read_one(path: Path, limits: Limits | None = None) -> Report:
    (sub,) = list(iter_submissions([path], limits=limits))
    return read(sub, NOW, limits)


def refusal(path: Path, limits: Limits | None = None) -> IntakeError:
    with pytest.raises(IntakeError) as info:
        read_one(path, limits)
    return info.value


def test_reads_the_documentation_example_report(reference: Path) -> None:
    r = read_one(reference / "cybertipline" / "example_report_doc_section_6_1.xml")
    assert r.incident_type is IncidentType.CHILD_PORNOGRAPHY
    assert r.incident_datetime == datetime(2012, 10, 15, 8, 0, tzinfo=timezone(timedelta(hours=-7)))
    assert set(r.report_annotations) == set(ReportAnnotation)
    (detail,) = r.internet_details
    assert isinstance(detail, WebPageIncident)
    assert detail.urls == ["http://badsite.com/baduri.html"]
    assert r.reporter is not None and r.reporter.reporting_person is not None
    assert [e.address for e in r.reporter.reporting_person.emails] == ["jsmith@example.com"]
    assert r.source is not None and len(r.source.sha256) == 64
    assert r.id == r.source.sha256[:32]  # a bare report.xml takes its id from its SHA-256
    assert r.unmapped == []


def test_reads_a_submission_folder_with_the_documentation_file_details(reference: Path, tmp_path: Path) -> None:
    folder = tmp_path / "CT-1001"
    folder.mkdir()
    (folder / "report.xml").write_bytes((reference / "cybertipline" / "example_report_doc_section_6_1.xml").read_bytes())
    template = (reference / "cybertipline" / "example_fileDetails_doc.xml.template").read_text("utf-8")
    (folder / "file1.xml").write_text(template.replace("${reportId}", "CT-1001").replace("${fileId}", "F-1"), "utf-8")
    r = read_one(folder)
    assert r.id == "CT-1001"
    (f,) = r.files
    assert f.file_id == "F-1"
    assert f.original_file_name == "mypic.jpg"
    assert f.ip_event == IpCaptureEvent(ip_address="63.116.246.17", event_name=EventName.UPLOAD, date_time=datetime(2011, 10, 31, 12, tzinfo=UTC))
    assert f.additional_info == ["File was originally posted with 6 others"]
    assert r.source is not None and [d.name for d in r.source.documents] == ["report.xml", "file1.xml"]


def _folder(tmp_path: Path, rid: str, report: str, *file_details: str) -> Path:
    folder = tmp_path / rid
    folder.mkdir()
    (folder / "report.xml").write_text(report, "utf-8")
    for i, fd in enumerate(file_details):
        (folder / f"f{i}.xml").write_text(fd, "utf-8")
    return folder


def test_every_hash_is_kept_typed(tmp_path: Path) -> None:
    md5, sha1, pdq = "A" * 32, "b" * 40, "0f" * 32
    fd = (
        f"<fileDetails><reportId>R1</reportId><fileId>F1</fileId>"
        f'<originalFileHash hashType="MD5">{md5}</originalFileHash><originalFileHash hashType="SHA1">{sha1}</originalFileHash>'
        f'<details type="HASH"><nameValuePair><name>PDQ</name><value>{pdq}</value></nameValuePair>'
        f"<nameValuePair><name>PhotoDNA</name><value>opaque-value==</value></nameValuePair>"
        f"<nameValuePair><name>TMK</name><value>vendor-specific</value></nameValuePair></details>"
        f'<details type="EXIF"><nameValuePair><name>Model</name><value>placeholder</value></nameValuePair></details>'
        f"</fileDetails>"
    )
    r = read_one(_folder(tmp_path, "R1", f"<report>{GOOD_SUMMARY}</report>", fd))
    (f,) = r.files
    assert {(h.hash_type, h.value) for h in f.hashes} == {
        (HashType.MD5, "a" * 32), (HashType.SHA1, sha1), (HashType.PDQ, pdq),
        (HashType.PHOTODNA, "opaque-value=="), (HashType.OTHER, "vendor-specific"),
    }
    assert next(h for h in f.hashes if h.hash_type is HashType.OTHER).name == "TMK"
    assert f.details == [NameValue(type=DetailsType.EXIF, name="Model", value="placeholder")]


def test_alias_from_another_published_client_is_accepted(tmp_path: Path) -> None:
    p = tmp_path / "r.xml"
    p.write_text(GOOD_SUMMARY.join(["<report>", "</report>"]).replace("Child Sex Tourism", "Online Enticement of Children for Sexual Act"))
    assert read_one(p).incident_type is IncidentType.ONLINE_ENTICEMENT


def test_unknown_elements_are_listed_not_dropped(tmp_path: Path) -> None:
    p = tmp_path / "r.xml"
    p.write_text(f"<report>{GOOD_SUMMARY}<futureElement>x</futureElement></report>")
    assert read_one(p).unmapped == ["/report/futureElement"]


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10))
    + "]><report>&lol9;</report>"
)
QUADRATIC = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "' + "x" * 100_000 + '">]><report>' + "&a;" * 10_000 + "</report>"
EXTERNAL_ENTITY = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><report>&xxe;</report>'
EXTERNAL_DTD = '<?xml version="1.0"?><!DOCTYPE report SYSTEM "http://example.invalid/evil.dtd"><report/>'

HOSTILE: list[tuple[str, bytes, str, str]] = [
    # (name, bytes, expected rule, expected place fragment)
    ("truncated", f"<report>{GOOD_SUMMARY}".encode()[:-20], "well-formed", "line 1"),
    ("billion-laughs", BILLION_LAUGHS.encode(), "no-dtd", "-"),
    ("quadratic-blowup", QUADRATIC.encode(), "no-dtd", "-"),
    ("external-entity", EXTERNAL_ENTITY.encode(), "no-dtd", "-"),
    ("external-dtd", EXTERNAL_DTD.encode(), "no-dtd", "-"),
    ("wrong-root", f"<reportX>{GOOD_SUMMARY}</reportX>".encode(), "root-element", "/reportX"),
    ("not-xml", b"<<<this is not xml>>>", "well-formed", "line 1"),
    ("empty", b"", "not-empty", "-"),
    ("invalid-utf8", f"<report>{GOOD_SUMMARY}<additionalInfo>caf\xe9</additionalInfo></report>".encode("latin-1"), "utf-8", "line 1"),
    ("unknown-enum", f"<report>{GOOD_SUMMARY.replace('Child Sex Tourism', 'Something Else')}</report>".encode(), "enumeration", "/report/incidentSummary/incidentType"),
    ("missing-incident-type", b"<report><incidentSummary><incidentDateTime>2026-10-01T08:00:00Z</incidentDateTime></incidentSummary></report>", "required", "/report/incidentSummary/incidentType"),
    ("missing-incident-time", b"<report><incidentSummary><incidentType>Child Sex Tourism</incidentType></incidentSummary></report>", "required", "/report/incidentSummary/incidentDateTime"),
    ("bad-date", f"<report>{GOOD_SUMMARY.replace('2026-10-01T08:00:00Z', 'yesterday')}</report>".encode(), "datetime", "/report/incidentSummary/incidentDateTime"),
    ("naive-date", f"<report>{GOOD_SUMMARY.replace('2026-10-01T08:00:00Z', '2026-10-01T08:00:00')}</report>".encode(), "timezone", "/report/incidentSummary/incidentDateTime"),
    ("bad-boolean", f"<report>{GOOD_SUMMARY}<personOrUserReported><compromisedAccount>maybe</compromisedAccount></personOrUserReported></report>".encode(), "boolean", "/report/personOrUserReported/compromisedAccount"),
    ("bare-file-details", b"<fileDetails><reportId>R404</reportId><fileId>F1</fileId></fileDetails>", "known-report", "/fileDetails/reportId"),
]


@pytest.mark.parametrize(("name", "data", "rule", "place"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_malformed_and_hostile_documents_are_refused_precisely(tmp_path: Path, name: str, data: bytes, rule: str, place: str) -> None:
    p = tmp_path / f"{name}.xml"
    p.write_bytes(data)
    err = refusal(p)
    assert err.rule == rule, str(err)
    assert place in err.place, str(err)
    assert err.path == str(p)


def test_file_details_for_another_report_refuse_the_submission(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "R1", f"<report>{GOOD_SUMMARY}</report>", "<fileDetails><reportId>R2</reportId><fileId>F1</fileId></fileDetails>")
    err = refusal(folder)
    assert err.rule == "known-report" and "'R2'" in err.reason and err.path.endswith("R1/f0.xml")


def test_oversize_document_is_refused_without_reading_it(tmp_path: Path) -> None:
    p = tmp_path / "big.xml"
    p.write_bytes(b"<report>" + b"<additionalInfo>x</additionalInfo>" * 2000 + b"</report>")
    (sub,) = list(iter_submissions([p], limits=Limits(max_document_bytes=10_000)))
    assert sub.documents == [] and sub.spill == p  # streamed into quarantine later, never held whole
    assert sub.error is not None and sub.error.rule == "size-limit" and "over the limit of 10000" in sub.error.reason


def test_huge_field_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "field.xml"
    p.write_text(f"<report>{GOOD_SUMMARY}<additionalInfo>{'x' * 5000}</additionalInfo></report>")
    err = refusal(p, Limits(max_field_chars=1000))
    assert err.rule == "field-size" and err.place == "additionalInfo"


def test_zip_submission_and_zip_bomb(tmp_path: Path) -> None:
    good = tmp_path / "CT-77.zip"
    with zipfile.ZipFile(good, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("CT-77/report.xml", f"<report>{GOOD_SUMMARY}</report>")
        z.writestr("CT-77/a.xml", "<fileDetails><reportId>CT-77</reportId><fileId>F9</fileId></fileDetails>")
    r = read_one(good)
    assert r.id == "CT-77" and [f.file_id for f in r.files] == ["F9"]
    bomb = tmp_path / "CT-78.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("report.xml", b"<report>" + b" " * 30_000_000 + b"</report>")
    assert bomb.stat().st_size < 100_000
    err = refusal(bomb, Limits(max_document_bytes=1_000_000))
    assert err.rule == "size-limit" and "report.xml" in err.path


# --- property: whatever our writer produces reads back to the same model -------------------------

_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=20).map(str.strip).filter(bool)
_ident = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,15}", fullmatch=True)
_dt = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=5, minutes=30))]))
_hex = lambda n: st.text(alphabet="0123456789abcdef", min_size=n, max_size=n)  # noqa: E731
_hash = st.one_of(
    st.builds(FileHash, hash_type=st.just(HashType.MD5), value=_hex(32)),
    st.builds(FileHash, hash_type=st.just(HashType.SHA1), value=_hex(40)),
    st.builds(FileHash, hash_type=st.just(HashType.SHA256), value=_hex(64)),
    st.builds(FileHash, hash_type=st.just(HashType.PDQ), value=_hex(64)),
    st.builds(FileHash, hash_type=st.just(HashType.PHOTODNA), value=_ident),
)
_ip = st.builds(IpCaptureEvent, ip_address=st.ip_addresses().map(str), port=st.none() | st.integers(0, 65535),
                event_name=st.none() | st.sampled_from(EventName), date_time=st.none() | _dt, possible_proxy=st.none() | st.booleans())
_person = st.builds(Person, first_name=st.none() | _text, last_name=st.none() | _text,
                    emails=st.lists(st.builds(Email, address=_ident.map(lambda s: s + "@example.com"), verified=st.none() | st.booleans()), max_size=2),
                    phones=st.lists(st.builds(Phone, number=st.from_regex(r"\+1202555[0-9]{4}", fullmatch=True), verified=st.none() | st.booleans()), max_size=2),
                    age=st.none() | st.integers(0, 99))
_account = st.builds(Account, person=st.none() | _person, esp_identifier=st.none() | _ident, esp_service=st.none() | _text,
                     screen_name=st.none() | _text, display_names=st.lists(_text, max_size=2), ip_events=st.lists(_ip, max_size=2),
                     prior_report_ids=st.lists(_ident, max_size=2), account_permanently_disabled=st.none() | st.booleans(),
                     estimated_location=st.none() | st.builds(EstimatedLocation, city=st.none() | _text, country_code=st.none() | st.sampled_from(["US", "CA"]), verified=st.none() | st.booleans()))
_file = st.builds(ReportedFile, file_id=_ident, original_file_name=st.none() | _text, uploaded_at=st.none() | _dt,
                  viewed_by_esp=st.none() | st.booleans(), relevance=st.none() | st.sampled_from(FileRelevance),
                  annotations=st.lists(st.sampled_from(FileAnnotation), max_size=3), industry_classification=st.none() | st.sampled_from(IndustryClassification),
                  hashes=st.lists(_hash, max_size=4, unique_by=lambda h: (h.hash_type, h.value)), ip_event=st.none() | _ip,
                  details=st.lists(st.builds(NameValue, type=st.sampled_from([DetailsType.EXIF, None]), name=_text, value=_text), max_size=2),
                  additional_info=st.lists(_text, max_size=2))
_report = st.builds(
    Report, id=_ident, received_at=st.just(NOW), incident_type=st.sampled_from(IncidentType), platform=st.none() | _text,
    escalate_to_high_priority=st.none() | _text, report_annotations=st.lists(st.sampled_from(ReportAnnotation), max_size=3),
    incident_datetime=_dt, incident_datetime_description=st.none() | _text, batched_report_reason=st.none() | st.just(BatchedReportReason.VIRAL_POTENTIAL_MEME),
    internet_details=st.lists(st.builds(WebPageIncident, urls=st.lists(_text, max_size=2), third_party_hosted_content=st.none() | st.booleans()), max_size=2),
    reported_people=st.lists(_account, max_size=1), intended_recipients=st.lists(_account, max_size=2),
    victims=st.lists(st.builds(Victim, person=st.none() | _person, school_name=st.none() | _text), max_size=2),
    additional_info=st.none() | _text, files=st.lists(_file, max_size=3, unique_by=lambda f: f.file_id),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(report=_report)
def test_writer_output_reads_back_to_the_same_model(tmp_path_factory: pytest.TempPathFactory, report: Report) -> None:
    folder = write_submission(report, tmp_path_factory.mktemp("sub"))
    back = read_one(folder)
    back.source = None
    assert back.unmapped == []
    assert back == report


def test_writer_keeps_schema_order() -> None:
    r = Report(id="R1", received_at=NOW, incident_type=IncidentType.CHILD_SEX_TOURISM, incident_datetime=NOW,
               batched_report_reason=BatchedReportReason.VIRAL_POTENTIAL_MEME, additional_info="x",
               files=[ReportedFile(file_id="F1", hashes=[FileHash(hash_type=HashType.MD5, value="0" * 32)])])
    xml = report_xml(r).decode()
    assert xml.index("<batchedReport") < xml.index("<incidentSummary>") < xml.index("<additionalInfo>")
    fd = file_details_xml("R1", r.files[0]).decode()
    assert fd.index("<reportId>") < fd.index("<fileId>") < fd.index("<originalFileHash")
