"""Lead packages: deadline arithmetic, the file-access gate, JSON/HTML/PDF rendering and the CASE/UCO export.

Every value is a neutral placeholder: example.com e-mail addresses, documentation-range IP addresses
(RFC 5737), NANP 555-01XX phone numbers, random hex hashes with nothing behind them.
"""

from __future__ import annotations

import json
import re
import warnings
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tiptriage.assess.policy import Assessment, FiredRule
from tiptriage.model.enums import FileAnnotation, HashType, IncidentType, IndustryClassification
from tiptriage.model.report import Account, Email, FileHash, IpCaptureEvent, Person, Phone, Report, ReportedFile
from tiptriage.packages.case_uco import case_id, to_case_jsonld, write_case_jsonld
from tiptriage.packages.deadlines import (
    INFORMS,
    NOT_VIEWED_TEXT,
    PROVIDER_VIEWED_TEXT,
    PreservationRequest,
    add_years,
    deadline_warning,
    file_access_status,
    file_access_statuses,
    gate_mode_for,
    load_legal,
    preservation_request_expiry,
    provider_preservation_expiry,
    renewed_request_expiry,
    report_deadlines,
)
from tiptriage.packages.model import (
    EstimatedPlace,
    HashMatch,
    Identifier,
    IpEventPlace,
    LegalChecklist,
    LinkedReport,
    PackageData,
    Routing,
    Subject,
    SubjectAccount,
)
from tiptriage.packages.render import DRAFT_BANNER, preservation_letters, to_html, to_json, to_pdf

RECEIVED = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
NOW = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script>'
SHA256 = "5f0c3a" + "1" * 58
MD5 = "0a1b2c3d" * 4
PDQ = "f" * 64


# --------------------------------------------------------------------------------------------- builders


def _report(*, platform: str = "ExampleChat", files: list[ReportedFile] | None = None) -> Report:
    return Report(
        id="TT-2026-0001",
        provider="Example Provider LLC",
        received_at=RECEIVED,
        incident_type=IncidentType.CHILD_PORNOGRAPHY,
        platform=platform,
        incident_datetime=RECEIVED - timedelta(days=3),
        reported_people=[
            Account(
                esp_identifier="u-1001",
                screen_name="placeholder_user",
                person=Person(emails=[Email(address="user1@example.com")], phones=[Phone(number="+1 202-555-0143")]),
                ip_events=[IpCaptureEvent(ip_address="192.0.2.10", date_time=RECEIVED - timedelta(days=5))],
            ),
        ],
        files=files
        if files is not None
        else [
            ReportedFile(
                file_id="f-1",
                viewed_by_esp=True,
                industry_classification=IndustryClassification.B2,
                hashes=[FileHash(hash_type=HashType.SHA256, value=SHA256), FileHash(hash_type=HashType.PDQ, value=PDQ)],
            ),
            ReportedFile(
                file_id="f-2", viewed_by_esp=False, annotations=[FileAnnotation.VIRAL], hashes=[FileHash(hash_type=HashType.MD5, value=MD5)]
            ),
            ReportedFile(file_id="f-3", hashes=[FileHash(hash_type=HashType.PHOTODNA, value="opaque-placeholder")]),
        ],
    )


def _assessment(reason: str = "The provider classified a file in a high category") -> Assessment:
    return Assessment(
        tier=2,
        score=55,
        policy_name="icac-default",
        policy_version="sha256:placeholder",
        fired=[
            FiredRule(
                rule_id="industry-b2",
                points=35,
                tier_floor=2,
                tier_cap=None,
                reason=reason,
                source="placeholder source S1",
                evidence=["files[0].industry_classification = B2"],
            )
        ],
    )


