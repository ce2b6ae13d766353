"""``PackageData``: everything one lead package shows, as plain validated data.

A lead package carries only report fields, identifiers, hashes, category codes and neutral text: never
imagery, never a description of content. Hash matches name the bank, the match type, the distance and the
bank's category/series codes. Legal items (deadlines, file-access statuses, preservation letters) inform the
investigator; they are drafts for a human and decide nothing.

The models are frozen and forbid unknown fields, so a package is exactly what was built, and
``model_dump(mode="json")`` gives its machine-readable form.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from tiptriage.assess.policy import Assessment
from tiptriage.enrich.geo import LocationEstimate
from tiptriage.model.report import Report
from tiptriage.packages.deadlines import Deadline, FileAccessStatus, PreservationRequest
from tiptriage.route.routing import RoutingDecision

__all__ = [
    "EstimatedPlace",
    "HashMatch",
    "Identifier",
    "IdentifierKind",
    "IpEventPlace",
    "LegalChecklist",
    "LinkedReport",
    "PackageData",
    "PreservationLetter",
    "Routing",
    "Subject",
    "SubjectAccount",
]

IdentifierKind = Literal["email", "phone", "username", "esp_id", "display_name", "url", "ip", "device_id", "other"]
MatchType = Literal["exact", "perceptual", "video"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EstimatedPlace(_Frozen):
    """Where an account or address is estimated to be, with the evidence behind it as short strings."""

    country_code: str | None = None
    region: str | None = None
    city: str | None = None
    confidence: float = Field(default=0.0, ge=0.0, le=1.0)  # of the country
    region_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    city_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    needs_review: bool = True
    evidence: list[str] = []

    @classmethod
    def from_estimate(cls, estimate: LocationEstimate) -> EstimatedPlace:
        return cls(
            country_code=estimate.country_code,
            region=estimate.region,
            city=estimate.city,
            confidence=estimate.confidence,
            region_confidence=estimate.region_confidence,
            city_confidence=estimate.city_confidence,
            needs_review=estimate.needs_review,
            evidence=[f"{ev.source}: {ev.value} (weight {ev.weight:.2f}) — {ev.detail}" for ev in estimate.evidence],
        )

    @property
    def label(self) -> str:
        """ "US-CA Mountain View", "US", or "unknown"."""
        if self.country_code is None:
            return "unknown"
        place = self.country_code + (f"-{self.region}" if self.region else "")
        return place + (f" {self.city}" if self.city else "")


class IpEventPlace(_Frozen):
    ip_address: str
    port: int | None = None
    event_name: str | None = None
    date_time: AwareDatetime | None = None
    possible_proxy: bool | None = None
    account: str | None = None  # the key of the subject account the event belongs to, when known
    place: EstimatedPlace | None = None


class LinkedReport(_Frozen):
    report_id: str
    tier: int | None = Field(default=None, ge=1, le=4)
    received_at: AwareDatetime | None = None
    evidence: list[str] = []  # why the linker tied it to the subject


class SubjectAccount(_Frozen):
    key: str  # the linker's account key
    provider: str | None = None  # the service the account is on; None = the report's provider
    esp_identifier: str | None = None
    screen_name: str | None = None
    display_names: list[str] = []
    emails: list[str] = []
    phones: list[str] = []
    profile_urls: list[str] = []


class Subject(_Frozen):
    id: str
    accounts: list[SubjectAccount] = []
    linked_reports: list[LinkedReport] = []


class Identifier(_Frozen):
    kind: IdentifierKind
    value: str
    normalized: str | None = None
    sources: list[str] = []  # where in which report it was found


class HashMatch(_Frozen):
    """A reported file's hash found in a hash bank: codes and numbers only, never the content."""

    file_id: str
    hash_type: str
    bank: str
    match_type: MatchType
    distance: int = Field(default=0, ge=0)
    category: str | None = None
    series: str | None = None
    victim_identified: bool | None = None
    suppressed_by: str | None = None  # a negative bank that marks the match as a known false positive


class Routing(_Frozen):
    agency_id: str
    agency_name: str | None = None
    reason: str
    confidence: float
    alternatives: list[str] = []

    @classmethod
    def from_decision(cls, decision: RoutingDecision, agency_name: str | None = None) -> Routing:
        return cls(
            agency_id=decision.agency_id,
            agency_name=agency_name,
            reason=decision.reason,
            confidence=decision.confidence,
            alternatives=list(decision.alternatives),
        )


class LegalChecklist(_Frozen):
    """The legal-process steps the investigator records; tiptriage never ticks one itself."""

    preservation_request_sent: bool = False
    subpoena_drafted: bool = False
    order_2703d_drafted: bool = False
    warrant_drafted: bool = False
    deconfliction_checked: bool = False
    notes: list[str] = []


class PreservationLetter(_Frozen):
    """A DRAFT 18 U.S.C. § 2703(f) preservation letter to one provider: never sent by tiptriage."""

    provider: str
    report_id: str
    account_identifiers: list[str]
    date_from: date
    date_to: date
    provider_preservation_until: AwareDatetime | None = None
    banner: str
    body: list[str]  # paragraphs of neutral text


class PackageData(_Frozen):
    report: Report
    assessment: Assessment
    subject: Subject | None = None
    identifiers: list[Identifier] = []
    ip_events: list[IpEventPlace] = []
    hash_matches: list[HashMatch] = []
    routing: Routing | None = None
    deadlines: list[Deadline] = []
    file_access: list[FileAccessStatus] = []
    preservation_requests: list[PreservationRequest] = []
    checklist: LegalChecklist = LegalChecklist()
    generated_at: AwareDatetime
    generated_by: str = Field(min_length=1)
