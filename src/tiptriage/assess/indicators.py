"""Indicators: facts derived from a report, its files' match results, its subject and agency records.

Each indicator carries evidence pointers (which element, which file, which linked report), so that a
rule that fires can say exactly why. Definitions that are our own choices are stated here:

- age bands: under 3 infant/toddler, 3–11 prepubescent, 12–17 pubescent (the industry scale's A/B
  letters mean prepubescent/pubescent as judged by the provider; an A1/A2 file counts as prepubescent);
- a video counts as 75 images, as the US Sentencing Guidelines §2G2.2 application note does
  (../shared/reference/research/ussg_2g2_2.csv); a file is a video by its extension or a vPDQ hash;
- offence kinds, from fields: *production* — a file unknown to every bank that the reported account
  uploaded (an upload event or time on the file) and that the provider did not mark as a meme or viral;
  *distribution* — a file publicly available, or files sent to intended recipients; *possession* — files
  held by the account otherwise; *viewing* — live streaming, or a web-page incident without files;
- subject lift: a report whose subject has another report of tier 1 *on that report's own indicators* (its ``own_tier``)
  counts those reports; the lift itself never counts, so a lifted report cannot lift another;
- planned meeting: a neutral phrase rule (``data/meeting_phrases.json``) over the escalation text and
  the additional information, or a non-internet incident location given by the provider.

Two kinds, derived by two functions: the *static* indicators (``report_facts``: what the report alone says) are
derived once and stored (``store.indicators``), so re-assessment reads them as columns instead of parsing the report
again; the *context* indicators (``context_values``: matches, links, records, deconfliction, the time since the
incident) are derived at every assessment. ``extract`` gives both, for one report.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from importlib import resources
from typing import Any, NamedTuple, TypeAlias

from tiptriage.assess.policy import Indicator, Policy
from tiptriage.model import (
    EventName,
    FileAnnotation,
    HashType,
    IncidentType,
    IndustryClassification,
    NonInternetIncident,
    Report,
    ReportAnnotation,
    WebPageIncident,
)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".wmv", ".webm", ".3gp", ".m4v", ".flv", ".mpg", ".mpeg")
IMAGES_PER_VIDEO = 75


class Match(NamedTuple):
    """A file's match against a hash set, as the context indicators read it (a tuple: a batch reads tens of thousands)."""

    file_id: str
    bank: str
    match_type: str  # exact | perceptual
    distance: int
    series: str | None
    victim_identified: bool | None
    suppressed_by: str | None  # the negative bank that marks it a known false positive

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Match:
        return cls(*(row[k] for k in cls._fields))


@dataclass
class Context:
    """What later stages know about a report, gathered by the pipeline from the store."""

    hash_summary: dict[str, Any] | None = None
    matches: list[Match] = field(default_factory=list)  # in the order they were found (file_matches.id)
    subject_id: str | None = None
    subject_reports: list[str] = field(default_factory=list)
    subject_services: list[str] = field(default_factory=list)
    bundle: dict[str, Any] | None = None
    location: dict[str, Any] | None = None
    records: list[dict[str, Any]] = field(default_factory=list)  # agency records of known persons that match
    deconfliction: list[dict[str, Any]] = field(default_factory=list)  # notices: another agency holds this subject
    # the subject's other reports whose own tier is 1 (``pipeline.assess`` fills it in a second pass over the batch)
    subject_tier1: list[str] = field(default_factory=list)
    # the subject's other reports whose case closed with an arrest
    subject_arrests: list[str] = field(default_factory=list)


@cache
def meeting_patterns() -> list[re.Pattern[str]]:
    raw = json.loads(resources.files("tiptriage.data").joinpath("meeting_phrases.json").read_text("utf-8"))
    return [re.compile(p, re.IGNORECASE) for p in raw["patterns"]]


def _band(age: int) -> str:
    if age < 3:
        return "infant_toddler"
    if age < 12:
        return "prepubescent"
    return "pubescent"