def _package(
    report: Report | None = None, *, reason: str | None = None, gate: str = "warn", requests: list[PreservationRequest] | None = None
) -> PackageData:
    report = report or _report()
    requests = requests or []
    mode = gate_mode_for("us-icac-test", {"us-icac-test": gate})  # type: ignore[dict-item]
    return PackageData(
        report=report,
        assessment=_assessment(reason) if reason else _assessment(),
        subject=Subject(
            id="S-42",
            accounts=[
                SubjectAccount(
                    key="acct:example-provider:u-1001",
                    esp_identifier="u-1001",
                    screen_name="placeholder_user",
                    emails=["user1@example.com"],
                    phones=["+1 202-555-0143"],
                ),
                SubjectAccount(key="acct:other-mail:user2", provider="Other Mail Co", emails=["user2@example.net"], esp_identifier="m-77"),
            ],
            linked_reports=[
                LinkedReport(
                    report_id="TT-2025-0990",
                    tier=3,
                    received_at=RECEIVED - timedelta(days=200),
                    evidence=["same e-mail address user1@example.com"],
                )
            ],
        ),
        identifiers=[
            Identifier(kind="email", value="user1@example.com", normalized="user1@example.com", sources=["reported_people[0]"]),
            Identifier(kind="phone", value="+1 202-555-0143", normalized="+12025550143", sources=["reported_people[0]"]),
        ],
        ip_events=[
            IpEventPlace(
                ip_address="192.0.2.10",
                event_name="Login",
                date_time=RECEIVED - timedelta(days=5),
                account="acct:example-provider:u-1001",
                place=EstimatedPlace(
                    country_code="US",
                    region="VA",
                    confidence=0.7,
                    region_confidence=0.6,
                    needs_review=False,
                    evidence=["provider: US-VA (weight 1.00)"],
                ),
            ),
            IpEventPlace(ip_address="2001:db8::5", event_name="Upload"),
        ],
        hash_matches=[
            HashMatch(
                file_id="f-1",
                hash_type="SHA256",
                bank="bank-a",
                match_type="exact",
                category="C1",
                series="series-placeholder",
                victim_identified=False,
            ),
            HashMatch(file_id="f-1", hash_type="PDQ", bank="bank-b", match_type="perceptual", distance=12, category="C1"),
        ],
        routing=Routing(agency_id="us-icac-test", agency_name="Test ICAC Task Force", reason="estimated location US-VA", confidence=0.6),
        deadlines=report_deadlines(report, requests, NOW),
        file_access=file_access_statuses(report, mode),
        preservation_requests=requests,
        checklist=LegalChecklist(preservation_request_sent=bool(requests)),
        generated_at=NOW,
        generated_by="tiptriage 0.1.0 (test)",
    )


# ------------------------------------------------------------------------------------------- deadlines


def test_provider_preservation_is_one_year_from_received() -> None:
    assert provider_preservation_expiry(RECEIVED) == datetime(2027, 3, 2, 14, 30, tzinfo=UTC)
    # a year that spans 29 February 2028 is 366 days long
    assert provider_preservation_expiry(datetime(2027, 6, 1, tzinfo=UTC)) - datetime(2027, 6, 1, tzinfo=UTC) == timedelta(days=366)
    # the offset of the received time is kept
    east = timezone(timedelta(hours=5, minutes=30))
    assert provider_preservation_expiry(datetime(2026, 1, 31, 23, 0, tzinfo=east)) == datetime(2027, 1, 31, 23, 0, tzinfo=east)


def test_leap_day_start_ends_on_28_february() -> None:
    assert add_years(datetime(2028, 2, 29, 8, 0, tzinfo=UTC), 1) == datetime(2029, 2, 28, 8, 0, tzinfo=UTC)
    assert add_years(datetime(2028, 2, 29, tzinfo=UTC), 4) == datetime(2032, 2, 29, tzinfo=UTC)
    assert provider_preservation_expiry(datetime(2028, 2, 29, tzinfo=UTC)) == datetime(2029, 2, 28, tzinfo=UTC)
    # 90 days across 29 February count the leap day as a day
    assert preservation_request_expiry(datetime(2028, 2, 1, tzinfo=UTC)) == datetime(2028, 5, 1, tzinfo=UTC)


