"""Identifier normalisation: equal identifiers meet, different ones never do.

Test data keeps to placeholders: example.com/.net/.org (RFC 2606), the documentation IP ranges
(RFC 5737, RFC 3849), NANP 555-01XX numbers and Ofcom's drama range for the one UK number. The only
real addresses are the well-known public DNS resolvers, used to show what "public" means.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tiptriage.enrich import (
    Identifier,
    NormalizedEmail,
    NormalizedPhone,
    account_identifiers,
    classify_ip,
    esp_account_key,
    normalize_device_id,
    normalize_email,
    normalize_phone,
    normalize_username,
)
from tiptriage.enrich.identifiers import _provider_table
from tiptriage.model.enums import IncidentType
from tiptriage.model.report import (
    Account,
    AssociatedAccount,
    DeviceId,
    Email,
    EstimatedLocation,
    IpCaptureEvent,
    Person,
    Phone,
    Report,
    Victim,
)

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def email(raw: str) -> NormalizedEmail:
    norm = normalize_email(raw)
    assert norm is not None, raw
    return norm


def phone_of(raw: str, hint: str | None) -> NormalizedPhone:
    norm = normalize_phone(raw, hint)
    assert norm is not None, (raw, hint)
    return norm

# ------------------------------------------------------------------------------------------- e-mail

_DOMAINS = ["example.com", "Example.NET", "example.org", "gmail.com", "GoogleMail.com", "outlook.com", "bücher.example", "icloud.com"]
_LOCAL_ALPHABET = st.sampled_from([*"abcxyzABCXYZ0189._-+", "р", "а", "ß", "Ｐ", "é"])
_locals = st.text(_LOCAL_ALPHABET, min_size=1, max_size=20)


@FAST
@given(local=_locals, domain=st.sampled_from(_DOMAINS))
def test_email_normalisation_is_idempotent(local: str, domain: str) -> None:
    first = normalize_email(f"{local}@{domain}")
    if first is not None:
        again = normalize_email(first.value)
        assert again is not None
        assert again.value == first.value


@FAST
@given(text=st.text(max_size=40))
def test_email_normalisation_is_idempotent_on_any_text(text: str) -> None:
    first = normalize_email(text)
    if first is not None:
        again = normalize_email(first.value)
        assert again is not None and again.value == first.value


@FAST
@given(local=st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){0,2}", fullmatch=True), domain=st.sampled_from(_DOMAINS), data=st.data())
def test_email_case_variants_map_together(local: str, domain: str, data: st.DataObject) -> None:
    flips = data.draw(st.lists(st.booleans(), min_size=len(local), max_size=len(local)))
    variant = "".join(c.upper() if f else c for c, f in zip(local, flips, strict=True))
    a, b = normalize_email(f"{local}@{domain}"), normalize_email(f"{variant}@{domain.upper()}")
    assert a is not None and b is not None
    assert a.value == b.value


def test_gmail_dots_tags_and_googlemail_collapse() -> None:
    forms = ["paul.smith@gmail.com", "PaulSmith@gmail.com", "p.a.u.l.smith+newsletter@gmail.com", "paulsmith+a+b@googlemail.com"]
    values = {email(f).value for f in forms}
    assert values == {"paulsmith@gmail.com"}
    rules = email("Paul.Smith+x@GoogleMail.com").rules_applied
    assert rules == ["casefold", "subaddress:Gmail", "dots:Gmail", "domain:Gmail"]


def test_unknown_domains_keep_dots_and_tags() -> None:
    # never guess: at a domain with no documented rule, dots and tags may name other mailboxes
    assert email("paul.smith+tag@example.com").value == "paul.smith+tag@example.com"
    assert email("paul.smith+tag@example.com").value != email("paulsmith@example.com").value
    # outlook.com documents +tags but not dots
    assert email("paul.smith+x@outlook.com").value == "paul.smith@outlook.com"
    # a provider's domain is not a neighbouring provider's
    assert email("paul@me.com").value != email("paul@icloud.com").value


def test_email_unicode_forms() -> None:
    full = normalize_email("ＰＡＵＬ@Example.ORG")
    assert full is not None and full.value == "paul@example.org" and full.rules_applied == ["nfkc", "casefold"]
    idn = normalize_email("Kim@Bücher.Example")
    assert idn is not None and idn.value == "kim@xn--bcher-kva.example" and "idna" in idn.rules_applied
    assert email("kim@xn--bcher-kva.example").value == idn.value
    assert idn.original == "Kim@Bücher.Example"


@pytest.mark.parametrize("raw", ["", "paul", "paul@", "@example.com", "a@b", "a..b@example.com", "a@example..com", "a b@example.com", "a@exa mple.com", "a@" + "x" * 64 + ".example"])
def test_invalid_emails_are_none(raw: str) -> None:
    assert normalize_email(raw) is None


def test_a_bare_tag_at_a_provider_is_kept_as_written() -> None:
    assert email("+tag@gmail.com").value == "+tag@gmail.com"


def test_provider_data_is_sourced_and_checked() -> None:
    raw = json.loads(resources.files("tiptriage.data").joinpath("email_providers.json").read_text("utf-8"))
    for provider in raw["providers"]:
        for rule in provider["rules"]:
            assert rule["source"].startswith(("https://", "http://"))
            assert rule["source_kind"] in {"vendor", "secondary"}
    bad = {"providers": [{"provider": "X", "domains": ["example.com"], "rules": [{"rule": "ignore_dot", "source": "https://example.com/"}]}]}
    with pytest.raises(ValueError, match="unknown rule"):
        _provider_table(bad)
    unsourced = {"providers": [{"provider": "X", "domains": ["example.com"], "rules": [{"rule": "ignore_dots"}]}]}
    with pytest.raises(ValueError, match="source"):
        _provider_table(unsourced)


# -------------------------------------------------------------------------------------------- phone


@pytest.mark.parametrize("raw", ["+1 (202) 555-0143", "202.555.0143", "2025550143", "(202) 555 0143", "1-202-555-0143", "＋１ ２０２ ５５５ ０１４３"])
def test_us_phone_formats_meet(raw: str) -> None:
    phone = normalize_phone(raw, "US")
    assert phone is not None
    assert phone.value == "+12025550143"
    assert phone.original == raw


def test_uk_number_with_gb_hint() -> None:
    # Ofcom's range for drama, never assigned to a subscriber
    phone = normalize_phone("020 7946 0018", "GB")
    assert phone is not None
    assert (phone.value, phone.region, phone.valid, phone.number_type) == ("+442079460018", "GB", True, "FIXED_LINE")
    # the same digits read with a US hint are another number, or none
    other = normalize_phone("020 7946 0018", "US")
    assert other is None or other.value != phone.value


def test_phone_hint_handling() -> None:
    assert normalize_phone("2025550143", None) is None  # no country code and nothing to place it
    assert normalize_phone("2025550143", "XX") is None  # an unknown region is no hint
    assert phone_of("2025550143", " us ").value == "+12025550143"
    assert phone_of("+1 202 555 0143", "GB").value == "+12025550143"  # a written code wins
    assert phone_of("202-555-0143 ext. 7", "US").extension == "7"


@pytest.mark.parametrize("raw", ["", "   ", "abc", "12", "not a number at all"])
def test_unparseable_phones_are_none(raw: str) -> None:
    assert normalize_phone(raw, "US") is None


_areas = st.sampled_from(["202", "212", "312", "415", "617"])
_lines = st.integers(min_value=100, max_value=199).map(lambda n: f"0{n}"[-4:])


@FAST
@given(area=_areas, line=_lines, fmt=st.sampled_from(["+1 ({a}) 555-{l}", "{a}.555.{l}", "{a}555{l}", "1 {a} 555 {l}", "({a})555-{l}"]))
def test_phone_formats_agree_and_are_idempotent(area: str, line: str, fmt: str) -> None:
    phone = normalize_phone(fmt.format(a=area, l=line), "US")
    assert phone is not None
    assert phone.value == f"+1{area}555{line}"
    again = normalize_phone(phone.value, "US")
    assert again is not None and again.value == phone.value
    # an E.164 value needs no hint at all
    assert phone_of(phone.value, None).value == phone.value


@FAST
@given(text=st.text(st.sampled_from(list("0123456789+()-. xet#*")), max_size=25), hint=st.sampled_from(["US", "GB", "DE", "IN", None]))
def test_phone_normalisation_is_idempotent_on_any_text(text: str, hint: str | None) -> None:
    first = normalize_phone(text, hint)
    if first is not None:
        again = normalize_phone(first.value, hint)
        assert again is not None and again.value == first.value


# ----------------------------------------------------------------------------------------- username


def test_confusables_meet_their_latin_form() -> None:
    latin = normalize_username("paul")
    assert latin == "paul"
    for look_alike in ["раul", "pаul", "РАUL", "ΡΑUL", "@раul", " @Paul ", "pa\u200bul", "𝐩𝐚𝐮𝐥", "ｐａｕｌ"]:
        assert normalize_username(look_alike) == latin, look_alike
    assert normalize_username("раul") != "раul"  # the Cyrillic input itself is not the key


def test_usernames_that_differ_stay_apart() -> None:
    # only letters from other scripts are mapped: ASCII handles that differ are different handles
    assert normalize_username("paul1") != normalize_username("paull")
    assert normalize_username("rn") != normalize_username("m")
    assert normalize_username("paul_") != normalize_username("paul")
    assert normalize_username("pa ul") != normalize_username("paul")


@FAST
@given(text=st.text(max_size=30))
def test_username_normalisation_is_idempotent(text: str) -> None:
    once = normalize_username(text)
    assert normalize_username(once) == once


@FAST
@given(text=st.text(st.sampled_from(list("abcdefghijklmnopqrstuvwxyz0123456789_.")), min_size=1, max_size=20), data=st.data())
def test_username_case_variants_map_together(text: str, data: st.DataObject) -> None:
    flips = data.draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    variant = "".join(c.upper() if f else c for c, f in zip(text, flips, strict=True))
    assert normalize_username(variant) == normalize_username(text) == text


# ------------------------------------------------------------------------------------------ ESP ids


def test_esp_account_keys_are_scoped_by_service() -> None:
    assert esp_account_key("ServiceA", "12345") == "servicea:12345"
    assert esp_account_key("  Service\tA  ", " 12345 ") == "service a:12345"
    assert esp_account_key("service a", "12345") != esp_account_key("service b", "12345")
    assert esp_account_key("ServiceA", "AbC") != esp_account_key("ServiceA", "abc")  # ids may be case-sensitive
    assert esp_account_key(None, "12345") == ":12345"
    assert esp_account_key("a:b", "c") != esp_account_key("a", "b:c")
    with pytest.raises(ValueError):
        esp_account_key("ServiceA", "  ")


def test_device_ids() -> None:
    assert normalize_device_id("AA:BB:CC:00:11:22") == normalize_device_id("aa-bb-cc-00-11-22") == "aabbcc001122"
    assert normalize_device_id(" 35-209900-176148-1 ") == "352099001761481"
    assert normalize_device_id("Token/XyZ") == "Token/XyZ"


# ----------------------------------------------------------------------------------------------- IP


@pytest.mark.parametrize(
    ("raw", "address", "version", "kind"),
    [
        ("100.64.1.1", "100.64.1.1", 4, "cgnat"),
        ("10.0.0.1", "10.0.0.1", 4, "private"),
        ("172.16.5.4", "172.16.5.4", 4, "private"),
        ("192.168.1.1", "192.168.1.1", 4, "private"),
        ("127.0.0.1", "127.0.0.1", 4, "loopback"),
        ("169.254.10.10", "169.254.10.10", 4, "link-local"),
        ("0.0.0.0", "0.0.0.0", 4, "unspecified"),
        ("224.0.0.251", "224.0.0.251", 4, "multicast"),
        ("240.0.0.1", "240.0.0.1", 4, "reserved"),
        ("255.255.255.255", "255.255.255.255", 4, "reserved"),
        ("198.18.0.1", "198.18.0.1", 4, "reserved"),
        ("192.0.2.10", "192.0.2.10", 4, "documentation"),
        ("198.51.100.7", "198.51.100.7", 4, "documentation"),
        ("203.0.113.200", "203.0.113.200", 4, "documentation"),
        ("::1", "::1", 6, "loopback"),
        ("::", "::", 6, "unspecified"),
        ("fe80::1", "fe80::1", 6, "link-local"),
        ("fe80::1%eth0", "fe80::1", 6, "link-local"),
        ("fc00::1", "fc00::1", 6, "private"),
        ("fd12:3456::1", "fd12:3456::1", 6, "private"),
        ("2001:db8::1", "2001:db8::1", 6, "documentation"),
        ("2001:0DB8:0000::0001", "2001:db8::1", 6, "documentation"),
        ("[2001:db8::1]", "2001:db8::1", 6, "documentation"),
        ("ff02::1", "ff02::1", 6, "multicast"),
        ("::ffff:10.0.0.1", "10.0.0.1", 4, "private"),
        ("::ffff:192.0.2.1", "192.0.2.1", 4, "documentation"),
        ("8.8.8.8", "8.8.8.8", 4, "public"),
        (" 8.8.8.8 ", "8.8.8.8", 4, "public"),
        ("2001:4860:4860::8888", "2001:4860:4860::8888", 6, "public"),
        ("::ffff:8.8.8.8", "8.8.8.8", 4, "public"),
    ],
)
def test_ip_kinds(raw: str, address: str, version: int, kind: str) -> None:
    info = classify_ip(raw)
    assert (info.address, info.version, info.kind) == (address, version, kind)
    assert info.linkable is (kind == "public")


@pytest.mark.parametrize("raw", ["", "nonsense", "256.1.1.1", "010.0.0.1", "192.0.2.1:443", "2001:db8::g", "1.2.3"])
def test_invalid_ips(raw: str) -> None:
    info = classify_ip(raw)
    assert (info.kind, info.version, info.linkable) == ("invalid", None, False)


@FAST
@given(addr=st.ip_addresses())
def test_ip_classification_is_idempotent(addr: object) -> None:
    info = classify_ip(str(addr))
    assert info.kind != "invalid"
    again = classify_ip(info.address)
    assert (again.address, again.version, again.kind, again.linkable) == (info.address, info.version, info.kind, info.linkable)


def test_documentation_addresses_link_only_when_asked() -> None:
    assert classify_ip("192.0.2.10").linkable is False
    assert classify_ip("192.0.2.10", treat_documentation_as_public=True).linkable is True
    assert classify_ip("2001:db8::5", treat_documentation_as_public=True).linkable is True
    # the switch never makes shared ranges linkable
    for raw in ["10.0.0.1", "100.64.1.1", "fc00::1", "::1"]:
        assert classify_ip(raw, treat_documentation_as_public=True).linkable is False


# ---------------------------------------------------------------------------------- whole report

T1 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
T2 = datetime(2024, 3, 2, 8, 30, tzinfo=UTC)


def _report() -> Report:
    suspect = Account(
        person=Person(
            emails=[Email(address="Paul.Smith@example.com", verified=True), Email(address="paul.s+x@GoogleMail.com"), Email(address="not-an-email")],
            phones=[Phone(number="202.555.0143", verified=False), Phone(number="202 555 0144", country_calling_code="1")],
        ),
        esp_identifier="12345",
        esp_service=" Service  A ",
        screen_name="@Раul_S",
        ip_events=[
            IpCaptureEvent(ip_address="192.0.2.10", date_time=T1),
            IpCaptureEvent(ip_address="10.0.0.7", date_time=T2),
        ],
        device_ids=[DeviceId(id_type="MAC", id_value="AA:BB:CC:00:11:22", date_time=T1)],
        estimated_location=EstimatedLocation(country_code="US"),
        associated_accounts=[AssociatedAccount(esp_identifier="777", screen_name="paul.alt")],
    )
    return Report(
        id="R-1",
        provider="ExampleESP",
        received_at=T2,
        incident_type=IncidentType.ONLINE_ENTICEMENT,
        incident_datetime=T1,
        reported_people=[suspect],
        intended_recipients=[Account(esp_identifier="m000000001", esp_service="ServiceA", screen_name="kid_one")],
        victims=[Victim(person=Person(phones=[Phone(number="202 555 0199")]), screen_name="kid_one")],
    )


def test_account_identifiers_paths_and_values() -> None:
    ids = account_identifiers(_report(), default_region="GB")
    got = [(i.kind, i.value, i.path) for i in ids]
    assert got == [
        ("email", "paul.smith@example.com", "reported_people[0].person.emails[0]"),
        ("email", "pauls@gmail.com", "reported_people[0].person.emails[1]"),
        ("email", "not-an-email", "reported_people[0].person.emails[2]"),
        ("phone", "+12025550143", "reported_people[0].person.phones[0]"),
        ("phone", "+12025550144", "reported_people[0].person.phones[1]"),
        ("esp_account", "service a:12345", "reported_people[0].esp_identifier"),
        ("username", "paul_s", "reported_people[0].screen_name"),
        ("ip", "192.0.2.10", "reported_people[0].ip_events[0].ip_address"),
        ("ip", "10.0.0.7", "reported_people[0].ip_events[1].ip_address"),
        ("device", "aabbcc001122", "reported_people[0].device_ids[0].id_value"),
        ("esp_account", "exampleesp:777", "reported_people[0].associated_accounts[0].esp_identifier"),
        ("username", "paul.alt", "reported_people[0].associated_accounts[0].screen_name"),
        ("esp_account", "servicea:m000000001", "intended_recipients[0].esp_identifier"),
        ("username", "kid_one", "intended_recipients[0].screen_name"),
        # the victim has no location, so the caller's default region places the number: read as
        # British it is another (possible, not valid) number than the US one, as it should be
        ("phone", "+442025550199", "victims[0].person.phones[0]"),
        ("username", "kid_one", "victims[0].screen_name"),
    ]


def test_account_identifiers_flags() -> None:
    by_path = {i.path: i for i in account_identifiers(_report(), treat_documentation_as_public=True)}
    first = by_path["reported_people[0].person.emails[0]"]
    assert (first.verified, first.original, first.linkable) == (True, "Paul.Smith@example.com", True)
    bad = by_path["reported_people[0].person.emails[2]"]
    assert (bad.linkable, bad.detail) == (False, "invalid")
    assert by_path["reported_people[0].person.phones[0]"].verified is False
    doc_ip = by_path["reported_people[0].ip_events[0].ip_address"]
    assert (doc_ip.timestamp, doc_ip.linkable, doc_ip.detail) == (T1, True, "documentation")
    private_ip = by_path["reported_people[0].ip_events[1].ip_address"]
    assert (private_ip.timestamp, private_ip.linkable, private_ip.detail) == (T2, False, "private")
    device = by_path["reported_people[0].device_ids[0].id_value"]
    assert (device.timestamp, device.detail, device.original) == (T1, "MAC", "AA:BB:CC:00:11:22")
    # without the switch, a documentation address does not link
    plain = {i.path: i for i in account_identifiers(_report())}
    assert plain["reported_people[0].ip_events[0].ip_address"].linkable is False
    # without a region the victim's national-format number cannot be placed, and is kept unlinkable
    victim_phone = plain["victims[0].person.phones[0]"]
    assert (victim_phone.linkable, victim_phone.detail, victim_phone.value) == (False, "invalid", "202 555 0199")


def test_identifiers_are_frozen_and_hashable() -> None:
    ident = account_identifiers(_report())[0]
    assert isinstance(ident, Identifier)
    assert len({ident, ident}) == 1
    with pytest.raises(AttributeError):
        ident.value = "x"  # type: ignore[misc]