# The report-derived (static) indicators, in the order they are written; every other indicator follows them and
# depends on what later stages found (matches, links, records, routing) or on the time of assessment.
STATIC_INDICATORS: dict[str, str] = {
    "escalated": "bool", "sextortion": "bool", "csam_solicitation": "bool", "minor_to_minor": "bool",
    "sadistic_online_exploitation": "bool", "informational": "bool", "spam": "bool", "incident_type": "str", "enticement": "bool",
    "planned_meeting": "bool", "victim_age_min": "int", "victim_band": "str", "industry_a1": "bool", "industry_prepubescent": "bool",
    "file_infant": "bool", "file_physical_harm": "bool", "file_live_streaming": "bool", "file_self_production": "bool",
    "file_generative_ai": "bool", "file_anime": "bool", "file_meme_or_viral": "bool", "image_equivalents": "int",
    "offence_distribution": "bool", "offence_viewing": "bool",
}
CONTEXT_INDICATORS: dict[str, str] = {
    "novel_uploaded_files": "int", "known_files": "int", "unidentified_victim_series": "bool", "offence_production": "bool",
    "offence_possession": "bool", "days_since_incident": "int", "repeat_subject": "bool", "subject_reports": "int",
    "subject_services": "int", "viral_bundle": "bool", "location_resolved": "bool", "location_confidence": "float",
    "access_to_children": "bool", "prior_contact_offence": "bool", "deconfliction": "bool", "subject_tier1_reports": "int",
    "subject_arrest": "bool",
}
# Every indicator the extractor derives, with its type: a policy may read these and nothing else.
VOCABULARY: dict[str, str] = {**STATIC_INDICATORS, **CONTEXT_INDICATORS}
# the context indicators ``context_values`` gives only to some reports (a resolved location); it gives every other one to all
CONDITIONAL_CONTEXT = ("location_resolved", "location_confidence")

# Bump when report_facts derives anything differently: facts stored under another version are derived again.
FACTS_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_DAY_US = 86_400_000_000

Evidence: TypeAlias = list[str]
Value: TypeAlias = bool | int | float | str | None


@dataclass(frozen=True, slots=True)
class ReportFacts:
    """What the context indicators need from the report itself (the rest of the report is not read again)."""

    report_id: str
    file_count: int
    distribution: bool  # the static offence_distribution
    incident_us: int  # microseconds from 1970-01-01 UTC
    incident_iso: str  # the incident time as the report gives it, for evidence
    upload_candidates: tuple[str, ...]  # hashed files uploaded by the account, not meme or viral: novel unless a bank knows them
    prior_reports: tuple[str, ...]  # earlier CyberTipline reports the report names


StaticIndicators: TypeAlias = dict[str, tuple[Value, Evidence]]  # name -> (value, evidence), in STATIC_INDICATORS order


def to_microseconds(t: datetime) -> int:
    """Exact microseconds since the epoch (a float timestamp would round); a naive time is taken as UTC."""
    return ((t if t.tzinfo is not None else t.replace(tzinfo=UTC)) - _EPOCH) // _MICROSECOND