def test_2703f_is_90_days_renewable_once_for_90_more() -> None:
    sent = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    first = preservation_request_expiry(sent)
    assert first == sent + timedelta(days=90) == datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
    assert renewed_request_expiry(sent, datetime(2026, 4, 1, tzinfo=UTC)) == first + timedelta(days=90)
    with pytest.raises(ValueError, match="lapsed"):
        renewed_request_expiry(sent, first)
    with pytest.raises(ValueError, match="precede"):
        renewed_request_expiry(sent, sent - timedelta(days=1))
    with pytest.raises(ValueError, match="time zone"):
        preservation_request_expiry(datetime(2026, 1, 10))


def test_warnings_at_30_and_7_days() -> None:
    end = datetime(2026, 6, 30, tzinfo=UTC)
    assert deadline_warning(end, end - timedelta(days=31)).level == "ok"
    w30 = deadline_warning(end, end - timedelta(days=30))
    assert (w30.level, w30.days_left) == ("warning", 30)
    assert deadline_warning(end, end - timedelta(days=8)).level == "warning"
    w7 = deadline_warning(end, end - timedelta(days=7))
    assert (w7.level, w7.days_left) == ("critical", 7)
    assert deadline_warning(end, end - timedelta(hours=1)).days_left == 0
    gone = deadline_warning(end, end + timedelta(days=2, hours=3))
    assert (gone.level, gone.days_left) == ("expired", -2)
    assert deadline_warning(end, end).level == "expired"
    # thresholds are a design choice the caller may change
    assert deadline_warning(end, end - timedelta(days=40), warning_days=45).level == "warning"
    for w in (w30, w7, gone):
        assert INFORMS in w.text


def test_report_deadlines_with_requests() -> None:
    report = _report()
    reqs = [
        PreservationRequest(
            provider="Other Mail Co", sent_at=datetime(2026, 3, 3, tzinfo=UTC), renewed_at=datetime(2026, 5, 20, tzinfo=UTC)
        ),
        PreservationRequest(provider="Example Provider LLC", sent_at=datetime(2026, 1, 5, tzinfo=UTC), reference="EP-1"),
    ]
    dls = report_deadlines(report, reqs, NOW)
    assert [d.kind for d in dls] == ["provider_preservation", "preservation_request", "preservation_request"]
    pp, first, second = dls
    assert pp.expires_at == datetime(2027, 3, 2, 14, 30, tzinfo=UTC) and pp.warning.level == "ok"
    assert "2258A(h)" in pp.citation and "118-59" in pp.citation and pp.sources
    assert first.provider == "Example Provider LLC" and first.expires_at == datetime(2026, 4, 5, tzinfo=UTC)
    assert first.warning.level == "warning" and first.renewable and not first.renewed  # 15 days left on 20 March
    assert second.renewed and not second.renewable
    assert second.expires_at == datetime(2026, 3, 3, tzinfo=UTC) + timedelta(days=180)
    assert all(INFORMS in d.note for d in dls)


def test_legal_facts_carry_sources() -> None:
    legal = load_legal()
    for fact in (legal.provider_preservation, legal.preservation_request_2703f):
        assert fact.sources and all(s.url and s.url.startswith("https://") for s in fact.sources)
    assert legal.warnings.kind == "design"
    assert legal.file_access_gate.default_mode == "warn"
    assert {a.id for a in legal.file_access_gate.authorities} >= {"wilson-9th-2021", "ackerman-10th-2016"}
    wilson = legal.file_access_gate.authority("wilson-9th-2021")
    assert "13 F.4th 961" in wilson.citation and wilson.url


# ------------------------------------------------------------------------------------ file-access gate


def test_gate_mode_per_agency() -> None:
    assert gate_mode_for(None) == "warn"
    assert gate_mode_for("us-icac-va") == "warn"  # no setting in legal.json: the default
    assert gate_mode_for("us-icac-va", {"us-icac-va": "require_warrant"}) == "require_warrant"
    assert gate_mode_for("us-icac-tx", {"us-icac-va": "require_warrant"}) == "warn"


