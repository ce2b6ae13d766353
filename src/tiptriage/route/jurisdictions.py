"""The agencies a report can be routed to, loaded from ``data/agencies.json``.

Every fact here (which task force covers which state or county, which unit is a country's contact point)
lives in that file with its source; this module only reads it. See ``data/SOURCES.md`` for what is
verified and what is not.

Coverage of a US task force is given three ways:

* ``covers_states``: subdivisions (ISO 3166-2 suffixes, "DC" included) it takes whole;
* ``counties``: counties it takes in a state that has several task forces, each with its Census FIPS code;
* ``state_default``: in a state with several task forces, the one that takes the state's reports when the
  county is unknown or not on any list, with ``default_basis`` saying why: ``sourced`` (a source gives it that
  role), ``inferred`` (the other task forces' areas are sourced, so the rest of the state is its) or
  ``assigned`` (the split is not public; the file names one so that every state has exactly one default, and
  routing does not send reports there on that ground alone).

Every region the ICAC program covers (the 50 states and DC) resolves to exactly one default task force
(:meth:`Jurisdictions.default_task_force`): the one that takes it whole, or its ``state_default``.

Lookups are pure functions of the loaded data; the file is read once and cached.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict

AgencyKind = Literal["icac", "national", "europol", "review"]
DefaultBasis = Literal["sourced", "inferred", "assigned"]

REVIEW_ID = "review"
RESOURCE = "agencies.json"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class County(_Frozen):
    name: str  # as the Census names it, without "County" ("Santa Clara", "Fairfax city")
    fips: str  # 5-digit state+county FIPS code
    state: str  # ISO 3166-2 suffix of the county's state


class Agency(_Frozen):
    id: str
    name: str
    kind: AgencyKind
    country: str | None  # ISO 3166-1 alpha-2 of the agency itself; None for Europol and the review queue
    state: str | None  # for a US task force, the state of its lead agency
    covers_states: tuple[str, ...] = ()
    counties: tuple[County, ...] = ()
    state_default: bool = False
    default_basis: DefaultBasis | None = None  # why it is the state default; set exactly when state_default is
    covers_countries: tuple[str, ...] = ()
    lead_agency: str | None
    note: str | None
    source: str
    source_date: str | None
    verified: bool


class Jurisdictions(_Frozen):
    """The whole of ``agencies.json``: every agency, and the EU membership the Europol fallback relies on."""

    title: str
    compiled: str
    notes: tuple[str, ...] = ()
    eu_member_states: tuple[str, ...]
    eu_member_states_source: str
    agencies: tuple[Agency, ...]

    def by_id(self, agency_id: str) -> Agency:
        for agency in self.agencies:
            if agency.id == agency_id:
                return agency
        raise KeyError(agency_id)

    @property
    def review(self) -> Agency:
        return self.by_id(REVIEW_ID)

    def task_forces(self, region: str) -> list[Agency]:
        """Every US task force with a tie to ``region``: it covers it whole, lists counties in it, or is its default."""
        code = region.upper()
        return [
            a
            for a in self.agencies
            if a.kind == "icac" and (code in a.covers_states or a.state == code or any(c.state == code for c in a.counties))
        ]

    def whole_state_task_force(self, region: str) -> Agency | None:
        """The task force that takes ``region`` whole, when it is the only one with a tie to the region."""
        tied = self.task_forces(region)
        whole = [a for a in tied if region.upper() in a.covers_states]
        return whole[0] if len(whole) == 1 and len(tied) == 1 else None

    def county_task_force(self, region: str, county: str) -> Agency | None:
        """The task force whose county list holds ``county`` (a name or a 5-digit FIPS code) in ``region``."""
        code = region.upper()
        wanted = normalize_county(county)
        for agency in self.task_forces(code):
            for c in agency.counties:
                if c.state == code and wanted in (normalize_county(c.name), c.fips):
                    return agency
        return None

    def state_default(self, region: str) -> Agency | None:
        code = region.upper()
        defaults = [a for a in self.task_forces(code) if a.state_default and a.state == code]
        return defaults[0] if len(defaults) == 1 else None

    def default_task_force(self, region: str) -> Agency | None:
        """The one task force a report in ``region`` falls to when nothing narrower is known.

        The task force that takes the region whole, else the region's ``state_default``; ``None`` when the
        region has no task force, or several and no single default.
        """
        return self.whole_state_task_force(region) or self.state_default(region)

    def national_contact(self, country: str) -> Agency | None:
        code = country.upper()
        found = [a for a in self.agencies if a.kind == "national" and code in a.covers_countries]
        return found[0] if found else None

    def europol(self, country: str) -> Agency | None:
        """The EU-level fallback, if ``country`` is an EU member state it covers."""
        code = country.upper()
        if code not in self.eu_member_states:
            return None
        found = [a for a in self.agencies if a.kind == "europol" and code in a.covers_countries]
        return found[0] if found else None


_COUNTY_WORDS = re.compile(r"\b(county|parish|borough|census area|municipality)\b")
_SPACES = re.compile(r"[\s.]+")


def normalize_county(name: str) -> str:
    """Case-, punctuation- and suffix-insensitive county key: "St. Johns County" and "st johns" match."""
    text = name.strip()
    if text.isdigit():
        return text.zfill(5)
    text = _COUNTY_WORDS.sub(" ", text.casefold())
    return _SPACES.sub(" ", text).strip()


def parse(raw: dict[str, object]) -> Jurisdictions:
    """Build :class:`Jurisdictions` from the decoded JSON document (also used by tests with their own data)."""
    eu = raw.get("eu_member_states")
    if not isinstance(eu, dict):
        raise ValueError("agencies.json: 'eu_member_states' must be an object with 'codes' and 'source'")
    agencies = raw.get("agencies")
    if not isinstance(agencies, list):
        raise ValueError("agencies.json: 'agencies' must be a list")
    parsed = Jurisdictions(
        title=str(raw.get("title", "")),
        compiled=str(raw.get("compiled", "")),
        notes=tuple(str(n) for n in _list(raw.get("notes"))),
        eu_member_states=tuple(str(c) for c in _list(eu.get("codes"))),
        eu_member_states_source=str(eu.get("source", "")),
        agencies=tuple(Agency.model_validate(a) for a in agencies),
    )
    _check(parsed.agencies)
    return parsed


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def _check(agencies: Iterable[Agency]) -> None:
    seen: set[str] = set()
    for a in agencies:
        if a.id in seen:
            raise ValueError(f"agencies.json: duplicate id {a.id!r}")
        seen.add(a.id)
        if not a.source.strip():
            raise ValueError(f"agencies.json: {a.id} has no source")
        if a.state_default != (a.default_basis is not None):
            raise ValueError(f"agencies.json: {a.id}: 'default_basis' is set exactly when 'state_default' is true")
    if REVIEW_ID not in seen:
        raise ValueError("agencies.json: no 'review' entry")


@cache
def load() -> Jurisdictions:
    """The packaged ``agencies.json``, read once."""
    raw = json.loads(resources.files("tiptriage.data").joinpath(RESOURCE).read_text("utf-8"))
    return parse(raw)


def agencies() -> tuple[Agency, ...]:
    return load().agencies


def lookup(country: str, region: str | None = None, county: str | None = None, data: Jurisdictions | None = None) -> list[Agency]:
    """Candidate agencies for a place, most specific first; the review queue when nothing is on file.

    US: the county's task force, then the state's whole-state or default task force, then the state's
    other task forces. Elsewhere: the national contact point, then Europol for EU member states.
    Verification is not considered here; :func:`tiptriage.route.routing.route` decides what to use.
    """
    j = data or load()
    out: list[Agency] = []

    def add(agency: Agency | None) -> None:
        if agency is not None and agency not in out:
            out.append(agency)

    cc = country.upper()
    if cc == "US" and region:
        if county:
            add(j.county_task_force(region, county))
        add(j.whole_state_task_force(region))
        add(j.state_default(region))
        for agency in j.task_forces(region):
            add(agency)
    elif cc != "US":
        add(j.national_contact(cc))
        add(j.europol(cc))
    return out or [j.review]
