"""CyberTipline reports as JSON, in the layout in which agencies receive them: reader and writer.

One document holds one report object. What is refused, with the rule named in the IntakeError:

- ``size-limit``: more than ``Limits.max_document_bytes`` bytes; ``not-empty``: nothing but white space
- ``utf-8``: bytes that are not UTF-8 (a leading byte order mark is allowed); ``unicode``: a ``\\uD800``-style
  escape of a lone surrogate, which is no character and cannot be stored
- ``json``: not JSON (the place is ``line L, column C``), or ``NaN``/``Infinity``, or a number Python will not parse
- ``top-level-object``: the top level is not an object; ``duplicate-key``: a key twice in one object (a parser
  would silently keep one of them)
- ``depth``: containers nested more than 64 deep; ``field-size``: a string (or key) over ``Limits.max_field_chars``
- ``type``: a value of the wrong JSON type; ``required``: a required key missing, ``null`` or blank
- ``enumeration``: a value outside a closed set (incident types resolve through the alias table ``incident_type``)
- ``datetime``/``timezone``/``date``/``boolean``/``integer``/``number``: values that do not parse; every datetime
  is ISO 8601 with a time zone (``Z`` or ``+hh:mm``)
- ``hash``: a hash value of the wrong length or not hex; ``unique-file-id``; ``model``: a model bound (age, port, ...)

``null`` means the same as an absent key. Booleans are ``true``/``false`` or the strings ``"true"``/``"false"``/
``"Y"``/``"N"``/``"yes"``/``"no"`` in any case. Where a string is expected an integer is taken as its digits
(providers' ids are often numbers). Keys the mapping does not know are listed in ``Report.unmapped`` as JSON
pointers (RFC 6901, list items by index) and never silently dropped. Places in errors are JSON pointers too.

FIELD MAPPING (``[]`` marks a list; ``ACCOUNT``, ``PERSON``, ... are the shapes defined below the main table)

======================================================== ==========================================================
JSON path                                                model field
======================================================== ==========================================================
/reportId                                                Report.id (absent: the first 32 hex digits of the SHA-256)
/receivedDate                                            Report.received_at (absent: the time of ingest)
/espName                                                 Report.provider
/additionalInformations[] (or one string)                Report.additional_info, items joined with "\\n"
/reportedInformation/incidentSummary/incidentType        Report.incident_type (required)
/reportedInformation/incidentSummary/incidentDateTime    Report.incident_datetime (required)
/reportedInformation/incidentSummary/incidentDateTimeDescription   Report.incident_datetime_description
/reportedInformation/incidentSummary/platform            Report.platform
/reportedInformation/incidentSummary/escalateToHighPriority   Report.escalate_to_high_priority
/reportedInformation/incidentSummary/ncmecTags[]         Report.report_annotations (sextortion, csamSolicitation, ...)
/reportedInformation/incidentSummary/batchedReportReason Report.batched_report_reason
/reportedInformation/internetDetails[] INCIDENT          Report.internet_details
/reportedInformation/reportedPeople/reportedPersons[] ACCOUNT   Report.reported_people
/reportedInformation/intendedRecipients[] ACCOUNT        Report.intended_recipients
/reportedInformation/victims[] ACCOUNT + schoolName      Report.victims (schoolName → Victim.school_name)
/reportedInformation/lawEnforcement LAW                  Report.law_enforcement
/reportedInformation/reporter REPORTER                   Report.reporter
/reportedInformation/uploadedFiles[] FILE                Report.files
======================================================== ==========================================================

INCIDENT: ``type`` (required) names the kind; the other keys belong to that kind.

============ ================================================================================================
type         keys → fields of the incident model
============ ================================================================================================
webPage      urls[] → urls, thirdPartyHostedContent → third_party_hosted_content, additionalInfo
email        emailAddresses[] → email_addresses, content, additionalInfo
newsgroup    name, emailAddresses[] → email_addresses, content, additionalInfo
chatIm       chatClient → chat_client, chatRoomName → chat_room_name, content, additionalInfo
onlineGaming gameName → game_name, console, content, additionalInfo
cellPhone    phoneNumber → phone_number, latitude, longitude, additionalInfo
nonInternet  locationName → location_name, incidentAddresses[] ADDRESS → incident_addresses, additionalInfo
peer2peer    client, sourceInformation/sourceCaptures[] CAPTURE → ip_events, fileNames → file_names, additionalInfo
============ ================================================================================================
(``additionalInfo`` → ``additional_info`` throughout.)

ACCOUNT (→ Account; PERSON's keys sit in the account object itself and make Account.person when any is there):
espIdentifier → esp_identifier, espService → esp_service, screenName → screen_name, displayNames[] →
display_names, profileUrls[] → profile_urls, profileBio → profile_bio, vehicleDescription → vehicle_description,
compromisedAccount → compromised_account, thirdPartyUserReported → third_party_user_reported, groupIdentifier →
group_identifier, priorCTReports[] → prior_report_ids, accountTemporarilyDisabled → account_temporarily_disabled,
accountPermanentlyDisabled → account_permanently_disabled, allEmailsReported → all_emails_reported,
estimatedLocation LOCATION → estimated_location, deviceIds[] DEVICE → device_ids, associatedAccounts[] ASSOCIATED →
associated_accounts, sourceInformation/sourceCaptures[] CAPTURE → ip_events, additionalInfo → additional_info.

PERSON (→ Person): firstName → first_name, lastName → last_name, emails[] EMAIL, phones[] PHONE, addresses[] ADDRESS,
age, ageAssertionDiscrepancy → age_assertion_discrepancy, dateOfBirth (YYYY-MM-DD) → date_of_birth.

- EMAIL (→ Email): {address (required), type, verified}, or just the address as a string
- PHONE (→ Phone): {number (required), type, verified, countryCallingCode → country_calling_code, extension}, or a string
- ADDRESS (→ Address): {type, address, city, zipCode → zip_code, state, nonUsaState → non_usa_state, country}
- LOCATION (→ EstimatedLocation): {city, region, countryCode → country_code, verified, timestamp}
- CAPTURE (→ IpCaptureEvent): {ipAddress (required) → ip_address, port, dateTime → date_time, eventName → event_name,
  possibleProxy → possible_proxy}
- DEVICE (→ DeviceId): {idType → id_type, idValue (required) → id_value, eventName → event_name, dateTime → date_time}
- ASSOCIATED (→ AssociatedAccount): {accountType → account_type, thirdPartyUser → third_party_user, espIdentifier,
  espService, screenName, displayNames[], profileUrls[], additionalInfo}, named as in ACCOUNT
- LAW (→ LawEnforcement): {fleaCountry → flea_country, agencyName → agency_name, caseNumber → case_number,
  officerContact PERSON → officer_contact, reportedToLe → reported_to_le, servedLegalProcessDomestic →
  served_legal_process_domestic, servedLegalProcessInternational → served_legal_process_international}
- REPORTER (→ Reporter): {reportingPerson PERSON → reporting_person, contactPerson PERSON → contact_person,
  companyTemplate → company_template, termsOfService → terms_of_service, legalUrl → legal_url}
- FILE (→ ReportedFile): {fileId (required, unique in the report) → file_id, fileName → original_file_name,
  uploadedDate → uploaded_at, locationOfFile → location_of_file, viewedByEsp → viewed_by_esp, exifViewedByEsp →
  exif_viewed_by_esp, publiclyAvailable → publicly_available, fileRelevance → relevance, fileAnnotations[] →
  annotations, industryClassification → industry_classification, hashes[] {type, value} → hashes (MD5, SHA1,
  SHA256, PDQ, PhotoDNA; any other type is kept as OTHER with its name), sourceCapture CAPTURE → ip_event,
  deviceIds[] DEVICE → device_ids, details[] {type (EXIF|HASH), name, value} → details, additionalInfo[] →
  additional_info}

``write_json`` writes this layout back, leaving out absent values and empty lists; an Account.person with no
field set has no representation here and reads back as no person.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime
from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from tiptriage.intake.errors import IntakeError, Limits
from tiptriage.intake.submission import Submission
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
    UnknownEnumValue,
    Victim,
    WebPageIncident,
    hash_type_of,
    resolve,
)

E = TypeVar("E", bound=StrEnum)
M = TypeVar("M", bound=BaseModel)

JsonObject = dict[str, object]

MAX_DEPTH = 64
_TRUE = frozenset({"true", "y", "yes"})
_FALSE = frozenset({"false", "n", "no"})
_PERSON_KEYS = ("firstName", "lastName", "emails", "phones", "addresses", "age", "ageAssertionDiscrepancy", "dateOfBirth")
_DETAIL_KINDS = ("webPage", "email", "newsgroup", "chatIm", "onlineGaming", "cellPhone", "nonInternet", "peer2peer")
_DETAIL_KIND_BY_FOLD = {k.casefold(): k for k in _DETAIL_KINDS}
# Skips over strings so brackets inside them are not counted when locating over-deep nesting.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.S)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}", re.A)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?", re.A)


# ---------------------------------------------------------------------------------------------- parsing


class _DuplicateKeys(dict[str, object]):
    """An object in which a key appeared twice; the walk refuses it where it can name the place."""

    duplicates: list[str]


class _NonFinite(ValueError):
    pass


def _object(pairs: list[tuple[str, object]]) -> JsonObject:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    dup = _DuplicateKeys(obj)
    seen: set[str] = set()
    dup.duplicates = []
    for k, _ in pairs:
        if k in seen:
            dup.duplicates.append(k)
        seen.add(k)
    return dup


def _constant(name: str) -> object:
    raise _NonFinite(name)


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _place(ptr: str) -> str:
    return ptr or "/"


def _line_col(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    column = pos - text.rfind("\n", 0, pos)
    return f"line {line}, column {column}"


def _kind(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


def _show(v: object) -> str:
    """A value for an error message, never the whole of a large container."""
    return repr(v[:60]) if isinstance(v, str) else repr(v) if isinstance(v, bool | int | float) else _kind(v)


def _too_deep_at(text: str) -> str:
    """Where nesting first passes MAX_DEPTH; only run after the parser gave up, so its cost is no concern."""
    depth = 0
    for m in _TOKENS.finditer(text):
        t = m.group()
        if t == "[" or t == "{":
            depth += 1
            if depth > MAX_DEPTH:
                return _line_col(text, m.start())
        elif t == "]" or t == "}":
            depth -= 1
    return "-"


def _parse(data: bytes, path: str, limits: Limits) -> JsonObject:
    if len(data) > limits.max_document_bytes:
        raise IntakeError(path, "-", "size-limit", f"document is {len(data)} bytes, over the limit of {limits.max_document_bytes}")
    bad_utf8: str | None = None
    bad_line = "-"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_no = data.count(b"\n", 0, exc.start) + 1
        bad_line = f"line {line_no}"
        bad_utf8 = f"invalid UTF-8 at byte offset {exc.start} ({bad_line})"
        # Decoding the bad bytes to stand-in surrogates lets the walk name the field that holds them.
        text = data.decode("utf-8", "surrogateescape")
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise IntakeError(path, "-", "not-empty", "the file is empty")
    try:
        doc = json.loads(text, object_pairs_hook=_object, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        if bad_utf8 is not None:  # the broken bytes are the first thing to fix
            raise IntakeError(path, bad_line, "utf-8", bad_utf8) from None
        raise IntakeError(path, f"line {exc.lineno}, column {exc.colno}", "json", f"not JSON: {exc.msg}") from None
    except RecursionError:
        # The C parser recurses per level; a hostile document stops it at the interpreter's limit.
        raise IntakeError(path, _too_deep_at(text), "depth", f"containers nested more than {MAX_DEPTH} deep") from None
    except _NonFinite as exc:
        raise IntakeError(path, "-", "json", f"{exc} is not a JSON number") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise IntakeError(path, "-", "json", f"not JSON: {str(exc)[:200]}") from None
    if not isinstance(doc, dict):
        if bad_utf8 is not None:
            raise IntakeError(path, bad_line, "utf-8", bad_utf8)
        raise IntakeError(path, "/", "top-level-object", f"the top level must be an object holding one report, found {_kind(doc)}")
    check_surrogates = bad_utf8 is not None or _SURROGATE_ESCAPE.search(text) is not None
    _walk(doc, path, limits, bad_utf8, check_surrogates)
    if bad_utf8 is not None:  # not reached in practice: bad bytes end up in a string, a key, or a parse error
        raise IntakeError(path, bad_line, "utf-8", bad_utf8)
    return doc


def _child(ptr: str, key: str | int) -> str:
    return f"{ptr}/{_escape(key) if isinstance(key, str) else key}"


def _walk(doc: JsonObject, path: str, limits: Limits, bad_utf8: str | None, check_surrogates: bool) -> None:
    """Bounds on the parsed tree, iteratively so that depth costs no stack.

    Only containers go on the stack with their pointer; strings are checked where they sit, and their
    pointer is spelt out only for an error, since a large document holds millions of them.
    """
    limit = limits.max_field_chars

    def problem(s: str, what: str) -> tuple[str, str] | None:
        if len(s) > limit:
            return "field-size", f"{what} of {len(s)} characters, over the limit of {limit}"
        if check_surrogates and _SURROGATE.search(s) is not None:
            if bad_utf8 is not None:
                return "utf-8", bad_utf8
            return "unicode", "a lone surrogate escape (\\ud800-\\udfff) is not a Unicode character"
        return None

    stack: list[tuple[JsonObject | list[object], str, int]] = [(doc, "", 1)]
    while stack:
        container, ptr, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise IntakeError(path, _place(ptr), "depth", f"containers nested more than {MAX_DEPTH} deep")
        if isinstance(container, _DuplicateKeys):
            key = container.duplicates[0]
            raise IntakeError(path, _child(ptr, key), "duplicate-key", f"key {key[:80]!r} appears more than once in one object")
        items = container.items() if isinstance(container, dict) else enumerate(container)
        nested: list[tuple[JsonObject | list[object], str, int]] = []
        for k, v in items:
            if isinstance(k, str) and (bad := problem(k, "key")):
                raise IntakeError(path, _place(ptr), *bad)
            if isinstance(v, str):
                if bad := problem(v, "string"):
                    raise IntakeError(path, _child(ptr, k), *bad)
            elif isinstance(v, dict | list):
                nested.append((v, _child(ptr, k), depth + 1))
        stack.extend(reversed(nested))


# ---------------------------------------------------------------------------------------------- reading


class _Ctx:
    def __init__(self, path: str) -> None:
        self.path = path
        self.objects: list[_Obj] = []

    def unmapped(self) -> list[str]:
        return [f"{o.ptr}/{_escape(k)}" for o in self.objects for k in o.data if k not in o.used]


def _camel(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(p.capitalize() for p in rest)


class _Obj:
    """A JSON object with its pointer; keys read are marked so that the rest can be listed as unmapped."""

    def __init__(self, data: JsonObject, ptr: str, ctx: _Ctx) -> None:
        self.data = data
        self.ptr = ptr
        self.ctx = ctx
        self.used: set[str] = set()
        ctx.objects.append(self)

    def at(self, key: str) -> str:
        return f"{self.ptr}/{_escape(key)}"

    def error(self, where: str, rule: str, reason: str) -> IntakeError:
        return IntakeError(self.ctx.path, where, rule, reason)

    def fail(self, key: str, rule: str, reason: str) -> IntakeError:
        return self.error(self.at(key), rule, reason)

    def get(self, key: str) -> object:
        self.used.add(key)
        return self.data.get(key)

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    # -- scalars: each ``*_at`` reads a value already fetched, for list items

    def text_at(self, v: object, where: str) -> str | None:
        if v is None or isinstance(v, str):
            return v
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        raise self.error(where, "type", f"expected a string, found {_kind(v)}")

    def text(self, key: str) -> str | None:
        return self.text_at(self.get(key), self.at(key))

    def required_text(self, key: str, blank_ok: bool = False) -> str:
        v = self.text(key)
        if v is None:
            raise self.fail(key, "required", f"required key {key!r} is missing")
        if not blank_ok and not v.strip():
            raise self.fail(key, "required", f"required key {key!r} is blank")
        return v

    def array(self, key: str) -> list[object]:
        v = self.get(key)
        if v is None:
            return []
        if not isinstance(v, list):
            raise self.fail(key, "type", f"expected an array, found {_kind(v)}")
        return v

    def texts(self, key: str) -> list[str]:
        out = []
        for i, item in enumerate(self.array(key)):
            where = f"{self.at(key)}/{i}"
            t = self.text_at(item, where)
            if t is None:
                raise self.error(where, "type", "expected a string, found null")
            out.append(t)
        return out

    def flag(self, key: str) -> bool | None:
        v = self.get(key)
        if v is None or isinstance(v, bool):
            return v
        if isinstance(v, str):
            low = v.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
        raise self.fail(key, "boolean", f"{_show(v)} is not true or false")

    def integer(self, key: str) -> int | None:
        v = self.get(key)
        if v is None or (isinstance(v, int) and not isinstance(v, bool)):
            return v
        if isinstance(v, str) and _INTEGER.fullmatch(v.strip()):
            return int(v)
        raise self.fail(key, "integer", f"{_show(v)} is not an integer")

    def number(self, key: str) -> float | None:
        v = self.get(key)
        if v is None:
            return None
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
        if isinstance(v, str) and _NUMBER.fullmatch(v.strip()):
            f = float(v)
            if math.isfinite(f):
                return f
        raise self.fail(key, "number", f"{_show(v)} is not a number")

    def when(self, key: str) -> datetime | None:
        v = self.text(key)
        if v is None:
            return None
        try:
            parsed = datetime.fromisoformat(v.strip())
        except ValueError:
            raise self.fail(key, "datetime", f"{v[:60]!r} is not an ISO 8601 date and time") from None
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise self.fail(key, "timezone", f"{v[:60]!r} has no time zone; dates must carry one (e.g. Z or -07:00)")
        return parsed

    def required_when(self, key: str) -> datetime:
        t = self.when(key)
        if t is None:
            raise self.fail(key, "required", f"required key {key!r} is missing")
        return t

    def day(self, key: str) -> date | None:
        v = self.text(key)
        if v is None:
            return None
        try:
            return date.fromisoformat(v.strip())
        except ValueError:
            raise self.fail(key, "date", f"{v[:60]!r} is not an ISO 8601 date (YYYY-MM-DD)") from None

    def choice_at(self, enum: type[E], v: object, where: str, table: str | None = None) -> E | None:
        t = self.text_at(v, where)
        if t is None or not t.strip():
            return None
        try:
            return resolve(enum, t, table)
        except UnknownEnumValue as exc:
            raise self.error(where, "enumeration", str(exc)) from None

    def choice(self, key: str, enum: type[E], table: str | None = None) -> E | None:
        return self.choice_at(enum, self.get(key), self.at(key), table)

    def required_choice(self, key: str, enum: type[E], table: str | None = None) -> E:
        v = self.choice(key, enum, table)
        if v is None:
            raise self.fail(key, "required", f"required key {key!r} is missing")
        return v

    def choices(self, key: str, enum: type[E]) -> list[E]:
        out = []
        for i, item in enumerate(self.array(key)):
            where = f"{self.at(key)}/{i}"
            v = self.choice_at(enum, item, where)
            if v is None:
                raise self.error(
                    where, "type", f"expected a {enum.__name__} name, found {_kind(item) if item is None else 'a blank string'}"
                )
            out.append(v)
        return out

    # -- containers

    def child(self, key: str) -> _Obj | None:
        v = self.get(key)
        if v is None:
            return None
        if not isinstance(v, dict):
            raise self.fail(key, "type", f"expected an object, found {_kind(v)}")
        return _Obj(v, self.at(key), self.ctx)

    def children(self, key: str) -> list[_Obj]:
        out = []
        for i, item in enumerate(self.array(key)):
            where = f"{self.at(key)}/{i}"
            if not isinstance(item, dict):
                raise self.error(where, "type", f"expected an object, found {_kind(item)}")
            out.append(_Obj(item, where, self.ctx))
        return out

    def build(self, cls: type[M], places: dict[str, str] | None = None, **fields: object) -> M:
        """Construct a model, turning a pydantic error into an IntakeError at the key of the failing field."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = [str(p) for p in first["loc"]]
            if not loc:
                where = _place(self.ptr)
            elif places and loc[0] in places:
                where = places[loc[0]]
            else:
                where = self.at(_camel(loc[0]))
            raise self.error(where, "model", f"{'/'.join(loc) or cls.__name__}: {first['msg']}") from None


