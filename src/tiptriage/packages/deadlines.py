"""Preservation deadlines and the file-access gate: pure functions of a report, a clock value and ``data/legal.json``.

Every legal fact used here (the 1-year provider preservation of 18 U.S.C. § 2258A(h) as amended by the
REPORT Act, the 90 + 90 days of a § 2703(f) preservation request, the case law behind the file-access
gate) lives in ``data/legal.json`` with its source; this module only does the arithmetic. The warning
thresholds (30 and 7 days) and the date rules (a year after 29 February ends on 28 February) are
tiptriage's own design choices and are marked as such in that file.

Nothing here reads the clock: ``now`` is always an argument. Every text produced says that it informs the
investigator and decides nothing; the dates are a draft for a human to check with counsel.
"""

from __future__ import annotations

import calendar
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from tiptriage.model.report import Report, ReportedFile

__all__ = [
    "INFORMS",
    "Authority",
    "Deadline",
    "DeadlineWarning",
    "FileAccessStatus",
    "GateMode",
    "LegalData",
    "PreservationRequest",
    "WarningLevel",
    "add_years",
    "deadline_warning",
    "file_access_status",
    "file_access_statuses",
    "gate_mode_for",
    "load_legal",
    "preservation_request_expiry",
    "provider_preservation_expiry",
    "renewed_request_expiry",
    "report_deadlines",
]

RESOURCE: Final = "legal.json"
INFORMS: Final = "This informs the investigator and decides nothing; the agency's policy and counsel decide."

GateMode = Literal["warn", "require_warrant", "note_only"]
WarningLevel = Literal["ok", "warning", "critical", "expired"]
FileAccessCode = Literal["provider_viewed", "warrant_may_be_required"]
DeadlineKind = Literal["provider_preservation", "preservation_request"]