@pytest.mark.parametrize(
    ("mode", "flagged", "requires"),
    [("warn", True, False), ("require_warrant", True, True), ("note_only", False, False)],
)
def test_file_access_gate(mode: Any, flagged: bool, requires: bool) -> None:
    viewed, not_viewed, unknown = file_access_statuses(_report(), mode)
    assert viewed.status == "provider_viewed" and not viewed.flagged and not viewed.agency_requires_warrant
    assert viewed.text.startswith(PROVIDER_VIEWED_TEXT)
    for s in (not_viewed, unknown):
        assert s.status == "warrant_may_be_required" and s.gate_mode == mode
        assert (s.flagged, s.agency_requires_warrant) == (flagged, requires)
        assert s.text.startswith(NOT_VIEWED_TEXT) and "Wilson" in s.text
        assert INFORMS in s.text
    assert not_viewed.viewed_by_provider is False and "did not view" in not_viewed.text
    assert unknown.viewed_by_provider is None and "does not say" in unknown.text
    assert "decides nothing" in viewed.text


def test_single_file_status() -> None:
    s = file_access_status(ReportedFile(file_id="x", viewed_by_esp=None), "warn")
    assert s.status == "warrant_may_be_required" and s.flagged


# ------------------------------------------------------------------------------------------------- JSON


SECTIONS = (
    "report",
    "assessment",
    "subject",
    "identifiers",
    "ip_events",
    "hash_matches",
    "routing",
    "deadlines",
    "file_access",
    "preservation_requests",
    "checklist",
    "generated_at",
    "generated_by",
    "preservation_letters",
)


def test_json_contains_every_section() -> None:
    doc = to_json(_package(requests=[PreservationRequest(provider="Other Mail Co", sent_at=datetime(2026, 3, 10, tzinfo=UTC))]))
    json.dumps(doc)  # plain JSON types only
    for key in SECTIONS:
        assert key in doc and doc[key] not in (None, [], {}), key
    assert doc["format"] == "tiptriage.lead-package/1" and doc["draft_banner"] == DRAFT_BANNER
    assert doc["assessment"]["fired"][0]["reason"] and doc["assessment"]["fired"][0]["source"] and doc["assessment"]["fired"][0]["evidence"]
    assert doc["subject"]["linked_reports"][0] == {
        "report_id": "TT-2025-0990",
        "tier": 3,
        "received_at": (RECEIVED - timedelta(days=200)).isoformat().replace("+00:00", "Z"),
        "evidence": ["same e-mail address user1@example.com"],
    }
    assert doc["ip_events"][0]["place"]["country_code"] == "US" and doc["ip_events"][0]["place"]["evidence"]
    assert doc["hash_matches"][1] == {
        "file_id": "f-1",
        "hash_type": "PDQ",
        "bank": "bank-b",
        "match_type": "perceptual",
        "distance": 12,
        "category": "C1",
        "series": None,
        "victim_identified": None,
        "suppressed_by": None,
    }
    assert doc["routing"]["agency_id"] == "us-icac-test"
    assert [f["status"] for f in doc["file_access"]] == ["provider_viewed", "warrant_may_be_required", "warrant_may_be_required"]
    assert {letter["provider"] for letter in doc["preservation_letters"]} == {"Example Provider LLC", "Other Mail Co"}


def test_letters_one_per_provider() -> None:
    letters = preservation_letters(_package())
    assert [x.provider for x in letters] == ["Example Provider LLC", "Other Mail Co"]
    ep, om = letters
    assert "account ID: u-1001" in ep.account_identifiers and "e-mail address: user1@example.com" in ep.account_identifiers
    assert len(ep.account_identifiers) == len(set(ep.account_identifiers))  # the report's and the subject's copy merged
    assert om.account_identifiers == ["account ID: m-77", "e-mail address: user2@example.net"]
    assert ep.date_from == date(2026, 2, 25) and ep.date_to == date(2026, 3, 20)  # earliest IP event → generated
    for letter in letters:
        assert letter.banner == DRAFT_BANNER and DRAFT_BANNER in letter.body[-1]
        assert any("2703(f)" in p for p in letter.body)


# ------------------------------------------------------------------------------------------------- HTML


def test_html_escapes_hostile_text() -> None:
    html = to_html(_package(_report(platform=HOSTILE), reason=f"reason {HOSTILE}"))
    assert "<script" not in html.lower()
    assert html.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") == 2
    assert 'lang="en"' in html