def _capture(o: _Obj) -> IpCaptureEvent:
    return o.build(
        IpCaptureEvent,
        ip_address=o.required_text("ipAddress"),
        port=o.integer("port"),
        date_time=o.when("dateTime"),
        event_name=o.choice("eventName", EventName),
        possible_proxy=o.flag("possibleProxy"),
    )


def _captures(o: _Obj) -> list[IpCaptureEvent]:
    src = o.child("sourceInformation")
    return [_capture(c) for c in src.children("sourceCaptures")] if src is not None else []


def _device(o: _Obj) -> DeviceId:
    return o.build(
        DeviceId,
        id_type=o.text("idType"),
        id_value=o.required_text("idValue"),
        event_name=o.choice("eventName", EventName),
        date_time=o.when("dateTime"),
    )


def _address(o: _Obj) -> Address:
    return o.build(
        Address,
        type=o.text("type"),
        address=o.text("address"),
        city=o.text("city"),
        zip_code=o.text("zipCode"),
        state=o.text("state"),
        non_usa_state=o.text("nonUsaState"),
        country=o.text("country"),
    )


def _objects_or_strings(o: _Obj, key: str, main: str) -> list[_Obj]:
    """List items that may be objects or bare strings; a bare string becomes ``{main: string}``."""
    out = []
    for i, item in enumerate(o.array(key)):
        where = f"{o.at(key)}/{i}"
        if isinstance(item, str | int) and not isinstance(item, bool):
            out.append(_Obj({main: item}, where, o.ctx))
        elif isinstance(item, dict):
            out.append(_Obj(item, where, o.ctx))
        else:
            raise o.error(where, "type", f"expected an object or a string, found {_kind(item)}")
    return out