def days_between(now_us: int, then_us: int) -> int:
    """``max(0, (now - then).days)`` on microseconds: timedelta.days floors, and so does ``//``."""
    return max(0, (now_us - then_us) // _DAY_US)


def report_facts(report: Report) -> tuple[StaticIndicators, ReportFacts]:
    """The static indicators of a report with their evidence (an indicator without a value is absent), and what the
    context indicators will need from the report. Stored once per report (``store.indicators``)."""
    out: StaticIndicators = {}
    rid = report.id

    def put(name: str, value: Value, *evidence: str) -> None:
        out[name] = (value, list(evidence))

    put("escalated", report.is_escalated, f"report {rid} /incident_summary/escalate_to_high_priority" if report.is_escalated else f"report {rid}: no escalation text")
    ann = set(report.report_annotations)
    for name, a in (("sextortion", ReportAnnotation.SEXTORTION), ("csam_solicitation", ReportAnnotation.CSAM_SOLICITATION),
                    ("minor_to_minor", ReportAnnotation.MINOR_TO_MINOR_INTERACTION),
                    ("sadistic_online_exploitation", ReportAnnotation.SADISTIC_ONLINE_EXPLOITATION),
                    ("informational", ReportAnnotation.INFORMATIONAL), ("spam", ReportAnnotation.SPAM)):
        put(name, a in ann, f"report {rid} /incident_summary/report_annotations/{a.value}" if a in ann else f"report {rid}: annotation {a.value} absent")
    put("incident_type", report.incident_type.value, f"report {rid} /incident_summary/incident_type")
    put("enticement", report.incident_type is IncidentType.ONLINE_ENTICEMENT, f"report {rid} /incident_summary/incident_type")

    texts = [(p, t) for p, t in (("escalate_to_high_priority", report.escalate_to_high_priority), ("additional_info", report.additional_info)) if t]
    meeting = [f"report {rid} /{p} matches phrase rule {pat.pattern!r}" for p, t in texts for pat in meeting_patterns() if pat.search(t)]
    meeting += [f"report {rid} /internet_details[{i}] non-internet incident location" for i, d in enumerate(report.internet_details)
                if isinstance(d, NonInternetIncident) and (d.location_name or d.incident_addresses)]
    put("planned_meeting", bool(meeting), *meeting)

    ages = [(f"victims[{i}]", v.person.age) for i, v in enumerate(report.victims) if v.person and v.person.age is not None]
    ages += [(f"intended_recipients[{i}]", a.person.age) for i, a in enumerate(report.intended_recipients) if a.person and a.person.age is not None]
    ages = [(p, a) for p, a in ages if a < 18]
    if ages:
        path, youngest = min(ages, key=lambda x: x[1])
        put("victim_age_min", youngest, f"report {rid} /{path}/person/age = {youngest}")
        put("victim_band", _band(youngest), f"report {rid} /{path}/person/age = {youngest}")
    else:
        put("victim_band", "unknown", f"report {rid}: no victim or recipient age")

    files = report.files
    ic = [(f.file_id, f.industry_classification) for f in files if f.industry_classification]
    put("industry_a1", any(c is IndustryClassification.A1 for _, c in ic), *[f"file {fid} industry classification {c.value}" for fid, c in ic if c is IndustryClassification.A1])
    pre = [(fid, c) for fid, c in ic if c in (IndustryClassification.A1, IndustryClassification.A2)]
    put("industry_prepubescent", bool(pre), *[f"file {fid} industry classification {c.value}" for fid, c in pre])
    for name, fa in (("file_infant", FileAnnotation.INFANT), ("file_physical_harm", FileAnnotation.PHYSICAL_HARM),
                     ("file_live_streaming", FileAnnotation.LIVE_STREAMING), ("file_self_production", FileAnnotation.POSSIBLE_SELF_PRODUCTION),
                     ("file_generative_ai", FileAnnotation.GENERATIVE_AI), ("file_anime", FileAnnotation.ANIME_DRAWING_VIRTUAL_HENTAI)):
        hit = [f.file_id for f in files if fa in f.annotations]
        put(name, bool(hit), *[f"file {fid} annotation {fa.value}" for fid in hit])
    meme = [f.file_id for f in files if {FileAnnotation.POTENTIAL_MEME, FileAnnotation.VIRAL} & set(f.annotations)]
    put("file_meme_or_viral", bool(meme) or report.batched_report_reason is not None,
        *[f"file {fid} annotated potentialMeme/viral" for fid in meme], *([f"report {rid} /batched_report_reason"] if report.batched_report_reason else []))

    videos = [f.file_id for f in files if (f.original_file_name or "").lower().endswith(VIDEO_EXTENSIONS) or f.hash_of(HashType.VPDQ)]
    images = len(files) - len(videos)
    put("image_equivalents", images + IMAGES_PER_VIDEO * len(videos), f"report {rid}: {images} images + {len(videos)} videos × {IMAGES_PER_VIDEO}")

    public = [f.file_id for f in files if f.publicly_available]
    distribution = bool(public) or (bool(files) and bool(report.intended_recipients))
    viewing = bool(out["file_live_streaming"][0]) or (not files and any(isinstance(d, WebPageIncident) for d in report.internet_details))
    put("offence_distribution", distribution, *([f"file {fid} publicly available" for fid in public] or ([f"report {rid}: files sent to intended recipients"] if distribution else [])))
    put("offence_viewing", viewing, f"report {rid}: live streaming or a web page without files" if viewing else f"report {rid}: not viewing only")

    hashed = {f.file_id for f in files if any(h.hash_type in (HashType.MD5, HashType.SHA1, HashType.SHA256, HashType.PDQ, HashType.VPDQ) for h in f.hashes)}
    uploaded = {f.file_id for f in files if f.uploaded_at is not None or (f.ip_event is not None and f.ip_event.event_name is EventName.UPLOAD)}
    return out, ReportFacts(
        report_id=rid, file_count=len(files), distribution=distribution, incident_us=to_microseconds(report.incident_datetime),
        incident_iso=report.incident_datetime.isoformat(), upload_candidates=tuple(sorted((hashed & uploaded) - set(meme))),
        prior_reports=tuple(r for acc in report.reported_people for r in acc.prior_report_ids),
    )


@lru_cache(maxsize=65_536)
def _place_evidence(city: str | None, region: str | None, country: str | None, confidence: float) -> tuple[str, str]:
    """The evidence sentences of an estimated location; many reports share a place (kept, as they are made for each)."""
    place = ", ".join([x for x in (city, region, country) if x]) or "unknown"
    return f"estimated location {place}, confidence {confidence:.2f}", f"estimated location {place}"


def context_values(facts: ReportFacts, ctx: Context, now_us: int) -> dict[str, tuple[Value, Evidence]]:
    """The indicators that depend on what later stages found, from a report's facts and its context.

    One function for both the per-report and the stored-indicator path, so the two cannot drift apart.
    """
    # the common case is a report with few matches, no records, no arrests or lifts: those parts cost nothing then (this
    # runs for every report on every assessment)
    out: dict[str, tuple[Value, Evidence]] = {}
    rid = facts.report_id
    live = [m for m in ctx.matches if m.suppressed_by is None] if ctx.matches else []
    matched = {m.file_id for m in live}
    if ctx.hash_summary is not None and facts.upload_candidates:
        novel_uploaded = [f for f in facts.upload_candidates if f not in matched]
        novel_evidence = [f"file {fid}: no match in any bank; uploaded by the reported account" for fid in novel_uploaded]
    else:
        novel_uploaded, novel_evidence = [], []
    out["novel_uploaded_files"] = (len(novel_uploaded), novel_evidence)
    out["known_files"] = (len(matched), [f"file {m.file_id} matched bank {m.bank} ({m.match_type}, distance {m.distance})" for m in live[:20]])
    unident = [m for m in live if m.series and m.victim_identified is False]
    out["unidentified_victim_series"] = (bool(unident), [f"file {m.file_id} matched series {m.series} in bank {m.bank}: victim not identified" for m in unident])
    production = bool(novel_uploaded)
    out["offence_production"] = (production, list(novel_evidence))
    out["offence_possession"] = (facts.file_count > 0 and not production and not facts.distribution, [f"report {rid}: {facts.file_count} files held by the account"])
    out["days_since_incident"] = (days_between(now_us, facts.incident_us), [f"report {rid} /incident_summary/incident_datetime {facts.incident_iso}"])

    subject_id = ctx.subject_id
    others = [r for r in ctx.subject_reports if r != rid]
    repeat = [f"linked report {r} (subject {subject_id})" for r in others[:20]]
    if facts.prior_reports:
        repeat += [f"report {rid} names prior CyberTipline report {p}" for p in facts.prior_reports]
    out["repeat_subject"] = (bool(others or facts.prior_reports), repeat)
    out["subject_reports"] = (len(set(ctx.subject_reports) | {rid}), [f"subject {subject_id}" if subject_id else f"report {rid}: not linked"])
    services = sorted(set(ctx.subject_services)) if ctx.subject_services else []
    out["subject_services"] = (len(services), [f"service {s}" for s in services])
    b = ctx.bundle
    out["viral_bundle"] = (b is not None, [f"bundle {b['id']}: {b['reports']} reports, representative {b['representative_report_id']}"] if b else [])
    loc = ctx.location
    if loc is not None:
        with_confidence, place = _place_evidence(loc["city"], loc["region"], loc["country_code"], loc["confidence"])
        out["location_resolved"] = (not loc["needs_review"], [with_confidence])
        out["location_confidence"] = (float(loc["confidence"]), [place])
    if ctx.records:
        # sorted, so the evidence does not depend on the order a database returns the records in
        records = sorted(ctx.records, key=lambda r: str(r["record_id"]))
        access = [r for r in records if r.get("access_to_children")]
        contact = [r for r in records if r.get("prior_contact_offence")]
        out["access_to_children"] = (bool(access), [f"agency record {r['record_id']} ({r['matched_on']})" for r in access])
        out["prior_contact_offence"] = (bool(contact), [f"agency record {r['record_id']} ({r['matched_on']})" for r in contact])
    else:
        out["access_to_children"] = (False, [])
        out["prior_contact_offence"] = (False, [])
    out["deconfliction"] = (bool(ctx.deconfliction),
                            [f"subject {n['subject_id']} also has case {n['other_case_ref']} at {n['other_agency_id']}" for n in ctx.deconfliction])
    lifting = sorted(r for r in set(ctx.subject_tier1) if r != rid) if ctx.subject_tier1 else []
    out["subject_tier1_reports"] = (len(lifting), [f"linked report {r} (subject {subject_id}) is tier 1 on its own indicators" for r in lifting[:20]])
    arrests = sorted(r for r in set(ctx.subject_arrests) if r != rid) if ctx.subject_arrests else []
    out["subject_arrest"] = (bool(arrests), [f"linked report {r} (subject {subject_id}): case closed with outcome arrest" for r in arrests[:20]])
    return out


def _indicators(values: Mapping[str, tuple[Value, Evidence]]) -> dict[str, Indicator]:
    return {k: Indicator(name=k, value=v, evidence=ev) for k, (v, ev) in values.items()}


def extract(report: Report, ctx: Context, now: datetime) -> dict[str, Indicator]:
    """Every indicator of one report: the static ones first, then those from its context (the per-report path)."""
    static, facts = report_facts(report)
    return {**_indicators(static), **_indicators(context_values(facts, ctx, to_microseconds(now)))}


def vocabulary_errors(policy: Policy) -> list[str]:
    """Indicators a policy declares that the extractor does not derive, or derives with another type: a rule on them
    would silently never fire (or always compare false), so a policy put into service must not have them."""
    errors: list[str] = []
    for name, spec in policy.indicators.items():
        derived = VOCABULARY.get(name)
        if derived is None:
            close = difflib.get_close_matches(name, list(VOCABULARY), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            errors.append(f"indicators.{name}: tiptriage derives no indicator '{name}'{hint}, so a rule on it would never fire")
        elif spec.type != derived and not (derived == "int" and spec.type == "float"):
            errors.append(f"indicators.{name}.type: '{name}' is derived as {derived}, not {spec.type}")
    return errors
