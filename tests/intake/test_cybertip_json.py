"""The agency JSON reader and writer: the full fixture, round trips, and hostile or malformed documents."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tiptriage.intake import read
from tiptriage.intake.cybertip_json import read_submission, write_json
from tiptriage.intake.errors import IntakeError, Limits
from tiptriage.intake.submission import Document, Submission
from tiptriage.model import (
    Account,
    Address,
    AssociatedAccount,
    AssociatedAccountType,
    BatchedReportReason,
    CellPhoneIncident,
    ChatImIncident,
    DetailsType,
    DeviceId,
    Email,
    EmailIncident,
    EstimatedLocation,
    EventName,
    FileAnnotation,
    FileHash,
    FileRelevance,
    HashType,
    IncidentType,
    IndustryClassification,
    IpCaptureEvent,
    LawEnforcement,
    NameValue,
    NewsgroupIncident,
    NonInternetIncident,
    OnlineGamingIncident,
    Peer2PeerIncident,
    Person,
    Phone,
    Report,
    ReportAnnotation,
    ReportedFile,
    Reporter,
    SourceFormat,
    Victim,
    WebPageIncident,
)

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "json" / "agency_report_full.json"
INGESTED_AT = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
SUMMARY = "/reportedInformation/incidentSummary"


def _sub(data: bytes, name: str = "report.json") -> Submission:
    doc = Document.of(name, data)
    return Submission(name, SourceFormat.CYBERTIP_JSON, [doc], doc.sha256)


def _read(data: bytes, limits: Limits | None = None) -> Report:
    return read_submission(_sub(data), INGESTED_AT, limits or Limits())


def _fixture() -> dict[str, object]:
    loaded = json.loads(FIXTURE.read_bytes())
    assert isinstance(loaded, dict)
    return loaded


def _encode(doc: object) -> bytes:
    return json.dumps(doc).encode("utf-8")


def _bare(report: Report) -> Report:
    """The report without what depends on how it was read."""
    return report.model_copy(update={"source": None, "unmapped": []})


def _tz(hours: int, minutes: int = 0) -> timezone:
    return timezone(timedelta(hours=hours, minutes=minutes))


_LOGIN_IP = IpCaptureEvent(
    ip_address="192.0.2.10",
    port=443,
    event_name=EventName.LOGIN,
    date_time=datetime(2024, 2, 29, 18, 45, tzinfo=_tz(-8)),
    possible_proxy=False,
)
_IMEI = "000000000000001"

EXPECTED = Report(
    id="json-full-0001",
    provider="Example Provider",
    received_at=datetime(2024, 3, 2, 10, 15, tzinfo=UTC),
    incident_type=IncidentType.ONLINE_ENTICEMENT,
    platform="Example Chat",
    escalate_to_high_priority="the reported user proposed meeting the minor in person",
    report_annotations=[ReportAnnotation.SEXTORTION, ReportAnnotation.CSAM_SOLICITATION, ReportAnnotation.MINOR_TO_MINOR_INTERACTION],
    incident_datetime=datetime(2024, 3, 1, 8, 30, tzinfo=_tz(-5)),
    incident_datetime_description="time of the first reported message",
    batched_report_reason=BatchedReportReason.VIRAL_POTENTIAL_MEME,
    internet_details=[
        WebPageIncident(
            urls=["https://example.com/page-1", "https://example.org/page-2"],
            third_party_hosted_content=False,
            additional_info="placeholder web page note",
        ),
        EmailIncident(
            email_addresses=["user-123@example.com"], content="placeholder email content", additional_info="placeholder email note"
        ),
        NewsgroupIncident(
            name="example.group.placeholder",
            email_addresses=["user-124@example.net"],
            content="placeholder newsgroup content",
            additional_info="placeholder newsgroup note",
        ),
        ChatImIncident(
            chat_client="Example Messenger",
            chat_room_name="room-42",
            content="placeholder chat content",
            additional_info="placeholder chat note",
        ),
        OnlineGamingIncident(
            game_name="Example Game",
            console="Example Console",
            content="placeholder gaming content",
            additional_info="placeholder gaming note",
        ),
        CellPhoneIncident(phone_number="+1-555-0100", latitude=38.8977, longitude=-77.0365, additional_info="placeholder cell phone note"),
        NonInternetIncident(
            location_name="Example Location",
            incident_addresses=[
                Address(type="Business", address="1 Example Street", city="Exampleville", zip_code="00000", state="VA", country="US")
            ],
            additional_info="placeholder non-internet note",
        ),
        Peer2PeerIncident(
            client="Example P2P Client",
            ip_events=[
                IpCaptureEvent(
                    ip_address="2001:db8::10",
                    port=6881,
                    event_name=EventName.UPLOAD,
                    date_time=datetime(2024, 2, 28, 23, tzinfo=UTC),
                    possible_proxy=False,
                )
            ],
            file_names="file-a.bin; file-b.bin",
            additional_info="placeholder peer-to-peer note",
        ),
    ],
    reported_people=[
        Account(
            person=Person(
                first_name="Person",
                last_name="Placeholder",
                emails=[Email(address="user-123@example.com", type="Home", verified=True), Email(address="user-123-alt@example.org")],
                phones=[Phone(number="555-0101", type="Mobile", verified=False, country_calling_code="1", extension="12")],
                addresses=[
                    Address(
                        type="Home",
                        address="2 Example Road",
                        city="Exampleton",
                        zip_code="00001",
                        non_usa_state="Example Province",
                        country="CA",
                    )
                ],
                age=35,
                age_assertion_discrepancy=False,
                date_of_birth=date(1989, 1, 1),
            ),
            vehicle_description="placeholder vehicle",
            esp_identifier="user-123",
            esp_service="Example Chat",
            compromised_account=False,
            screen_name="screen-123",
            display_names=["Display 123", "Display 123b"],
            profile_urls=["https://example.com/u/user-123"],
            profile_bio="placeholder profile text",
            ip_events=[
                _LOGIN_IP,
                IpCaptureEvent(
                    ip_address="198.51.100.7",
                    event_name=EventName.REGISTRATION,
                    date_time=datetime(2023, 12, 1, tzinfo=UTC),
                    possible_proxy=True,
                ),
            ],
            device_ids=[
                DeviceId(id_type="IMEI", id_value=_IMEI, event_name=EventName.LOGIN, date_time=datetime(2024, 2, 27, 9, tzinfo=UTC))
            ],
            third_party_user_reported=False,
            prior_report_ids=["100001", "100002"],
            group_identifier="group-7",
            account_temporarily_disabled=True,
            account_permanently_disabled=True,
            estimated_location=EstimatedLocation(
                city="Exampleton", region="ON", country_code="CA", verified=True, timestamp=datetime(2024, 3, 1, 12, tzinfo=_tz(1))
            ),
            all_emails_reported=True,
            associated_accounts=[
                AssociatedAccount(
                    account_type=AssociatedAccountType.LINKED,
                    third_party_user=False,
                    esp_identifier="user-555",
                    esp_service="Example Photos",
                    screen_name="screen-555",
                    display_names=["Display 555"],
                    profile_urls=["https://example.net/u/user-555"],
                    additional_info="placeholder associated account note",
                )
            ],
            additional_info="placeholder reported person note",
        )
    ],
    intended_recipients=[
        Account(
            person=Person(age=15),
            esp_identifier="user-300",
            esp_service="Example Chat",
            screen_name="screen-300",
            ip_events=[IpCaptureEvent(ip_address="203.0.113.5", date_time=datetime(2024, 3, 1, 7, tzinfo=UTC))],
        )
    ],
    victims=[
        Victim(
            person=Person(first_name="Minor", last_name="Placeholder", age=14),
            esp_identifier="user-400",
            screen_name="screen-400",
            school_name="Example School",
        )
    ],
    law_enforcement=LawEnforcement(
        flea_country="US",
        agency_name="Example Police Department",
        case_number="CASE-0001",
        officer_contact=Person(
            first_name="Officer", last_name="Placeholder", emails=[Email(address="officer@example.org")], phones=[Phone(number="555-0199")]
        ),
        reported_to_le=True,
        served_legal_process_domestic=False,
        served_legal_process_international=False,
    ),
    reporter=Reporter(
        reporting_person=Person(first_name="Analyst", last_name="Placeholder", emails=[Email(address="trust@example.com")]),
        contact_person=Person(first_name="Contact", last_name="Placeholder", phones=[Phone(number="555-0150")]),
        company_template="template-1",
        terms_of_service="https://example.com/terms",
        legal_url="https://example.com/legal",
    ),
    files=[
        ReportedFile(
            file_id="file-0001",
            original_file_name="upload-0001.jpg",
            uploaded_at=datetime(2024, 2, 29, 19, tzinfo=_tz(-8)),
            location_of_file="https://example.com/media/0001",
            viewed_by_esp=True,
            exif_viewed_by_esp=False,
            publicly_available=False,
            relevance=FileRelevance.REPORTED,
            annotations=[FileAnnotation.VIRAL, FileAnnotation.POTENTIAL_MEME],
            industry_classification=IndustryClassification.B2,
            hashes=[
                FileHash(hash_type=HashType.MD5, value="d41d8cd98f00b204e9800998ecf8427e"),
                FileHash(hash_type=HashType.SHA1, value="da39a3ee5e6b4b0d3255bfef95601890afd80709"),
                FileHash(hash_type=HashType.SHA256, value="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
                FileHash(hash_type=HashType.PDQ, value="0123456789abcdef" * 4),
                FileHash(hash_type=HashType.PHOTODNA, value="placeholder-photodna-value"),
                FileHash(hash_type=HashType.OTHER, value="placeholder-tlsh-value", name="TLSH"),
            ],
            ip_event=IpCaptureEvent(
                ip_address="192.0.2.10",
                port=443,
                event_name=EventName.UPLOAD,
                date_time=datetime(2024, 2, 29, 19, tzinfo=_tz(-8)),
                possible_proxy=False,
            ),
            device_ids=[DeviceId(id_type="IMEI", id_value=_IMEI)],
            details=[
                NameValue(type=DetailsType.EXIF, name="Make", value="ExampleCam"),
                NameValue(type=DetailsType.HASH, name="internal-id", value="placeholder-internal"),
            ],
            additional_info=["placeholder file note one", "placeholder file note two"],
        ),
        ReportedFile(
            file_id="file-0002",
            relevance=FileRelevance.SUPPLEMENTAL_REPORTED,
            hashes=[FileHash(hash_type=HashType.MD5, value="0cc175b9c0f1b6a831c399e269772661")],
        ),
    ],
    additional_info="placeholder report note one\nplaceholder report note two",
)


# ---------------------------------------------------------------------------------------------- the fixture


def test_fixture_reads_with_every_field() -> None:
    report = _read(FIXTURE.read_bytes())
    assert report.unmapped == []
    assert report.source is None
    # Section by section first, so that a failure points at the part that differs.
    for field in Report.model_fields:
        assert getattr(report, field) == getattr(EXPECTED, field), field
    assert report == EXPECTED


def _covered(model: BaseModel, seen: set[tuple[str, str]]) -> None:
    for name in type(model).model_fields:
        value = getattr(model, name)
        if value is None or value == []:
            continue
        owner = "Account" if isinstance(model, Victim) and name in Account.model_fields else type(model).__name__
        seen.add((owner, name))
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, BaseModel):
                _covered(item, seen)


def test_fixture_exercises_every_model_field() -> None:
    models: list[type[BaseModel]] = [
        Report, Account, Victim, Person, Phone, Email, Address, EstimatedLocation, AssociatedAccount, IpCaptureEvent, DeviceId,
        WebPageIncident, EmailIncident, NewsgroupIncident, ChatImIncident, OnlineGamingIncident, CellPhoneIncident, NonInternetIncident,
        Peer2PeerIncident, LawEnforcement, Reporter, ReportedFile, FileHash, NameValue,
    ]  # fmt: skip
    wanted = {
        ("Account" if m is Victim and f in Account.model_fields else m.__name__, f)
        for m in models
        for f in m.model_fields
        if (m.__name__, f) not in {("Report", "source"), ("Report", "unmapped")}
    }
    seen: set[tuple[str, str]] = set()
    _covered(EXPECTED, seen)
    assert wanted - seen == set()


def test_fixture_round_trips() -> None:
    report = _read(FIXTURE.read_bytes())
    again = _read(write_json(report))
    assert _bare(again) == _bare(report)
    assert again.unmapped == []


def test_read_through_intake_attaches_the_source() -> None:
    data = FIXTURE.read_bytes()
    report = read(_sub(data, "agency_report_full.json"), INGESTED_AT)
    assert report.source is not None
    assert report.source.format is SourceFormat.CYBERTIP_JSON
    assert report.source.sha256 == Document.of("x", data).sha256
    assert _bare(report) == EXPECTED


def test_missing_report_id_and_received_date_take_the_digest_and_ingest_time() -> None:
    doc = _fixture()
    del doc["reportId"], doc["receivedDate"]
    data = _encode(doc)
    report = _read(data)
    assert report.id == _sub(data).digest[:32]
    assert report.received_at == INGESTED_AT


def test_incident_type_alias_is_accepted() -> None:
    doc = _fixture()
    doc["reportedInformation"]["incidentSummary"]["incidentType"] = "Online Enticement of Children for Sexual Act"  # type: ignore[index]
    assert _read(_encode(doc)).incident_type is IncidentType.ONLINE_ENTICEMENT


def test_unknown_keys_are_recorded_as_unmapped() -> None:
    doc = _fixture()
    doc["topLevelExtra"] = 1
    info = doc["reportedInformation"]
    assert isinstance(info, dict)
    info["incidentSummary"]["someNewKey"] = {"nested": True}
    info["uploadedFiles"][1]["new/Thing"] = None
    info["reportedPeople"]["reportedPersons"][0]["sourceInformation"]["extra"] = "x"
    report = _read(_encode(doc))
    assert sorted(report.unmapped) == sorted(
        [
            "/topLevelExtra",
            f"{SUMMARY}/someNewKey",
            "/reportedInformation/uploadedFiles/1/new~1Thing",
            "/reportedInformation/reportedPeople/reportedPersons/0/sourceInformation/extra",
        ]
    )
    assert _bare(report) == EXPECTED


def test_null_values_mean_absent() -> None:
    doc = _fixture()
    doc["espName"] = None
    doc["reportedInformation"]["victims"][0] |= {"firstName": None, "lastName": None, "age": None}  # type: ignore[index]
    report = _read(_encode(doc))
    assert report.provider is None
    assert report.victims[0].person is None
    assert report.unmapped == []


# ---------------------------------------------------------------------------------------------- round trip property

_offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
_times = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=_offsets)
_text = st.text(max_size=10)
_opt_text = st.none() | _text
_word = st.text(min_size=1, max_size=10).filter(lambda s: s.strip() != "")
_flag = st.none() | st.booleans()
_texts = st.lists(_text, max_size=2)


def _lists(s: st.SearchStrategy[object], n: int = 2) -> st.SearchStrategy[list[object]]:
    return st.lists(s, max_size=n)


_addresses = st.builds(
    Address,
    type=_opt_text,
    address=_opt_text,
    city=_opt_text,
    zip_code=_opt_text,
    state=_opt_text,
    non_usa_state=_opt_text,
    country=_opt_text,
)
_persons = st.builds(
    Person,
    first_name=_opt_text,
    last_name=_opt_text,
    phones=_lists(st.builds(Phone, number=_word, type=_opt_text, verified=_flag, country_calling_code=_opt_text, extension=_opt_text)),
    emails=_lists(st.builds(Email, address=_word, type=_opt_text, verified=_flag)),
    addresses=_lists(_addresses),
    age=st.none() | st.integers(0, 130),
    age_assertion_discrepancy=_flag,
    date_of_birth=st.none() | st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 1, 1)),
)
_captures = st.builds(
    IpCaptureEvent,
    ip_address=_word,
    port=st.none() | st.integers(0, 65535),
    event_name=st.none() | st.sampled_from(EventName),
    date_time=st.none() | _times,
    possible_proxy=_flag,
)
_devices = st.builds(
    DeviceId, id_type=_opt_text, id_value=_word, event_name=st.none() | st.sampled_from(EventName), date_time=st.none() | _times
)
_locations = st.builds(
    EstimatedLocation, city=_opt_text, region=_opt_text, country_code=_opt_text, verified=_flag, timestamp=st.none() | _times
)
_associated = st.builds(
    AssociatedAccount,
    account_type=st.none() | st.sampled_from(AssociatedAccountType),
    third_party_user=_flag,
    esp_identifier=_opt_text,
    esp_service=_opt_text,
    screen_name=_opt_text,
    display_names=_texts,
    profile_urls=_texts,
    additional_info=_opt_text,
)
_account_fields: dict[str, st.SearchStrategy[object]] = {
    # An account's person fields are written inline, so a person with none set reads back as no person.
    "person": st.none() | _persons.filter(lambda p: p != Person()),
    "vehicle_description": _opt_text,
    "esp_identifier": _opt_text,
    "esp_service": _opt_text,
    "compromised_account": _flag,
    "screen_name": _opt_text,
    "display_names": _texts,
    "profile_urls": _texts,
    "profile_bio": _opt_text,
    "ip_events": _lists(_captures),
    "device_ids": _lists(_devices),
    "third_party_user_reported": _flag,
    "prior_report_ids": _texts,
    "group_identifier": _opt_text,
    "account_temporarily_disabled": _flag,
    "account_permanently_disabled": _flag,
    "estimated_location": st.none() | _locations,
    "all_emails_reported": _flag,
    "associated_accounts": _lists(_associated, 1),
    "additional_info": _opt_text,
}
_accounts = st.builds(Account, **_account_fields)
_victims = st.builds(Victim, school_name=_opt_text, **_account_fields)
_details = st.one_of(
    st.builds(WebPageIncident, urls=_texts, third_party_hosted_content=_flag, additional_info=_opt_text),
    st.builds(EmailIncident, email_addresses=_texts, content=_opt_text, additional_info=_opt_text),
    st.builds(NewsgroupIncident, name=_opt_text, email_addresses=_texts, content=_opt_text, additional_info=_opt_text),
    st.builds(ChatImIncident, chat_client=_opt_text, chat_room_name=_opt_text, content=_opt_text, additional_info=_opt_text),
    st.builds(OnlineGamingIncident, game_name=_opt_text, console=_opt_text, content=_opt_text, additional_info=_opt_text),
    st.builds(
        CellPhoneIncident,
        phone_number=_opt_text,
        latitude=st.none() | st.floats(-90, 90),
        longitude=st.none() | st.floats(-180, 180),
        additional_info=_opt_text,
    ),
    st.builds(NonInternetIncident, location_name=_opt_text, incident_addresses=_lists(_addresses), additional_info=_opt_text),
    st.builds(Peer2PeerIncident, client=_opt_text, ip_events=_lists(_captures), file_names=_opt_text, additional_info=_opt_text),
)
_HEX_LENGTH = {HashType.MD5: 32, HashType.SHA1: 40, HashType.SHA256: 64, HashType.PDQ: 64}


@st.composite
def _hashes(draw: st.DrawFn) -> FileHash:
    kind = draw(st.sampled_from(HashType))
    if kind in _HEX_LENGTH:
        n = _HEX_LENGTH[kind]
        return FileHash(hash_type=kind, value=draw(st.text("0123456789abcdefABCDEF", min_size=n, max_size=n)))
    # OTHER keeps the provider's name for it, which must not itself be a name we know.
    name = draw(st.none() | st.sampled_from(["TLSH", "ssdeep", "vendor-hash"])) if kind is HashType.OTHER else None
    return FileHash(hash_type=kind, value=draw(_word), name=name)


_files = st.builds(
    ReportedFile,
    file_id=_word,
    original_file_name=_opt_text,
    uploaded_at=st.none() | _times,
    location_of_file=_opt_text,
    viewed_by_esp=_flag,
    exif_viewed_by_esp=_flag,
    publicly_available=_flag,
    relevance=st.none() | st.sampled_from(FileRelevance),
    annotations=st.lists(st.sampled_from(FileAnnotation), max_size=3),
    industry_classification=st.none() | st.sampled_from(IndustryClassification),
    hashes=_lists(_hashes(), 3),
    ip_event=st.none() | _captures,
    device_ids=_lists(_devices, 1),
    details=_lists(st.builds(NameValue, type=st.none() | st.sampled_from(DetailsType), name=_word, value=_text)),
    additional_info=_texts,
)
_reports = st.builds(
    Report,
    id=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,20}", fullmatch=True),
    provider=_opt_text,
    received_at=_times,
    incident_type=st.sampled_from(IncidentType),
    platform=_opt_text,
    escalate_to_high_priority=_opt_text,
    report_annotations=st.lists(st.sampled_from(ReportAnnotation), max_size=3),
    incident_datetime=_times,
    incident_datetime_description=_opt_text,
    batched_report_reason=st.none() | st.sampled_from(BatchedReportReason),
    internet_details=_lists(_details, 3),
    law_enforcement=st.none()
    | st.builds(
        LawEnforcement,
        flea_country=_opt_text,
        agency_name=_opt_text,
        case_number=_opt_text,
        officer_contact=st.none() | _persons,
        reported_to_le=_flag,
        served_legal_process_domestic=_flag,
        served_legal_process_international=_flag,
    ),
    reporter=st.none()
    | st.builds(
        Reporter,
        reporting_person=st.none() | _persons,
        contact_person=st.none() | _persons,
        company_template=_opt_text,
        terms_of_service=_opt_text,
        legal_url=_opt_text,
    ),
    reported_people=_lists(_accounts),
    intended_recipients=_lists(_accounts, 1),
    victims=_lists(_victims, 1),
    additional_info=st.none() | st.text(max_size=30),
    files=st.lists(_files, max_size=2, unique_by=lambda f: f.file_id),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_reports)
def test_write_then_read_gives_the_same_report(report: Report) -> None:
    again = _read(write_json(report))
    assert again.unmapped == []
    assert _bare(again) == _bare(report)


# ---------------------------------------------------------------------------------------------- refusals


def _refused(data: bytes, limits: Limits | None = None) -> IntakeError:
    with pytest.raises(IntakeError) as caught:
        _read(data, limits)
    assert caught.value.path == "report.json"
    return caught.value


def _mutated(change: Callable[[dict[str, object]], object]) -> bytes:
    doc = _fixture()
    change(doc)
    return _encode(doc)


def _summary(doc: dict[str, object]) -> dict[str, object]:
    info = doc["reportedInformation"]
    assert isinstance(info, dict)
    summary = info["incidentSummary"]
    assert isinstance(summary, dict)
    return summary


def _file0(doc: dict[str, object]) -> dict[str, object]:
    return doc["reportedInformation"]["uploadedFiles"][0]  # type: ignore[index,no-any-return]


def _person0(doc: dict[str, object]) -> dict[str, object]:
    return doc["reportedInformation"]["reportedPeople"]["reportedPersons"][0]  # type: ignore[index,no-any-return]


def test_invalid_utf8_names_the_field_holding_it() -> None:
    data = FIXTURE.read_bytes().replace(b'"Example Chat",\n      "escalate', b'"Example \xff\xfe Chat",\n      "escalate')
    err = _refused(data)
    assert (err.rule, err.place) == ("utf-8", f"{SUMMARY}/platform")
    assert "byte offset" in err.reason


def test_invalid_utf8_outside_strings_gives_the_line() -> None:
    err = _refused(b'{\n  "reportId": 1,\n  \xff\n}')
    assert (err.rule, err.place) == ("utf-8", "line 3")


def test_not_json() -> None:
    err = _refused(b"reportId = 1")
    assert (err.rule, err.place) == ("json", "line 1, column 1")


def test_truncated_json() -> None:
    data = FIXTURE.read_bytes()
    cut = data.index(b'"platform"')
    err = _refused(data[:cut])
    assert err.rule == "json"
    lines = data[:cut].count(b"\n") + 1
    assert err.place.startswith(f"line {lines}, column ")


def test_empty_document() -> None:
    assert _refused(b" \n").rule == "not-empty"


def test_top_level_array() -> None:
    err = _refused(b"[" + FIXTURE.read_bytes() + b"]")
    assert (err.rule, err.place) == ("top-level-object", "/")


def test_byte_order_mark_is_accepted() -> None:
    assert _read(b"\xef\xbb\xbf" + FIXTURE.read_bytes()) == EXPECTED


def test_document_over_the_size_limit() -> None:
    data = FIXTURE.read_bytes()
    err = _refused(data, Limits(max_document_bytes=len(data) - 1))
    assert (err.rule, err.place) == ("size-limit", "-")


def test_huge_string_field() -> None:
    limits = Limits(max_field_chars=1000)
    err = _refused(_mutated(lambda d: _summary(d).update(platform="x" * 1001)), limits)
    assert (err.rule, err.place) == ("field-size", f"{SUMMARY}/platform")


def test_huge_string_field_default_limit() -> None:
    err = _refused(_mutated(lambda d: _person0(d).update(profileBio="x" * (Limits().max_field_chars + 1))))
    assert (err.rule, err.place) == ("field-size", "/reportedInformation/reportedPeople/reportedPersons/0/profileBio")


def test_huge_key() -> None:
    err = _refused(_mutated(lambda d: _summary(d).update({"k" * 1001: 1})), Limits(max_field_chars=1000))
    assert (err.rule, err.place) == ("field-size", SUMMARY)


def test_very_deeply_nested_document_is_refused_fast() -> None:
    depth = 100_000
    data = b'{"reportedInformation": ' + b"[" * depth + b"]" * depth + b"}"
    start = time.perf_counter()
    err = _refused(data)
    assert time.perf_counter() - start < 2.0
    assert err.rule == "depth"
    assert err.place == "line 1, column 88"  # the 65th container: the object, then 64 arrays


def test_moderately_deep_document_names_the_place() -> None:
    err = _refused(_mutated(lambda d: _summary(d).update(platform=_nest(100))))
    assert err.rule == "depth"
    assert err.place == f"{SUMMARY}/platform" + "/0" * 61


def _nest(depth: int) -> object:
    value: object = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_duplicate_key() -> None:
    data = FIXTURE.read_bytes().replace(b'"platform": "Example Chat",', b'"platform": "Example Chat", "platform": "Other",')
    err = _refused(data)
    assert (err.rule, err.place) == ("duplicate-key", f"{SUMMARY}/platform")


def test_non_finite_number() -> None:
    data = FIXTURE.read_bytes().replace(b'"latitude": 38.8977', b'"latitude": NaN')
    assert _refused(data).rule == "json"


def test_lone_surrogate_escape() -> None:
    data = FIXTURE.read_bytes().replace(b'"Example Chat",\n      "escalate', b'"Example \\ud800 Chat",\n      "escalate')
    err = _refused(data)
    assert (err.rule, err.place) == ("unicode", f"{SUMMARY}/platform")


@pytest.mark.parametrize(
    ("change", "rule", "place"),
    [
        pytest.param(
            lambda d: _summary(d).update(incidentType="Not A Type"), "enumeration", f"{SUMMARY}/incidentType", id="unknown-incident-type"
        ),
        pytest.param(lambda d: _summary(d).pop("incidentType"), "required", f"{SUMMARY}/incidentType", id="missing-incident-type"),
        pytest.param(lambda d: _summary(d).update(incidentType=None), "required", f"{SUMMARY}/incidentType", id="null-incident-type"),
        pytest.param(lambda d: _summary(d).pop("incidentDateTime"), "required", f"{SUMMARY}/incidentDateTime", id="missing-incident-time"),
        pytest.param(
            lambda d: _summary(d).update(incidentDateTime="2024-03-01T08:30:00"),
            "timezone",
            f"{SUMMARY}/incidentDateTime",
            id="no-time-zone",
        ),
        pytest.param(
            lambda d: _summary(d).update(incidentDateTime="yesterday"), "datetime", f"{SUMMARY}/incidentDateTime", id="unparseable-date"
        ),
        pytest.param(lambda d: d.update(receivedDate="2024-03-02 10:15"), "timezone", "/receivedDate", id="received-no-time-zone"),
        pytest.param(
            lambda d: _summary(d).update(incidentDateTime=1709299800), "datetime", f"{SUMMARY}/incidentDateTime", id="date-as-number"
        ),
        pytest.param(
            lambda d: _summary(d).update(ncmecTags=["sextortion", "madeUp"]),
            "enumeration",
            f"{SUMMARY}/ncmecTags/1",
            id="unknown-ncmec-tag",
        ),
        pytest.param(lambda d: _summary(d).update(ncmecTags="sextortion"), "type", f"{SUMMARY}/ncmecTags", id="tags-not-a-list"),
        pytest.param(
            lambda d: _summary(d).update(batchedReportReason="OTHER"), "enumeration", f"{SUMMARY}/batchedReportReason", id="unknown-batch"
        ),
        pytest.param(
            lambda d: _file0(d).update(fileAnnotations=["viral", "madeUp"]),
            "enumeration",
            "/reportedInformation/uploadedFiles/0/fileAnnotations/1",
            id="unknown-file-annotation",
        ),
        pytest.param(
            lambda d: _file0(d).update(industryClassification="C9"),
            "enumeration",
            "/reportedInformation/uploadedFiles/0/industryClassification",
            id="unknown-industry-classification",
        ),
        pytest.param(
            lambda d: _file0(d)["sourceCapture"].update(eventName="Teleport"),  # type: ignore[attr-defined]
            "enumeration",
            "/reportedInformation/uploadedFiles/0/sourceCapture/eventName",
            id="unknown-event-name",
        ),
        pytest.param(
            lambda d: _person0(d)["sourceInformation"]["sourceCaptures"][1].update(eventName="Teleport"),  # type: ignore[index]
            "enumeration",
            "/reportedInformation/reportedPeople/reportedPersons/0/sourceInformation/sourceCaptures/1/eventName",
            id="unknown-account-event-name",
        ),
        pytest.param(
            lambda d: d["reportedInformation"]["internetDetails"][2].update(type="carrierPigeon"),
            "enumeration",
            "/reportedInformation/internetDetails/2/type",
            id="unknown-internet-detail-type",
        ),
        pytest.param(
            lambda d: _person0(d).update(accountTemporarilyDisabled="maybe"),
            "boolean",
            "/reportedInformation/reportedPeople/reportedPersons/0/accountTemporarilyDisabled",
            id="bad-boolean",
        ),
        pytest.param(
            lambda d: _person0(d).update(age="thirty"),
            "integer",
            "/reportedInformation/reportedPeople/reportedPersons/0/age",
            id="bad-integer",
        ),
        pytest.param(
            lambda d: _person0(d).update(age=200),
            "model",
            "/reportedInformation/reportedPeople/reportedPersons/0/age",
            id="age-out-of-range",
        ),
        pytest.param(
            lambda d: _person0(d).update(dateOfBirth="01/01/1989"),
            "date",
            "/reportedInformation/reportedPeople/reportedPersons/0/dateOfBirth",
            id="bad-date",
        ),
        pytest.param(
            lambda d: _file0(d)["sourceCapture"].update(port=70000),  # type: ignore[attr-defined]
            "model",
            "/reportedInformation/uploadedFiles/0/sourceCapture/port",
            id="port-out-of-range",
        ),
        pytest.param(
            lambda d: _file0(d)["sourceCapture"].pop("ipAddress"),  # type: ignore[attr-defined]
            "required",
            "/reportedInformation/uploadedFiles/0/sourceCapture/ipAddress",
            id="capture-without-ip",
        ),
        pytest.param(
            lambda d: _file0(d)["hashes"][0].update(value="abc"),  # type: ignore[index]
            "hash",
            "/reportedInformation/uploadedFiles/0/hashes/0/value",
            id="short-md5",
        ),
        pytest.param(lambda d: _file0(d).update(fileId=" "), "required", "/reportedInformation/uploadedFiles/0/fileId", id="blank-file-id"),
        pytest.param(
            lambda d: d["reportedInformation"]["uploadedFiles"][1].update(fileId="file-0001"),
            "unique-file-id",
            "/reportedInformation/uploadedFiles/1/fileId",
            id="duplicate-file-id",
        ),
        pytest.param(lambda d: d.update(reportId="bad id/with slash"), "model", "/reportId", id="bad-report-id"),
        pytest.param(lambda d: d.update(reportedInformation="none"), "type", "/reportedInformation", id="info-not-an-object"),
        pytest.param(lambda d: d.pop("reportedInformation"), "required", "/reportedInformation", id="missing-info"),
        pytest.param(
            lambda d: d["reportedInformation"].update(victims=[1]),
            "type",
            "/reportedInformation/victims/0",
            id="victim-not-an-object",
        ),
        pytest.param(
            lambda d: _summary(d).update(escalateToHighPriority="x" * 3001),
            "model",
            f"{SUMMARY}/escalateToHighPriority",
            id="escalation-too-long",
        ),
    ],
)
def test_malformed_field_is_refused_at_its_place(change: Callable[[dict[str, object]], object], rule: str, place: str) -> None:
    err = _refused(_mutated(change))
    assert (err.rule, err.place) == (rule, place), err.reason


def test_boolean_spellings() -> None:
    def change(d: dict[str, object]) -> None:
        _file0(d).update(viewedByEsp="n", exifViewedByEsp="YES", publiclyAvailable="False")

    f = _read(_mutated(change)).files[0]
    assert (f.viewed_by_esp, f.exif_viewed_by_esp, f.publicly_available) == (False, True, False)


def test_numbers_in_strings() -> None:
    def change(d: dict[str, object]) -> None:
        _person0(d).update(age="35")
        d["reportedInformation"]["internetDetails"][5].update(latitude="38.8977", longitude="-77.0365")  # type: ignore[index]

    assert _read(_mutated(change)) == EXPECTED


@pytest.mark.parametrize("age", ["+-5", "1_000", "٣", "1" * 30, 3.5, True, {"a": "b" * 10_000}])
def test_malformed_integers(age: object) -> None:
    err = _refused(_mutated(lambda d: _person0(d).update(age=age)))
    assert (err.rule, err.place) == ("integer", "/reportedInformation/reportedPeople/reportedPersons/0/age")
    assert len(err.reason) < 200


def test_integer_with_too_many_digits() -> None:
    data = FIXTURE.read_bytes().replace(b'"age": 35', b'"age": ' + b"1" * 5000)
    assert _refused(data).rule == "json"