def _person(o: _Obj) -> Person:
    emails = [
        e.build(Email, address=e.required_text("address"), type=e.text("type"), verified=e.flag("verified"))
        for e in _objects_or_strings(o, "emails", "address")
    ]
    phones = [
        p.build(
            Phone,
            number=p.required_text("number"),
            type=p.text("type"),
            verified=p.flag("verified"),
            country_calling_code=p.text("countryCallingCode"),
            extension=p.text("extension"),
        )
        for p in _objects_or_strings(o, "phones", "number")
    ]
    return o.build(
        Person,
        first_name=o.text("firstName"),
        last_name=o.text("lastName"),
        emails=emails,
        phones=phones,
        addresses=[_address(a) for a in o.children("addresses")],
        age=o.integer("age"),
        age_assertion_discrepancy=o.flag("ageAssertionDiscrepancy"),
        date_of_birth=o.day("dateOfBirth"),
    )


def _location(o: _Obj) -> EstimatedLocation:
    return o.build(
        EstimatedLocation,
        city=o.text("city"),
        region=o.text("region"),
        country_code=o.text("countryCode"),
        verified=o.flag("verified"),
        timestamp=o.when("timestamp"),
    )


def _associated(o: _Obj) -> AssociatedAccount:
    return o.build(
        AssociatedAccount,
        account_type=o.choice("accountType", AssociatedAccountType),
        third_party_user=o.flag("thirdPartyUser"),
        esp_identifier=o.text("espIdentifier"),
        esp_service=o.text("espService"),
        screen_name=o.text("screenName"),
        display_names=o.texts("displayNames"),
        profile_urls=o.texts("profileUrls"),
        additional_info=o.text("additionalInfo"),
    )


