"""Offline location estimates: every source, the time rule, the combination rule, and no network.

Addresses: well-known public resolvers (8.8.8.8, 9.9.9.9, 1.1.1.1, 2001:4860::/32) for real database
answers, the RFC 5737/6598/1918 ranges for "gives nothing". Phones: NANP 555-01xx and Ofcom's drama
range 020 7946 0xxx, both reserved for fiction.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet  # type: ignore[import-untyped]

from tiptriage.enrich.geo import (
    DEFAULT_RULES,
    GEOIP_DB_ENV,
    GeoSources,
    IpAddress,
    IptoccLookup,
    LocationEstimate,
    TorGeoIpLookup,
    classify_ip,
    estimate_location,
    ip_time_factor,
    region_code,
)
from tiptriage.model.enums import EventName, IncidentType
from tiptriage.model.report import Account, EstimatedLocation, IpCaptureEvent, Person, Phone, Report

INCIDENT = datetime(2026, 10, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test here runs with sockets and name resolution disabled: the estimate must be offline."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    for name in ("socket", "create_connection", "getaddrinfo", "gethostbyname", "socketpair"):
        monkeypatch.setattr(socket, name, refuse)


@pytest.fixture
def mmdb(tmp_path: Path) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City", languages=["en"], description="test")
    mountain_view = {
        "country": {"iso_code": "US", "names": {"en": "United States"}},
        "subdivisions": [{"iso_code": "CA", "names": {"en": "California"}}],
        "city": {"names": {"en": "Mountain View"}},
    }
    writer.insert_network(IPSet(["8.8.8.0/24"]), mountain_view)
    writer.insert_network(IPSet(["2001:4860::/32"]), mountain_view)
    writer.insert_network(IPSet(["9.9.9.0/24"]), {"country": {"iso_code": "CH"}, "traits": {"is_anonymous_proxy": True}})
    path = tmp_path / "city.mmdb"
    writer.to_db_file(str(path))
    return path


class FakeCountryDb:
    """A country database answering from a dict, recording what it was asked."""

    def __init__(self, answers: dict[str, str], name: str = "fake") -> None:
        self.answers = answers
        self.name = name
        self.asked: list[str] = []

    def country(self, ip: IpAddress) -> str | None:
        self.asked.append(str(ip))
        return self.answers.get(str(ip))


def report(incident: datetime = INCIDENT) -> Report:
    return Report(id="R-1", received_at=incident, incident_type=IncidentType.ONLINE_ENTICEMENT, incident_datetime=incident)


def login(ip: str, when: datetime | None = INCIDENT, proxy: bool | None = None) -> IpCaptureEvent:
    return IpCaptureEvent(ip_address=ip, event_name=EventName.LOGIN, date_time=when, possible_proxy=proxy)


def account(ips: list[IpCaptureEvent] = [], phones: list[str] = [], provider: EstimatedLocation | None = None) -> Account:  # noqa: B006
    return Account(ip_events=ips, person=Person(phones=[Phone(number=p) for p in phones]), estimated_location=provider)


def ip(text: str) -> IpAddress:
    address, reason = classify_ip(text)
    assert address is not None, reason
    return address


def fake_sources(answers: dict[str, str]) -> GeoSources:
    return GeoSources(country_dbs=[FakeCountryDb(answers)])


# ------------------------------------------------------------------------------------------ sources


def test_network_is_really_refused() -> None:
    with pytest.raises(AssertionError, match="network"):
        socket.socket()


def test_iptocc_gives_the_registry_country_of_public_resolvers() -> None:
    db = IptoccLookup()
    assert db.name.startswith("iptocc 3.")
    assert db.country(ip("8.8.8.8")) == "US"
    assert db.country(ip("2001:4860:4860::8888")) == "US"
    # 1.1.1.0/24 is anycast by Cloudflare, but APNIC delegated it to its own research arm in
    # Australia: iptocc reports the delegation, not where the answering server stands.
    assert db.country(ip("1.1.1.1")) == "AU"


def test_single_ip_via_iptocc_is_weak_and_goes_to_review() -> None:
    sources = GeoSources.from_env({}, tor_dir=None)
    est = estimate_location(account(ips=[login("8.8.8.8")]), report(), sources)
    assert (est.country_code, est.region, est.city) == ("US", None, None)
    assert 0 < est.confidence < 0.5 and est.needs_review
    [ev] = est.evidence
    assert ev.source == "ip:iptocc"
    assert "IP 8.8.8.8 (Login 2026-10-02T10:00Z) → US by iptocc 3." in ev.detail


def test_mmdb_from_env_gives_region_and_city(mmdb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GEOIP_DB_ENV, str(mmdb))
    sources = GeoSources.from_env(tor_dir=None)
    try:
        assert sources.city_db is not None and sources.city_db.name.startswith("GeoLite2-City ")
        est = estimate_location(account(ips=[login("8.8.8.8"), login("2001:4860:1::1")]), report(), sources)
    finally:
        sources.close()
    assert (est.country_code, est.region, est.city) == ("US", "CA", "Mountain View")
    assert [ev.source for ev in est.evidence] == ["ip:mmdb+iptocc", "ip:mmdb+iptocc"]
    assert est.evidence[0].value == "US-CA Mountain View"
    # two addresses agreeing is better than one, and region and city are never surer than the country
    assert est.confidence > 0.5
    assert est.city_confidence <= est.region_confidence <= est.confidence
    assert not any(GEOIP_DB_ENV in n for n in est.notes)


def test_mmdb_anonymous_proxy_trait_lowers_the_weight(mmdb: Path) -> None:
    sources = GeoSources.from_env({GEOIP_DB_ENV: str(mmdb)}, tor_dir=None)
    try:
        est = estimate_location(account(ips=[login("9.9.9.9")]), report(), sources)
    finally:
        sources.close()
    [ev] = est.evidence
    # the mmdb is preferred (CH) and iptocc disagrees (US): both the disagreement and the proxy count
    assert ev.country_code == "CH"
    assert ev.weight == pytest.approx(DEFAULT_RULES.ip_weight * DEFAULT_RULES.ip_databases_disagree_factor * DEFAULT_RULES.ip_proxy_factor)
    assert "databases disagree" in ev.detail and "possible proxy" in ev.detail


def test_absent_or_broken_mmdb_is_skipped_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GEOIP_DB_ENV, raising=False)
    sources = GeoSources.from_env(tor_dir=tmp_path)
    assert sources.city_db is None
    est = estimate_location(account(ips=[login("8.8.8.8")]), report(), sources)
    assert est.country_code == "US" and est.region is None
    assert any(f"{GEOIP_DB_ENV} is not set" in n for n in est.notes)
    assert any("tor-geoip skipped" in n for n in est.notes)

    bad = tmp_path / "broken.mmdb"
    bad.write_bytes(b"not a database")
    broken = GeoSources.from_env({GEOIP_DB_ENV: str(bad)}, tor_dir=None)
    assert broken.city_db is None
    assert any("could not be opened" in n for n in broken.notes)


def test_tor_geoip_files_are_read_lazily(tmp_path: Path) -> None:
    header = "# Location Database Export\n#\n# Generated: Thu, 25 Jun 2026 04:33:59 GMT\n# License:   CC BY-SA 4.0\n"
    (tmp_path / "geoip").write_text(header + "134744064,134744319,US\n167772160,184549375,??\n")  # 8.8.8.0/24, 10/8
    (tmp_path / "geoip6").write_text(header + "2001:4860::,2001:4860:ffff:ffff:ffff:ffff:ffff:ffff,US\n")
    db = TorGeoIpLookup.from_dir(tmp_path)
    assert db is not None and db.name == "tor-geoip (IPFire Location 2026-06-25)"
    assert db._tables == {}  # nothing parsed before the first lookup
    assert db.country(ip("8.8.8.8")) == "US"
    assert db.country(ip("8.8.9.1")) is None
    assert set(db._tables) == {4}
    assert db.country(ip("2001:4860::8888")) == "US"
    assert TorGeoIpLookup.from_dir(tmp_path / "absent") is None

    sources = GeoSources.from_env({}, tor_dir=tmp_path)
    est = estimate_location(account(ips=[login("8.8.8.8")]), report(), sources)
    assert est.evidence[0].source == "ip:tor-geoip+iptocc"


def test_installed_tor_geoipdb_when_present() -> None:
    db = TorGeoIpLookup.from_dir(Path("/usr/share/tor"))
    if db is None:
        pytest.skip("Debian tor-geoipdb is not installed")
    assert db.country(ip("8.8.8.8")) == "US"


# ------------------------------------------------------------------------------------------- phones


def test_phone_gives_country_and_us_state() -> None:
    est = estimate_location(account(phones=["+1 202 555 0143"]), report(), GeoSources())
    assert (est.country_code, est.region) == ("US", "DC")
    assert est.needs_review  # one phone is a weak source
    assert "Washington D.C." in est.evidence[0].detail and "phonenumbers" in est.evidence[0].detail

    uk = estimate_location(account(phones=["+44 20 7946 0958"]), report(), GeoSources())
    assert (uk.country_code, uk.region) == ("GB", None)


def test_phones_without_location_are_noted_not_used() -> None:
    est = estimate_location(
        account(phones=["2025550143", "+1 800 555 0100", "+1 202 555 0143", "+1 (202) 555-0143"]), report(), GeoSources()
    )
    # a bare national number has no country we may assume; toll-free numbers have no place; a number
    # listed twice is one observation
    assert len(est.evidence) == 1
    assert any("not parsed" in n for n in est.notes)
    assert any("toll free" in n for n in est.notes)


def test_country_calling_code_completes_a_national_number() -> None:
    acct = Account(person=Person(phones=[Phone(number="202 555 0143", country_calling_code="+1")]))
    est = estimate_location(acct, report(), GeoSources())
    assert (est.country_code, est.region) == ("US", "DC")


@pytest.mark.parametrize(
    ("country", "name", "code"),
    [
        ("US", "California", "CA"),
        ("US", "Washington D.C.", "DC"),
        ("US", "Washington State", "WA"),
        ("US", "San Francisco, CA", "CA"),
        ("US", "US-TX", "TX"),
        ("US", "ny", "NY"),
        ("CA", "British Colombia", "BC"),  # libphonenumber's own spelling for one area code
        ("CA", "Nova Scotia/Prince Edward Island", None),
        ("US", "", None),
        ("GB", "London", None),
    ],
)
def test_region_names_become_codes(country: str, name: str, code: str | None) -> None:
    assert region_code(country, name) == code


# -------------------------------------------------------------------------------------- IP handling


NO_LOCATION = [
    *("10.1.2.3", "192.168.1.1", "172.16.0.9", "100.64.0.1", "127.0.0.1", "169.254.1.1", "224.0.0.1", "::ffff:10.0.0.1"),
    *("fe80::1", "fd00::1", "::1", "192.0.2.1", "198.51.100.7", "203.0.113.5", "2001:db8::1", "not-an-ip"),
]


@pytest.mark.parametrize("address", NO_LOCATION)
def test_private_reserved_and_documentation_addresses_contribute_nothing(address: str) -> None:
    db = FakeCountryDb(dict.fromkeys([address, "10.0.0.1"], "US"))
    est = estimate_location(account(ips=[login(address)]), report(), GeoSources(country_dbs=[db]))
    assert db.asked == []  # never even looked up
    assert est.evidence == [] and est.country_code is None and est.confidence == 0.0 and est.needs_review
    assert any(n.startswith(f"IP {address}: ") for n in est.notes)


def test_reasons_name_the_kind_of_address() -> None:
    assert "carrier-grade NAT" in str(classify_ip("100.64.0.1")[1])
    assert "documentation" in str(classify_ip("198.51.100.7")[1])
    assert classify_ip("224.0.0.1")[1] == "not a unicast address"  # "global" to the stdlib, never a user
    assert classify_ip("10.0.0.1")[1] == "private or reserved range"


def test_ipv4_mapped_address_is_looked_up_as_ipv4() -> None:
    db = FakeCountryDb({"8.8.8.8": "US"})
    est = estimate_location(account(ips=[login("::ffff:8.8.8.8")]), report(), GeoSources(country_dbs=[db]))
    assert db.asked == ["8.8.8.8"] and est.country_code == "US"


def test_ip_time_factor_rule() -> None:
    assert ip_time_factor(INCIDENT, INCIDENT) == 1.0
    assert ip_time_factor(INCIDENT - timedelta(days=30), INCIDENT) == 1.0
    assert ip_time_factor(INCIDENT + timedelta(days=60), INCIDENT) == pytest.approx(0.5)  # after the incident too
    assert ip_time_factor(INCIDENT - timedelta(days=90), INCIDENT) == pytest.approx(0.25)
    assert ip_time_factor(None, INCIDENT) == DEFAULT_RULES.ip_undated_factor
    # time zones are compared as instants, not as wall-clock readings
    assert ip_time_factor(datetime(2026, 10, 2, 12, 0, tzinfo=timezone(timedelta(hours=2))), INCIDENT) == 1.0


def test_old_ip_events_weigh_less_than_ones_near_the_incident() -> None:
    near, far = "8.8.8.8", "9.9.9.9"
    acct = account(ips=[login(near, INCIDENT), login(far, INCIDENT - timedelta(days=200))])
    est = estimate_location(acct, report(), fake_sources({near: "US", far: "US"}))
    weight = {ev.detail.split()[1]: ev.weight for ev in est.evidence}
    assert weight[near] == pytest.approx(DEFAULT_RULES.ip_weight)
    assert weight[far] == pytest.approx(DEFAULT_RULES.ip_weight * 0.5 ** (170 / 30), abs=1e-4)
    assert weight[far] < weight[near] / 10


def test_one_address_counts_once_at_its_event_nearest_the_incident() -> None:
    acct = account(ips=[login("8.8.8.8", INCIDENT - timedelta(days=400)), login("8.8.8.8", INCIDENT), login("8.8.8.8", None)])
    est = estimate_location(acct, report(), fake_sources({"8.8.8.8": "US"}))
    [ev] = est.evidence
    assert ev.weight == pytest.approx(DEFAULT_RULES.ip_weight)
    assert "+2 more events" in ev.detail and ev.observed_at == INCIDENT


def test_possible_proxy_flag_lowers_the_weight() -> None:
    est = estimate_location(account(ips=[login("8.8.8.8", proxy=True)]), report(), fake_sources({"8.8.8.8": "US"}))
    assert est.evidence[0].weight == pytest.approx(DEFAULT_RULES.ip_weight * DEFAULT_RULES.ip_proxy_factor)


# --------------------------------------------------------------------------------------- combining


def test_agreement_raises_and_disagreement_lowers_confidence() -> None:
    sources = fake_sources({"8.8.8.8": "US", "81.2.69.142": "GB"})
    single = estimate_location(account(ips=[login("8.8.8.8")]), report(), sources)
    agree = estimate_location(account(ips=[login("8.8.8.8")], phones=["+1 202 555 0143"]), report(), sources)
    disagree = estimate_location(account(ips=[login("81.2.69.142")], phones=["+1 202 555 0143"]), report(), sources)
    assert agree.confidence > single.confidence > disagree.confidence > 0
    assert single.confidence < 0.5 <= agree.confidence
    assert agree.country_code == "US" and not agree.needs_review
    assert disagree.needs_review


def test_verified_provider_location_dominates() -> None:
    ips = ["8.8.8.8", "8.8.4.4", "9.9.9.9", "4.2.2.2", "64.6.64.6", "208.67.222.222"]
    sources = fake_sources(dict.fromkeys(ips, "US"))
    verified = EstimatedLocation(city="Leeds", region="West Yorkshire", country_code="gb", verified=True)
    est = estimate_location(account(ips=[login(ip) for ip in ips], provider=verified), report(), sources)
    # six agreeing addresses are still capped below one verified provider location
    assert (est.country_code, est.region, est.city) == ("GB", "West Yorkshire", "Leeds")
    assert est.evidence[0].source == "provider" and est.evidence[0].weight == DEFAULT_RULES.provider_verified_weight
    assert est.confidence < estimate_location(account(provider=verified), report(), sources).confidence

    unverified = verified.model_copy(update={"verified": False})
    est = estimate_location(account(ips=[login(ip) for ip in ips], provider=unverified), report(), sources)
    assert est.country_code == "US"


def test_provider_us_state_names_are_normalised_and_agree_with_phone_region() -> None:
    provider = EstimatedLocation(region="District of Columbia", country_code="US", verified=True, timestamp=INCIDENT)
    est = estimate_location(account(phones=["+1 202 555 0143"], provider=provider), report(), GeoSources())
    assert (est.country_code, est.region) == ("US", "DC")
    assert est.region_confidence == est.confidence > 0.85


def test_estimate_is_pure_and_serialisable(mmdb: Path) -> None:
    sources = GeoSources.from_env({GEOIP_DB_ENV: str(mmdb)}, tor_dir=None)
    acct = account(ips=[login("8.8.8.8"), login("10.0.0.1")], phones=["+1 650 555 0100"])
    try:
        first = estimate_location(acct, report(), sources)
        again = estimate_location(acct, report(), sources)
    finally:
        sources.close()
    assert first == again
    assert LocationEstimate.model_validate_json(first.model_dump_json()) == first
    assert first.reference_time == INCIDENT and first.reference_time.tzinfo is not None


@pytest.fixture(autouse=True)
def _fresh_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # the operator's own database must not leak into expectations
    monkeypatch.delenv(GEOIP_DB_ENV, raising=False)
    yield
