"""Offline location estimate for one reported account, with the evidence behind it.

Routing a report to an agency needs a country, and inside the US or Canada a state or province. This
module turns what a report says about an account into one :class:`LocationEstimate` whose every input
is listed as :class:`LocationEvidence`, so an analyst can see why the estimate is what it is. Nothing
here touches the network: every source is a database on disk or inside an installed package.

Sources (held by :class:`GeoSources`, built once by the caller and injected, so tests can supply their own):

=================  ======================================================  ==========================
source             gives                                                   where the data comes from
=================  ======================================================  ==========================
provider           the provider's ``EstimatedLocation`` (city/region/cc)   the report itself
phone              country; state/province for +1 numbers                  ``phonenumbers`` geocoder
ip: mmdb           country, subdivision, city                              operator's GeoIP2/GeoLite2
                                                                           City ``.mmdb`` named by
                                                                           ``TIPTRIAGE_GEOIP_DB``
ip: tor-geoip      country                                                 Debian ``tor-geoipdb``
                                                                           (IPFire Location), only
                                                                           when its files exist
ip: iptocc         country                                                 RIR delegation data
                                                                           embedded in ``iptocc``
=================  ======================================================  ==========================

Rules (the numbers live in :class:`GeoRules`; ``DEFAULT_RULES`` holds the values below):

=====================================  =======  ====================================================
rule                                   default  why
=====================================  =======  ====================================================
provider_verified_weight               1.0      the provider saw more than we do and vouches for it
provider_unverified_weight             0.3      usually the provider's own IP lookup: one weak hint
phone_weight                           0.3      numbers travel with people who move; country is
                                                right far more often than the area code's state
ip_weight (per distinct address)       0.3      one address may be a VPN, a proxy or a roaming SIM
ip_full_weight_window                  30 d     an event this close to the incident counts fully
ip_half_life_beyond_window             30 d     beyond the window the weight halves every 30 days
ip_undated_factor                      0.5      an event without a time could be from any year
ip_proxy_factor                        0.25     an address flagged ``possible_proxy`` hides the user
ip_databases_disagree_factor           0.5      databases that disagree about one address say
                                                little about it; the preferred one's answer is kept
family_caps (ip 0.9, phone 0.6,        —        addresses and phones of one account are correlated
provider 1.0)                                   (same ISP, same VPN): a family's support for one
                                                place is capped, so repetition alone can never
                                                outvote a verified provider location
strength_scale                         0.5      strength = 1 − exp(−support / scale)
review_below                           0.5      estimates under this confidence go to an analyst
=====================================  =======  ====================================================

Combination. For each candidate country, its *support* is the sum over source families of the
family's (capped) summed evidence weight for that country. The country with the most support wins
(ties: the one with the single heaviest item, then alphabetical). Its confidence is
``agreement × strength`` where ``agreement = support(best) / support(all)`` — disagreement lowers it —
and ``strength = 1 − exp(−support(best) / strength_scale)`` — more agreeing evidence raises it. One
weak item (weight 0.3) gives 0.45, under ``review_below``; two agreeing weak items 0.70; a verified
provider location alone 0.86. The region is chosen the same way among items that name a region in
the chosen country, and the city among items that name a city there; their confidences are capped
by the level above, since a state is only as certain as its country.

IP addresses are time-aware: each address counts once, at the factor of its event nearest the
report's incident time. Only addresses that are globally routable carry a location: private,
carrier-grade NAT (100.64.0.0/10), loopback, link-local, multicast, reserved and the documentation
ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) give nothing and are noted.
Of several IP databases the preference for an address's country is mmdb, then tor-geoip, then
iptocc: the first two estimate where a block is used, iptocc only where it was registered.

The provider's estimate is not decayed by its ``timestamp``: it is the provider's judgement as of the
report, and the timestamp is shown in the evidence for the analyst. Phones outside +1 give a country
only: the geocoder's area names there (e.g. "London") map to no subdivision code we could route on.

Only the account's own IP events are used: a file's upload event or a peer-to-peer incident's
addresses are not tied to one account by the model. Self-declared postal addresses are not used yet.

The estimate is a pure function of the account, the report and the injected sources: no clock is
read, the reference time is the report's ``incident_datetime``.
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
import logging
import math
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Final, Literal, Protocol

import maxminddb
import phonenumbers
from phonenumbers import PhoneNumberType, geocoder
from pydantic import AwareDatetime, BaseModel, ConfigDict

from tiptriage.model.report import Account, EstimatedLocation, IpCaptureEvent, Phone, Report

log = logging.getLogger(__name__)

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Family = Literal["provider", "phone", "ip"]

GEOIP_DB_ENV: Final = "TIPTRIAGE_GEOIP_DB"
DEFAULT_TOR_DIR: Final = Path("/usr/share/tor")


@dataclass(frozen=True)
class GeoRules:
    """The weights and time rules of the estimate; the module docstring says why each is what it is."""

    provider_verified_weight: float = 1.0
    provider_unverified_weight: float = 0.3
    phone_weight: float = 0.3
    ip_weight: float = 0.3
    ip_full_weight_window: timedelta = timedelta(days=30)
    ip_half_life_beyond_window: timedelta = timedelta(days=30)
    ip_undated_factor: float = 0.5
    ip_proxy_factor: float = 0.25
    ip_databases_disagree_factor: float = 0.5
    family_caps: Mapping[str, float] = field(default_factory=lambda: {"provider": 1.0, "phone": 0.6, "ip": 0.9})
    strength_scale: float = 0.5
    review_below: float = 0.5


DEFAULT_RULES: Final = GeoRules()


# --------------------------------------------------------------------------------------- the result


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocationEvidence(_Frozen):
    """One observation about where the account is, with the weight it was given and why."""

    source: str  # "provider", "phone", or "ip:<databases that answered>"
    value: str  # the place as one string, e.g. "US-CA Mountain View"
    country_code: str
    region: str | None = None
    city: str | None = None
    weight: float
    detail: str
    observed_at: AwareDatetime | None = None

    @property
    def family(self) -> Family:
        return "ip" if self.source.startswith("ip") else "phone" if self.source == "phone" else "provider"


class LocationEstimate(_Frozen):
    country_code: str | None = None
    region: str | None = None  # ISO 3166-2 subdivision suffix, e.g. "CA" for California
    city: str | None = None
    confidence: float = 0.0  # of the country
    region_confidence: float = 0.0
    city_confidence: float = 0.0
    reference_time: AwareDatetime
    evidence: list[LocationEvidence] = []
    needs_review: bool = True  # confidence under the rules' review_below
    notes: list[str] = []  # sources skipped and items that gave no location, each with the reason


# ------------------------------------------------------------------------------------------ sources

_NOT_COUNTRIES: Final = frozenset({"EU", "AP", "ZZ", "XX", "A1", "A2", "A3", "O1"})
_CC = re.compile(r"^[A-Z]{2}$")


def _country(value: object) -> str | None:
    """An ISO 3166-1 alpha-2 code, or None for registry pseudo-codes (EU, AP, ??) that name no country."""
    if not isinstance(value, str):
        return None
    cc = value.strip().upper()
    return cc if _CC.match(cc) and cc not in _NOT_COUNTRIES else None


class CountryLookup(Protocol):
    """An IP-to-country database."""

    @property
    def name(self) -> str: ...

    def country(self, ip: IpAddress) -> str | None: ...


@dataclass(frozen=True)
class CityRecord:
    country_code: str
    region: str | None
    city: str | None
    anonymous: bool  # the database itself flags the block as a proxy or satellite provider


class IptoccLookup:
    """RIR delegation data embedded in the ``iptocc`` wheel: the country a block was *assigned* to."""

    def __init__(self) -> None:
        import iptocc  # deferred so that an installation without it still loads this module

        self._lookup: Callable[[str], str | None] = iptocc.country_code
        self.name = f"iptocc {_package_version('iptocc')}"

    def country(self, ip: IpAddress) -> str | None:
        return _country(self._lookup(str(ip)))


class TorGeoIpLookup:
    """Tor's ``geoip``/``geoip6`` files (Debian ``tor-geoipdb``, converted from IPFire Location, CC BY-SA 4.0).

    The files are ~25 MB of text, so each is parsed only on its first lookup and then kept.
    """

    def __init__(self, v4_path: Path, v6_path: Path | None = None) -> None:
        self._paths = {4: v4_path, 6: v6_path}
        self._tables: dict[int, tuple[list[int], list[int], list[str]]] = {}
        self._lock = threading.Lock()
        generated = _tor_generated_date(v4_path)
        self.name = f"tor-geoip (IPFire Location {generated})" if generated else "tor-geoip"

    @classmethod
    def from_dir(cls, directory: Path) -> TorGeoIpLookup | None:
        v4, v6 = directory / "geoip", directory / "geoip6"
        if not v4.is_file():
            return None
        return cls(v4, v6 if v6.is_file() else None)

    def country(self, ip: IpAddress) -> str | None:
        table = self._table(ip.version)
        if table is None:
            return None
        starts, ends, codes = table
        key = int(ip)
        i = bisect.bisect_right(starts, key) - 1
        return _country(codes[i]) if i >= 0 and key <= ends[i] else None

    def _table(self, family: int) -> tuple[list[int], list[int], list[str]] | None:
        path = self._paths[family]
        if path is None:
            return None
        with self._lock:
            if family not in self._tables:
                self._tables[family] = _load_tor_table(path, family)
            return self._tables[family]


def _tor_generated_date(path: Path) -> str | None:
    # the export header is within the first few dozen lines; reading more would defeat the lazy load
    with path.open(encoding="utf-8", errors="replace") as f:
        for _, line in zip(range(60), f, strict=False):
            if line.startswith("# Generated:"):
                try:
                    return datetime.strptime(line.split(":", 1)[1].strip(), "%a, %d %b %Y %H:%M:%S %Z").date().isoformat()
                except ValueError:
                    return line.split(":", 1)[1].strip()
    return None


def _load_tor_table(path: Path, family: int) -> tuple[list[int], list[int], list[str]]:
    starts: list[int] = []
    ends: list[int] = []
    codes: list[str] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            low, high, cc = line.rstrip("\n").split(",")
            if family == 4:
                starts.append(int(low))
                ends.append(int(high))
            else:
                starts.append(int(ipaddress.IPv6Address(low)))
                ends.append(int(ipaddress.IPv6Address(high)))
            codes.append(cc)
    # the files are sorted, but bisect silently gives wrong answers if one ever is not
    if any(a > b for a, b in itertools.pairwise(starts)):
        order = sorted(range(len(starts)), key=starts.__getitem__)
        starts, ends, codes = [starts[i] for i in order], [ends[i] for i in order], [codes[i] for i in order]
    return starts, ends, codes


class MmdbCityLookup:
    """A MaxMind-format GeoIP2/GeoLite2 City (or Country) database supplied by the operator."""

    def __init__(self, path: Path) -> None:
        self._reader = maxminddb.open_database(str(path))
        meta = self._reader.metadata()
        built = datetime.fromtimestamp(meta.build_epoch, tz=UTC).date().isoformat()
        self.name = f"{meta.database_type} {built} (mmdb)"
        self._ip_version = meta.ip_version

    def city(self, ip: IpAddress) -> CityRecord | None:
        if ip.version == 6 and self._ip_version == 4:
            return None
        record = self._reader.get(ip)
        if not isinstance(record, dict):
            return None
        cc = _country(_path(record, "country", "iso_code"))
        if cc is None:
            return None
        subdivisions = record.get("subdivisions")
        region = None
        if isinstance(subdivisions, list) and subdivisions and isinstance(subdivisions[0], dict):
            region = _text(subdivisions[0].get("iso_code"))
        city = _text(_path(record, "city", "names", "en"))
        traits = record.get("traits")
        anonymous = isinstance(traits, dict) and any(traits.get(k) is True for k in ("is_anonymous_proxy", "is_satellite_provider"))
        return CityRecord(cc, region.upper() if region else None, city, anonymous)

    def close(self) -> None:
        self._reader.close()


def _path(record: Mapping[str, object], *keys: str) -> object:
    node: object = record
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown version"


@dataclass
class GeoSources:
    """The databases an estimate may consult, and why any expected one is missing."""

    country_dbs: Sequence[CountryLookup] = ()  # in order of preference
    city_db: MmdbCityLookup | None = None
    notes: Sequence[str] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, tor_dir: Path | None = DEFAULT_TOR_DIR) -> GeoSources:
        """Every source this machine has: iptocc always, tor-geoip if its files exist, an mmdb if configured."""
        env = os.environ if environ is None else environ
        notes: list[str] = []
        city_db = None
        db_path = env.get(GEOIP_DB_ENV, "").strip()
        if not db_path:
            notes.append(f"mmdb skipped: {GEOIP_DB_ENV} is not set (no region or city from IP addresses)")
        else:
            try:
                city_db = MmdbCityLookup(Path(db_path))
            except (OSError, maxminddb.InvalidDatabaseError) as e:
                log.warning("%s=%s could not be opened: %s", GEOIP_DB_ENV, db_path, e)
                notes.append(f"mmdb skipped: {GEOIP_DB_ENV}={db_path} could not be opened ({e})")
        country_dbs: list[CountryLookup] = []
        tor = TorGeoIpLookup.from_dir(tor_dir) if tor_dir is not None else None
        if tor is not None:
            country_dbs.append(tor)
        else:
            notes.append(f"tor-geoip skipped: no geoip file in {tor_dir}" if tor_dir else "tor-geoip skipped: not requested")
        try:
            country_dbs.append(IptoccLookup())
        except ImportError as e:
            notes.append(f"iptocc skipped: {e}")
        return cls(country_dbs=country_dbs, city_db=city_db, notes=notes)

    def close(self) -> None:
        if self.city_db is not None:
            self.city_db.close()


# ----------------------------------------------------------------------------------- IP addresses

_DOCUMENTATION_NETS: Final = tuple(ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"))
_CGNAT: Final = ipaddress.ip_network("100.64.0.0/10")


def classify_ip(text: str) -> tuple[IpAddress | None, str | None]:
    """The address if it can carry a location, else None and the reason it cannot."""
    try:
        ip: IpAddress = ipaddress.ip_address(text.strip())
    except ValueError:
        return None, "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in _DOCUMENTATION_NETS):
        return None, "documentation range (RFC 5737/3849)"
    if ip in _CGNAT:
        return None, "carrier-grade NAT (RFC 6598): shared, says nothing of the subscriber"
    # multicast is "global" to the stdlib, but no user is ever at a multicast address
    if ip.is_multicast or ip.is_unspecified or ip.is_loopback or ip.is_link_local or ip.is_reserved:
        return None, "not a unicast address"
    if ip.is_private or not ip.is_global:
        return None, "private or reserved range"
    return ip, None


def ip_time_factor(observed: datetime | None, reference: datetime, rules: GeoRules = DEFAULT_RULES) -> float:
    """1 within the window around the incident, halving every half-life beyond it."""
    if observed is None:
        return rules.ip_undated_factor
    gap = abs(observed - reference)
    if gap <= rules.ip_full_weight_window:
        return 1.0
    return float(0.5 ** ((gap - rules.ip_full_weight_window) / rules.ip_half_life_beyond_window))


def _ip_evidence(
    ip: IpAddress, events: list[IpCaptureEvent], reference: datetime, sources: GeoSources, rules: GeoRules
) -> LocationEvidence | str:
    nearest = max(events, key=lambda e: ip_time_factor(e.date_time, reference, rules))
    factor = ip_time_factor(nearest.date_time, reference, rules)

    answers: list[tuple[str, str, CityRecord | None]] = []  # (database, country, city record)
    anonymous = False
    if sources.city_db is not None:
        rec = sources.city_db.city(ip)
        if rec is not None:
            answers.append((sources.city_db.name, rec.country_code, rec))
            anonymous = rec.anonymous
    for db in sources.country_dbs:
        cc = db.country(ip)
        if cc is not None:
            answers.append((db.name, cc, None))
    if not answers:
        return f"IP {ip}: no database places it"

    country = answers[0][1]
    city_rec = answers[0][2]
    weight = rules.ip_weight * factor
    why = [f"time factor {factor:.3g}"]
    if any(cc != country for _, cc, _ in answers):
        weight *= rules.ip_databases_disagree_factor
        why.append(f"databases disagree ×{rules.ip_databases_disagree_factor:g}")
    if anonymous or any(e.possible_proxy for e in events):
        weight *= rules.ip_proxy_factor
        why.append(f"possible proxy ×{rules.ip_proxy_factor:g}")

    region = city_rec.region if city_rec else None
    city = city_rec.city if city_rec else None
    found = "; ".join(f"{_place(cc, rec.region, rec.city) if rec else cc} by {name}" for name, cc, rec in answers)
    more = f", +{len(events) - 1} more events" if len(events) > 1 else ""
    detail = f"IP {ip} ({_event_label(nearest)}{more}) → {found}; {', '.join(why)}"
    return LocationEvidence(
        source="ip:" + "+".join(_short(name) for name, _, _ in answers),
        value=_place(country, region, city),
        country_code=country,
        region=region,
        city=city,
        weight=round(weight, 4),
        detail=detail,
        observed_at=nearest.date_time,
    )


def _short(db_name: str) -> str:
    return "mmdb" if db_name.endswith("(mmdb)") else db_name.split(" ", 1)[0]


def _event_label(event: IpCaptureEvent) -> str:
    name = event.event_name.value if event.event_name else "event"
    when = event.date_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ") if event.date_time else "undated"
    return f"{name} {when}"


def _place(cc: str, region: str | None, city: str | None) -> str:
    head = f"{cc}-{region}" if region else cc
    return f"{head} {city}" if city else head


# ------------------------------------------------------------------------------------------ phones

# ISO 3166-2 codes for the names libphonenumber's English geocoder gives +1 area codes; the
# multi-province names it also gives ("Nova Scotia/Prince Edward Island") are left out on purpose.
_US_REGIONS: Final = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
    "colorado": "CO", "connecticut": "CT", "delaware": "DE", "florida": "FL", "georgia": "GA",
    "hawaii": "HI", "idaho": "ID", "illinois": "IL", "indiana": "IN", "iowa": "IA", "kansas": "KS",
    "kentucky": "KY", "louisiana": "LA", "maine": "ME", "maryland": "MD", "massachusetts": "MA",
    "michigan": "MI", "minnesota": "MN", "mississippi": "MS", "missouri": "MO", "montana": "MT",
    "nebraska": "NE", "nevada": "NV", "new hampshire": "NH", "new jersey": "NJ", "new mexico": "NM",
    "new york": "NY", "north carolina": "NC", "north dakota": "ND", "ohio": "OH", "oklahoma": "OK",
    "oregon": "OR", "pennsylvania": "PA", "rhode island": "RI", "south carolina": "SC",
    "south dakota": "SD", "tennessee": "TN", "texas": "TX", "utah": "UT", "vermont": "VT",
    "virginia": "VA", "washington": "WA", "washington state": "WA", "west virginia": "WV",
    "wisconsin": "WI", "wyoming": "WY", "washington d.c.": "DC", "district of columbia": "DC",
}  # fmt: skip
_CA_REGIONS: Final = {
    "alberta": "AB", "british columbia": "BC", "british colombia": "BC", "manitoba": "MB",
    "new brunswick": "NB", "newfoundland and labrador": "NL", "nova scotia": "NS", "ontario": "ON",
    "prince edward island": "PE", "quebec": "QC", "saskatchewan": "SK", "northwest territories": "NT",
    "nunavut": "NU", "yukon": "YT",
}  # fmt: skip
_REGION_NAMES: Final = {"US": _US_REGIONS, "CA": _CA_REGIONS}
_LOCATED_PHONE_TYPES: Final = frozenset({PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})


def region_code(country: str, name: str | None) -> str | None:
    """A US state or Canadian province name (or its code, or 'City, ST') as its two-letter code."""
    names = _REGION_NAMES.get(country)
    if not names or not name:
        return None
    text = name.strip()
    if text.upper().startswith(f"{country}-"):
        text = text[3:]
    codes = set(names.values())
    if text.upper() in codes:
        return text.upper()
    if "," in text:  # the geocoder's "San Francisco, CA"
        tail = text.rsplit(",", 1)[1].strip().upper()
        if tail in codes:
            return tail
    return names.get(text.casefold())


def _parse_phone(phone: Phone) -> phonenumbers.PhoneNumber | str:
    raw = phone.number.strip()
    if not raw.startswith("+") and phone.country_calling_code:
        raw = f"+{phone.country_calling_code.strip().lstrip('+')}{raw}"
    try:
        # no default region: guessing the country of a bare national number would invent evidence
        return phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as e:
        return f"phone {phone.number}: not parsed ({e})"


def _phone_evidence(number: phonenumbers.PhoneNumber, rules: GeoRules) -> LocationEvidence | str:
    shown = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    if not phonenumbers.is_valid_number(number):
        return f"phone {shown}: not a valid number"
    country = _country(phonenumbers.region_code_for_number(number))
    if country is None:
        return f"phone {shown}: non-geographic number"
    kind = phonenumbers.number_type(number)
    if kind not in _LOCATED_PHONE_TYPES:
        # toll-free, VoIP, premium and personal numbers are reachable from anywhere
        return f"phone {shown}: {_type_name(kind)} number, carries no location"
    description = geocoder.description_for_number(number, "en")
    region = region_code(country, description)
    lib = f"phonenumbers {_package_version('phonenumbers')}"
    said = f" (geocoder: {description!r})" if description else ""
    return LocationEvidence(
        source="phone",
        value=_place(country, region, None),
        country_code=country,
        region=region,
        weight=rules.phone_weight,
        detail=f"phone {shown}{said} → {_place(country, region, None)} by {lib}",
    )


def _type_name(kind: int) -> str:
    for name in dir(PhoneNumberType):
        if name.isupper() and getattr(PhoneNumberType, name) == kind:
            return name.lower().replace("_", " ")
    return "unknown type"


# ---------------------------------------------------------------------------------------- provider


def _provider_evidence(loc: EstimatedLocation, rules: GeoRules) -> LocationEvidence | str:
    country = _country(loc.country_code)
    if country is None:
        return f"provider location without a usable country code ({loc.country_code!r})"
    region = region_code(country, loc.region) if country in _REGION_NAMES else (loc.region or None)
    weight = rules.provider_verified_weight if loc.verified else rules.provider_unverified_weight
    status = "verified" if loc.verified else "unverified"
    when = f" at {loc.timestamp.astimezone(UTC).strftime('%Y-%m-%dT%H:%MZ')}" if loc.timestamp else ""
    city = loc.city or None
    return LocationEvidence(
        source="provider",
        value=_place(country, region, city),
        country_code=country,
        region=region,
        city=city,
        weight=weight,
        detail=f"provider's {status} estimated location{when} → {_place(country, region, city)}",
        observed_at=loc.timestamp,
    )


# --------------------------------------------------------------------------------------- combining


def _support(items: Iterable[tuple[str, LocationEvidence]], rules: GeoRules) -> dict[str, float]:
    per_family: dict[tuple[str, Family], float] = {}
    for key, ev in items:
        per_family[(key, ev.family)] = per_family.get((key, ev.family), 0.0) + ev.weight
    support: dict[str, float] = {}
    for (key, family), total in per_family.items():
        support[key] = support.get(key, 0.0) + min(total, rules.family_caps.get(family, math.inf))
    return support


def _choose(items: list[tuple[str, LocationEvidence]], rules: GeoRules) -> tuple[str | None, float]:
    """The key with the most support and its confidence (agreement × strength)."""
    items = [(k, ev) for k, ev in items if ev.weight > 0]
    if not items:
        return None, 0.0
    support = _support(items, rules)
    heaviest = {k: max(ev.weight for kk, ev in items if kk == k) for k in support}
    best = min(support, key=lambda k: (-support[k], -heaviest[k], k))
    total = sum(support.values())
    agreement = support[best] / total
    strength = 1.0 - math.exp(-support[best] / rules.strength_scale)
    return best, round(agreement * strength, 4)


def estimate_location(account: Account, report: Report, sources: GeoSources, rules: GeoRules = DEFAULT_RULES) -> LocationEstimate:
    """Combine every location hint about ``account`` into one estimate; see the module docstring."""
    reference = report.incident_datetime
    evidence: list[LocationEvidence] = []
    notes: list[str] = list(sources.notes)

    def keep(result: LocationEvidence | str) -> None:
        if isinstance(result, str):
            notes.append(result)
        else:
            evidence.append(result)

    if account.estimated_location is not None:
        keep(_provider_evidence(account.estimated_location, rules))
    seen_numbers: set[str] = set()
    for phone in account.person.phones if account.person else []:
        number = _parse_phone(phone)
        if isinstance(number, str):
            notes.append(number)
            continue
        # one number listed twice (mobile and "verified") is still one observation
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        if e164 not in seen_numbers:
            seen_numbers.add(e164)
            keep(_phone_evidence(number, rules))

    by_ip: dict[IpAddress, list[IpCaptureEvent]] = {}
    for event in account.ip_events:
        ip, reason = classify_ip(event.ip_address)
        if ip is None:
            notes.append(f"IP {event.ip_address}: {reason}")
        else:
            by_ip.setdefault(ip, []).append(event)
    for ip, events in by_ip.items():
        keep(_ip_evidence(ip, events, reference, sources, rules))

    country, confidence = _choose([(ev.country_code, ev) for ev in evidence], rules)
    if country is None:
        return LocationEstimate(reference_time=reference, evidence=evidence, needs_review=True, notes=notes)
    in_country = [ev for ev in evidence if ev.country_code == country]
    region, region_conf = _choose([(ev.region, ev) for ev in in_country if ev.region is not None], rules)
    in_region = [ev for ev in in_country if region is None or ev.region in (None, region)]
    city_key, city_conf = _choose([(ev.city.casefold(), ev) for ev in in_region if ev.city is not None], rules)
    city = next((ev.city for ev in sorted(in_region, key=lambda e: -e.weight) if ev.city and ev.city.casefold() == city_key), None)
    region_conf = min(region_conf, confidence)
    return LocationEstimate(
        country_code=country,
        region=region,
        city=city,
        confidence=confidence,
        region_confidence=region_conf,
        city_confidence=min(city_conf, region_conf if region else confidence),
        reference_time=reference,
        evidence=evidence,
        needs_review=confidence < rules.review_below,
        notes=notes,
    )