def _account_fields(o: _Obj) -> dict[str, object]:
    if any(o.has(k) for k in _PERSON_KEYS):
        person: Person | None = _person(o)
    else:
        person = None
        o.used.update(_PERSON_KEYS)  # keys present as null are known, not unmapped
    loc = o.child("estimatedLocation")
    return {
        "person": person,
        "vehicle_description": o.text("vehicleDescription"),
        "esp_identifier": o.text("espIdentifier"),
        "esp_service": o.text("espService"),
        "compromised_account": o.flag("compromisedAccount"),
        "screen_name": o.text("screenName"),
        "display_names": o.texts("displayNames"),
        "profile_urls": o.texts("profileUrls"),
        "profile_bio": o.text("profileBio"),
        "ip_events": _captures(o),
        "device_ids": [_device(d) for d in o.children("deviceIds")],
        "third_party_user_reported": o.flag("thirdPartyUserReported"),
        "prior_report_ids": o.texts("priorCTReports"),
        "group_identifier": o.text("groupIdentifier"),
        "account_temporarily_disabled": o.flag("accountTemporarilyDisabled"),
        "account_permanently_disabled": o.flag("accountPermanentlyDisabled"),
        "estimated_location": _location(loc) if loc is not None else None,
        "all_emails_reported": o.flag("allEmailsReported"),
        "associated_accounts": [_associated(a) for a in o.children("associatedAccounts")],
        "additional_info": o.text("additionalInfo"),
    }