# ------------------------------------------------------------------------------------------ legal data


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Loose(BaseModel):
    """Parts of legal.json: unknown keys (notes, explanations) are kept in the file and ignored here."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Source(_Loose):
    title: str
    url: str | None = None


class Period(_Loose):
    years: int = 0
    days: int = 0


class Renewal(_Loose):
    days: int
    times: int


class StatutoryPeriod(_Loose):
    id: str
    kind: str
    fact: str
    period: Period
    citation: str
    sources: list[Source]
    renewal: Renewal | None = None


class Thresholds(_Loose):
    warning: int
    critical: int


class Warnings(_Loose):
    id: str
    kind: str
    thresholds_days: Thresholds


class Authority(_Loose):
    id: str
    short: str
    citation: str
    holding: str
    url: str | None = None


class Gate(_Loose):
    id: str
    fact: str
    default_mode: GateMode
    modes: dict[GateMode, str]
    agencies: dict[str, GateMode] = Field(default_factory=dict)
    authorities: list[Authority]

    def authority(self, authority_id: str) -> Authority:
        return next(a for a in self.authorities if a.id == authority_id)


class LegalData(_Loose):
    provider_preservation: StatutoryPeriod
    preservation_request_2703f: StatutoryPeriod
    warnings: Warnings
    file_access_gate: Gate


@cache
def load_legal() -> LegalData:
    """``data/legal.json``, read once."""
    raw = json.loads(resources.files("tiptriage.data").joinpath(RESOURCE).read_text("utf-8"))
    return LegalData.model_validate(raw)


# ------------------------------------------------------------------------------------------ arithmetic


def add_years(start: datetime, years: int) -> datetime:
    """The same calendar day and time ``years`` later; 29 February becomes 28 February in a common year.

    The earlier of the two readings is the conservative one: a warning computed from it is never late.
    """
    year = start.year + years
    day = start.day
    if start.month == 2 and day == 29 and not calendar.isleap(year):
        day = 28
    return start.replace(year=year, day=day)


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must carry a time zone")


def provider_preservation_expiry(received_at: datetime, legal: LegalData | None = None) -> datetime:
    """When the provider's statutory preservation of the reported content ends (18 U.S.C. § 2258A(h)).

    Counted from the report's submission, which tiptriage takes to be its ``received_at``.
    """
    _require_aware(received_at, "received_at")
    period = (legal or load_legal()).provider_preservation.period
    return add_years(received_at, period.years) + timedelta(days=period.days)


def preservation_request_expiry(sent_at: datetime, legal: LegalData | None = None) -> datetime:
    """When a § 2703(f) preservation request sent at ``sent_at`` lapses without renewal (90 days)."""
    _require_aware(sent_at, "sent_at")
    period = (legal or load_legal()).preservation_request_2703f.period
    return add_years(sent_at, period.years) + timedelta(days=period.days)


def renewed_request_expiry(sent_at: datetime, renewed_at: datetime, legal: LegalData | None = None) -> datetime:
    """When a § 2703(f) request renewed at ``renewed_at`` lapses: 90 more days from the end of the first period.

    The renewal has to be made while the first period runs; a request that has lapsed cannot be renewed
    (a new request would be needed), and the statute provides one renewal.
    """
    _require_aware(renewed_at, "renewed_at")
    legal = legal or load_legal()
    first = preservation_request_expiry(sent_at, legal)
    if renewed_at < sent_at:
        raise ValueError("a renewal cannot precede the request it renews")
    if renewed_at >= first:
        raise ValueError(f"the request lapsed at {first.isoformat()}; a renewal after that is a new request, not a renewal")
    renewal = legal.preservation_request_2703f.renewal
    if renewal is None:
        raise ValueError("legal.json gives no renewal period for 2703(f)")
    return first + timedelta(days=renewal.days)


# -------------------------------------------------------------------------------------------- warnings


class DeadlineWarning(_Frozen):
    level: WarningLevel
    days_left: int  # whole days left, rounded down; once expired, minus the whole days since
    text: str


def deadline_warning(
    expires_at: datetime,
    now: datetime,
    *,
    warning_days: int | None = None,
    critical_days: int | None = None,
    legal: LegalData | None = None,
) -> DeadlineWarning:
    """The warning level at ``now``: expired, critical (≤ 7 days left), warning (≤ 30 days left) or ok.

    The thresholds default to legal.json's (a design choice, not law) and can be given per call.
    """
    _require_aware(expires_at, "expires_at")
    _require_aware(now, "now")
    thresholds = (legal or load_legal()).warnings.thresholds_days
    warn = thresholds.warning if warning_days is None else warning_days
    crit = thresholds.critical if critical_days is None else critical_days
    left = expires_at - now
    days = left // timedelta(days=1)
    if left <= timedelta(0):
        ago = (now - expires_at) // timedelta(days=1)
        return DeadlineWarning(
            level="expired", days_left=-ago, text=f"Expired: ended on {expires_at.isoformat()} ({ago} whole day(s) ago). {INFORMS}"
        )
    level: WarningLevel = "critical" if days <= crit else "warning" if days <= warn else "ok"
    label = {"critical": "Critical", "warning": "Warning", "ok": "OK"}[level]
    return DeadlineWarning(level=level, days_left=days, text=f"{label}: {days} day(s) left, until {expires_at.isoformat()}. {INFORMS}")


# ------------------------------------------------------------------------------------------- deadlines


class PreservationRequest(_Frozen):
    """A § 2703(f) preservation request the agency has sent (recorded by the investigator)."""

    provider: str
    sent_at: AwareDatetime
    renewed_at: AwareDatetime | None = None
    reference: str | None = None  # the provider's or the agency's reference number


class Deadline(_Frozen):
    kind: DeadlineKind
    label: str
    provider: str | None
    starts_at: AwareDatetime
    expires_at: AwareDatetime
    citation: str
    sources: list[str]  # URLs of the legal sources
    renewable: bool
    renewed: bool
    warning: DeadlineWarning
    note: str


def _urls(sources: Iterable[Source]) -> list[str]:
    return [s.url for s in sources if s.url]


def report_deadlines(
    report: Report,
    requests: Iterable[PreservationRequest],
    now: datetime,
    *,
    warning_days: int | None = None,
    critical_days: int | None = None,
    legal: LegalData | None = None,
) -> list[Deadline]:
    """The provider's statutory preservation of the report, then each preservation request, each with its warning at ``now``."""
    legal = legal or load_legal()
    pp = legal.provider_preservation
    out: list[Deadline] = []
    expires = provider_preservation_expiry(report.received_at, legal)
    out.append(
        Deadline(
            kind="provider_preservation",
            label="Provider's preservation of the reported content",
            provider=report.provider,
            starts_at=report.received_at,
            expires_at=expires,
            citation=pp.citation,
            sources=_urls(pp.sources),
            renewable=False,
            renewed=False,
            warning=deadline_warning(expires, now, warning_days=warning_days, critical_days=critical_days, legal=legal),
            note=(
                f"The report counts as a request to preserve its contents for 1 year from {report.received_at.isoformat()} "
                f"(the report's received time; where that is the time of ingest rather than the CyberTipline's received date, the real end is earlier). A provider may keep them longer; records outside the report need a "
                f"separate preservation request. {INFORMS}"
            ),
        )
    )
    rf = legal.preservation_request_2703f
    for req in sorted(requests, key=lambda r: (r.sent_at, r.provider)):
        if req.renewed_at is None:
            expires = preservation_request_expiry(req.sent_at, legal)
            note = (
                f"Lapses 90 days after it was sent unless renewed once for 90 more days before "
                f"{expires.isoformat()} ({rf.citation}). {INFORMS}"
            )
        else:
            expires = renewed_request_expiry(req.sent_at, req.renewed_at, legal)
            note = f"Renewed on {req.renewed_at.isoformat()}: the statute provides no further renewal ({rf.citation}). {INFORMS}"
        out.append(
            Deadline(
                kind="preservation_request",
                label=f"Preservation request to {req.provider}" + (f" (ref. {req.reference})" if req.reference else ""),
                provider=req.provider,
                starts_at=req.sent_at,
                expires_at=expires,
                citation=rf.citation,
                sources=_urls(rf.sources),
                renewable=req.renewed_at is None and now < expires,
                renewed=req.renewed_at is not None,
                warning=deadline_warning(expires, now, warning_days=warning_days, critical_days=critical_days, legal=legal),
                note=note,
            )
        )
    return out


