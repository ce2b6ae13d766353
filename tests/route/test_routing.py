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

US_REGIONS = [
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY", "LA", "ME", "MD",
    "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC",
    "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "DC", "PR",
]  # fmt: skip
STATE_FIPS = {"CA": "06", "FL": "12", "IL": "17", "VA": "51"}
T0 = datetime(2026, 3, 1, tzinfo=UTC)
VERIFIED_US = 23  # task forces confirmed by a retrieved source; see data/SOURCES.md


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


def test_us_task_force_count_is_61_or_the_gap_is_documented(data: Jurisdictions) -> None:
    icac = us_task_forces(data)
    verified = [a for a in icac if a.verified]
    if len(verified) == len(icac):
        assert len(icac) == 61
        return
    assert len(verified) == VERIFIED_US
    sources_md = " ".join(resources.files("tiptriage.data").joinpath("SOURCES.md").read_text("utf-8").replace("*", "").split())
    assert f"{len(icac)} candidate US entries, {len(verified)} verified, {len(icac) - len(verified)} not verified" in sources_md
    for agency in icac:
        if not agency.verified:
            assert agency.note, f"{agency.id} is unverified without a note saying why"


def test_every_state_dc_and_puerto_rico_has_a_task_force(data: Jurisdictions) -> None:
    missing = [r for r in US_REGIONS if not data.task_forces(r)]
    assert missing == []
    stray = {a.state for a in us_task_forces(data)} - set(US_REGIONS)
    assert stray == set()


def test_every_entry_has_a_source_and_verified_entries_cite_one(data: Jurisdictions) -> None:
    ids = [a.id for a in data.agencies]
    assert len(ids) == len(set(ids))
    for agency in data.agencies:
        assert agency.source.strip(), agency.id
        if agency.verified and agency.kind != "review":
            assert re.search(r"https?://|award|resolution|report|contract", agency.source, re.IGNORECASE), agency.id
            assert agency.source_date, agency.id
    assert data.review.kind == "review"
    assert data.eu_member_states_source.startswith("European Union")


def test_ids_are_stable_and_shaped(data: Jurisdictions) -> None:
    for agency in us_task_forces(data):
        assert re.fullmatch(r"us-icac-[a-z]{2}(-[a-z0-9]+)*", agency.id), agency.id
        assert agency.id.startswith(f"us-icac-{agency.state.lower()}" if agency.state else "us-icac-")
    expected = {"us-icac-ca-sacramento", "us-icac-ca-siliconvalley", "us-icac-ca-central", "us-icac-ca-sandiego", "us-icac-ca-losangeles"}
    assert {a.id for a in data.task_forces("CA")} == expected


def test_county_lists_carry_census_fips_codes(data: Jurisdictions) -> None:
    counted = 0
    for agency in us_task_forces(data):
        for county in agency.counties:
            assert re.fullmatch(r"\d{5}", county.fips), county
            assert county.fips.startswith(STATE_FIPS[county.state]), county
            counted += 1
    assert len(data.by_id("us-icac-fl-north").counties) == 38
    assert len(data.by_id("us-icac-ca-siliconvalley").counties) == 11
    assert counted >= 38 + 11 + 1


def test_split_states_have_at_most_one_default_and_single_states_none_needed(data: Jurisdictions) -> None:
    for region in US_REGIONS:
        tied = data.task_forces(region)
        defaults = [a for a in tied if a.state_default and a.state == region]
        assert len(defaults) <= 1, region
        if len(tied) == 1:
            assert data.whole_state_task_force(region) is tied[0], region


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


def test_split_state_without_a_sourced_split_or_default_goes_to_review() -> None:
    decision = route(estimate("US", "TX", city="Houston"))
    assert decision.agency_id == "review"
    assert set(decision.alternatives) == {"us-icac-tx-dallas", "us-icac-tx-houston", "us-icac-tx-oag"}
    assert "3 task forces" in decision.reason
    assert "county not known" in decision.reason and "'Houston' not mapped" in decision.reason


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
    decision = route(estimate("US", "WY"))
    assert decision.agency_id == "review"
    assert decision.alternatives == ["us-icac-wy"]
    assert "not verified" in decision.reason
    assert route(estimate("US", "WY"), RoutingRules(route_to_unverified=True)).agency_id == "us-icac-wy"
    dc = route(estimate("US", "DC"))  # DC is covered by the (unverified) Northern Virginia / DC task force
    assert dc.agency_id == "review" and dc.alternatives == ["us-icac-va-nova-dc"]


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