def test_html_sections_banner_and_letters() -> None:
    html = to_html(_package(requests=[PreservationRequest(provider="Example Provider LLC", sent_at=datetime(2026, 3, 5, tzinfo=UTC))]))
    order = [
        "Summary",
        "Subject and linked reports",
        "Identifiers",
        "IP events and estimated places",
        "Hash matches",
        "Deadlines",
        "File access",
        "Legal-process checklist",
        "Draft preservation letters",
    ]
    positions = [html.index(f">{title}") for title in order]
    assert positions == sorted(positions)
    assert "Tier 2" in html and "The provider classified a file in a high category" in html
    assert len(re.findall(r'<section class="letter"', html)) == 2
    banner = DRAFT_BANNER.replace("—", "—")
    assert html.count(banner) >= 2 * 2 + 1  # above and below every letter, and over the section
    for letter in re.findall(r'<section class="letter".*?</section>', html, flags=re.S):
        assert banner in letter
    assert "viewing may require a warrant (United States v. Wilson, 9th Cir. 2021)" in html
    assert "Deconfliction checked?" in html and "Not done" in html
    assert "OK: 347 day(s) left" in html and "Warning: 15 day(s) left" not in html  # the request was sent on 5 March
    assert "f-1" in html and SHA256 in html


# -------------------------------------------------------------------------------------------------- PDF


def test_pdf_from_the_same_html() -> None:
    try:
        import weasyprint  # type: ignore[import-untyped]
    except (ImportError, OSError) as exc:
        pytest.skip(f"WeasyPrint cannot load its system libraries (apt-get install -y libpango-1.0-0 libpangoft2-1.0-0): {exc}")
    data = _package()
    pdf = to_pdf(data)
    assert pdf.startswith(b"%PDF")
    pages = weasyprint.HTML(string=to_html(data)).render().pages
    assert len(pages) >= 1 + 2  # the package, then one page per letter at least


# ------------------------------------------------------------------------------------------------- CASE


def test_case_ids_are_deterministic() -> None:
    fid = case_id("file", "TT-1", "f-1")
    assert fid == case_id("file", "TT-1", "f-1") != case_id("file", "TT-2", "f-1")
    assert re.fullmatch(r"kb:file-[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", fid)
    data = _package()
    assert to_case_jsonld(data) == to_case_jsonld(data)


def test_case_export_shape() -> None:
    doc = to_case_jsonld(_package())
    by_type: dict[str, list[dict[str, Any]]] = {}
    for node in doc["@graph"]:
        by_type.setdefault(node["@type"], []).append(node)
    assert len(by_type["case-investigation:Investigation"]) == 1
    assert len(by_type["uco-observable:File"]) == 3
    hashes = {(h["uco-types:hashMethod"], h["uco-types:hashValue"]["@value"]) for h in by_type["uco-types:Hash"]}
    assert hashes == {("SHA256", SHA256), ("MD5", MD5)}
    assert {e["uco-core:hasFacet"][0]["@id"] for e in by_type["uco-observable:EmailAddress"]}
    assert len(by_type["uco-observable:EmailAddress"]) == 2 and len(by_type["uco-observable:PhoneAccount"]) == 1
    # the reported person is the subject's first account: one node for it, one for the other account
    assert len(by_type["uco-observable:ApplicationAccount"]) == 2
    assert by_type["uco-observable:IPv4Address"] and by_type["uco-observable:IPv6Address"]
    prov = by_type["case-investigation:ProvenanceRecord"][0]
    assert prov["case-investigation:exhibitNumber"] == "TT-2026-0001"
    file_ids = {n["@id"] for n in by_type["uco-observable:File"]}
    assert case_id("file", "TT-2026-0001", "f-1") in file_ids


def test_case_export_validates(tmp_path: Path) -> None:
    try:
        from case_utils.case_validate import validate
    except ImportError as exc:
        pytest.skip(f"case-utils is not installed: {exc}")
    path = write_case_jsonld(_package(), tmp_path / "lead.jsonld")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = validate(str(path), case_version="case-1.5.0", inference="none")
    assert result.conforms, result.text
    assert not result.undefined_concepts
