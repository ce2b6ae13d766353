"""Writer for CyberTipline ESP XML, the inverse of ``cybertip_xml``; used by ``synth`` and tests.

Children are written in the schema's order (ELEMENTS.md), as NCMEC rejects out-of-order children.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from xml.etree.ElementTree import Element, SubElement, tostring

from tiptriage.model import (
    Account,
    Address,
    CellPhoneIncident,
    ChatImIncident,
    DeviceId,
    EmailIncident,
    EstimatedLocation,
    HashType,
    InternetDetail,
    IpCaptureEvent,
    NewsgroupIncident,
    NonInternetIncident,
    OnlineGamingIncident,
    Peer2PeerIncident,
    Person,
    Report,
    ReportedFile,
    Victim,
    WebPageIncident,
)

_XSI = "http://www.w3.org/2001/XMLSchema-instance"


def _fmt(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime | date):
        return v.isoformat()
    if hasattr(v, "value"):
        return str(v.value)
    return str(v)


def _add(parent: Element, tag: str, value: object) -> Element | None:
    if value is None:
        return None
    el = SubElement(parent, tag)
    el.text = _fmt(value)
    return el


def _attrs(el: Element, **attrs: object) -> None:
    for k, v in attrs.items():
        if v is not None:
            el.set(k, _fmt(v))


def _document(root: Element) -> bytes:
    body: bytes = tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


def _ip(parent: Element, ev: IpCaptureEvent) -> None:
    el = SubElement(parent, "ipCaptureEvent")
    _add(el, "ipAddress", ev.ip_address)
    _add(el, "eventName", ev.event_name)
    _add(el, "dateTime", ev.date_time)
    _add(el, "possibleProxy", ev.possible_proxy)
    _add(el, "port", ev.port)


def _device(parent: Element, d: DeviceId) -> None:
    el = SubElement(parent, "deviceId")
    _add(el, "idType", d.id_type)
    _add(el, "idValue", d.id_value)
    _add(el, "eventName", d.event_name)
    _add(el, "dateTime", d.date_time)


def _address(parent: Element, tag: str, a: Address) -> None:
    el = SubElement(parent, tag)
    _attrs(el, type=a.type)
    for t, v in (("address", a.address), ("city", a.city), ("zipCode", a.zip_code), ("state", a.state), ("nonUsaState", a.non_usa_state), ("country", a.country)):
        _add(el, t, v)


def _person(parent: Element, tag: str, p: Person) -> None:
    el = SubElement(parent, tag)
    _add(el, "firstName", p.first_name)
    _add(el, "lastName", p.last_name)
    for ph in p.phones:
        e = _add(el, "phone", ph.number)
        assert e is not None
        _attrs(e, type=ph.type, verified=ph.verified, countryCallingCode=ph.country_calling_code, extension=ph.extension)
    for em in p.emails:
        e = _add(el, "email", em.address)
        assert e is not None
        _attrs(e, type=em.type, verified=em.verified)
    for a in p.addresses:
        _address(el, "address", a)
    _add(el, "age", p.age)
    _add(el, "ageAssertionDiscrepancy", p.age_assertion_discrepancy)
    _add(el, "dateOfBirth", p.date_of_birth)


def _location(parent: Element, loc: EstimatedLocation) -> None:
    el = SubElement(parent, "estimatedLocation")
    _attrs(el, verified=loc.verified, timestamp=loc.timestamp)
    _add(el, "city", loc.city)
    _add(el, "region", loc.region)
    _add(el, "countryCode", loc.country_code)


def _account(parent: Element, tag: str, person_tag: str, a: Account) -> None:
    el = SubElement(parent, tag)
    if a.person is not None:
        _person(el, person_tag, a.person)
    _add(el, "vehicleDescription", a.vehicle_description)
    _add(el, "espIdentifier", a.esp_identifier)
    _add(el, "espService", a.esp_service)
    _add(el, "compromisedAccount", a.compromised_account)
    _add(el, "screenName", a.screen_name)
    for d in a.display_names:
        _add(el, "displayName", d)
    for u in a.profile_urls:
        _add(el, "profileUrl", u)
    _add(el, "profileBio", a.profile_bio)
    for ev in a.ip_events:
        _ip(el, ev)
    for dev in a.device_ids:
        _device(el, dev)
    _add(el, "thirdPartyUserReported", a.third_party_user_reported)
    for r in a.prior_report_ids:
        _add(el, "priorCTReports", r)
    _add(el, "groupIdentifier", a.group_identifier)
    _add(el, "accountTemporarilyDisabled", a.account_temporarily_disabled)
    _add(el, "accountPermanentlyDisabled", a.account_permanently_disabled)
    if a.estimated_location is not None:
        _location(el, a.estimated_location)
    _add(el, "allEmailsReported", a.all_emails_reported)
    for aa in a.associated_accounts:
        ae = SubElement(el, "associatedAccount")
        _attrs(ae, accountType=aa.account_type, thirdPartyUser=aa.third_party_user)
        _add(ae, "espIdentifier", aa.esp_identifier)
        _add(ae, "espService", aa.esp_service)
        _add(ae, "screenName", aa.screen_name)
        for d in aa.display_names:
            _add(ae, "displayName", d)
        for u in aa.profile_urls:
            _add(ae, "profileUrl", u)
        _add(ae, "additionalInfo", aa.additional_info)
    if isinstance(a, Victim):
        _add(el, "schoolName", a.school_name)
    _add(el, "additionalInfo", a.additional_info)


def _incident(parent: Element, d: InternetDetail) -> None:
    wrapper = SubElement(parent, "internetDetails")
    if isinstance(d, WebPageIncident):
        el = SubElement(wrapper, "webPageIncident")
        _attrs(el, thirdPartyHostedContent=d.third_party_hosted_content)
        for u in d.urls:
            _add(el, "url", u)
    elif isinstance(d, EmailIncident):
        el = SubElement(wrapper, "emailIncident")
        for e in d.email_addresses:
            _add(el, "emailAddress", e)
        _add(el, "content", d.content)
    elif isinstance(d, NewsgroupIncident):
        el = SubElement(wrapper, "newsgroupIncident")
        _add(el, "name", d.name)
        for e in d.email_addresses:
            _add(el, "emailAddress", e)
        _add(el, "content", d.content)
    elif isinstance(d, ChatImIncident):
        el = SubElement(wrapper, "chatImIncident")
        _add(el, "chatClient", d.chat_client)
        _add(el, "chatRoomName", d.chat_room_name)
        _add(el, "content", d.content)
    elif isinstance(d, OnlineGamingIncident):
        el = SubElement(wrapper, "onlineGamingIncident")
        _add(el, "gameName", d.game_name)
        _add(el, "console", d.console)
        _add(el, "content", d.content)
    elif isinstance(d, CellPhoneIncident):
        el = SubElement(wrapper, "cellPhoneIncident")
        _add(el, "phoneNumber", d.phone_number)
        _add(el, "latitude", d.latitude)
        _add(el, "longitude", d.longitude)
    elif isinstance(d, NonInternetIncident):
        el = SubElement(wrapper, "nonInternetIncident")
        _add(el, "locationName", d.location_name)
        for a in d.incident_addresses:
            _address(el, "incidentAddress", a)
    else:
        assert isinstance(d, Peer2PeerIncident)
        el = SubElement(wrapper, "peer2peerIncident")
        _add(el, "client", d.client)
        for ev in d.ip_events:
            _ip(el, ev)
        _add(el, "fileNames", d.file_names)
    _add(el, "additionalInfo", d.additional_info)


def report_xml(report: Report) -> bytes:
    root = Element("report")
    root.set("xmlns:xsi", _XSI)
    root.set("xsi:noNamespaceSchemaLocation", "https://report.cybertip.org/ispws/xsd")
    if report.batched_report_reason is not None:
        _attrs(SubElement(root, "batchedReport"), reason=report.batched_report_reason)
    s = SubElement(root, "incidentSummary")
    _add(s, "incidentType", report.incident_type)
    _add(s, "platform", report.platform)
    _add(s, "escalateToHighPriority", report.escalate_to_high_priority)
    if report.report_annotations:
        ann = SubElement(s, "reportAnnotations")
        for a in report.report_annotations:
            SubElement(ann, a.value)
    _add(s, "incidentDateTime", report.incident_datetime)
    _add(s, "incidentDateTimeDescription", report.incident_datetime_description)
    for d in report.internet_details:
        _incident(root, d)
    le = report.law_enforcement
    if le is not None:
        el = SubElement(root, "lawEnforcement")
        _attrs(el, fleaCountry=le.flea_country)
        _add(el, "agencyName", le.agency_name)
        _add(el, "caseNumber", le.case_number)
        if le.officer_contact is not None:
            _person(el, "officerContact", le.officer_contact)
        _add(el, "reportedToLe", le.reported_to_le)
        _add(el, "servedLegalProcessDomestic", le.served_legal_process_domestic)
        _add(el, "servedLegalProcessInternational", le.served_legal_process_international)
    rep = report.reporter
    if rep is not None:
        el = SubElement(root, "reporter")
        if rep.reporting_person is not None:
            _person(el, "reportingPerson", rep.reporting_person)
        if rep.contact_person is not None:
            _person(el, "contactPerson", rep.contact_person)
        _add(el, "companyTemplate", rep.company_template)
        _add(el, "termsOfService", rep.terms_of_service)
        _add(el, "legalURL", rep.legal_url)
    if len(report.reported_people) > 1:
        raise ValueError("ESP XML carries one personOrUserReported per report")
    for acc in report.reported_people:
        _account(root, "personOrUserReported", "personOrUserReportedPerson", acc)
    for acc in report.intended_recipients:
        _account(root, "intendedRecipient", "intendedRecipientPerson", acc)
    for v in report.victims:
        _account(root, "victim", "victimPerson", v)
    _add(root, "additionalInfo", report.additional_info)
    return _document(root)


def file_details_xml(report_id: str, f: ReportedFile) -> bytes:
    root = Element("fileDetails")
    _add(root, "reportId", report_id)
    _add(root, "fileId", f.file_id)
    _add(root, "originalFileName", f.original_file_name)
    _add(root, "uploadedToEspTimestamp", f.uploaded_at)
    _add(root, "locationOfFile", f.location_of_file)
    _add(root, "fileViewedByEsp", f.viewed_by_esp)
    _add(root, "exifViewedByEsp", f.exif_viewed_by_esp)
    _add(root, "publiclyAvailable", f.publicly_available)
    _add(root, "fileRelevance", f.relevance)
    if f.annotations:
        ann = SubElement(root, "fileAnnotations")
        for a in f.annotations:
            SubElement(ann, a.value)
    _add(root, "industryClassification", f.industry_classification)
    hash_details = []
    for h in f.hashes:
        if h.hash_type in (HashType.MD5, HashType.SHA1, HashType.SHA256):
            e = _add(root, "originalFileHash", h.value)
            assert e is not None
            e.set("hashType", h.hash_type.value)
        else:
            hash_details.append(h)
    if f.ip_event is not None:
        _ip(root, f.ip_event)
    for d in f.device_ids:
        _device(root, d)
    if hash_details:
        de = SubElement(root, "details")
        de.set("type", "HASH")
        for h in hash_details:
            pair = SubElement(de, "nameValuePair")
            _add(pair, "name", h.name if h.hash_type is HashType.OTHER and h.name else h.hash_type.value)
            _add(pair, "value", h.value)
    # consecutive details of one type share a <details> element, so their order survives a round trip
    group_el: Element | None = None
    group_kind: object = object()
    for nv in f.details:
        kind = nv.type.value if nv.type else None
        if group_el is None or kind != group_kind:
            group_el, group_kind = SubElement(root, "details"), kind
            if kind:
                group_el.set("type", kind)
        pair = SubElement(group_el, "nameValuePair")
        _add(pair, "name", nv.name)
        _add(pair, "value", nv.value)
    for info in f.additional_info:
        _add(root, "additionalInfo", info)
    return _document(root)


def write_submission(report: Report, folder: Path) -> Path:
    """Write ``report`` as a submission folder named by its id; returns the folder."""
    target = folder / report.id
    target.mkdir(parents=True, exist_ok=True)
    (target / "report.xml").write_bytes(report_xml(report))
    for i, f in enumerate(report.files, 1):
        (target / f"file-{i:04d}.xml").write_bytes(file_details_xml(report.id, f))
    return target