def _account(o: _Obj) -> Account:
    return o.build(Account, places={"prior_report_ids": o.at("priorCTReports")}, **_account_fields(o))


def _victim(o: _Obj) -> Victim:
    return o.build(Victim, places={"prior_report_ids": o.at("priorCTReports")}, school_name=o.text("schoolName"), **_account_fields(o))


def _internet_detail(o: _Obj) -> InternetDetail:
    raw = o.required_text("type")
    kind = _DETAIL_KIND_BY_FOLD.get(raw.strip().casefold())
    info = o.text("additionalInfo")
    detail: InternetDetail
    if kind == "webPage":
        detail = o.build(
            WebPageIncident, urls=o.texts("urls"), third_party_hosted_content=o.flag("thirdPartyHostedContent"), additional_info=info
        )
    elif kind == "email":
        detail = o.build(EmailIncident, email_addresses=o.texts("emailAddresses"), content=o.text("content"), additional_info=info)
    elif kind == "newsgroup":
        detail = o.build(
            NewsgroupIncident,
            name=o.text("name"),
            email_addresses=o.texts("emailAddresses"),
            content=o.text("content"),
            additional_info=info,
        )
    elif kind == "chatIm":
        detail = o.build(
            ChatImIncident,
            chat_client=o.text("chatClient"),
            chat_room_name=o.text("chatRoomName"),
            content=o.text("content"),
            additional_info=info,
        )
    elif kind == "onlineGaming":
        detail = o.build(
            OnlineGamingIncident, game_name=o.text("gameName"), console=o.text("console"), content=o.text("content"), additional_info=info
        )
    elif kind == "cellPhone":
        detail = o.build(
            CellPhoneIncident,
            phone_number=o.text("phoneNumber"),
            latitude=o.number("latitude"),
            longitude=o.number("longitude"),
            additional_info=info,
        )
    elif kind == "nonInternet":
        addresses = [_address(a) for a in o.children("incidentAddresses")]
        detail = o.build(NonInternetIncident, location_name=o.text("locationName"), incident_addresses=addresses, additional_info=info)
    elif kind == "peer2peer":
        detail = o.build(
            Peer2PeerIncident, client=o.text("client"), ip_events=_captures(o), file_names=o.text("fileNames"), additional_info=info
        )
    else:
        allowed = ", ".join(repr(k) for k in _DETAIL_KINDS)
        raise o.fail("type", "enumeration", f"unknown internet detail type {raw[:120]!r}; allowed: {allowed}")
    return detail


