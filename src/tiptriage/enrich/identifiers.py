"""Identifier normalisation: e-mail addresses, phone numbers, usernames, ESP account ids, IP addresses.

The link stage resolves accounts into people by comparing identifiers, so two spellings of one identifier
must come out equal here, and two different identifiers must never be made equal by a guess. Every rule
that merges spellings is either a standard (Unicode normalisation, IDNA, E.164) or a provider's documented
behaviour kept as data in ``data/email_providers.json``, with its source in ``data/SOURCES.md``.

Pure functions only: nothing here reads the network, the clock or the store.
"""

from __future__ import annotations

import ipaddress
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Literal

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from tiptriage.model.report import Account, AssociatedAccount, DeviceId, IpCaptureEvent, Phone, Report

__all__ = [
    "Identifier",
    "IdentifierKind",
    "IpInfo",
    "IpKind",
    "NormalizedEmail",
    "NormalizedPhone",
    "account_identifiers",
    "classify_ip",
    "esp_account_key",
    "normalize_device_id",
    "normalize_email",
    "normalize_phone",
    "normalize_username",
]


def _fold(text: str) -> str:
    """NFKC and case folding, repeated until stable: one pass of each is not always a fixed point."""
    for _ in range(4):
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
        if folded == text:
            break
        text = folded
    return text


# --------------------------------------------------------------------------------------------- e-mail


@dataclass(frozen=True)
class NormalizedEmail:
    value: str  # local@domain, the domain in its ASCII (IDNA) form so one mailbox has one spelling
    original: str
    rules_applied: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _ProviderRules:
    provider: str
    canonical_domain: str | None
    ignore_dots: bool
    subaddress_separator: str | None


_RULE_KINDS = {"ignore_dots", "subaddress", "same_mailbox_domains"}


def _provider_table(raw: Mapping[str, object]) -> dict[str, _ProviderRules]:
    providers = raw.get("providers")
    if not isinstance(providers, list):
        raise ValueError("email_providers.json: 'providers' must be a list")
    table: dict[str, _ProviderRules] = {}
    for entry in providers:
        name = str(entry["provider"])
        rules = entry["rules"]
        kinds = {r["rule"] for r in rules}
        # a misspelt rule name would silently turn a rule off: refuse the file instead
        if unknown := kinds - _RULE_KINDS:
            raise ValueError(f"email_providers.json: {name}: unknown rule(s) {sorted(unknown)}")
        if any(not r.get("source") for r in rules):
            raise ValueError(f"email_providers.json: {name}: every rule needs a source")
        separators = [str(r["separator"]) for r in rules if r["rule"] == "subaddress"]
        canonical = entry.get("canonical_domain") if "same_mailbox_domains" in kinds else None
        spec = _ProviderRules(
            provider=name,
            canonical_domain=str(canonical) if canonical else None,
            ignore_dots="ignore_dots" in kinds,
            subaddress_separator=separators[0] if separators else None,
        )
        for domain in entry["domains"]:
            key = str(domain).encode("idna").decode("ascii")
            if key in table:
                raise ValueError(f"email_providers.json: domain {key} listed twice")
            table[key] = spec
    return table


@cache
def _email_providers() -> dict[str, _ProviderRules]:
    text = resources.files("tiptriage.data").joinpath("email_providers.json").read_text("utf-8")
    return _provider_table(json.loads(text))


