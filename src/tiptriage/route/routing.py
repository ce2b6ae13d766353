"""Confidence-aware routing: which agency a report goes to, given where its subject is estimated to be.

:func:`route` takes a :class:`~tiptriage.enrich.geo.LocationEstimate` and returns a :class:`RoutingDecision`
naming one agency from ``data/agencies.json`` and a one-sentence reason that names the evidence.

Rules (numbers in :class:`RoutingRules`; ``DEFAULT`` holds the values below):

==============================  =======  ===========================================================
rule                            default  why
==============================  =======  ===========================================================
country_threshold               0.6      a country under this confidence is not known well enough
                                         to send a report abroad or to a state
region_threshold                0.6      the same for a US state (the estimate's region confidence,
                                         already capped by the country's)
route_to_unverified             False    an agency entry no retrieved source confirms is not routed
                                         to; the report goes to review with it as the alternative
route_to_assigned_default       False    a state default named only because the county split is not
                                         public (``default_basis`` "assigned") is not routed to; the
                                         report goes to review with it as the first alternative
evidence_in_reason              3        evidence items named in the reason, heaviest first
==============================  =======  ===========================================================

Decisions, in order:

1. no country, or an estimate flagged ``needs_review`` → review;
2. US: country or state confidence under its threshold, or no state → review. Otherwise, in a state
   with one task force, that task force; in a state with several, the task force whose sourced county
   list holds the county, else the state's default task force when a source gives it that role or the
   other task forces' areas are sourced (reason: county not known or not listed), else review (the county
   split is not public and the state's default is only assigned: sending it there would be a guess);
3. elsewhere: country confidence under the threshold → review; else the country's national contact
   point, else Europol (EC3) for an EU member state, else review.

A chosen agency whose entry is not verified leads to review unless ``route_to_unverified`` is set.
Low confidence goes to review, never to a guess.

The estimate carries no county: a county is routed on only when the caller passes one (for instance
from a sourced geocoder). The estimate's city is never mapped to a county here, since no sourced
city-to-county table is shipped.

Everything here is a pure function of its arguments and the packaged data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from pydantic import BaseModel, ConfigDict

from tiptriage.enrich.geo import LocationEstimate, LocationEvidence
from tiptriage.route.jurisdictions import Agency, Jurisdictions, load


@dataclass(frozen=True)
class RoutingRules:
    country_threshold: float = 0.6
    region_threshold: float = 0.6
    route_to_unverified: bool = False
    route_to_assigned_default: bool = False
    evidence_in_reason: int = 3


DEFAULT: Final = RoutingRules()


class RoutingDecision(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    agency_id: str
    reason: str
    confidence: float  # the confidence the decision rested on: the state's for a US task force, else the country's
    alternatives: list[str] = []  # other agencies on file for the place, for the analyst


def route(
    estimate: LocationEstimate,
    rules: RoutingRules = DEFAULT,
    *,
    county: str | None = None,
    data: Jurisdictions | None = None,
) -> RoutingDecision:
    """The agency a report about this estimated location goes to; see the module docstring."""
    j = data or load()
    cc = estimate.country_code
    if cc is None:
        n = len(estimate.evidence)
        why = f"no location could be estimated ({n} evidence item{'s' if n != 1 else ''} gave no country)"
        return _review(j, why, 0.0)

    head = _head(estimate, rules)
    if estimate.needs_review:
        return _review(
            j,
            f"{head(estimate.confidence)} → review: the estimate is flagged for review (country confidence too low)",
            estimate.confidence,
            _candidates(j, estimate, county),
        )
    if cc == "US":
        return _route_us(j, estimate, rules, county, head)
    return _route_abroad(j, estimate, rules, head)


# --------------------------------------------------------------------------------------------- US


def _route_us(j: Jurisdictions, est: LocationEstimate, rules: RoutingRules, county: str | None, head: _Head) -> RoutingDecision:
    if est.confidence < rules.country_threshold:
        return _review(j, f"{head(est.confidence)} → review: country confidence under {rules.country_threshold:g}", est.confidence)
    region = est.region
    if region is None:
        return _review(j, f"{head(est.confidence)} → review: state not known", est.confidence)
    conf = est.region_confidence
    if conf < rules.region_threshold:
        alts = _ids(j.task_forces(region))
        return _review(j, f"{head(conf, state=True)} → review: state confidence under {rules.region_threshold:g}", conf, alts)

    tied = j.task_forces(region)
    if not tied:
        return _review(j, f"{head(conf, state=True)} → review: no task force on file for US-{region}", conf)

    chosen: Agency | None = None
    how = ""
    county_tf = j.county_task_force(region, county) if county else None
    whole = j.whole_state_task_force(region)
    default = j.state_default(region)
    if county_tf is not None:
        chosen, how = county_tf, f"county {county} is in its sourced area"
    elif whole is not None:
        chosen, how = whole, f"the task force for US-{region}"
    elif default is not None and (default.default_basis != "assigned" or rules.route_to_assigned_default):
        chosen = default
        basis = "assigned: county split not public" if default.default_basis == "assigned" else default.default_basis
        how = f"the state's default task force ({basis}); {_county_gap(county, est.city)}"
    else:
        gap = _county_gap(county, est.city)
        why = "and no sourced county split or default for this case"
        if default is not None:
            why = f"and no public county split for this case; its default ({default.id}) is assigned, not sourced"
        return _review(
            j,
            f"{head(conf, state=True)} → review: US-{region} has {len(tied)} task forces {why}; {gap}",
            conf,
            _ids([default, *[a for a in tied if a is not default]]) if default else _ids(tied),
        )
    alternatives = _ids(a for a in tied if a.id != chosen.id)
    return _choose(j, rules, chosen, f"{head(conf, state=True)} → {_label(chosen)} ({how})", conf, alternatives)


def _county_gap(county: str | None, city: str | None) -> str:
    if county:
        return f"county {county} is on no task force's sourced county list"
    if city:
        return f"county not known (city {city!r} not mapped: no sourced city-to-county table)"
    return "county not known"


# ---------------------------------------------------------------------------------------- abroad


def _route_abroad(j: Jurisdictions, est: LocationEstimate, rules: RoutingRules, head: _Head) -> RoutingDecision:
    cc = est.country_code or ""
    conf = est.confidence
    national = j.national_contact(cc)
    europol = j.europol(cc)
    alts = _ids(a for a in (national, europol) if a is not None)
    if conf < rules.country_threshold:
        return _review(j, f"{head(conf)} → review: country confidence under {rules.country_threshold:g}", conf, alts)
    if national is not None and (national.verified or rules.route_to_unverified):
        return _choose(j, rules, national, f"{head(conf)} → {_label(national)} (national contact point)", conf, _ids([europol]))
    if europol is not None:
        why = "no verified national contact point on file" if national is not None else "no national contact point on file"
        return _choose(j, rules, europol, f"{head(conf)} → {_label(europol)} ({why}; EU member state)", conf, _ids([national]))
    if national is not None:  # unverified and not an EU member
        return _review(j, f"{head(conf)} → review: the national contact point on file ({national.id}) is not verified", conf, [national.id])
    return _review(j, f"{head(conf)} → review: no agency on file for {cc}", conf)


# --------------------------------------------------------------------------------------- helpers


def _choose(j: Jurisdictions, rules: RoutingRules, agency: Agency, reason: str, conf: float, alternatives: list[str]) -> RoutingDecision:
    if not agency.verified and not rules.route_to_unverified:
        return _review(
            j,
            f"{reason}, but that entry is not verified (see data/SOURCES.md) → review",
            conf,
            [agency.id, *alternatives],
        )
    return RoutingDecision(agency_id=agency.id, reason=reason, confidence=round(conf, 4), alternatives=alternatives)


def _review(j: Jurisdictions, reason: str, conf: float, alternatives: list[str] | None = None) -> RoutingDecision:
    return RoutingDecision(agency_id=j.review.id, reason=reason, confidence=round(conf, 4), alternatives=alternatives or [])


def _candidates(j: Jurisdictions, est: LocationEstimate, county: str | None) -> list[str]:
    cc = est.country_code or ""
    if cc == "US":
        found: list[Agency] = []
        if est.region:
            if county:
                tf = j.county_task_force(est.region, county)
                found += [tf] if tf else []
            found += [a for a in j.task_forces(est.region) if a not in found]
        return _ids(found)
    return _ids(a for a in (j.national_contact(cc), j.europol(cc)) if a is not None)


def _ids(agencies: Iterable[Agency | None]) -> list[str]:
    return [a.id for a in agencies if a is not None]


def _label(agency: Agency) -> str:
    return f"{agency.name} [{agency.id}]" + (f", lead agency {agency.lead_agency}" if agency.lead_agency else "")


class _Head:
    """Formats the opening of a reason: the estimated place, the deciding confidence and the evidence."""

    def __init__(self, place: str, evidence: str) -> None:
        self._place = place
        self._evidence = evidence

    def __call__(self, confidence: float, *, state: bool = False) -> str:
        label = "state confidence" if state else "confidence"
        return f"estimated location {self._place} ({label} {confidence:.2f}: {self._evidence})"


def _head(est: LocationEstimate, rules: RoutingRules) -> _Head:
    place = est.country_code or "unknown"
    if est.region:
        place = f"{place}-{est.region}"
    return _Head(place, summarize_evidence(est.evidence, rules.evidence_in_reason))


_IP = re.compile(r"^IP (\S+)")
_PHONE = re.compile(r"^phone (.+?)(?: \(geocoder| →|$)")


def summarize_evidence(evidence: list[LocationEvidence], limit: int = 3) -> str:
    """The heaviest evidence items as short phrases: "provider verified estimate → US-TX; IP 8.8.8.8 → US"."""
    if not evidence:
        return "no evidence"
    ranked = sorted(evidence, key=lambda e: -e.weight)
    phrases = [_phrase(e) for e in ranked[: max(limit, 1)]]
    more = len(ranked) - len(phrases)
    if more > 0:
        phrases.append(f"+{more} more")
    return "; ".join(phrases)


def _phrase(ev: LocationEvidence) -> str:
    if ev.family == "provider":
        status = "unverified" if "unverified" in ev.detail else "verified"
        return f"provider {status} estimate → {ev.value}"
    if ev.family == "phone":
        m = _PHONE.match(ev.detail)
        return f"phone {m.group(1) if m else ''} → {ev.value}".replace("phone  →", "phone →")
    m = _IP.match(ev.detail)
    return f"IP {m.group(1)} → {ev.value}" if m else f"{ev.source} → {ev.value}"