# ----------------------------------------------------------------------------------- file-access gate

PROVIDER_VIEWED_TEXT: Final = "provider viewed: may be reviewed per agency policy"
NOT_VIEWED_TEXT: Final = "viewing may require a warrant (United States v. Wilson, 9th Cir. 2021); the agency's setting decides"


class FileAccessStatus(_Frozen):
    file_id: str
    viewed_by_provider: bool | None  # the report's viewed_by_esp: None where the provider did not say
    status: FileAccessCode
    gate_mode: GateMode
    flagged: bool  # shown as a warning (not viewed, and the agency's mode is not note_only)
    agency_requires_warrant: bool  # the agency's own setting says: do not view without a warrant or counsel's approval
    text: str
    authorities: list[str]  # short names of the cases behind the gate, with their URLs in legal.json


def gate_mode_for(agency_id: str | None, overrides: Mapping[str, GateMode] | None = None, legal: LegalData | None = None) -> GateMode:
    """The gate's mode for an agency: the caller's override, else legal.json's per-agency setting, else its default ("warn")."""
    gate = (legal or load_legal()).file_access_gate
    if agency_id is not None:
        if overrides and agency_id in overrides:
            return overrides[agency_id]
        if agency_id in gate.agencies:
            return gate.agencies[agency_id]
    return gate.default_mode


def file_access_status(file: ReportedFile, mode: GateMode, legal: LegalData | None = None) -> FileAccessStatus:
    """What the package says about opening one reported file; information for the investigator, never a decision."""
    gate = (legal or load_legal()).file_access_gate
    cited = [gate.authority(a) for a in ("wilson-9th-2021", "ackerman-10th-2016", "reddick-5th-2018", "miller-6th-2020")]
    shorts = [a.short for a in cited]
    viewed = file.viewed_by_esp
    if viewed is True:
        return FileAccessStatus(
            file_id=file.file_id,
            viewed_by_provider=True,
            status="provider_viewed",
            gate_mode=mode,
            flagged=False,
            agency_requires_warrant=False,
            text=f"{PROVIDER_VIEWED_TEXT}. {INFORMS}",
            authorities=shorts,
        )
    known = (
        "The provider reports that it did not view this file."
        if viewed is False
        else "The report does not say whether the provider viewed this file."
    )
    differ = "Circuits differ (e.g. " + "; ".join(shorts[1:]) + ")."
    setting = {
        "warn": "This agency's setting: warn.",
        "require_warrant": "This agency's setting: do not view without a warrant or counsel's approval.",
        "note_only": "This agency's setting: note only (it relies on hash-match case law in its circuit).",
    }[mode]
    return FileAccessStatus(
        file_id=file.file_id,
        viewed_by_provider=viewed,
        status="warrant_may_be_required",
        gate_mode=mode,
        flagged=mode != "note_only",
        agency_requires_warrant=mode == "require_warrant",
        text=f"{NOT_VIEWED_TEXT}. {known} {differ} {setting} {INFORMS}",
        authorities=shorts,
    )


def file_access_statuses(report: Report, mode: GateMode, legal: LegalData | None = None) -> list[FileAccessStatus]:
    """``file_access_status`` for every file of the report, in report order."""
    return [file_access_status(f, mode, legal) for f in report.files]
