"""Jurisdictions as data and confidence-aware routing: the packaged agencies file, and every routing rule.

Addresses in evidence are public resolvers (8.8.8.8, 9.9.9.9); phones the NANP 555-01xx fiction range.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest

from tiptriage.enrich.geo import LocationEstimate, LocationEvidence
from tiptriage.route.jurisdictions import Agency, Jurisdictions, load, lookup, normalize_county, parse
from tiptriage.route.routing import DEFAULT, RoutingRules, route, summarize_evidence

# The regions the ICAC program covers: the 50 states and DC (see data/SOURCES.md for Puerto Rico).
US_REGIONS = [
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA", "ME", "MD",
    "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC",
    "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "DC",
]  # fmt: skip
# US Census Bureau state FIPS codes (the first two digits of every county code in the state)
STATE_FIPS = {
    "AL": "01", "AK": "02", "AZ": "04", "AR": "05", "CA": "06", "CO": "08", "CT": "09", "DE": "10", "DC": "11", "FL": "12",
    "GA": "13", "HI": "15", "ID": "16", "IL": "17", "IN": "18", "IA": "19", "KS": "20", "KY": "21", "LA": "22", "ME": "23",
    "MD": "24", "MA": "25", "MI": "26", "MN": "27", "MS": "28", "MO": "29", "MT": "30", "NE": "31", "NV": "32", "NH": "33",
    "NJ": "34", "NM": "35", "NY": "36", "NC": "37", "ND": "38", "OH": "39", "OK": "40", "OR": "41", "PA": "42", "RI": "44",
    "SC": "45", "SD": "46", "TN": "47", "TX": "48", "UT": "49", "VT": "50", "VA": "51", "WA": "53", "WV": "54", "WI": "55",
    "WY": "56",
}  # fmt: skip
T0 = datetime(2026, 3, 1, tzinfo=UTC)
TASK_FORCES = 61  # OJJDP, ICAC Task Force Program page (FY2024); see data/SOURCES.md
VERIFIED_US = 59  # task forces whose lead agency a retrieved source names; see data/SOURCES.md


# ------------------------------------------------------------------------------------------ helpers


def provider(cc: str, region: str | None = None, *, verified: bool = True) -> LocationEvidence:
    place = f"{cc}-{region}" if region else cc
    status = "verified" if verified else "unverified"
    return LocationEvidence(
        source="provider",
        value=place,
        country_code=cc,
        region=region,
        weight=1.0 if verified else 0.3,
        detail=f"provider's {status} estimated location at 2026-02-28T10:00Z → {place}",
    )


def ip(address: str, cc: str, region: str | None = None) -> LocationEvidence:
    place = f"{cc}-{region}" if region else cc
    return LocationEvidence(
        source="ip:iptocc",
        value=place,
        country_code=cc,
        region=region,
        weight=0.3,
        detail=f"IP {address} (Login 2026-02-27T09:00Z) → {cc} by iptocc 3.3.170; time factor 1",
    )


def phone(cc: str, region: str | None) -> LocationEvidence:
    place = f"{cc}-{region}" if region else cc
    return LocationEvidence(
        source="phone",
        value=place,
        country_code=cc,
        region=region,
        weight=0.3,
        detail=f"phone +1 512-555-0142 (geocoder: 'Texas') → {place} by phonenumbers 9.0.43",
    )


def estimate(
    cc: str | None,
    region: str | None = None,
    *,
    confidence: float = 0.86,
    region_confidence: float | None = None,
    city: str | None = None,
    evidence: list[LocationEvidence] | None = None,
    needs_review: bool | None = None,
) -> LocationEstimate:
    if evidence is None:
        evidence = [provider(cc, region), ip("8.8.8.8", cc)] if cc else []
    return LocationEstimate(
        country_code=cc,
        region=region,
        city=city,
        confidence=confidence,
        region_confidence=confidence if region_confidence is None else region_confidence,
        reference_time=T0,
        evidence=evidence,
        needs_review=confidence < 0.5 if needs_review is None else needs_review,
    )


@pytest.fixture(scope="module")
def data() -> Jurisdictions:
    return load()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("routing must not open a socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield


def us_task_forces(data: Jurisdictions) -> list[Agency]:
    return [a for a in data.agencies if a.kind == "icac"]


# ------------------------------------------------------------------------------------- agencies.json


def sources_md() -> str:
    return " ".join(resources.files("tiptriage.data").joinpath("SOURCES.md").read_text("utf-8").replace("*", "").split())


def test_there_are_61_task_forces_and_sources_md_counts_the_verified_ones(data: Jurisdictions) -> None:
    icac = us_task_forces(data)
    verified = [a for a in icac if a.verified]
    assert len(icac) == TASK_FORCES
    assert len(verified) == VERIFIED_US
    assert f"{TASK_FORCES} US task forces, {VERIFIED_US} verified, {TASK_FORCES - VERIFIED_US} not verified" in sources_md()
    for agency in icac:
        assert agency.kind == "icac" and agency.country == "US" and agency.state in US_REGIONS, agency.id
        if not agency.verified:
            assert agency.note and "Searched" in agency.note, f"{agency.id} is unverified without a note saying what was searched"


def test_every_state_and_dc_resolves_to_exactly_one_default_task_force(data: Jurisdictions) -> None:
    for region in US_REGIONS:
        tied = data.task_forces(region)
        assert tied, region
        whole = [a for a in tied if region in a.covers_states]
        defaults = [a for a in tied if a.state_default and a.state == region]
        assert len(whole) + len(defaults) == 1, region  # one task force takes it whole, or one is its default
        assert data.default_task_force(region) is (whole or defaults)[0], region
        if len(tied) == 1:
            assert data.whole_state_task_force(region) is tied[0], region
        else:
            assert not whole and len(defaults) == 1, region
    stray = {a.state for a in us_task_forces(data)} | {r for a in us_task_forces(data) for r in a.covers_states}
    assert stray <= set(US_REGIONS)
    assert data.by_id("us-icac-va-nova-dc").covers_states == ("DC",)


def test_puerto_rico_is_not_covered_and_the_gap_is_documented(data: Jurisdictions) -> None:
    assert data.task_forces("PR") == []
    assert data.default_task_force("PR") is None
    assert "us-icac-pr" not in {a.id for a in data.agencies}
    assert any("Puerto Rico" in note and "62nd" in note for note in data.notes)
    assert "Puerto Rico" in sources_md()


def test_default_basis_is_set_exactly_for_state_defaults(data: Jurisdictions) -> None:
    for agency in data.agencies:
        assert agency.state_default == (agency.default_basis is not None), agency.id
    basis = {a.state: a.default_basis for a in us_task_forces(data) if a.state_default}
    assert basis == {"CA": "assigned", "FL": "assigned", "TX": "assigned", "IL": "sourced", "NY": "sourced", "VA": "inferred"}
    for agency in us_task_forces(data):
        if agency.default_basis == "assigned":
            assert agency.note and "not public" in agency.note, agency.id


def test_every_entry_has_a_source_and_verified_entries_cite_one_with_a_date(data: Jurisdictions) -> None:
    ids = [a.id for a in data.agencies]
    assert len(ids) == len(set(ids))
    for agency in data.agencies:
        assert agency.source.strip(), agency.id
        if agency.verified and agency.kind != "review":
            assert re.search(r"https?://", agency.source), agency.id
            assert agency.source_date and re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?)?|n\.d\.", agency.source_date), agency.id
            assert agency.lead_agency, agency.id
    for agency in us_task_forces(data):
        assert agency.lead_agency, agency.id
        assert "recollection" not in (agency.note or ""), agency.id  # nothing from memory is left in the file
    assert data.review.kind == "review"
    assert data.eu_member_states_source.startswith("European Union")


def test_ids_are_stable_and_shaped(data: Jurisdictions) -> None:
    for agency in us_task_forces(data):
        assert re.fullmatch(r"us-icac-[a-z]{2}(-[a-z0-9]+)*", agency.id), agency.id
        assert agency.id.startswith(f"us-icac-{agency.state.lower()}" if agency.state else "us-icac-")
    expected = {"us-icac-ca-sacramento", "us-icac-ca-siliconvalley", "us-icac-ca-central", "us-icac-ca-sandiego", "us-icac-ca-losangeles"}
    assert {a.id for a in data.task_forces("CA")} == expected


def test_every_county_belongs_to_its_state_by_fips_prefix(data: Jurisdictions) -> None:
    counted = 0
    for agency in us_task_forces(data):
        for county in agency.counties:
            assert re.fullmatch(r"\d{5}", county.fips), county
            assert county.state == agency.state, (agency.id, county)
            assert county.fips.startswith(STATE_FIPS[county.state]), (agency.id, county)
            assert county.fips[2:] != "000", county
            counted += 1
    sizes = {tf: len(data.by_id(tf).counties) for tf in ("us-icac-fl-north", "us-icac-ca-siliconvalley", "us-icac-ca-losangeles")}
    assert sizes == {"us-icac-fl-north": 38, "us-icac-ca-siliconvalley": 11, "us-icac-ca-losangeles": 5}
    assert counted == 38 + 11 + 5 + 1 + 10  # + Cook County, + the Northern Virginia area


def test_no_county_is_claimed_by_two_task_forces(data: Jurisdictions) -> None:
    owner: dict[str, str] = {}
    names: dict[tuple[str, str], str] = {}
    for agency in us_task_forces(data):
        for county in agency.counties:
            assert county.fips not in owner, f"{county.fips} in {owner.get(county.fips)} and {agency.id}"
            owner[county.fips] = agency.id
            key = (county.state, normalize_county(county.name))
            assert key not in names, f"{key} in {names.get(key)} and {agency.id}"
            names[key] = agency.id


def test_county_lists_only_in_states_with_several_task_forces(data: Jurisdictions) -> None:
    for agency in us_task_forces(data):
        if agency.counties:
            assert agency.state and len(data.task_forces(agency.state)) > 1, agency.id
            assert agency.state not in agency.covers_states, agency.id


def test_national_contact_points_and_europol(data: Jurisdictions) -> None:
    assert len(data.eu_member_states) == 27
    europol = data.by_id("eu-europol-ec3")
    assert europol.kind == "europol" and europol.verified
    assert set(europol.covers_countries) == set(data.eu_member_states)
    for cc, agency_id in {"GB": "gb-nca-ceop", "CA": "ca-rcmp-ncecc", "AU": "au-afp-accce", "NZ": "nz-dia-dcet", "DE": "de-bka"}.items():
        contact = data.national_contact(cc)
        assert contact is not None and contact.id == agency_id and contact.verified, cc
    assert data.europol("GB") is None  # not an EU member
    assert data.europol("NO") is None  # in Europol's 2015 NCMEC flow, but not an EU member


def test_lookup_orders_candidates_most_specific_first(data: Jurisdictions) -> None:
    assert [a.id for a in lookup("US", "IL", "Cook")][:2] == ["us-icac-il-cook", "us-icac-il"]
    assert next(a.id for a in lookup("US", "IL")) == "us-icac-il"
    assert [a.id for a in lookup("DE")] == ["de-bka", "eu-europol-ec3"]
    assert [a.id for a in lookup("JP")] == ["review"]
    assert [a.id for a in lookup("US")] == ["review"]
    assert next(a.id for a in lookup("US", "CA")) == "us-icac-ca-siliconvalley"  # the assigned default
    assert next(a.id for a in lookup("US", "CA", "Ventura")) == "us-icac-ca-losangeles"
    assert [a.id for a in lookup("US", "PR")] == ["review"]


def test_county_names_normalize() -> None:
    assert normalize_county("St. Johns County") == normalize_county("st johns") == "st johns"
    assert normalize_county(" Santa Clara ") == "santa clara"
    assert normalize_county("6085") == "06085"


def test_parse_rejects_a_file_without_sources_or_review() -> None:
    base: dict[str, Any] = {"title": "t", "compiled": "2026-11-25", "eu_member_states": {"codes": [], "source": "s"}}
    review = {"id": "review", "name": "r", "kind": "review", "country": None, "state": None, "lead_agency": None, "note": None}
    with pytest.raises(ValueError, match="no source"):
        parse({**base, "agencies": [{**review, "source": " ", "source_date": None, "verified": True}]})
    with pytest.raises(ValueError, match="no 'review'"):
        parse({**base, "agencies": []})
    ok = {**review, "source": "s", "source_date": None, "verified": True}
    tf = {"id": "us-icac-xx", "name": "x", "kind": "icac", "country": "US", "state": "XX", "lead_agency": "y", "note": None,
          "source": "s", "source_date": None, "verified": True}  # fmt: skip
    with pytest.raises(ValueError, match="default_basis"):
        parse({**base, "agencies": [ok, {**tf, "state_default": True}]})
    with pytest.raises(ValueError, match="default_basis"):
        parse({**base, "agencies": [ok, {**tf, "default_basis": "sourced"}]})


# ------------------------------------------------------------------------------------------ routing


def test_high_confidence_california_county_in_a_split_area_goes_to_that_task_force(no_network: None) -> None:
    decision = route(estimate("US", "CA", confidence=0.86), county="Santa Clara")
    assert decision.agency_id == "us-icac-ca-siliconvalley"
    assert decision.confidence == pytest.approx(0.86)
    assert set(decision.alternatives) == {"us-icac-ca-sacramento", "us-icac-ca-central", "us-icac-ca-sandiego", "us-icac-ca-losangeles"}
    assert "county Santa Clara" in decision.reason
    # the same county given as its FIPS code
    assert route(estimate("US", "CA"), county="06085").agency_id == "us-icac-ca-siliconvalley"


def test_same_place_with_low_state_confidence_goes_to_review() -> None:
    decision = route(estimate("US", "CA", confidence=0.86, region_confidence=0.45), county="Santa Clara")
    assert decision.agency_id == "review"
    assert "state confidence 0.45" in decision.reason and "under 0.6" in decision.reason
    assert "us-icac-ca-siliconvalley" in decision.alternatives


def test_low_country_confidence_goes_to_review_never_to_a_guess() -> None:
    weak = estimate("GB", confidence=0.55, needs_review=False)
    decision = route(weak)
    assert decision.agency_id == "review"
    assert "confidence 0.55" in decision.reason and "under 0.6" in decision.reason
    assert decision.alternatives == ["gb-nca-ceop"]


def test_an_estimate_flagged_for_review_goes_to_review() -> None:
    flagged = estimate("US", "AL", confidence=0.45, evidence=[ip("8.8.8.8", "US", "AL")])
    decision = route(flagged)
    assert decision.agency_id == "review"
    assert "flagged for review" in decision.reason
    assert decision.alternatives == ["us-icac-al"]


def test_unknown_country_goes_to_review() -> None:
    decision = route(estimate(None))
    assert decision.agency_id == "review"
    assert decision.confidence == 0.0
    assert "no location could be estimated" in decision.reason


def test_a_country_with_no_agency_on_file_goes_to_review() -> None:
    decision = route(estimate("JP"))
    assert decision.agency_id == "review"
    assert "no agency on file for JP" in decision.reason


def test_gb_goes_to_nca_ceop() -> None:
    decision = route(estimate("GB"))
    assert decision.agency_id == "gb-nca-ceop"
    assert "national contact point" in decision.reason


def test_de_goes_to_its_sourced_national_unit_and_eu_states_without_one_to_europol() -> None:
    germany = route(estimate("DE"))
    assert germany.agency_id == "de-bka"
    assert germany.alternatives == ["eu-europol-ec3"]
    poland = route(estimate("PL"))
    assert poland.agency_id == "eu-europol-ec3"
    assert "no national contact point on file; EU member state" in poland.reason
    france = route(estimate("FR"))  # a French unit is on file but not verified
    assert france.agency_id == "eu-europol-ec3"
    assert france.alternatives == ["fr-ofmin"]
    assert route(estimate("FR"), RoutingRules(route_to_unverified=True)).agency_id == "fr-ofmin"


def test_single_task_force_state_goes_to_its_task_force() -> None:
    decision = route(estimate("US", "AL"))
    assert decision.agency_id == "us-icac-al"
    assert decision.alternatives == []
    assert route(estimate("US", "WY")).agency_id == "us-icac-wy"  # verified in this compilation
    dc = route(estimate("US", "DC"))  # DC is taken whole by the Northern Virginia / DC task force
    assert dc.agency_id == "us-icac-va-nova-dc" and dc.alternatives == []


@pytest.mark.parametrize(
    ("region", "county", "expected"),
    [
        ("CA", "Santa Clara", "us-icac-ca-siliconvalley"),
        ("CA", "Orange", "us-icac-ca-losangeles"),
        ("CA", "Los Angeles County", "us-icac-ca-losangeles"),
        ("CA", "06111", "us-icac-ca-losangeles"),  # Ventura, by FIPS code
        ("FL", "Duval", "us-icac-fl-north"),
        ("FL", "St. Johns County", "us-icac-fl-north"),
        ("IL", "Cook", "us-icac-il-cook"),
        ("VA", "Loudoun", "us-icac-va-nova-dc"),
        ("VA", "Manassas Park city", "us-icac-va-nova-dc"),
    ],
)
def test_routing_by_county_in_a_split_state_goes_to_that_counties_task_force(region: str, county: str, expected: str) -> None:
    decision = route(estimate("US", region), county=county)
    assert decision.agency_id == expected
    assert "sourced area" in decision.reason
    assert expected not in decision.alternatives and decision.alternatives


def test_the_same_county_name_in_another_state_is_not_matched(data: Jurisdictions) -> None:
    assert data.county_task_force("CA", "Orange") is not None
    assert data.county_task_force("FL", "Orange") is None  # Orange County, FL is on no published list
    assert data.county_task_force("FL", "06059") is None  # a California FIPS code asked of Florida


def test_split_state_with_an_inferred_default_goes_there_for_other_counties() -> None:
    decision = route(estimate("US", "VA"), county="Roanoke")
    assert decision.agency_id == "us-icac-va-southern"
    assert "(inferred)" in decision.reason and "Roanoke is on no task force's sourced county list" in decision.reason
    assert decision.alternatives == ["us-icac-va-nova-dc"]


def test_split_state_whose_split_is_not_public_goes_to_review_with_its_assigned_default_first() -> None:
    decision = route(estimate("US", "TX", city="Houston"))
    assert decision.agency_id == "review"
    assert decision.alternatives[0] == "us-icac-tx-oag"
    assert set(decision.alternatives) == {"us-icac-tx-dallas", "us-icac-tx-houston", "us-icac-tx-oag"}
    assert "3 task forces" in decision.reason and "assigned, not sourced" in decision.reason
    assert "county not known" in decision.reason and "'Houston' not mapped" in decision.reason
    sacramento = route(estimate("US", "CA"), county="Sacramento")  # the Sacramento Valley area is not published
    assert sacramento.agency_id == "review"
    assert sacramento.alternatives[0] == "us-icac-ca-siliconvalley"
    assert "Sacramento is on no task force's sourced county list" in sacramento.reason
    orange_fl = route(estimate("US", "FL"), county="Orange")
    assert orange_fl.agency_id == "review" and orange_fl.alternatives[0] == "us-icac-fl-north"


def test_an_assigned_default_is_routed_to_only_when_the_rules_say_so() -> None:
    rules = RoutingRules(route_to_assigned_default=True)
    decision = route(estimate("US", "TX"), rules)
    assert decision.agency_id == "us-icac-tx-oag"
    assert "assigned: county split not public" in decision.reason
    assert route(estimate("US", "CA"), rules, county="Santa Clara").agency_id == "us-icac-ca-siliconvalley"
    assert route(estimate("US", "CA"), rules, county="Orange").agency_id == "us-icac-ca-losangeles"  # a list still wins
    assert DEFAULT.route_to_assigned_default is False


def test_a_report_placed_in_puerto_rico_goes_to_review() -> None:
    decision = route(estimate("US", "PR"))
    assert decision.agency_id == "review"
    assert "no task force on file for US-PR" in decision.reason


def test_split_state_with_a_sourced_default_goes_there_when_the_county_is_unknown() -> None:
    decision = route(estimate("US", "NY"))
    assert decision.agency_id == "us-icac-ny"
    assert "county not known" in decision.reason
    assert decision.alternatives == ["us-icac-ny-nyc"]
    outside = route(estimate("US", "IL"), county="Sangamon")
    assert outside.agency_id == "us-icac-il"
    assert "Sangamon is on no task force's sourced county list" in outside.reason
    assert route(estimate("US", "IL"), county="Cook County").agency_id == "us-icac-il-cook"


def test_an_unverified_entry_is_offered_to_the_analyst_not_routed_to() -> None:
    for region in ("AK", "DE"):
        decision = route(estimate("US", region))
        assert decision.agency_id == "review"
        assert decision.alternatives == [f"us-icac-{region.lower()}"]
        assert "not verified" in decision.reason
        assert route(estimate("US", region), RoutingRules(route_to_unverified=True)).agency_id == f"us-icac-{region.lower()}"


def test_the_reason_names_the_evidence() -> None:
    est = estimate(
        "US", "TX", confidence=0.82, evidence=[ip("8.8.8.8", "US"), provider("US", "TX"), phone("US", "TX"), ip("9.9.9.9", "US")]
    )
    decision = route(est, county="Harris")
    assert decision.reason.startswith("estimated location US-TX (state confidence 0.82: provider verified estimate → US-TX; ")
    assert "phone +1 512-555-0142 → US-TX" in decision.reason
    assert "IP 8.8.8.8 → US" in decision.reason
    assert "+1 more" in decision.reason  # four items, three named
    assert "county Harris is on no task force's sourced county list" in decision.reason
    unverified = summarize_evidence([provider("GB", verified=False)])
    assert unverified == "provider unverified estimate → GB"
    assert summarize_evidence([]) == "no evidence"


def test_thresholds_are_rules_not_constants() -> None:
    est = estimate("GB", confidence=0.7)
    assert route(est).agency_id == "gb-nca-ceop"
    assert route(est, RoutingRules(country_threshold=0.75)).agency_id == "review"
    assert DEFAULT.country_threshold == DEFAULT.region_threshold == 0.6


def test_routing_is_pure(data: Jurisdictions) -> None:
    est = estimate("US", "CA")
    first = route(est, county="Marin", data=data)
    again = route(est, county="Marin", data=data)
    assert first == again
    assert est == estimate("US", "CA")
    with pytest.raises(Exception, match="frozen"):
        first.agency_id = "x"  # type: ignore[misc]