def normalize_email(raw: str) -> NormalizedEmail | None:
    """The canonical spelling of an e-mail address, or None when it is not a syntactically valid address.

    Provider rules (dots, +tags, domain aliases) apply only to the domains listed in the data file; an
    address at any other domain keeps its dots and tags, since elsewhere they may name other mailboxes.
    """
    text = unicodedata.normalize("NFKC", raw).strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        return None
    rules: list[str] = ["nfkc"] if text != raw.strip() else []
    folded_local, folded_domain = _fold(local), _fold(domain)
    if (folded_local, folded_domain) != (local, domain):
        rules.append("casefold")
    try:
        ascii_domain = folded_domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    if ascii_domain != folded_domain:
        rules.append("idna")
    try:
        validate_email(f"{folded_local}@{ascii_domain}", check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError:
        return None

    local, domain = folded_local, ascii_domain
    spec = _email_providers().get(domain)
    if spec is not None:
        if spec.subaddress_separator and spec.subaddress_separator in local:
            base = local.split(spec.subaddress_separator, 1)[0]
            # "+tag@gmail.com" names no mailbox we could tell apart: keep it as written rather than guess
            if base:
                local = base
                rules.append(f"subaddress:{spec.provider}")
        if spec.ignore_dots and "." in local and local.replace(".", ""):
            local = local.replace(".", "")
            rules.append(f"dots:{spec.provider}")
        if spec.canonical_domain and spec.canonical_domain != domain:
            domain = spec.canonical_domain
            rules.append(f"domain:{spec.provider}")
    if local != folded_local:
        try:  # a rule must never turn a valid address into an invalid one (e.g. "0.+x" → "0.")
            validate_email(f"{local}@{domain}", check_deliverability=False, allow_smtputf8=True)
        except EmailNotValidError:
            local = folded_local
            rules = [r for r in rules if not r.startswith(("subaddress:", "dots:"))]
    return NormalizedEmail(value=f"{local}@{domain}", original=raw, rules_applied=rules)


# ----------------------------------------------------------------------------------------------- phone


@dataclass(frozen=True)
class NormalizedPhone:
    value: str  # E.164, without the extension
    original: str
    region: str | None  # ISO 3166-1 alpha-2 of the number itself, None when libphonenumber cannot place it
    valid: bool  # libphonenumber's full validation; fictional 555 numbers, for one, may be possible yet invalid
    number_type: str  # libphonenumber's PhoneNumberType name, e.g. "MOBILE", "FIXED_LINE_OR_MOBILE", "UNKNOWN"
    extension: str | None = None


def _region(hint: str | None) -> str | None:
    if not hint:
        return None
    region = hint.strip().upper()
    return region if region in phonenumbers.SUPPORTED_REGIONS else None


def normalize_phone(raw: str, region_hint: str | None) -> NormalizedPhone | None:
    """The E.164 form of a phone number, or None when it cannot be parsed as one.

    ``region_hint`` (ISO alpha-2) places numbers written without a country code: the caller passes the
    account's estimated-location country, else the country of the report's IP address. Without a usable
    hint, only numbers written with a leading + (or 00-style international prefix) parse.
    """
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text:
        return None
    try:
        number = phonenumbers.parse(text, _region(region_hint))
    except phonenumbers.NumberParseException:
        return None
    # a string of the wrong length for its country is noise, not a number anyone could be reached on
    if not phonenumbers.is_possible_number(number):
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    # junk such as "000000" can give an E.164 string that reads back as another number; a value that is
    # not its own normal form would let one number have two keys
    try:
        if phonenumbers.format_number(phonenumbers.parse(e164, None), phonenumbers.PhoneNumberFormat.E164) != e164:
            return None
    except phonenumbers.NumberParseException:
        return None
    valid = phonenumbers.is_valid_number(number)
    return NormalizedPhone(
        value=e164,
        original=raw,
        region=phonenumbers.region_code_for_number(number) if valid else None,
        valid=valid,
        number_type=phonenumbers.PhoneNumberType.to_string(phonenumbers.number_type(number)),
        extension=number.extension or None,
    )


# -------------------------------------------------------------------------------------------- username

# Look-alikes from other scripts, mapped to the Latin letter they imitate. A small hand-made subset of the
# Unicode confusables data (UTS #39, confusables.txt), checked pair by pair against that data; no Python
# package offers a deterministic TR39 skeleton (see SOURCES.md). Two deliberate departures from a full
# skeleton: only non-ASCII characters are mapped, because "paul1" and "paull" are different handles on
# every platform, and capitals map to the capital they imitate because usernames compare case-insensitively.
_CONFUSABLES: dict[str, str] = {
    # Cyrillic capitals
    "\u0410": "A", "\u0412": "B", "\u0415": "E", "\u041a": "K", "\u041c": "M", "\u041d": "H", "\u041e": "O",
    "\u0420": "P", "\u0421": "C", "\u0422": "T", "\u0425": "X", "\u0423": "Y", "\u0405": "S", "\u0406": "I",
    "\u0408": "J", "\u051c": "W", "\u04ae": "Y", "\u04c0": "I",
    # Cyrillic small letters
    "\u0430": "a", "\u0441": "c", "\u0435": "e", "\u04bb": "h", "\u0456": "i", "\u0458": "j", "\u043e": "o",
    "\u0440": "p", "\u051b": "q", "\u0455": "s", "\u051d": "w", "\u0445": "x", "\u0443": "y", "\u0501": "d",
    "\u04af": "y",
    # Greek capitals
    "\u0391": "A", "\u0392": "B", "\u0395": "E", "\u0396": "Z", "\u0397": "H", "\u0399": "I", "\u039a": "K",
    "\u039c": "M", "\u039d": "N", "\u039f": "O", "\u03a1": "P", "\u03a4": "T", "\u03a5": "Y", "\u03a7": "X",
    # Greek small letters and symbols
    "\u03b1": "a", "\u03bf": "o", "\u03c1": "p", "\u03b9": "i", "\u03bd": "v", "\u03c5": "u", "\u03b3": "y",
    "\u03f2": "c", "\u03f3": "j",
    # Armenian
    "\u0585": "o", "\u057d": "u", "\u0578": "n", "\u0570": "h", "\u0566": "q", "\u0581": "g",
    # Latin letters outside ASCII that stand for ASCII ones
    "\u0131": "i", "\u0251": "a", "\u0261": "g",
}
_CONFUSABLE_TABLE = str.maketrans(_CONFUSABLES)
# Format characters (zero-width space and joiners, soft hyphen, bidi controls) are invisible: a handle
# padded with them looks the same as one without, so they must not keep the two apart.
_INVISIBLE = re.compile(r"[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]")
_LEADING = re.compile(r"^[\s@]+")


def _skeleton_once(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub("", text)
    text = _LEADING.sub("", text).strip()
    # decomposed, so a look-alike carrying an accent (Cyrillic "ё") maps like its bare letter does
    text = unicodedata.normalize("NFD", text).translate(_CONFUSABLE_TABLE)
    text = unicodedata.normalize("NFD", text.casefold()).translate(_CONFUSABLE_TABLE)
    return unicodedata.normalize("NFKC", text)


def normalize_username(raw: str) -> str:
    """A username's comparison key: NFKC, case-folded, look-alikes mapped to Latin, no leading '@'.

    "раul" written with Cyrillic letters and "Paul" give the same key. The key is for comparison only;
    show the original to people.
    """
    text = raw
    for _ in range(4):
        skeleton = _skeleton_once(text)
        if skeleton == text:
            break
        text = skeleton
    return text


# ----------------------------------------------------------------------------------------- ESP account

_WHITESPACE = re.compile(r"\s+")


def esp_account_key(service: str | None, esp_id: str) -> str:
    """``service:id``: an ESP's user id names an account only within that service.

    The service is case-folded with white space collapsed; the id is kept as given (less surrounding white
    space), because providers' ids may be case-sensitive. A missing service gives an empty scope (":id"),
    which the link stage must not treat as identifying an account on its own.
    """
    ident = unicodedata.normalize("NFKC", esp_id).strip()
    if not ident:
        raise ValueError("an ESP user id cannot be empty")
    scope = _WHITESPACE.sub(" ", _fold(service or "")).strip()
    # a ':' in a service name would make "a:b" + "c" and "a" + "b:c" one key
    scope = scope.replace("%", "%25").replace(":", "%3A")
    return f"{scope}:{ident}"


# ---------------------------------------------------------------------------------------------- device

_HEXLIKE = re.compile(r"^[0-9A-Fa-f]+(?:[:.\- ][0-9A-Fa-f]+)*$")
_HEX_SEPARATORS = re.compile(r"[:.\- ]")


def normalize_device_id(raw: str) -> str:
    """A device id's comparison key.

    Ids made only of hex digits and separators (IMEIs, MAC addresses, UUIDs, advertising ids) are written
    in upper or lower case and with varying separators for one device, so those are lower-cased and their
    separators dropped; any other id is kept exactly, as it may be case-sensitive.
    """
    text = unicodedata.normalize("NFKC", raw).strip()
    if _HEXLIKE.match(text):
        return _HEX_SEPARATORS.sub("", text).lower()
    return text


# ------------------------------------------------------------------------------------------------- IP

IpKind = Literal[
    "public",
    "private",
    "loopback",
    "link-local",
    "cgnat",
    "documentation",
    "multicast",
    "unspecified",
    "reserved",
    "invalid",
]


@dataclass(frozen=True)
class IpInfo:
    address: str  # the compressed form; an IPv4-mapped IPv6 address is given as its IPv4 address
    version: int | None
    kind: IpKind
    linkable: bool  # whether this address may be used to link reports


_Net = ipaddress.IPv4Network | ipaddress.IPv6Network

# Checked in order, first match wins. Explicit ranges rather than ipaddress's is_private/is_global, whose
# lists changed between Python patch releases (3.11.10 among them): a link decision must not depend on
# which interpreter ran it. is_global is consulted only for what no range here names, and can then only
# take linkability away. Sources: IANA special-purpose address registries (see SOURCES.md).
_IP_RANGE_SPEC: tuple[tuple[str, IpKind], ...] = (
    ("0.0.0.0/32", "unspecified"),
    ("0.0.0.0/8", "reserved"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("100.64.0.0/10", "cgnat"),
    ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"),
    ("192.168.0.0/16", "private"),
    ("192.0.2.0/24", "documentation"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("192.0.0.0/24", "reserved"),
    ("198.18.0.0/15", "reserved"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("fe80::/10", "link-local"),
    ("fc00::/7", "private"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("ff00::/8", "multicast"),
    ("fec0::/10", "reserved"),
    ("100::/64", "reserved"),
    ("64:ff9b:1::/48", "reserved"),
    ("2001::/23", "reserved"),
    ("2002::/16", "reserved"),
    ("::/8", "reserved"),
)
_IP_RANGES: tuple[tuple[_Net, IpKind], ...] = tuple((ipaddress.ip_network(net), kind) for net, kind in _IP_RANGE_SPEC)


def classify_ip(raw: str, *, treat_documentation_as_public: bool = False) -> IpInfo:
    """What kind of address an IP is, and whether it may be used to link reports.

    Only public addresses link: private, reserved and carrier-grade NAT ranges are shared by many
    unrelated people, so they are flagged and never used alone to link.

    ``treat_documentation_as_public``: the synthetic data uses the RFC 5737 / RFC 3849 documentation ranges
    as stand-ins for public addresses, since real public addresses must never appear in made-up reports.
    The synthetic pipeline sets this so that its reports can link; real intake must leave it off, as no
    real report should carry a documentation address and one that does cannot identify anybody.
    """
    text = unicodedata.normalize("NFKC", raw).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(text)
    except ValueError:
        return IpInfo(address=raw.strip(), version=None, kind="invalid", linkable=False)
    if isinstance(addr, ipaddress.IPv6Address):
        # ::ffff:a.b.c.d is the IPv4 host a.b.c.d seen through a dual-stack socket
        mapped = addr.ipv4_mapped
        if mapped is not None:
            addr = mapped
        elif addr.scope_id:
            # the zone (%eth0) names an interface of the capturing machine, not a property of the address
            addr = ipaddress.IPv6Address(text.split("%", 1)[0])
    kind: IpKind = next((k for net, k in _IP_RANGES if net.version == addr.version and addr in net), "public")
    if kind == "public" and not addr.is_global:
        kind = "reserved"
    linkable = kind == "public" or (kind == "documentation" and treat_documentation_as_public)
    return IpInfo(address=addr.compressed, version=addr.version, kind=kind, linkable=linkable)


# ---------------------------------------------------------------------------------- report identifiers

IdentifierKind = Literal["email", "phone", "username", "esp_account", "ip", "device"]


@dataclass(frozen=True)
class Identifier:
    kind: IdentifierKind
    value: str  # the normalised comparison key; for an identifier that did not normalise, the trimmed original
    original: str
    path: str  # where in the report it came from, e.g. "reported_people[0].person.emails[1]"
    verified: bool | None = None  # the provider's own verified flag, where the report gives one
    timestamp: datetime | None = None  # when it was seen: IP capture and device events
    linkable: bool = True  # False for values that did not normalise and for IPs that must not link alone
    detail: str | None = None  # the IP kind, the phone number type, the device id type, or "invalid"


def account_identifiers(
    report: Report,
    *,
    default_region: str | None = None,
    treat_documentation_as_public: bool = False,
) -> list[Identifier]:
    """Every identifier of every account in a report, normalised, in document order.

    Accounts are the reported people, intended recipients and victims, with their associated accounts.
    ``default_region`` places phone numbers of accounts with no estimated-location country (the caller
    passes the country of the report's IP addresses, when known). An ESP id with no service of its own is
    scoped by the reporting provider, whose id space it belongs to.

    Values that do not normalise are kept, with ``linkable=False`` and ``detail="invalid"``, so that
    nothing the provider gave disappears between the report and the link stage.
    """
    roles: tuple[tuple[str, Sequence[Account]], ...] = (
        ("reported_people", report.reported_people),
        ("intended_recipients", report.intended_recipients),
        ("victims", report.victims),
    )
    out: list[Identifier] = []
    for role, accounts in roles:
        for i, account in enumerate(accounts):
            out.extend(_account(account, f"{role}[{i}]", report.provider, default_region, treat_documentation_as_public))
    return out


def _account(account: Account, path: str, provider: str | None, default_region: str | None, doc_public: bool) -> Iterator[Identifier]:
    region = (account.estimated_location.country_code if account.estimated_location else None) or default_region
    if account.person is not None:
        for j, email in enumerate(account.person.emails):
            yield _email(email.address, f"{path}.person.emails[{j}]", email.verified)
        for j, phone in enumerate(account.person.phones):
            yield _phone(phone, f"{path}.person.phones[{j}]", region)
    yield from _handles(account.esp_service, account.esp_identifier, account.screen_name, path, provider)
    yield from _ips(account.ip_events, f"{path}.ip_events", doc_public)
    yield from _devices(account.device_ids, f"{path}.device_ids")
    for k, assoc in enumerate(account.associated_accounts):
        yield from _associated(assoc, f"{path}.associated_accounts[{k}]", provider)


def _associated(assoc: AssociatedAccount, path: str, provider: str | None) -> Iterator[Identifier]:
    yield from _handles(assoc.esp_service, assoc.esp_identifier, assoc.screen_name, path, provider)


def _handles(service: str | None, esp_id: str | None, screen_name: str | None, path: str, provider: str | None) -> Iterator[Identifier]:
    if esp_id and esp_id.strip():
        yield Identifier(kind="esp_account", value=esp_account_key(service or provider, esp_id), original=esp_id, path=f"{path}.esp_identifier")
    if screen_name:
        name = normalize_username(screen_name)
        if name:
            yield Identifier(kind="username", value=name, original=screen_name, path=f"{path}.screen_name")


def _email(address: str, path: str, verified: bool | None) -> Identifier:
    norm = normalize_email(address)
    if norm is None:
        return Identifier(kind="email", value=address.strip(), original=address, path=path, verified=verified, linkable=False, detail="invalid")
    return Identifier(kind="email", value=norm.value, original=address, path=path, verified=verified)


def _phone(phone: Phone, path: str, region: str | None) -> Identifier:
    text = phone.number.strip()
    digits = re.sub(r"\D", "", phone.country_calling_code or "").lstrip("0")
    # the report may give the country calling code in its own field; a number already written
    # internationally carries its own, which wins
    if digits and not text.startswith(("+", "00")):
        text = f"+{digits} {text}"
    if phone.extension and phone.extension.strip():
        text = f"{text} ext. {phone.extension.strip()}"
    norm = normalize_phone(text, region)
    if norm is None:
        return Identifier(kind="phone", value=phone.number.strip(), original=phone.number, path=path, verified=phone.verified, linkable=False, detail="invalid")
    return Identifier(kind="phone", value=norm.value, original=phone.number, path=path, verified=phone.verified, detail=norm.number_type)


def _ips(events: Iterable[IpCaptureEvent], path: str, doc_public: bool) -> Iterator[Identifier]:
    for j, event in enumerate(events):
        info = classify_ip(event.ip_address, treat_documentation_as_public=doc_public)
        yield Identifier(
            kind="ip",
            value=info.address,
            original=event.ip_address,
            path=f"{path}[{j}].ip_address",
            timestamp=event.date_time,
            linkable=info.linkable,
            detail=info.kind,
        )


def _devices(devices: Iterable[DeviceId], path: str) -> Iterator[Identifier]:
    for j, device in enumerate(devices):
        value = normalize_device_id(device.id_value)
        if not value:
            continue
        yield Identifier(
            kind="device",
            value=value,
            original=device.id_value,
            path=f"{path}[{j}].id_value",
            timestamp=device.date_time,
            detail=device.id_type,
        )
