"""Synthetic reports with planted ground truth, for the demo, tests and benchmarks.

Only category codes, identifiers, hashes and short neutral sentences are produced; nothing here
describes abuse. Hashes are random hex (no imagery exists behind them). Addresses come from the
documentation ranges (RFC 5737, RFC 3849), e-mail domains from RFC 2606, phone numbers from the
NANP 555-01XX block reserved for fiction.

The mix (shares are per report; see ``CLASS_MIX``) follows the shape of NCMEC's published totals
(../shared/reference/research/ncmec_incident_types_2020_2022.csv, S22): almost all reports are of
apparent child sexual abuse material, most of it known or viral; enticement is a fraction of a percent
of volume but the classes that matter most for a child at risk are over-represented here so that
tests and demos have enough of them.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import phonenumbers
from phonenumbers import geocoder

from tiptriage.model import (
    Account,
    BatchedReportReason,
    ChatImIncident,
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
    Person,
    Phone,
    Report,
    ReportAnnotation,
    ReportedFile,
    Reporter,
    Victim,
    WebPageIncident,
)

# truth class -> share of reports
CLASS_MIX: dict[str, float] = {
    "known_possession": 0.50,
    "viral_reshare": 0.28,
    "informational": 0.10,
    "suspected_production": 0.03,
    "sextortion": 0.03,
    "enticement_meeting": 0.03,
    "imminent_danger": 0.01,
    "spam": 0.02,
}
LIVE_VICTIM_CLASSES = frozenset({"imminent_danger", "sextortion", "enticement_meeting", "suspected_production"})
# a person's reports follow that person's offending: most offenders are reported for content only or for live-victim
# offending only, and a share of "dual" offenders for both. The dual share is the Swiss national cohort's (S21, Goller et
# al. 2016: 363 dual offenders of 4,612 convicted of pornography offences); it is the one source of reports of one person
# that a unit sees under both kinds, so the subject lift (a tier-1 report lifts the subject's other reports) reaches about
# that share of the content reports of persons with several reports
DUAL_OFFENDER_SHARE = 363 / 4612
# the tier each planted class belongs in at most, as issue 5 states the evaluation (a child in imminent danger: 1; a child at
# risk of contact or production: 2; known content: 3; viral, informational, spam: 4); the relevance of NDCG is 4 minus it
EXPECTED_TIER: dict[str, int] = {"imminent_danger": 1, "sextortion": 2, "enticement_meeting": 2, "suspected_production": 2,
                                 "known_possession": 3, "viral_reshare": 4, "informational": 4, "spam": 4}

SERVICES = ["ServiceA", "ServiceB", "ServiceC", "ServiceD", "ServiceE"]
PROVIDERS = {"ServiceA": "Provider One", "ServiceB": "Provider One", "ServiceC": "Provider Two", "ServiceD": "Provider Three", "ServiceE": "Provider Four"}
DOMAINS = ["example.com", "example.net", "example.org"]
PLACES = [
    ("US", "CA", "Sacramento"), ("US", "TX", "Austin"), ("US", "NY", "Albany"), ("US", "FL", "Tallahassee"),
    ("US", "OH", "Columbus"), ("US", "WA", "Olympia"), ("US", "GA", "Atlanta"), ("US", "IL", "Springfield"),
    ("CA", "ON", "Toronto"), ("GB", "ENG", "Leeds"), ("AU", "NSW", "Sydney"), ("DE", "BE", "Berlin"),
]
NET_PREFIXES = ["192.0.2.", "198.51.100.", "203.0.113."]
# US area codes in use (NANPA); each lends the fictional lines 555-0100..0199
AREA_CODES = [201, 202, 203, 205, 206, 207, 208, 209, 210, 212, 213, 214, 215, 216, 217, 218, 219, 224, 225, 228,
              229, 231, 234, 239, 240, 248, 251, 252, 253, 254, 256, 260, 262, 267, 269, 270, 276, 281, 301, 302,
              303, 304, 305, 307, 308, 309, 310, 312, 313, 314]
# the US states of PLACES as libphonenumber's geocoder names them: a person's phone carries an area code of their own state,
# so the phone and the provider's location agree as they mostly do in real reports
_STATE_NAMES = {"CA": "California", "TX": "Texas", "NY": "New York", "FL": "Florida", "OH": "Ohio", "WA": "Washington State",
                "GA": "Georgia", "IL": "Illinois"}
EPOCH = datetime(2026, 8, 1, tzinfo=UTC)  # the 90-day window ends before today, so no incident lies in the future

NEUTRAL = {
    "imminent_danger": "Escalated by the provider: a minor may be at risk of imminent harm (category code IMM-1).",
    "meeting": "the reported user proposed meeting the minor in person",
    "sextortion": "the reported user demanded further files from the minor under threat (category code SXT-1).",
    "informational": "Informational referral; no action requested by the provider.",
}


@dataclass
class SynthPerson:
    id: str
    accounts: list[dict[str, Any]] = field(default_factory=list)
    place: tuple[str, str, str] = ("US", "CA", "Sacramento")
    display: str = ""
    location_verified: bool = False


@dataclass
class Synthetic:
    reports: list[Report]
    truth: dict[str, Any]


def _hex(rng: random.Random, nbytes: int) -> str:
    return rng.getrandbits(nbytes * 8).to_bytes(nbytes, "big").hex()


def _file(rng: random.Random, file_id: str, item: dict[str, str], viewed: bool, annotations: list[FileAnnotation], uploaded: datetime,
          ic: IndustryClassification | None, ip: str | None) -> ReportedFile:
    return ReportedFile(
        file_id=file_id,
        original_file_name=f"{file_id}.jpg",
        uploaded_at=uploaded,
        viewed_by_esp=viewed,
        exif_viewed_by_esp=False if viewed else None,
        publicly_available=rng.random() < 0.2,
        relevance=FileRelevance.REPORTED,
        annotations=annotations,
        industry_classification=ic,
        hashes=[FileHash(hash_type=HashType.MD5, value=item["md5"]), FileHash(hash_type=HashType.SHA1, value=item["sha1"]),
                FileHash(hash_type=HashType.PDQ, value=item["pdq"])],
        ip_event=IpCaptureEvent(ip_address=ip, event_name=EventName.UPLOAD, date_time=uploaded) if ip else None,
    )


def _item(rng: random.Random) -> dict[str, str]:
    return {"md5": _hex(rng, 16), "sha1": _hex(rng, 20), "pdq": _hex(rng, 32)}


def _email_variant(rng: random.Random, local: str, domain: str) -> str:
    choice = rng.randrange(3)
    if choice == 0:
        return f"{local}@{domain}"
    if choice == 1:
        return f"{local.upper()}@{domain.upper()}"
    return f"{local}+{rng.choice(['a', 'x', 'tt'])}@{domain}"


def _phone_variant(rng: random.Random, area: int, line: int) -> str:
    return rng.choice([f"+1 ({area}) 555-01{line:02d}", f"{area}.555.01{line:02d}", f"{area}55501{line:02d}", f"1-{area}-555-01{line:02d}"])


@functools.cache
def _state_area_codes() -> dict[str, tuple[int, ...]]:
    """Area codes per state of PLACES, read off the geocoder of the phonenumbers package (its libphonenumber data)."""
    by_name: dict[str, list[int]] = {}
    for code in range(200, 1000):
        name = geocoder.description_for_number(phonenumbers.parse(f"+1{code}5550100"), "en")
        by_name.setdefault(name, []).append(code)
    return {state: tuple(by_name.get(name, ())) for state, name in _STATE_NAMES.items()}


def _people(rng: random.Random, n_reports: int) -> list[SynthPerson]:
    n_people = max(3, int(n_reports * 0.6))
    people = []
    state_codes = _state_area_codes()
    phones_given: dict[str, int] = {}
    for p in range(n_people):
        pid = f"P{p:07d}"
        place = rng.choice(PLACES)
        n_acc = rng.choice([2, 2, 3, 4]) if rng.random() < 0.04 else 1
        # random letters, not numbered names: unrelated people should not look alike to a fuzzy comparison
        local = "".join(rng.choice("abcdefghijkmnopqrstuvwxyz") for _ in range(9))
        domain = rng.choice(DOMAINS)
        # US numbers for US residents only, with an area code of their state; the fictional block holds 100 numbers per area
        # code: keep them unique (a state's codes run out only past thousands of residents, who then have no phone)
        codes = state_codes.get(place[1], ()) if place[0] == "US" else ()
        k = phones_given.get(place[1], 0)
        has_phone = k < len(codes) * 100
        area, line = (codes[k // 100], k % 100) if has_phone else (0, 0)
        if has_phone:
            phones_given[place[1]] = k + 1
        services = rng.sample(SERVICES, n_acc)
        accounts = []
        for i, svc in enumerate(services):
            accounts.append({
                "service": svc,
                "esp_identifier": f"{svc[-1].lower()}{rng.randrange(10**9):09d}",
                "screen_name": f"{local}_{i}" if i else local,
                "email": _email_variant(rng, local, domain),
                "phone": _phone_variant(rng, area, line) if has_phone and rng.random() < 0.7 else None,
                "ip": rng.choice(NET_PREFIXES) + str(rng.randrange(1, 255)),
            })
        people.append(SynthPerson(pid, accounts, place, display=local[:4].title() + " " + local[4:].title(), location_verified=rng.random() < 0.6))
    return people


def generate(n_reports: int, seed: int = 0) -> Synthetic:
    """``n_reports`` reports with truth: each report's class, and which accounts are one person."""
    rng = random.Random(seed)
    people = _people(rng, n_reports)
    viral_items = [_item(rng) for _ in range(max(1, n_reports // 400))]
    known_items = [_item(rng) for _ in range(max(5, n_reports // 3))]
    classes = list(CLASS_MIX)
    weights = [CLASS_MIX[c] for c in classes]
    reports: list[Report] = []
    truth_reports: dict[str, Any] = {}
    live_share = sum(CLASS_MIX[c] for c in LIVE_VICTIM_CLASSES) / sum(CLASS_MIX.values())
    live_pool: list[SynthPerson] = []
    content_pool: list[SynthPerson] = []
    for person in people:
        draw = rng.random()
        if draw < DUAL_OFFENDER_SHARE:
            live_pool.append(person)
            content_pool.append(person)
        elif draw < DUAL_OFFENDER_SHARE + live_share * (1 - DUAL_OFFENDER_SHARE):
            live_pool.append(person)
        else:
            content_pool.append(person)
    for i in range(n_reports):
        klass = rng.choices(classes, weights)[0]
        person = rng.choice((live_pool if klass in LIVE_VICTIM_CLASSES else content_pool) or people)
        acc = rng.choice(person.accounts)
        rid = f"SYN{seed:03d}-{i + 1:07d}"
        incident = EPOCH + timedelta(minutes=rng.randrange(60 * 24 * 90))
        received = incident + timedelta(hours=rng.randrange(1, 72))
        country, region, city = person.place
        ip_ev = IpCaptureEvent(ip_address=acc["ip"], port=rng.choice([None, 443, 50000 + rng.randrange(10000)]),
                               event_name=rng.choice([EventName.LOGIN, EventName.UPLOAD]), date_time=incident, possible_proxy=False)
        account = Account(
            person=Person(emails=[Email(address=acc["email"], verified=rng.random() < 0.5)],
                          phones=[Phone(number=acc["phone"], verified=True)] if acc["phone"] else []),
            esp_identifier=acc["esp_identifier"],
            esp_service=acc["service"],
            screen_name=acc["screen_name"],
            display_names=[person.display],
            ip_events=[ip_ev],
            estimated_location=EstimatedLocation(country_code=country, region=region, city=city, verified=person.location_verified, timestamp=incident),
        )
        annotations: list[ReportAnnotation] = []
        escalate = None
        additional = None
        victims: list[Victim] = []
        recipients: list[Account] = []
        batched = None
        itype = IncidentType.CHILD_PORNOGRAPHY
        files: list[ReportedFile] = []
        item_ids: list[int] = []
        if klass == "known_possession":
            for k in range(rng.choice([1, 1, 2, 3, 5, 8])):
                idx = rng.randrange(len(known_items))
                item_ids.append(idx)
                files.append(_file(rng, f"{rid}-f{k + 1}", known_items[idx], rng.random() < 0.7, [], incident, rng.choice(list(IndustryClassification)), None))
        elif klass == "viral_reshare":
            idx = rng.randrange(len(viral_items))
            files.append(_file(rng, f"{rid}-f1", viral_items[idx], True, [FileAnnotation.VIRAL, FileAnnotation.POTENTIAL_MEME], incident, None, None))
            if rng.random() < 0.5:
                batched = BatchedReportReason.VIRAL_POTENTIAL_MEME
            truth_reports_item = f"V{idx:05d}"
            item_ids.append(idx)
        elif klass == "suspected_production":
            for k in range(rng.choice([1, 2, 4])):
                files.append(_file(rng, f"{rid}-f{k + 1}", _item(rng), True, [], incident, IndustryClassification.A1, acc["ip"]))
        elif klass in ("sextortion", "enticement_meeting", "imminent_danger"):
            itype = IncidentType.ONLINE_ENTICEMENT
            age = rng.randrange(11, 16)
            victim_name = f"minor{i:07d}"
            recipients = [Account(esp_service=acc["service"], esp_identifier=f"m{rng.randrange(10**9):09d}", screen_name=victim_name,
                                  person=Person(age=age))]
            victims = [Victim(person=Person(age=age), esp_service=acc["service"], screen_name=victim_name)]
            if klass == "sextortion":
                annotations = [ReportAnnotation.SEXTORTION]
                additional = NEUTRAL["sextortion"]
            elif klass == "enticement_meeting":
                additional = NEUTRAL["meeting"]
            else:
                escalate = NEUTRAL["imminent_danger"]
                additional = NEUTRAL["meeting"]
        elif klass == "informational":
            annotations = [ReportAnnotation.INFORMATIONAL]
            additional = NEUTRAL["informational"]
            itype = rng.choice([IncidentType.CHILD_PORNOGRAPHY, IncidentType.MISLEADING_DOMAIN_NAME, IncidentType.MISLEADING_WORDS_OR_IMAGES])
        else:  # spam
            annotations = [ReportAnnotation.SPAM]
            itype = IncidentType.UNSOLICITED_OBSCENE_MATERIAL
        details = [ChatImIncident(chat_client=acc["service"], content=None)] if recipients else [WebPageIncident(urls=[f"https://{acc['service'].lower()}.example/{acc['screen_name']}"])]
        report = Report(
            id=rid,
            provider=PROVIDERS[acc["service"]],
            received_at=received,
            incident_type=itype,
            platform=acc["service"],
            escalate_to_high_priority=escalate,
            report_annotations=annotations,
            incident_datetime=incident,
            batched_report_reason=batched,
            internet_details=details,
            reporter=Reporter(reporting_person=Person(first_name="Reviewer", last_name=PROVIDERS[acc["service"]].split()[-1],
                                                      emails=[Email(address=f"reports@{PROVIDERS[acc['service']].split()[-1].lower()}.example.com")])),
            reported_people=[account],
            intended_recipients=recipients,
            victims=victims,
            additional_info=additional,
            files=files,
        )
        reports.append(report)
        entry: dict[str, Any] = {"class": klass, "person": person.id, "account": f"{acc['service']}:{acc['esp_identifier']}"}
        if klass == "viral_reshare":
            entry["viral_item"] = truth_reports_item
        if klass == "known_possession":
            entry["known_items"] = sorted(set(item_ids))
        truth_reports[rid] = entry
    used = {t["person"] for t in truth_reports.values()}
    truth = {
        "seed": seed,
        "reports": truth_reports,
        "persons": {p.id: [f"{a['service']}:{a['esp_identifier']}" for a in p.accounts] for p in people if p.id in used},
        "known_items": known_items,
        "viral_items": viral_items,
        "classes": {c: sum(1 for t in truth_reports.values() if t["class"] == c) for c in classes},
    }
    return Synthetic(reports, truth)
