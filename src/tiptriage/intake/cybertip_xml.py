"""Reader for CyberTipline ESP XML: a ``<report>`` document plus ``<fileDetails>`` documents.

Element names and order follow ../shared/reference/cybertipline/ELEMENTS.md. Values outside the
enumerations are refused (aliases from published clients resolve through the alias table); dates
must carry a time zone; incidentType and incidentDateTime are required. Elements with no place in
the model are listed in ``Report.unmapped`` rather than dropped. The XML names no provider (the
provider is whoever was authenticated to submit it), so ``Report.provider`` stays empty here.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError

from tiptriage.intake.errors import IntakeError, Limits
from tiptriage.intake.submission import Submission
from tiptriage.intake.xmltree import Node, local, parse
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
    InternetDetail,
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
    Victim,
    WebPageIncident,
    hash_type_of,
)


def _build(node: Node, factory: type, **fields: object) -> object:
    """Construct a model, turning a pydantic error into an IntakeError at this node."""
    try:
        return factory(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "/".join(str(p) for p in first["loc"])
        raise node.error("model", f"{where}: {first['msg']}") from None


def _ip_event(n: Node) -> IpCaptureEvent:
    ev = _build(
        n,
        IpCaptureEvent,
        ip_address=n.require("ipAddress").text or "",
        port=n.integer("port"),
        event_name=n.enum("eventName", EventName),
        date_time=n.timestamp("dateTime"),
        possible_proxy=n.boolean("possibleProxy"),
    )
    n.finish()
    assert isinstance(ev, IpCaptureEvent)
    return ev


def _device(n: Node) -> DeviceId:
    d = _build(
        n,
        DeviceId,
        id_type=n.string("idType"),
        id_value=n.require("idValue").text or "",
        event_name=n.enum("eventName", EventName),
        date_time=n.timestamp("dateTime"),
    )
    n.finish()
    assert isinstance(d, DeviceId)
    return d


def _address(n: Node) -> Address:
    a = Address(
        type=n.attr("type"),
        address=n.string("address"),
        city=n.string("city"),
        zip_code=n.string("zipCode"),
        state=n.string("state"),
        non_usa_state=n.string("nonUsaState"),
        country=n.string("country"),
    )
    n.finish()
    return a


def _person(n: Node) -> Person:
    phones = [
        Phone(
            number=p.text or "",
            type=p.attr("type"),
            verified=p.bool_attr("verified"),
            country_calling_code=p.attr("countryCallingCode"),
            extension=p.attr("extension"),
        )
        for p in n.children("phone")
        if p.text
    ]
    emails = [Email(address=e.text or "", type=e.attr("type"), verified=e.bool_attr("verified")) for e in n.children("email") if e.text]
    p = _build(
        n,
        Person,
        first_name=n.string("firstName"),
        last_name=n.string("lastName"),
        phones=phones,
        emails=emails,
        addresses=[_address(a) for a in n.children("address")],
        age=n.integer("age"),
        age_assertion_discrepancy=n.boolean("ageAssertionDiscrepancy"),
        date_of_birth=n.day("dateOfBirth"),
    )
    n.finish()
    assert isinstance(p, Person)
    return p


def _location(n: Node) -> EstimatedLocation:
    loc = EstimatedLocation(
        city=n.string("city"),
        region=n.string("region"),
        country_code=n.string("countryCode"),
        verified=n.bool_attr("verified"),
        timestamp=n.datetime_value(n.attr("timestamp"), "@timestamp"),
    )
    n.finish()
    return loc


def _associated(n: Node) -> AssociatedAccount:
    a = AssociatedAccount(
        account_type=n.enum_value(AssociatedAccountType, n.attr("accountType"), "@accountType"),
        third_party_user=n.bool_attr("thirdPartyUser"),
        esp_identifier=n.string("espIdentifier"),
        esp_service=n.string("espService"),
        screen_name=n.string("screenName"),
        display_names=n.strings("displayName"),
        profile_urls=n.strings("profileUrl"),
        additional_info=n.string("additionalInfo"),
    )
    n.finish()
    return a


def _account_fields(n: Node, person_element: str) -> dict[str, object]:
    pn = n.child(person_element)
    loc = n.child("estimatedLocation")
    return {
        "person": _person(pn) if pn is not None else None,
        "vehicle_description": n.string("vehicleDescription"),
        "esp_identifier": n.string("espIdentifier"),
        "esp_service": n.string("espService"),
        "compromised_account": n.boolean("compromisedAccount"),
        "screen_name": n.string("screenName"),
        "display_names": n.strings("displayName"),
        "profile_urls": n.strings("profileUrl"),
        "profile_bio": n.string("profileBio"),
        "ip_events": [_ip_event(c) for c in n.children("ipCaptureEvent")],
        "device_ids": [_device(c) for c in n.children("deviceId")],
        "third_party_user_reported": n.boolean("thirdPartyUserReported"),
        "prior_report_ids": n.strings("priorCTReports"),
        "group_identifier": n.string("groupIdentifier"),
        "account_temporarily_disabled": n.boolean("accountTemporarilyDisabled"),
        "account_permanently_disabled": n.boolean("accountPermanentlyDisabled"),
        "estimated_location": _location(loc) if loc is not None else None,
        "all_emails_reported": n.boolean("allEmailsReported"),
        "associated_accounts": [_associated(c) for c in n.children("associatedAccount")],
        "additional_info": n.string("additionalInfo"),
    }


def _account(n: Node, person_element: str) -> Account:
    a = _build(n, Account, **_account_fields(n, person_element))
    n.finish()
    assert isinstance(a, Account)
    return a


def _victim(n: Node) -> Victim:
    v = _build(n, Victim, school_name=n.string("schoolName"), **_account_fields(n, "victimPerson"))
    n.finish()
    assert isinstance(v, Victim)
    return v


def _internet_detail(n: Node) -> InternetDetail:
    kids = [c for c in n.el]
    if len(kids) != 1:
        raise n.error("one-incident", f"<internetDetails> must hold exactly one incident element, found {len(kids)}")
    kind = local(kids[0].tag)
    (c,) = list(n.children(kind))
    detail: InternetDetail
    if kind == "webPageIncident":
        detail = WebPageIncident(urls=c.strings("url"), third_party_hosted_content=c.bool_attr("thirdPartyHostedContent"), additional_info=c.string("additionalInfo"))
    elif kind == "emailIncident":
        detail = EmailIncident(email_addresses=c.strings("emailAddress"), content=c.string("content"), additional_info=c.string("additionalInfo"))
    elif kind == "newsgroupIncident":
        detail = NewsgroupIncident(name=c.string("name"), email_addresses=c.strings("emailAddress"), content=c.string("content"), additional_info=c.string("additionalInfo"))
    elif kind == "chatImIncident":
        detail = ChatImIncident(chat_client=c.string("chatClient"), chat_room_name=c.string("chatRoomName"), content=c.string("content"), additional_info=c.string("additionalInfo"))
    elif kind == "onlineGamingIncident":
        detail = OnlineGamingIncident(game_name=c.string("gameName"), console=c.string("console"), content=c.string("content"), additional_info=c.string("additionalInfo"))
    elif kind == "cellPhoneIncident":
        built = _build(c, CellPhoneIncident, phone_number=c.string("phoneNumber"), latitude=c.number("latitude"), longitude=c.number("longitude"), additional_info=c.string("additionalInfo"))
        assert isinstance(built, CellPhoneIncident)
        detail = built
    elif kind == "nonInternetIncident":
        detail = NonInternetIncident(location_name=c.string("locationName"), incident_addresses=[_address(a) for a in c.children("incidentAddress")], additional_info=c.string("additionalInfo"))
    elif kind == "peer2peerIncident":
        detail = Peer2PeerIncident(client=c.string("client"), ip_events=[_ip_event(e) for e in c.children("ipCaptureEvent")], file_names=c.string("fileNames"), additional_info=c.string("additionalInfo"))
    else:
        raise n.error("enumeration", f"unknown incident element <{kind}>", kind)
    c.finish()
    n.finish()
    return detail


def _reporter(n: Node) -> Reporter:
    rp, cp = n.child("reportingPerson"), n.child("contactPerson")
    r = Reporter(
        reporting_person=_person(rp) if rp is not None else None,
        contact_person=_person(cp) if cp is not None else None,
        company_template=n.string("companyTemplate"),
        terms_of_service=n.string("termsOfService"),
        legal_url=n.string("legalURL"),
    )
    n.finish()
    return r


def _law_enforcement(n: Node) -> LawEnforcement:
    oc = n.child("officerContact")
    le = LawEnforcement(
        flea_country=n.attr("fleaCountry"),
        agency_name=n.string("agencyName"),
        case_number=n.string("caseNumber"),
        officer_contact=_person(oc) if oc is not None else None,
        reported_to_le=n.boolean("reportedToLe"),
        served_legal_process_domestic=n.boolean("servedLegalProcessDomestic"),
        served_legal_process_international=n.boolean("servedLegalProcessInternational"),
    )
    n.finish()
    return le


def read_report(root: Node, report_id: str, received_at: datetime) -> Report:
    if local(root.el.tag) != "report":
        raise root.error("root-element", f"expected root element <report>, found <{local(root.el.tag)}>")
    summary = root.child("incidentSummary")
    if summary is None:
        raise root.error("required", "required element <incidentSummary> is missing", "incidentSummary")
    incident_type = summary.enum_value(IncidentType, summary.require("incidentType").text, "incidentType", table="incident_type")
    incident_time = summary.datetime_value(summary.require("incidentDateTime").text, "incidentDateTime")
    ann = summary.child("reportAnnotations")
    annotations = ann.flags(ReportAnnotation) if ann is not None else []
    batched = root.child("batchedReport")
    le, rep, person = root.child("lawEnforcement"), root.child("reporter"), root.child("personOrUserReported")
    fields: dict[str, object] = {
        "id": report_id,
        "received_at": received_at,
        "incident_type": incident_type,
        "platform": summary.string("platform"),
        "escalate_to_high_priority": summary.string("escalateToHighPriority"),
        "report_annotations": annotations,
        "incident_datetime": incident_time,
        "incident_datetime_description": summary.string("incidentDateTimeDescription"),
        "batched_report_reason": batched.enum_value(BatchedReportReason, batched.attr("reason") or "VIRAL_POTENTIAL_MEME", "@reason") if batched is not None else None,
        "internet_details": [_internet_detail(c) for c in root.children("internetDetails")],
        "law_enforcement": _law_enforcement(le) if le is not None else None,
        "reporter": _reporter(rep) if rep is not None else None,
        "reported_people": [_account(person, "personOrUserReportedPerson")] if person is not None else [],
        "intended_recipients": [_account(c, "intendedRecipientPerson") for c in root.children("intendedRecipient")],
        "victims": [_victim(c) for c in root.children("victim")],
        "additional_info": root.string("additionalInfo"),
    }
    summary.finish()
    root.finish()
    report = _build(root, Report, **fields)
    assert isinstance(report, Report)
    return report


def _hash(n: Node, type_name: str, value: str, where: str) -> FileHash:
    ht = hash_type_of(type_name)
    try:
        return FileHash(hash_type=ht, value=value, name=None if ht is not HashType.OTHER else type_name)
    except ValidationError as exc:
        raise n.error("hash", exc.errors()[0]["msg"].removeprefix("Value error, "), where) from None


def read_file_details(root: Node) -> tuple[str, ReportedFile]:
    if local(root.el.tag) != "fileDetails":
        raise root.error("root-element", f"expected root element <fileDetails>, found <{local(root.el.tag)}>")
    report_id = root.require("reportId").text or ""
    file_id = root.require("fileId").text or ""
    hashes = []
    for h in root.children("originalFileHash"):
        if h.text:
            hashes.append(_hash(h, h.attr("hashType") or "OTHER", h.text, "@hashType"))
    details = []
    for d in root.children("details"):
        dtype = d.enum_value(DetailsType, d.attr("type"), "@type")
        for pair in d.children("nameValuePair"):
            name, value = pair.require("name").text or "", pair.require("value").text or ""
            if dtype is DetailsType.HASH:
                hashes.append(_hash(pair, name, value, "value"))
            else:
                details.append(NameValue(type=dtype, name=name, value=value))
            pair.finish()
        d.finish()
    ann = root.child("fileAnnotations")
    ip = root.child("ipCaptureEvent")
    f = _build(
        root,
        ReportedFile,
        file_id=file_id,
        original_file_name=root.string("originalFileName"),
        uploaded_at=root.timestamp("uploadedToEspTimestamp"),
        location_of_file=root.string("locationOfFile"),
        viewed_by_esp=root.boolean("fileViewedByEsp"),
        exif_viewed_by_esp=root.boolean("exifViewedByEsp"),
        publicly_available=root.boolean("publiclyAvailable"),
        relevance=root.enum("fileRelevance", FileRelevance),
        annotations=ann.flags(FileAnnotation) if ann is not None else [],
        industry_classification=root.enum("industryClassification", IndustryClassification),
        hashes=_dedupe(hashes),
        ip_event=_ip_event(ip) if ip is not None else None,
        device_ids=[_device(c) for c in root.children("deviceId")],
        details=details,
        additional_info=root.strings("additionalInfo"),
    )
    root.finish()
    assert isinstance(f, ReportedFile)
    return report_id, f


def _dedupe(hashes: list[FileHash]) -> list[FileHash]:
    seen: set[tuple[str, str]] = set()
    out = []
    for h in hashes:
        key = (h.hash_type.value, h.value)
        if key not in seen:
            seen.add(key)
            out.append(h)
    return out


def read_submission(sub: Submission, received_at: datetime, limits: Limits) -> Report:
    """Turn one XML submission (report.xml plus fileDetails documents) into a Report."""
    report_doc = sub.documents[0]
    unmapped: list[str] = []
    root_el = parse(report_doc.data, sub.display(report_doc), limits)
    if local(root_el.tag) == "fileDetails":
        rid = next((c.text for c in root_el if local(c.tag) == "reportId"), None)
        raise IntakeError(
            sub.display(report_doc), "/fileDetails/reportId", "known-report",
            f"fileDetails for report {rid!r} arrived without that report: send it inside the report's folder or zip with report.xml",
        )
    report = read_report(Node(root_el, "/" + local(root_el.tag), sub.display(report_doc), unmapped), sub.report_id, received_at)
    files: list[ReportedFile] = []
    for doc in sub.documents[1:]:
        el = parse(doc.data, sub.display(doc), limits)
        rid, f = read_file_details(Node(el, "/" + local(el.tag), sub.display(doc), unmapped))
        if rid != sub.report_id and not sub.id_from_digest:
            raise IntakeError(sub.display(doc), "/fileDetails/reportId", "known-report", f"fileDetails names report {rid!r}, which is not this submission's report {sub.report_id!r}")
        files.append(f)
    seen: set[str] = set()
    for f in files:
        if f.file_id in seen:
            raise IntakeError(sub.path, "/fileDetails/fileId", "unique-file-id", f"file id {f.file_id!r} appears in more than one fileDetails document")
        seen.add(f.file_id)
    report.files = files
    report.unmapped = unmapped
    return report