def _law_enforcement(o: _Obj) -> LawEnforcement:
    oc = o.child("officerContact")
    return o.build(
        LawEnforcement,
        flea_country=o.text("fleaCountry"),
        agency_name=o.text("agencyName"),
        case_number=o.text("caseNumber"),
        officer_contact=_person(oc) if oc is not None else None,
        reported_to_le=o.flag("reportedToLe"),
        served_legal_process_domestic=o.flag("servedLegalProcessDomestic"),
        served_legal_process_international=o.flag("servedLegalProcessInternational"),
    )


def _reporter(o: _Obj) -> Reporter:
    rp, cp = o.child("reportingPerson"), o.child("contactPerson")
    return o.build(
        Reporter,
        reporting_person=_person(rp) if rp is not None else None,
        contact_person=_person(cp) if cp is not None else None,
        company_template=o.text("companyTemplate"),
        terms_of_service=o.text("termsOfService"),
        legal_url=o.text("legalUrl"),
    )


def _hash(o: _Obj) -> FileHash:
    name = o.required_text("type").strip()
    value = o.required_text("value")
    ht = hash_type_of(name)
    # The provider's own name is kept only where it says more than our OTHER does.
    own_name = name if ht is HashType.OTHER and name.upper() != HashType.OTHER.value else None
    try:
        return FileHash(hash_type=ht, value=value, name=own_name)
    except ValidationError as exc:
        raise o.fail("value", "hash", exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


def _detail_pair(o: _Obj) -> NameValue:
    return o.build(
        NameValue, type=o.choice("type", DetailsType), name=o.required_text("name"), value=o.required_text("value", blank_ok=True)
    )


def _file(o: _Obj) -> ReportedFile:
    cap = o.child("sourceCapture")
    return o.build(
        ReportedFile,
        places={"original_file_name": o.at("fileName"), "uploaded_at": o.at("uploadedDate"), "relevance": o.at("fileRelevance")},
        file_id=o.required_text("fileId"),
        original_file_name=o.text("fileName"),
        uploaded_at=o.when("uploadedDate"),
        location_of_file=o.text("locationOfFile"),
        viewed_by_esp=o.flag("viewedByEsp"),
        exif_viewed_by_esp=o.flag("exifViewedByEsp"),
        publicly_available=o.flag("publiclyAvailable"),
        relevance=o.choice("fileRelevance", FileRelevance),
        annotations=o.choices("fileAnnotations", FileAnnotation),
        industry_classification=o.choice("industryClassification", IndustryClassification),
        hashes=[_hash(h) for h in o.children("hashes")],
        ip_event=_capture(cap) if cap is not None else None,
        device_ids=[_device(d) for d in o.children("deviceIds")],
        details=[_detail_pair(d) for d in o.children("details")],
        additional_info=o.texts("additionalInfo"),
    )


def _files(info: _Obj) -> list[ReportedFile]:
    files: list[ReportedFile] = []
    seen: set[str] = set()
    for i, f in enumerate(info.children("uploadedFiles")):
        rf = _file(f)
        if rf.file_id in seen:
            raise f.fail("fileId", "unique-file-id", f"file id {rf.file_id[:80]!r} appears more than once in this report (item {i})")
        seen.add(rf.file_id)
        files.append(rf)
    return files


def _additional_informations(root: _Obj) -> str | None:
    v = root.get("additionalInformations")
    if v is None:
        return None
    if not isinstance(v, list):
        return root.text_at(v, root.at("additionalInformations"))
    lines = root.texts("additionalInformations")
    return "\n".join(lines) if lines else None


def read_submission(sub: Submission, received_at: datetime, limits: Limits) -> Report:
    """Read one JSON document holding one report object into a Report, or raise IntakeError."""
    data = _parse(sub.documents[0].data, sub.path, limits)
    ctx = _Ctx(sub.path)
    root = _Obj(data, "", ctx)
    info = root.child("reportedInformation")
    if info is None:
        raise root.fail("reportedInformation", "required", "required key 'reportedInformation' is missing")
    summary = info.child("incidentSummary")
    if summary is None:
        raise info.fail("incidentSummary", "required", "required key 'incidentSummary' is missing")
    report_id = root.text("reportId")
    fields: dict[str, object] = {
        "id": report_id.strip() if report_id and report_id.strip() else sub.digest[:32],
        "provider": root.text("espName"),
        "received_at": root.when("receivedDate") or received_at,
        "incident_type": summary.required_choice("incidentType", IncidentType, table="incident_type"),
        "incident_datetime": summary.required_when("incidentDateTime"),
        "incident_datetime_description": summary.text("incidentDateTimeDescription"),
        "platform": summary.text("platform"),
        "escalate_to_high_priority": summary.text("escalateToHighPriority"),
        "report_annotations": summary.choices("ncmecTags", ReportAnnotation),
        "batched_report_reason": summary.choice("batchedReportReason", BatchedReportReason),
        "internet_details": [_internet_detail(d) for d in info.children("internetDetails")],
    }
    people = info.child("reportedPeople")
    fields["reported_people"] = [_account(p) for p in people.children("reportedPersons")] if people is not None else []
    fields["intended_recipients"] = [_account(p) for p in info.children("intendedRecipients")]
    fields["victims"] = [_victim(p) for p in info.children("victims")]
    le, rep = info.child("lawEnforcement"), info.child("reporter")
    fields["law_enforcement"] = _law_enforcement(le) if le is not None else None
    fields["reporter"] = _reporter(rep) if rep is not None else None
    fields["files"] = _files(info)
    fields["additional_info"] = _additional_informations(root)
    places = {
        "id": "/reportId",
        "provider": "/espName",
        "received_at": "/receivedDate",
        "additional_info": "/additionalInformations",
        **{f: summary.at(_camel(f)) for f in ("platform", "escalate_to_high_priority", "incident_datetime_description")},
    }
    return root.build(Report, places=places, unmapped=ctx.unmapped(), **fields)


# ---------------------------------------------------------------------------------------------- writing


def _compact(d: JsonObject) -> JsonObject:
    """Absent values and empty lists are left out; an empty object is kept, since it reads back as present."""
    return {k: v for k, v in d.items() if v is not None and v != []}


def _iso(t: datetime | date | None) -> str | None:
    return t.isoformat() if t is not None else None


def _name(e: StrEnum | None) -> str | None:
    return e.value if e is not None else None


def _capture_json(e: IpCaptureEvent) -> JsonObject:
    return _compact(
        {
            "ipAddress": e.ip_address,
            "port": e.port,
            "dateTime": _iso(e.date_time),
            "eventName": _name(e.event_name),
            "possibleProxy": e.possible_proxy,
        }
    )


def _source_json(events: list[IpCaptureEvent]) -> JsonObject | None:
    return {"sourceCaptures": [_capture_json(e) for e in events]} if events else None


def _device_json(d: DeviceId) -> JsonObject:
    return _compact({"idType": d.id_type, "idValue": d.id_value, "eventName": _name(d.event_name), "dateTime": _iso(d.date_time)})


def _address_json(a: Address) -> JsonObject:
    return _compact(
        {
            "type": a.type,
            "address": a.address,
            "city": a.city,
            "zipCode": a.zip_code,
            "state": a.state,
            "nonUsaState": a.non_usa_state,
            "country": a.country,
        }
    )


def _person_json(p: Person) -> JsonObject:
    return _compact(
        {
            "firstName": p.first_name,
            "lastName": p.last_name,
            "emails": [_compact({"address": e.address, "type": e.type, "verified": e.verified}) for e in p.emails],
            "phones": [
                _compact(
                    {
                        "number": ph.number,
                        "type": ph.type,
                        "verified": ph.verified,
                        "countryCallingCode": ph.country_calling_code,
                        "extension": ph.extension,
                    }
                )
                for ph in p.phones
            ],
            "addresses": [_address_json(a) for a in p.addresses],
            "age": p.age,
            "ageAssertionDiscrepancy": p.age_assertion_discrepancy,
            "dateOfBirth": _iso(p.date_of_birth),
        }
    )


def _location_json(loc: EstimatedLocation | None) -> JsonObject | None:
    if loc is None:
        return None
    return _compact(
        {
            "city": loc.city,
            "region": loc.region,
            "countryCode": loc.country_code,
            "verified": loc.verified,
            "timestamp": _iso(loc.timestamp),
        }
    )


def _associated_json(a: AssociatedAccount) -> JsonObject:
    return _compact(
        {
            "accountType": _name(a.account_type),
            "thirdPartyUser": a.third_party_user,
            "espIdentifier": a.esp_identifier,
            "espService": a.esp_service,
            "screenName": a.screen_name,
            "displayNames": a.display_names,
            "profileUrls": a.profile_urls,
            "additionalInfo": a.additional_info,
        }
    )


def _account_json(a: Account) -> JsonObject:
    out = _compact(
        {
            "espIdentifier": a.esp_identifier,
            "espService": a.esp_service,
            "screenName": a.screen_name,
            "displayNames": a.display_names,
            "profileUrls": a.profile_urls,
            "profileBio": a.profile_bio,
        }
    )
    if a.person is not None:
        out.update(_person_json(a.person))
    out.update(
        _compact(
            {
                "vehicleDescription": a.vehicle_description,
                "compromisedAccount": a.compromised_account,
                "thirdPartyUserReported": a.third_party_user_reported,
                "groupIdentifier": a.group_identifier,
                "estimatedLocation": _location_json(a.estimated_location),
                "deviceIds": [_device_json(d) for d in a.device_ids],
                "priorCTReports": a.prior_report_ids,
                "accountTemporarilyDisabled": a.account_temporarily_disabled,
                "accountPermanentlyDisabled": a.account_permanently_disabled,
                "allEmailsReported": a.all_emails_reported,
                "associatedAccounts": [_associated_json(x) for x in a.associated_accounts],
                "sourceInformation": _source_json(a.ip_events),
                "additionalInfo": a.additional_info,
            }
        )
    )
    if isinstance(a, Victim) and a.school_name is not None:
        out["schoolName"] = a.school_name
    return out


def _detail_json(d: InternetDetail) -> JsonObject:
    body: JsonObject
    if isinstance(d, WebPageIncident):
        body = {"type": "webPage", "urls": d.urls, "thirdPartyHostedContent": d.third_party_hosted_content}
    elif isinstance(d, EmailIncident):
        body = {"type": "email", "emailAddresses": d.email_addresses, "content": d.content}
    elif isinstance(d, NewsgroupIncident):
        body = {"type": "newsgroup", "name": d.name, "emailAddresses": d.email_addresses, "content": d.content}
    elif isinstance(d, ChatImIncident):
        body = {"type": "chatIm", "chatClient": d.chat_client, "chatRoomName": d.chat_room_name, "content": d.content}
    elif isinstance(d, OnlineGamingIncident):
        body = {"type": "onlineGaming", "gameName": d.game_name, "console": d.console, "content": d.content}
    elif isinstance(d, CellPhoneIncident):
        body = {"type": "cellPhone", "phoneNumber": d.phone_number, "latitude": d.latitude, "longitude": d.longitude}
    elif isinstance(d, NonInternetIncident):
        body = {
            "type": "nonInternet",
            "locationName": d.location_name,
            "incidentAddresses": [_address_json(a) for a in d.incident_addresses],
        }
    else:
        body = {"type": "peer2peer", "client": d.client, "sourceInformation": _source_json(d.ip_events), "fileNames": d.file_names}
    body["additionalInfo"] = d.additional_info
    return _compact(body)


def _hash_json(h: FileHash) -> JsonObject:
    return {"type": h.name if h.hash_type is HashType.OTHER and h.name else h.hash_type.value, "value": h.value}


def _file_json(f: ReportedFile) -> JsonObject:
    return _compact(
        {
            "fileId": f.file_id,
            "fileName": f.original_file_name,
            "uploadedDate": _iso(f.uploaded_at),
            "locationOfFile": f.location_of_file,
            "viewedByEsp": f.viewed_by_esp,
            "exifViewedByEsp": f.exif_viewed_by_esp,
            "publiclyAvailable": f.publicly_available,
            "fileRelevance": _name(f.relevance),
            "fileAnnotations": [a.value for a in f.annotations],
            "industryClassification": _name(f.industry_classification),
            "hashes": [_hash_json(h) for h in f.hashes],
            "sourceCapture": _capture_json(f.ip_event) if f.ip_event is not None else None,
            "deviceIds": [_device_json(d) for d in f.device_ids],
            "details": [_compact({"type": _name(n.type), "name": n.name, "value": n.value}) for n in f.details],
            "additionalInfo": f.additional_info,
        }
    )


def _law_json(le: LawEnforcement | None) -> JsonObject | None:
    if le is None:
        return None
    return _compact(
        {
            "fleaCountry": le.flea_country,
            "agencyName": le.agency_name,
            "caseNumber": le.case_number,
            "officerContact": _person_json(le.officer_contact) if le.officer_contact is not None else None,
            "reportedToLe": le.reported_to_le,
            "servedLegalProcessDomestic": le.served_legal_process_domestic,
            "servedLegalProcessInternational": le.served_legal_process_international,
        }
    )


def _reporter_json(r: Reporter | None) -> JsonObject | None:
    if r is None:
        return None
    return _compact(
        {
            "reportingPerson": _person_json(r.reporting_person) if r.reporting_person is not None else None,
            "contactPerson": _person_json(r.contact_person) if r.contact_person is not None else None,
            "companyTemplate": r.company_template,
            "termsOfService": r.terms_of_service,
            "legalUrl": r.legal_url,
        }
    )


def to_json_object(report: Report) -> JsonObject:
    """The report in the agency JSON layout, as a JSON-ready dict."""
    summary = _compact(
        {
            "incidentType": report.incident_type.value,
            "incidentDateTime": _iso(report.incident_datetime),
            "incidentDateTimeDescription": report.incident_datetime_description,
            "platform": report.platform,
            "escalateToHighPriority": report.escalate_to_high_priority,
            "ncmecTags": [a.value for a in report.report_annotations],
            "batchedReportReason": _name(report.batched_report_reason),
        }
    )
    info = _compact(
        {
            "incidentSummary": summary,
            "internetDetails": [_detail_json(d) for d in report.internet_details],
            "reportedPeople": {"reportedPersons": [_account_json(a) for a in report.reported_people]} if report.reported_people else None,
            "intendedRecipients": [_account_json(a) for a in report.intended_recipients],
            "victims": [_account_json(v) for v in report.victims],
            "lawEnforcement": _law_json(report.law_enforcement),
            "reporter": _reporter_json(report.reporter),
            "uploadedFiles": [_file_json(f) for f in report.files],
        }
    )
    return _compact(
        {
            "reportId": report.id,
            "receivedDate": _iso(report.received_at),
            "espName": report.provider,
            "reportedInformation": info,
            # One item per line, so that joining the items with newlines on reading gives the text back.
            "additionalInformations": report.additional_info.split("\n") if report.additional_info is not None else None,
        }
    )


def write_json(report: Report) -> bytes:
    """Serialise ``report`` in the agency JSON layout; ``read_submission`` gives it back (but source and unmapped)."""
    return json.dumps(to_json_object(report), ensure_ascii=False, indent=2).encode("utf-8") + b"\n"
