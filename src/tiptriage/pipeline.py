"""The one place that wires the stages together. The CLI, the server and the simulator call this.

Today: intake (discover → read → store, with quarantine). Later stages append here.
"""

from __future__ import annotations

import difflib
import gc
import json
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tiptriage.assess.batch import Policies, PolicyChoice, assess_report, assess_stored
from tiptriage.assess.indicators import Context, Match, extract, report_facts, vocabulary_errors
from tiptriage.assess.policy import Indicator, Policy, PolicyError, diff_rankings, load_policy, what_would_change
from tiptriage.enrich.geo import GeoSources, LocationEstimate, estimate_location
from tiptriage.enrich.identifiers import account_identifiers, esp_account_key, normalize_email, normalize_phone, normalize_username
from tiptriage.hashes import formats as hs_formats
from tiptriage.hashes.entries import HashEntry, Tombstone
from tiptriage.hashes.flood import FloodRule, busiest_window
from tiptriage.hashes.matcher import HashIndexes, find_hits, resolve
from tiptriage.intake import Document, IntakeError, Limits, Submission, iter_submissions, read
from tiptriage.intake.discover import submissions_in_file
from tiptriage.link.bundles import ReportFacts, build_bundles, provider_keys
from tiptriage.link.records import account_key, build_records
from tiptriage.link.resolve import Decisions, cluster, deterministic_links, probabilistic_links
from tiptriage.model import HashType, Report, SourceFormat
from tiptriage.route.routing import route
from tiptriage.store import QuarantineEntry, Store, report_row
from tiptriage.store.crypto import Keyring
from tiptriage.store.indicators import IndicatorRepository
from tiptriage.store.policies import PolicyRepository
from tiptriage.store.times import aware
from tiptriage.work.states import due_at

Progress = Callable[[int, int], None]  # (submissions seen so far, bytes seen so far)


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "quarantined": self.quarantined, "errors": self.errors}


def _batches(subs: Iterable[Submission], size: int, max_bytes: int) -> Iterator[list[Submission]]:
    batch: list[Submission] = []
    held = 0
    for sub in subs:
        batch.append(sub)
        held += sum(len(d.data) for d in sub.documents)
        if len(batch) >= size or held >= max_bytes or sub.spill is not None:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def _error_entry(err: IntakeError) -> dict[str, str]:
    return {"path": err.path, "reason": f"{err.place}: {err.reason} [rule: {err.rule}]"}


Outcome = tuple[str, dict[str, Any] | tuple[str, str, str, str]]  # (digest, report row | (path, place, rule, reason))


def _read_batch(subs: list[Submission], received_at: datetime, limits: Limits) -> list[Outcome]:
    """Parse a batch (in a worker process when there are several): pure, returns plain data."""
    out: list[Outcome] = []
    for sub in subs:
        try:
            out.append((sub.digest, report_row(read(sub, received_at, limits))))
        except IntakeError as e:
            out.append((sub.digest, (e.path, e.place, e.rule, e.reason)))
    return out


def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def ingest(
    store: Store,
    paths: Iterable[Path],
    fmt: str = "auto",
    limits: Limits | None = None,
    progress: Progress | None = None,
    batch_size: int = 500,
    batch_bytes: int = 64 * 1024 * 1024,
    workers: int = 1,
) -> IngestResult:
    """Read every submission under ``paths`` into the store; bad ones go to quarantine, the rest go on.

    With ``workers`` > 1, parsing runs in that many processes while this one walks the folders and
    writes; at most two batches per worker are in flight, so memory stays bounded.
    """
    limits = limits or Limits()
    result = IngestResult()
    counters = {"seen": 0, "bytes": 0}
    in_flight: set[str] = set()  # digests read but not yet committed: the store cannot know them yet

    def prepare(batch: list[Submission]) -> tuple[list[Submission], list[Submission], datetime]:
        """Split off what needs no parsing (duplicates, refusals known before reading)."""
        received_at = datetime.now(UTC)
        known = store.known([s.digest for s in batch if s.digest])
        to_read: list[Submission] = []
        for sub in batch:
            counters["seen"] += 1
            counters["bytes"] += sum(len(d.data) for d in sub.documents)
            if not sub.digest:  # a path that does not exist: nothing to keep, but say so
                assert sub.error is not None
                result.quarantined += 1
                result.errors.append(_error_entry(sub.error))
                continue
            prior = known.get(sub.digest)
            if prior is not None or sub.digest in in_flight:
                if prior is not None and prior.error is not None:
                    result.quarantined += 1
                    result.errors.append(_error_entry(prior.error))
                else:
                    result.duplicates += 1
                continue
            in_flight.add(sub.digest)
            to_read.append(sub)
        return batch, to_read, received_at

    def commit(to_read: list[Submission], outcomes: list[Outcome], received_at: datetime) -> None:
        by_digest = dict(outcomes)
        accepted: list[tuple[Submission, dict[str, Any]]] = []
        refused: list[tuple[Submission, IntakeError]] = []
        for sub in to_read:
            o = by_digest[sub.digest]
            if isinstance(o, dict):
                accepted.append((sub, o))
            else:
                refused.append((sub, IntakeError(*o)))
        conflicts = store.save_batch(accepted, refused, received_at)
        in_flight.difference_update(by_digest)
        result.accepted += len(accepted) - len(conflicts)
        for _, refusal in refused + conflicts:
            result.quarantined += 1
            result.errors.append(_error_entry(refusal))
        if progress:
            progress(counters["seen"], counters["bytes"])

    batches = _batches(iter_submissions(paths, fmt, limits), batch_size, batch_bytes)
    # the first batch is read here: a small ingest never pays for starting worker processes
    for batch in batches:
        _, to_read, received_at = prepare(batch)
        commit(to_read, _read_batch(to_read, received_at, limits), received_at)
        if workers > 1:
            break
    else:
        return result
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("forkserver")) as pool:
        pending: deque[tuple[list[Submission], datetime, Future[list[Outcome]]]] = deque()
        for batch in batches:
            _, to_read, received_at = prepare(batch)
            pending.append((to_read, received_at, pool.submit(_read_batch, to_read, received_at, limits)))
            while len(pending) >= 2 * workers:
                subs, at, fut = pending.popleft()
                commit(subs, fut.result(), at)
        while pending:
            subs, at, fut = pending.popleft()
            commit(subs, fut.result(), at)
    return result


@dataclass
class RetryResult:
    resolved: list[tuple[int, str]] = field(default_factory=list)  # (entry id, report id)
    failing: list[tuple[int, IntakeError]] = field(default_factory=list)


def _rebuild(store: Store, entry: QuarantineEntry, limits: Limits, workdir: Path) -> Submission:
    """Rebuild a submission from the original bytes kept in quarantine."""
    row = store.submission_row(entry.digest)
    assert row is not None
    fmt = SourceFormat(row["format"])
    sizes = store.original_sizes(entry.digest)
    for name, size in sizes:
        if size > limits.max_document_bytes:
            raise IntakeError(entry.path, "-", "size-limit", f"{name} is {size} bytes, over the limit of {limits.max_document_bytes}")
    docs = [Document.of(n, b) for n, b in store.original_documents(entry.digest)]
    if row["container"]:
        return Submission(row["path"], fmt, docs, entry.digest, report_id=row["report_id"], container=True)
    if fmt is SourceFormat.CSV:
        return Submission(row["path"], fmt, docs, entry.digest, line=row["line"])
    if len(docs) == 1 and docs[0].data[:4] == b"PK\x03\x04":
        target = workdir / docs[0].name
        target.write_bytes(docs[0].data)
        (sub,) = list(submissions_in_file(target, fmt, limits))
        sub.path = row["path"]
        return sub
    return Submission(row["path"], fmt, docs, entry.digest, report_id=row["report_id"] or entry.digest[:32], id_from_digest=bool(row["id_from_digest"]))


def retry_quarantine(store: Store, entry_ids: list[int] | None = None, limits: Limits | None = None) -> RetryResult:
    """Read quarantined submissions again (e.g. after an alias or a limit changed)."""
    limits = limits or Limits()
    result = RetryResult()
    entries = store.quarantine_entries("open") if entry_ids is None else [e for i in entry_ids if (e := store.quarantine_entry(i))]
    with tempfile.TemporaryDirectory(prefix="tiptriage-retry-") as tmp:
        for entry in entries:
            if entry.status != "open":
                continue
            try:
                sub = _rebuild(store, entry, limits, Path(tmp))
                row = store.submission_row(entry.digest)
                assert row is not None
                received = aware(row["received_at"])
                report = read(sub, received, limits)
                store.resolve_quarantine(entry, sub, report)
                result.resolved.append((entry.id, report.id))
            except IntakeError as err:
                store.update_quarantine_reason(entry, err)
                result.failing.append((entry.id, err))
    return result


# -- hash sets --------------------------------------------------------------------------------------


@dataclass
class HashSetImportResult:
    bank: str
    added: int = 0
    updated: int = 0
    removed: int = 0
    refused: int = 0
    refusals: list[dict[str, str]] = field(default_factory=list)  # the first 1,000, with file and place

    def as_json(self) -> dict[str, object]:
        return {"bank": self.bank, "added": self.added, "updated": self.updated, "removed": self.removed,
                "refused": self.refused, "refusals": self.refusals}


def import_hashset(
    store: Store,
    path: Path,
    name: str,
    fmt: str = "auto",
    negative: bool = False,
    max_distance: int | None = None,
    min_quality: int | None = None,
    chunk: int = 50_000,
    progress: Progress | None = None,
) -> HashSetImportResult:
    """Stream a hash-set file into bank ``name``: entries upserted, tombstones applied, bad entries refused."""
    kind = hs_formats.sniff(path) if fmt == "auto" else fmt
    if kind not in hs_formats.FORMATS:
        raise ValueError(f"unknown hash-set format {fmt!r}; use one of auto, {', '.join(hs_formats.FORMATS)}")
    repo = store.hashsets
    bank = repo.ensure_bank(name, negative, max_distance, min_quality)
    counts = repo.start_import(bank, str(path), kind)
    result = HashSetImportResult(bank=name)
    entries: list[dict[str, Any]] = []
    tombstones: list[str] = []
    refused = 0
    seen = 0

    def flush() -> None:
        nonlocal refused
        repo.apply_chunk(bank, counts, entries, tombstones, refused)
        entries.clear()
        tombstones.clear()
        refused = 0
        if progress:
            progress(seen, 0)

    for item in hs_formats.FORMATS[kind](path, None):
        seen += 1
        if isinstance(item, HashEntry):
            entries.append({
                "hash_type": item.hash_type.value, "value": item.value, "media_id": item.media_id, "category": item.category,
                "series": item.series, "victim_identified": item.victim_identified, "offender_identified": item.offender_identified,
                "is_distributed": item.is_distributed, "source_updated_at": item.updated_at,
            })
        elif isinstance(item, Tombstone):
            tombstones.append(item.media_id)
        else:
            refused += 1
            if len(result.refusals) < 1000:
                result.refusals.append({"path": str(path), "place": item.place, "reason": item.reason})
        if len(entries) + len(tombstones) >= chunk:
            flush()
    flush()
    result.added, result.updated, result.removed, result.refused = counts.added, counts.updated, counts.removed, counts.refused
    return result


# -- triage: the stages after intake, for what is new ----------------------------------------------


@dataclass
class TriageResult:
    new_reports: int = 0
    file_hashes_extracted: int = 0
    index_changes: int = 0
    reports_matched: int = 0
    files_known: int = 0
    files_novel: int = 0
    viral_hashes: int = 0
    hashset_seq: int = 0
    subjects: int = 0  # after linking, when anything changed
    bundles: int = 0
    assessed: int = 0
    by_tier: dict[str, int] = field(default_factory=dict)
    routed: dict[str, int] = field(default_factory=dict)
    deconfliction_notices: int = 0

    def as_json(self) -> dict[str, object]:
        return dict(self.__dict__)


def _account_of(report: Report) -> str | None:
    for acc in report.reported_people:
        if acc.esp_identifier or acc.screen_name:
            return f"{acc.esp_service or '?'}:{acc.esp_identifier or acc.screen_name}"
    return None


def file_hash_rows(report: Report) -> list[dict[str, Any]]:
    """One row per (file, hash) of a report, with the reporting account and the time it was seen."""
    account = _account_of(report)
    rows = []
    for f in report.files:
        seen = f.uploaded_at or report.incident_datetime
        for h in f.hashes:
            if h.hash_type in MATCHABLE:
                rows.append({"report_id": report.id, "file_id": f.file_id, "hash_type": h.hash_type.value,
                             "value": h.value, "account": account, "seen_at": seen})
    return rows


def location_row(report: Report, geo: GeoSources) -> dict[str, Any]:
    """Where the reported person probably is, with confidence and evidence (enrich stage)."""
    if report.reported_people:
        est = estimate_location(report.reported_people[0], report, geo)
    else:
        est = LocationEstimate(reference_time=report.incident_datetime, notes=["the report names no reported person"])
    return {"report_id": report.id, "country_code": est.country_code, "region": est.region, "city": est.city,
            "confidence": est.confidence, "needs_review": est.needs_review, "estimate": est.model_dump_json()}


MATCHABLE = (HashType.MD5, HashType.SHA1, HashType.SHA256, HashType.PDQ, HashType.VPDQ)


def triage(store: Store, flood: FloodRule | None = None, batch: int = 5000, progress: Progress | None = None,
           policy_path: Path | None = None) -> TriageResult:
    """Run the stages after intake on what is new: places and file hashes (enrich), flood protection,
    hash matching, linking, assessment.

    Reports matched before the newest hash-set import are matched again, so a hash-set update reaches
    the stored reports on the next run; when anything new was linked every report is assessed again.
    """
    flood = flood or FloodRule()
    repo = store.hashsets
    result = TriageResult()
    geo = GeoSources.from_env()
    while ids := repo.reports_without_file_hashes(batch):
        fetched = store.get_reports(ids)
        result.new_reports += len(fetched)
        store.links.save_locations([location_row(rep, geo) for rep in fetched])
        rows = [r for rep in fetched for r in file_hash_rows(rep)]
        repo.add_file_hashes(rows)
        result.file_hashes_extracted += len(rows)
        bare = sorted(set(ids) - {r["report_id"] for r in rows})
        if bare:  # reports without any hash get their (empty) summary now, so they are not fetched again
            _match(store, bare, HashIndexes(), 0, set())
        if len(ids) < batch:
            break
    marks = []
    now = datetime.now(UTC)
    for hash_type, value in repo.flood_candidates(flood.accounts):
        n, start, end = busiest_window(repo.sightings(hash_type, value), flood.days)
        if n > flood.accounts:
            marks.append({"hash_type": hash_type, "value": value, "accounts": n, "window_start": start, "window_end": end, "marked_at": now})
    repo.mark_viral(marks)
    viral = repo.viral_set()
    result.viral_hashes = len(viral)
    seq = repo.current_seq()
    folder = store.index_dir
    idx = HashIndexes.load(folder)
    if idx.seq > seq:  # the database was replaced under a saved index: start again
        idx = HashIndexes()
    if idx.seq < seq:
        result.index_changes = idx.refresh(repo.iter_entry_changes(idx.seq, [t.value for t in MATCHABLE]), seq)
        idx.save(folder)
    result.hashset_seq = seq
    while ids := repo.reports_to_match(seq, batch):
        known, novel = _match(store, ids, idx, seq, viral)
        result.reports_matched += len(ids)
        result.files_known += known
        result.files_novel += novel
        if progress:
            progress(result.reports_matched, 0)
    if result.new_reports or result.reports_matched or marks:
        lr = link(store)
        result.subjects, result.bundles = lr.subjects, lr.bundles
        # linked information changed what is known about earlier reports too: assess them all again
        ar = assess(store, policy_path, trigger="triage: new reports, a hash-set update or new links")
    else:
        ar = assess(store, policy_path, only_stale=True, trigger="triage")
    result.routed = route_and_open(store)
    if result.routed and PolicyRepository(store.engine).current():
        # a report routed (or moved) to an agency with its own policy is assessed under that policy from now on
        assess(store, policy_path, only_stale=True, trigger="routed to an agency with its own policy")
    before = store.work.deconflicted_reports()
    result.deconfliction_notices = deconflict(store)
    changed = store.work.deconflicted_reports() ^ before
    if changed:  # the deconfliction indicator of these reports changed
        ar = assess(store, policy_path, report_ids=sorted(changed), trigger="deconfliction changed")
    result.assessed, result.by_tier = ar.assessed, {str(k): v for k, v in sorted(store.assessments.tier_counts().items())}
    return result


def _match(store: Store, ids: list[str], idx: HashIndexes, seq: int, viral: set[tuple[str, str]]) -> tuple[int, int]:
    repo = store.hashsets
    rows = repo.file_hashes_for(ids)
    radius = max((b.max_distance for b in repo.banks()), default=31)
    hits = find_hits(rows, idx, radius)
    entries = repo.entries_by_id(h.entry_id for h in hits)
    matches, summaries = resolve(hits, entries, rows, store.file_counts(ids), viral, seq, datetime.now(UTC))
    repo.save_matches(ids, matches, summaries)
    return sum(s["known_files"] for s in summaries), sum(s["novel_files"] for s in summaries)


# -- linking ----------------------------------------------------------------------------------------


@dataclass
class LinkResult:
    accounts: int = 0
    subjects: int = 0
    multi_account_subjects: int = 0
    deterministic_links: int = 0
    probabilistic_links: int = 0
    confirmed_links: int = 0
    bundles: int = 0
    bundled_reports: int = 0
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return dict(self.__dict__)


def link(store: Store, backend: str = "duckdb", threshold: float = 0.99, synthetic_addresses: bool = False) -> LinkResult:
    """Rebuild subjects (people behind accounts) and bundles from every stored report.

    ``synthetic_addresses`` lets documentation-range IPs (RFC 5737) count as public, for synthetic data only.
    """
    reports_seen: dict[str, ReportFacts] = {}

    def reports() -> Iterator[Report]:
        for r in store.iter_reports():
            reports_seen[r.id] = ReportFacts(r.id, r.received_at, tuple(account_key(r, i) for i in range(len(r.reported_people))), provider_keys(r))
            yield r

    records, memberships = build_records(reports(), treat_documentation_as_public=synthetic_addresses)
    det = deterministic_links(records)
    prob, notes = probabilistic_links(records, threshold=threshold, backend=backend)
    repo = store.links
    decisions = Decisions()
    for d in repo.decisions():  # in the order they were made: a later decision overrides an earlier one
        if d["kind"] == "confirm" and d["b"]:
            decisions.confirmed.add((min(d["a"], d["b"]), max(d["a"], d["b"])))
        elif d["kind"] == "split":
            decisions.split.add(d["a"])
            decisions.confirmed = {p for p in decisions.confirmed if d["a"] not in p}
    clusters, used = cluster(records, det + prob, decisions)
    now = datetime.now(UTC)
    members: dict[str, list[str]] = {}
    for acc, anchor in clusters.items():
        members.setdefault(anchor, []).append(acc)
    subject_rows: list[dict[str, Any]] = []
    member_rows: list[dict[str, Any]] = []
    link_rows: list[dict[str, Any]] = []
    for anchor, accs in members.items():
        sid = repo.subject_id(anchor)  # stable while the cluster's smallest account key stays the same
        subject_rows.append({"id": sid, "accounts": len(accs), "reports": len({r for a in accs for r in records[a].reports}), "built_at": now})
        member_rows.extend({"account_key": a, "subject_id": sid} for a in accs)
    for lk in used:
        link_rows.append({"subject_id": repo.subject_id(clusters[lk.a]), "a": lk.a, "b": lk.b, "kind": lk.kind,
                          "probability": lk.probability, "evidence": json.dumps(list(lk.evidence))})
    bundle_rows, bundle_members = build_bundles(reports_seen, store.links.viral_report_keys())
    repo.replace_all(memberships, subject_rows, member_rows, link_rows, bundle_rows, bundle_members)
    return LinkResult(
        accounts=len(records), subjects=len(members), multi_account_subjects=sum(1 for v in members.values() if len(v) > 1),
        deterministic_links=sum(1 for lk in used if lk.kind == "deterministic"),
        probabilistic_links=sum(1 for lk in used if lk.kind == "probabilistic"),
        confirmed_links=sum(1 for lk in used if lk.kind == "confirmed"),
        bundles=len(bundle_rows), bundled_reports=len(bundle_members), notes=notes,
    )



# -- assessment -------------------------------------------------------------------------------------

DEFAULT_POLICY = "policy_default.yaml"


def policy_text(path: Path | None = None) -> str:
    if path is not None:
        return path.read_text("utf-8")
    return resources.files("tiptriage.data").joinpath(DEFAULT_POLICY).read_text("utf-8")


def record_keys(report: Report) -> set[str]:
    """Normalised identifiers of a report's reported people, in the form agency records are keyed by."""
    kinds = {"email": "email", "phone": "phone", "username": "username", "esp_account": "account"}
    return {f"{kinds[i.kind]}:{i.value}" for i in account_identifiers(report) if i.kind in kinds and i.linkable and i.path.startswith("reported_people")}


@dataclass
class AssessResult:
    assessed: int = 0
    by_tier: dict[int, int] = field(default_factory=dict)
    policy_name: str = ""  # the default policy's
    policy_version: str = ""
    changed: int = 0  # assessments written because they differ from the stored ones
    history: int = 0  # replaced assessments kept with what changed
    facts_derived: int = 0  # reports whose static indicators were derived from the report JSON this time
    agency_policies: dict[str, str] = field(default_factory=dict)  # agency -> version, for the agencies with their own policy
    warnings: list[str] = field(default_factory=list)
    relifted: int = 0  # reports assessed again because a report of their subject went to or from own tier 1
    cases_retimed: int = 0  # open cases whose SLA clock moved with their report's new tier

    def as_json(self) -> dict[str, object]:
        return {"assessed": self.assessed, "by_tier": {str(k): v for k, v in sorted(self.by_tier.items())},
                "policy_name": self.policy_name, "policy_version": self.policy_version, "changed": self.changed, "history": self.history,
                "facts_derived": self.facts_derived, "agency_policies": self.agency_policies, "warnings": self.warnings,
                "relifted": self.relifted, "cases_retimed": self.cases_retimed}


def load_policies(store: Store, policy_path: Path | None = None, warnings: list[str] | None = None) -> Policies:
    """The default policy (or ``policy_path``) and every agency's own. An agency policy that no longer loads falls back to
    the default, with a warning, so one bad stored policy cannot stop triage for everyone."""
    policy, version = load_policy(policy_text(policy_path))
    out = Policies(PolicyChoice(policy, version, None))
    for agency, row in PolicyRepository(store.engine).current().items():
        try:
            p, v = load_policy(row.text or "")
        except PolicyError as e:
            if warnings is not None:
                warnings.append(f"agency {agency}: its policy {row.version} (set by {row.set_by}) no longer loads, the default applies: {e.errors[0]}")
            continue
        out.agencies[agency] = PolicyChoice(p, v, agency)
    return out


def assess(store: Store, policy_path: Path | None = None, now: datetime | None = None, batch: int | None = None, only_stale: bool = False,
           report_ids: list[str] | None = None, trigger: str = "assess", per_report: bool = False, workers: int | None = None,
           progress: Progress | None = None) -> AssessResult:
    """Indicators → policy → tier, score and reasons for stored reports: all of them, ``report_ids``, or (``only_stale``)
    those not assessed yet, under another policy than their agency's, or without current stored indicators.

    Each report is assessed under the policy of the agency it is routed to, else the default. Linked information is read
    fresh, so re-running after new reports, hash sets, records or links re-assesses with it. An assessment that changes
    replaces the stored one, which is kept in the history with the change and ``trigger``.

    The static indicators (from the report alone) are derived from the report JSON once and stored; later runs read them
    as columns and evaluate every policy over vectors (``assess.batch.assess_stored``). ``per_report`` takes the older
    path instead, which extracts everything from each report and evaluates it alone: the reference the stored path is
    tested against, and the baseline of ``bench/assess.py``.

    ``workers``: processes that compute the stored path's batches while this one writes them; by default
    ``default_workers()`` when there are four batches or more, else none. ``progress`` is told the reports written so
    far after each batch.
    """
    now = now or datetime.now(UTC)
    warnings: list[str] = []
    policies = load_policies(store, policy_path, warnings)
    facts = IndicatorRepository(store.engine)
    result = AssessResult(policy_name=policies.default.policy.name, policy_version=policies.default.version,
                          agency_policies={a: c.version for a, c in sorted(policies.agencies.items())}, warnings=warnings)
    if report_ids is not None:
        ids = list(dict.fromkeys(report_ids))
    elif only_stale:
        ids = facts.stale(policies.expected)
    else:
        ids = store.report_ids()
    size = batch or (2_000 if per_report else 10_000)
    # worker processes pay for their start (about a second) only when there are batches enough to share
    workers = default_workers() if workers is None and len(ids) >= 4 * size else workers or 1
    run = _AssessRun(store, facts, policies, now, per_report, result, workers, progress)
    # the collector waits for the whole run, writes and the lift included, not only each batch's computation: with a batch
    # of a few million live objects every collection scans them all again, about a seventh of the run's CPU (measured)
    with _collector_paused():
        lift_from = run.batches(ids, size, trigger, ranged_ok=report_ids is None)
        # a report whose own tier went to or from 1 changes the floor of its subject's reports assessed before it (in an
        # earlier batch, or not in this run): assess those again. A lift never changes an own tier, so this ends; the
        # bound only guards against a store that changes under the run.
        for _ in range(3):
            if not lift_from:
                break
            again = sorted(lift_from)
            lift_from = run.batches(again, size, f"{trigger}; a linked report's own tier went to or from 1", ranged_ok=False)
            result.relifted += len(again)
    for rid in ids:  # the tier each report ends with, a lift after its batch included; an id not stored has none
        t = run.tiers.get(rid)
        if t is not None:
            result.assessed += 1
            result.by_tier[t] = result.by_tier.get(t, 0) + 1
    return result


class _SubjectContext:
    """What a report's subject adds to its context beyond the links: its other reports closed with an arrest and (with
    ``lifts``) those of own tier 1. Called on a batch's contexts just before they are evaluated, by both assessment paths;
    it remembers each report's subject reports for the lift."""

    def __init__(self, repo: IndicatorRepository, lifts: dict[str, list[str]] | None = None) -> None:
        self.repo = repo
        self.lifts = lifts or {}
        self.members: dict[str, list[str]] = {}

    def __call__(self, contexts: dict[str, Context]) -> None:
        arrested = self.repo.arrested({r for c in contexts.values() for r in c.subject_reports})
        for rid, c in contexts.items():
            self.members[rid] = list(dict.fromkeys(c.subject_reports))
            c.subject_arrests = [r for r in self.members[rid] if r in arrested and r != rid]
            c.subject_tier1 = list(self.lifts.get(rid, ()))


@dataclass
class _AssessRun:
    """One ``assess`` call: its batches, the lift between a subject's reports, the cases whose tier changed."""

    store: Store
    facts: IndicatorRepository
    policies: Policies
    now: datetime
    per_report: bool
    result: AssessResult
    workers: int = 1  # processes computing batches while this one writes (store-backed runs of several batches)
    progress: Progress | None = None
    tiers: dict[str, int] = field(default_factory=dict)  # the tier each report of the run ends with
    started: set[str] = field(default_factory=set)  # reports whose batch has begun to be computed

    def _rows(self, part: list[str], subject: _SubjectContext, ranged: bool) -> _Assessed:
        if self.per_report:  # left as it always ran: the baseline
            rows = _per_report_rows(self.store, part, self.now, self.policies, subject)
            return _Assessed(rows, lambda ids, lifts: _per_report_rows(self.store, ids, self.now, self.policies, _SubjectContext(self.facts, lifts)))
        # the cyclic collector is already paused around it: for the whole run (``assess``) or the worker's batch
        return _stored_rows(self.store, self.facts, part, self.now, self.policies, self.result, ranged, subject)

    def compute(self, part: list[str], ranged: bool) -> _Computed:
        """A batch's assessments, the lift included, and what the writer needs to know around them; nothing written
        but the static indicators of reports assessed for the first time."""
        subject = _SubjectContext(self.facts)
        derived = self.result.facts_derived
        rows = self._lift(part, self._rows(part, subject, ranged), subject.members)
        fresh = self.result.facts_derived - derived
        self.result.facts_derived = derived  # counted where the batch is written, as for a worker's
        return _Computed(part, ranged, rows, subject.members, fresh)

    def _computed(self, parts: list[list[str]], ranged_ok: bool) -> Iterator[_Computed]:
        """Each batch computed, in order: here, or (for a store-backed run of several batches) in worker processes while
        this one writes the batches before. A batch is in ``started`` from when its computation begins."""
        workers = self.workers if not self.per_report and len(parts) > 1 else 1
        if workers <= 1:
            for part in parts:
                self.started.update(part)
                yield self.compute(part, ranged_ok and self.facts.dense(part))
            return
        ring = self.store.cipher.keyring
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("forkserver"), initializer=_assess_worker_init,
                                 initargs=(self.store.url, ring, self.policies, self.now)) as pool:
            pending: deque[Future[_Computed]] = deque()
            queue = deque(parts)
            while queue or pending:
                while queue and len(pending) < workers + 1:  # one ready ahead, so no worker waits for the writer
                    part = queue.popleft()
                    self.started.update(part)
                    pending.append(pool.submit(_assess_worker_batch, part, ranged_ok))
                yield pending.popleft().result()

    def batches(self, ids: list[str], size: int, trigger: str, ranged_ok: bool) -> set[str]:
        """Assess ``ids`` batch by batch and store what changed; return the reports to assess again because a report of
        their subject changed its own tier to or from 1 after they were assessed."""
        run = set(ids)
        lift_from: set[str] = set()
        for c in self._computed([ids[i : i + size] for i in range(0, len(ids), size)], ranged_ok):
            part, rows = c.part, c.rows
            self.result.facts_derived += c.facts_derived
            done = self.facts.replace(rows, trigger, self.now, c.ranged)
            before = done.before  # as stored until this write, whatever a worker read when it computed the batch
            self.result.changed += done.written
            self.result.history += done.kept
            moved = [(r["report_id"], before[r["report_id"]][0], int(r["tier"])) for r in rows
                     if r["report_id"] in before and before[r["report_id"]][0] != r["tier"]]
            if moved:
                self.result.cases_retimed += self.store.work.retime(moved, trigger, self.now)
            inside = set(part)
            was = {rid for rid, (_, own) in before.items() if own == 1}
            now1 = {r["report_id"] for r in rows if r["own_tier"] == 1}
            for flipped in was ^ now1:
                for s in c.members.get(flipped, ()):
                    # a batch computed after this one is written reads the new own tier; one started before it (earlier, or
                    # beside it in another process) or a report outside the run read the old one
                    if s not in inside and (s not in run or s in self.started):
                        lift_from.add(s)
            for r in rows:
                self.tiers[r["report_id"]] = int(r["tier"])
            if self.progress:
                self.progress(len(self.tiers), 0)
        return lift_from

    def _lift(self, part: list[str], assessed: _Assessed, members: dict[str, list[str]]) -> list[dict[str, Any]]:
        """Assess again, with the indicator ``subject_tier1_reports``, the reports of a subject that has another report of
        own tier 1 (this batch's own tiers, the stored ones for the rest), keeping each report's own tier."""
        rows = assessed.rows
        inside = set(part)
        outside = {s for rid in part for s in members.get(rid, ()) if s not in inside}
        tier1 = {r["report_id"] for r in rows if r["own_tier"] == 1}
        if outside:
            tier1 |= self.facts.own_tier1() & outside
        lifts = {rid: sorted(s for s in members.get(rid, ()) if s != rid and s in tier1) for rid in part}
        lifts = {rid: v for rid, v in lifts.items() if v}
        if not lifts:
            return rows
        own = {r["report_id"]: r["own_tier"] for r in rows}
        again = {r["report_id"]: r for r in assessed.again(sorted(lifts), lifts)}
        for rid, r in again.items():
            r["own_tier"] = own[rid]
        return [again.get(r["report_id"], r) for r in rows]


@dataclass
class _Computed:
    part: list[str]
    ranged: bool  # read as a range of ids (``IndicatorRepository.dense``), and so written
    rows: list[dict[str, Any]]
    members: dict[str, list[str]]  # report -> every report of its subject
    facts_derived: int


_WORKER: _AssessRun | None = None


def _assess_worker_init(url: str, ring: Keyring, policies: Policies, now: datetime) -> None:
    global _WORKER
    store = Store(url, ring, migrate_schema=False)  # the run's own process migrated it
    _WORKER = _AssessRun(store, IndicatorRepository(store.engine), policies, now, False, AssessResult())


def _assess_worker_batch(part: list[str], ranged_ok: bool) -> _Computed:
    assert _WORKER is not None, "the worker was not initialised"
    with _collector_paused():  # the lift and the result's pickling too, not only the batch's rows (see assess)
        return _WORKER.compute(part, ranged_ok and _WORKER.facts.dense(part))


@dataclass
class _Assessed:
    """A batch's assessment rows, and how to assess some of its reports again with the subject lift (``lifts``: report ->
    the subject's other reports of own tier 1) from the same inputs."""

    rows: list[dict[str, Any]]
    again: Callable[[list[str], dict[str, list[str]]], list[dict[str, Any]]]


@contextmanager
def _collector_paused() -> Iterator[None]:
    """A batch makes a few million small acyclic objects; the cyclic collector's repeated scans of them cost about as
    much as the assessment itself (measured), so it waits until the run (or a worker's batch) is done. Nested uses leave
    it to the outermost."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _stored_rows(store: Store, repo: IndicatorRepository, ids: list[str], now: datetime, policies: Policies,
                 result: AssessResult, ranged: bool, subject: Callable[[dict[str, Context]], None]) -> _Assessed:
    stored = repo.load_facts(ids, ranged)
    missing = sorted(set(ids) - set(stored.ids))
    if missing:  # first assessment (or a new extractor, or a new index key): derive the static indicators once, and keep them
        for j in range(0, len(missing), 2_000):
            derived = []
            for report in store.get_reports(missing[j : j + 2_000]):
                static, f = report_facts(report)
                derived.append((static, f, [repo.record_key(k) for k in record_keys(report)]))
            repo.save_facts(derived, now)
            result.facts_derived += len(derived)
        stored = repo.load_facts(ids, ranged)
    contexts = repo.contexts(stored.ids, dict(zip(stored.ids, stored.record_keys, strict=True)), ranged)
    subject(contexts)
    routes = repo.routes(stored.ids, ranged)
    rows = assess_stored(stored.ids, stored.columns, stored.facts, contexts, routes, policies, now)

    def again(some: list[str], lifts: dict[str, list[str]]) -> list[dict[str, Any]]:
        # the batch's inputs as read above: only the lift is new, so nothing is read again
        at = {rid: j for j, rid in enumerate(stored.ids)}
        pick = [at[r] for r in some]
        for r in some:
            contexts[r].subject_tier1 = list(lifts.get(r, ()))
        return assess_stored(some, {k: v[pick] for k, v in stored.columns.items()}, [stored.facts[j] for j in pick],
                             {r: contexts[r] for r in some}, routes, policies, now)

    return _Assessed(rows, again)


def _per_report_rows(store: Store, ids: list[str], now: datetime, policies: Policies,
                     subject: Callable[[dict[str, Context]], None]) -> list[dict[str, Any]]:
    repo = store.assessments
    ctx_rows = repo.context_rows(ids)
    facts = IndicatorRepository(store.engine)
    routes = facts.routes(ids)
    reports = store.get_reports(ids)
    contexts: dict[str, Context] = {}
    for report in reports:
        c = ctx_rows[report.id]
        contexts[report.id] = Context(hash_summary=c.get("hash_summary"), matches=[Match.of(m) for m in c["matches"]], subject_id=c.get("subject_id"),
                                      subject_reports=c["subject_reports"], subject_services=c["subject_services"], bundle=c.get("bundle"),
                                      location=c.get("location"), records=repo.records_for(record_keys(report)),
                                      deconfliction=c.get("deconfliction", []))
    subject(contexts)
    # an assessment row holds the context indicators only; the static ones it is read with are the report's stored facts
    current = facts.with_facts(ids)
    facts.save_facts([(*report_facts(r), [facts.record_key(k) for k in record_keys(r)]) for r in reports if r.id not in current], now)
    return [assess_report(report.id, extract(report, contexts[report.id], now), policies.for_route(routes.get(report.id)), now)
            for report in reports]


@lru_cache(maxsize=32)
def _parsed_policy(text: str) -> tuple[Policy, str]:
    """A policy from its text, parsed once: the text is its identity, and a Policy is not changed once made."""
    return load_policy(text)


def tier_changes(store: Store, a: dict[str, Any]) -> dict[str, Any] | None:
    """What sets a stored assessment's tier and what would change it (``assess.policy.what_would_change``), under the
    policy that produced it: the agency's from its history, or the default when that version is the one in force. None
    when that policy can no longer be loaded (an older default): assess again to see."""
    agency = a.get("policy_agency")
    if agency:
        found = PolicyRepository(store.engine).find(agency, a["policy_version"])
        if found is None:
            return None
        policy, version = _parsed_policy(found.text or "")
    else:
        policy, version = _parsed_policy(policy_text())
    if version != a["policy_version"]:
        return None
    return what_would_change(policy, {k: Indicator.model_validate(v) for k, v in a["indicators"].items()})


def reassess_subjects(store: Store, report_ids: Iterable[str], trigger: str) -> AssessResult:
    """Assess again the assessed reports of the subjects of ``report_ids`` (those reports included): what one of them
    became (an outcome, a new link, a split) is context for the others."""
    repo = IndicatorRepository(store.engine)
    members = repo.subject_reports(report_ids)
    ids = sorted(repo.tiers(sorted({r for ms in members.values() for r in ms})))
    return assess(store, report_ids=ids, trigger=trigger)


def decide_link(store: Store, kind: str, account_a: str, account_b: str | None, reason: str, user: str) -> tuple[LinkResult, AssessResult]:
    """An analyst's link decision (``confirm`` two accounts as one person, or ``split`` one off): kept, subjects rebuilt,
    and the reports of every subject the accounts belonged to before or belong to after assessed again, since what
    their subject has reported changed."""
    accounts = [a for a in (account_a, account_b) if a]

    def reports_of_subjects() -> set[str]:
        out: set[str] = set()
        for a in accounts:
            sid = store.links.subject_of(a)
            subj = store.links.subject(sid) if sid is not None else None
            if subj is not None:
                out |= {str(r["report_id"]) for r in subj["report_accounts"]}
        return out

    before = reports_of_subjects()
    store.links.decide(kind, account_a, account_b, reason, user)
    linked = link(store)
    touched = before | reports_of_subjects()
    ids = sorted(IndicatorRepository(store.engine).tiers(sorted(touched)))
    return linked, assess(store, report_ids=ids, trigger=f"link decision by {user}: {kind}")


# -- per-agency policies ------------------------------------------------------------------------------


def known_agencies() -> dict[str, str]:
    """Agency id -> name, for every agency reports can be routed to (the clearinghouse's review queue included)."""
    from tiptriage.route.jurisdictions import agencies

    return {a.id: a.name for a in agencies()}


def check_agency_policy(agency_id: str, text: str) -> tuple[Policy, str]:
    """A policy an agency may put into service: valid, and reading only indicators tiptriage derives, with their types.
    Raises PolicyError naming the place of every problem."""
    names = known_agencies()
    if agency_id not in names:
        close = difflib.get_close_matches(agency_id, list(names), n=1, cutoff=0.6)
        raise PolicyError([f"(agency): unknown agency {agency_id!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                           + "; `tiptriage policy list --agencies` names them"])
    policy, version = load_policy(text)
    errors = vocabulary_errors(policy)
    if errors:
        raise PolicyError(errors)
    return policy, version


@dataclass
class AgencyPolicyChange:
    agency_id: str
    action: str  # set | reset | unchanged
    previous_version: str | None  # None: it ran the default policy
    version: str | None  # None: it runs the default policy now
    policy_name: str
    record_id: int | None
    reassessed: AssessResult | None

    def as_json(self) -> dict[str, object]:
        return {"agency_id": self.agency_id, "action": self.action, "previous_version": self.previous_version, "version": self.version,
                "policy_name": self.policy_name, "record_id": self.record_id,
                "reassessed": self.reassessed.as_json() if self.reassessed is not None else None}


def set_agency_policy(store: Store, agency_id: str, text: str | None, by: str, note: str | None = None,
                      now: datetime | None = None) -> AgencyPolicyChange:
    """Put a policy into service for an agency (``text``; None: back to the default policy), keep the change in the
    policy history, and re-assess the reports routed to that agency under it (their previous assessments are kept).
    Raises PolicyError, storing nothing, when the policy may not be used."""
    now = now or datetime.now(UTC)
    repo = PolicyRepository(store.engine)
    previous = repo.current_of(agency_id)
    if text is None:
        if agency_id not in known_agencies():
            raise PolicyError([f"(agency): unknown agency {agency_id!r}"])
        default, _ = load_policy(policy_text())
        if previous is None:
            return AgencyPolicyChange(agency_id, "unchanged", None, None, default.name, None, None)
        record = repo.add(agency_id, "reset", by, now, note=note)
        trigger = f"policy of {agency_id} reset to the default by {by} (was {previous.version})"
        name, version = default.name, None
    else:
        policy, version = check_agency_policy(agency_id, text)
        name = policy.name
        if previous is not None and previous.version == version:
            return AgencyPolicyChange(agency_id, "unchanged", version, version, name, previous.id, None)
        record = repo.add(agency_id, "set", by, now, text=text, name=policy.name, number=policy.version, version=version, note=note)
        trigger = f"policy of {agency_id} set by {by}: {previous.version if previous else 'default'} -> {version}"
    reassessed = assess(store, now=now, report_ids=repo.routed_reports(agency_id), trigger=trigger)
    return AgencyPolicyChange(agency_id, record.action, previous.version if previous else None, version, name, record.id, reassessed)


def diff_agency_policy(store: Store, proposed: Policy, agency_id: str | None = None, current: Policy | None = None,
                       top: int = 20) -> dict[str, Any]:
    """How the ranking would change from ``current`` (default: the agency's policy now, or the default policy) to
    ``proposed``, over the stored reports routed to ``agency_id`` (all stored reports when None), with their indicators
    as last assessed."""
    if current is None:
        row_ = PolicyRepository(store.engine).current_of(agency_id) if agency_id is not None else None
        current, _ = load_policy(row_.text or "") if row_ is not None else load_policy(policy_text())
    ids = PolicyRepository(store.engine).routed_reports(agency_id) if agency_id is not None else store.report_ids()
    reports = [(rid, {k: Indicator.model_validate(v) for k, v in ind.items()}) for rid, ind in IndicatorRepository(store.engine).indicator_maps(ids)]
    out = diff_rankings(current, proposed, reports, top=top)
    out["agency_id"] = agency_id
    return out


def import_records(store: Store, path: Path) -> tuple[int, list[str]]:
    """Agency records of known persons (CSV: record_id, agency, email, phone, username, service,
    esp_identifier, country, access_to_children, prior_contact_offence). Returns (keys stored, refusals)."""
    import csv as csv_module

    rows: list[dict[str, Any]] = []
    refusals: list[str] = []
    with path.open(newline="", encoding="utf-8") as f:
        for n, rec in enumerate(csv_module.DictReader(f), start=2):
            rid = (rec.get("record_id") or "").strip()
            if not rid:
                refusals.append(f"{path}: line {n}: missing record_id")
                continue
            flags = {}
            for col in ("access_to_children", "prior_contact_offence"):
                v = (rec.get(col) or "").strip().lower()
                if v not in ("true", "false", "yes", "no", "1", "0", ""):
                    refusals.append(f"{path}: line {n}, column {col}: {v[:20]!r} is not true or false")
                    break
                flags[col] = v in ("true", "yes", "1")
            else:
                keys = []
                if (e := rec.get("email")) and (ne := normalize_email(e)):
                    keys.append(f"email:{ne.value}")
                if (p := rec.get("phone")) and (np_ := normalize_phone(p, (rec.get("country") or "US").strip() or None)):
                    keys.append(f"phone:{np_.value}")
                if u := (rec.get("username") or "").strip():
                    keys.append(f"username:{normalize_username(u)}")
                if i := (rec.get("esp_identifier") or "").strip():
                    keys.append(f"account:{esp_account_key(rec.get('service'), i)}")
                if not keys:
                    refusals.append(f"{path}: line {n}: no usable identifier (email, phone, username or service + esp_identifier)")
                    continue
                for k, key in enumerate(keys):
                    rows.append({"record_id": rid if k == 0 else f"{rid}#{k}", "agency": rec.get("agency") or None, "key": key, **flags})
    facts = IndicatorRepository(store.engine)
    # the reports a record can move: those matching what a replaced record was keyed on before, and what it is keyed on now
    moved = facts.record_keys_of([r["record_id"] for r in rows]) | {facts.record_key(r["key"]) for r in rows}
    store.assessments.import_records(rows)
    affected = facts.reports_with_record_keys(moved) if moved else []
    if affected:
        assess(store, report_ids=affected, trigger=f"agency records imported from {path.name}")
    return len(rows), refusals


def _ndcg(gains: list[int], k: int | None = None) -> float:
    """Normalised discounted cumulative gain of a ranking's relevance ``gains`` (in queue order), over the first ``k``."""
    import numpy as np

    g = np.asarray(gains, dtype=np.float64)
    ideal = np.sort(g)[::-1]
    if k is not None:
        g, ideal = g[:k], ideal[:k]
    discount = 1.0 / np.log2(np.arange(2, len(g) + 2))
    best = float(ideal @ discount)
    return float(g @ discount) / best if best > 0 else 1.0


def evaluate_truth(store: Store, truth: dict[str, Any]) -> dict[str, Any]:
    """Per planted class: how many reports, the share in each tier, the queue positions (1 = first) of its first and last
    report and its median position against arrival order (FIFO); and NDCG of the whole queue, with relevance 4 minus the
    tier the class belongs in (``synth.EXPECTED_TIER``)."""
    from tiptriage.synth import EXPECTED_TIER, LIVE_VICTIM_CLASSES

    queue_rows = store.assessments.queue()
    n = max(1, len(queue_rows))
    rank = {r["report_id"]: i + 1 for i, r in enumerate(queue_rows)}
    tier = {r["report_id"]: r["tier"] for r in queue_rows}
    fifo = sorted(queue_rows, key=lambda r: (r["received_at"], r["report_id"]))
    fifo_rank = {r["report_id"]: i + 1 for i, r in enumerate(fifo)}
    classes: dict[str, Any] = {}
    for rid, t in truth["reports"].items():
        if rid not in tier:
            continue
        c = classes.setdefault(t["class"], {"reports": 0, "tiers": {}, "_pos": [], "_fifo": []})
        c["reports"] += 1
        c["tiers"][str(tier[rid])] = c["tiers"].get(str(tier[rid]), 0) + 1
        c["_pos"].append(rank[rid])
        c["_fifo"].append(fifo_rank[rid])
    for c in classes.values():
        pos, ff = sorted(c.pop("_pos")), sorted(c.pop("_fifo"))
        c["tier_share"] = {k: round(v / c["reports"], 4) for k, v in sorted(c["tiers"].items())}
        c["first_position"], c["last_position"] = pos[0], pos[-1]
        c["median_position"], c["fifo_median_position"] = (pos[len(pos) // 2] - 1) / n, (ff[len(ff) // 2] - 1) / n
    live = {rid for rid, t in truth["reports"].items() if t["class"] in LIVE_VICTIM_CLASSES and rid in tier}
    urgent = {rid for rid, t in tier.items() if t <= 2}
    cls = {rid: t["class"] for rid, t in truth["reports"].items()}
    gains = [4 - EXPECTED_TIER.get(cls.get(r["report_id"], ""), 4) for r in queue_rows]
    fifo_gains = [4 - EXPECTED_TIER.get(cls.get(r["report_id"], ""), 4) for r in fifo]
    return {
        "assessed": len(queue_rows),
        "classes": dict(sorted(classes.items(), key=lambda kv: kv[1]["median_position"])),
        "live_victim_recall_tier12": len(live & urgent) / max(1, len(live)),
        "live_victim_precision_tier12": len(live & urgent) / max(1, len(urgent)),
        "ndcg": round(_ndcg(gains), 4),
        "ndcg_at_100": round(_ndcg(gains, 100), 4),
        "fifo_ndcg": round(_ndcg(fifo_gains), 4),
    }


# -- routing, cases, deconfliction --------------------------------------------------------------------


def route_and_open(store: Store, by: str = "tiptriage", batch: int = 2000) -> dict[str, int]:
    """Route every assessed, not yet routed report from its location estimate, and open its case.

    Low confidence goes to the clearinghouse's review queue, never to a guess; the SLA clock of the
    case follows the report's tier (``data/sla.json``)."""
    repo = store.work
    counts: dict[str, int] = {}
    while rows := repo.unrouted(batch):
        now = datetime.now(UTC)
        out = []
        for r in rows:
            est = LocationEstimate.model_validate_json(r["estimate"])
            decision = route(est)
            out.append({"report_id": r["report_id"], "agency_id": decision.agency_id, "reason": decision.reason,
                        "confidence": decision.confidence, "alternatives": decision.alternatives,
                        "due_at": due_at(int(r["tier"]), now)})
            counts[decision.agency_id] = counts.get(decision.agency_id, 0) + 1
        repo.open_routed(out, by, now)
        if len(rows) < batch:
            break
    return counts


def deconflict(store: Store) -> int:
    """Where one subject's open reports sit with different agencies, tell each side the other agency
    and its case reference, and nothing more. Returns the number of notices."""
    by_subject: dict[str, list[tuple[str, str, str]]] = {}
    for subject, report_id, agency, cid in store.work.subject_routes():
        by_subject.setdefault(subject, []).append((report_id, agency, cid))
    now = datetime.now(UTC)
    rows = []
    for subject, items in by_subject.items():
        agencies = {a for _, a, _ in items}
        if len(agencies) < 2:
            continue
        for report_id, agency, _ in items:
            for _other_report, other_agency, other_case in items:
                if other_agency != agency:
                    rows.append({"subject_id": subject, "agency_id": agency, "report_id": report_id, "other_agency_id": other_agency,
                                 "other_case_ref": other_case, "created_at": now})
    unique = {(r["agency_id"], r["report_id"], r["other_agency_id"], r["other_case_ref"]): r for r in rows}
    store.work.replace_deconfliction(list(unique.values()))
    return len(unique)


# -- lead packages ----------------------------------------------------------------------------------


def preservation_requests(store: Store, report_id: str) -> list[Any]:
    """The § 2703(f) requests recorded for a report, as the deadline arithmetic takes them."""
    from tiptriage.packages import deadlines as dl

    return [dl.PreservationRequest(provider=p["provider"], sent_at=p["sent_at"], renewed_at=p["renewed_at"], reference=p["reference"])
            for p in store.preservation.of(report_id)]


def build_package(store: Store, report_id: str, by: str, now: datetime | None = None) -> Any:
    """Gather what an investigator needs about one report into a PackageData (never imagery)."""
    from tiptriage.assess.policy import Assessment, FiredRule
    from tiptriage.packages import deadlines as dl
    from tiptriage.packages import model as pm
    from tiptriage.route.jurisdictions import agencies

    now = now or datetime.now(UTC)
    report = store.get_report(report_id)
    a = store.assessments.get(report_id)
    if report is None or a is None:
        raise KeyError(report_id)
    assessment = Assessment(tier=a["tier"], score=a["score"], policy_name=a["policy_name"], policy_version=a["policy_version"],
                            fired=[FiredRule.model_validate(f) for f in a["fired"]])
    subject = None
    sid = store.links.subject_of(account_key(report, 0)) if report.reported_people else None
    subj = store.links.subject(sid) if sid else None
    if subj is not None:
        linked_ids = sorted({r["report_id"] for r in subj["report_accounts"]} - {report_id})
        linked = []
        for other in store.get_reports(linked_ids[:50]):
            oa = store.assessments.get(other.id)
            linked.append(pm.LinkedReport(report_id=other.id, tier=oa["tier"] if oa else None, received_at=other.received_at,
                                          evidence=[e for lk in subj["links"] for e in lk["evidence"]][:5]))
        subject = pm.Subject(id=subj["id"], accounts=[pm.SubjectAccount(key=k, provider=k.split(":", 1)[0]) for k in subj["account_keys"]],
                             linked_reports=linked)
    kind_map = {"email": "email", "phone": "phone", "username": "username", "esp_account": "esp_id", "ip": "ip", "device": "device_id"}
    idents: dict[tuple[str, str], pm.Identifier] = {}
    for i in account_identifiers(report):
        k = (kind_map.get(i.kind, "other"), i.original)
        prev = idents.get(k)
        idents[k] = pm.Identifier(kind=k[0], value=i.original, normalized=i.value, sources=[*(prev.sources if prev else []), f"{report_id} {i.path}"])
    loc = store.links.location_of(report_id)
    place = None
    if loc is not None:
        est = loc["estimate"]
        place = pm.EstimatedPlace(country_code=est.get("country_code"), region=est.get("region"), city=est.get("city"),
                                  confidence=est.get("confidence", 0.0), region_confidence=est.get("region_confidence", 0.0),
                                  city_confidence=est.get("city_confidence", 0.0), needs_review=est.get("needs_review", True),
                                  evidence=[f"{e['source']}: {e['detail']}" for e in est.get("evidence", [])])
    ip_events = [pm.IpEventPlace(ip_address=ev.ip_address, port=ev.port, event_name=ev.event_name.value if ev.event_name else None,
                                 date_time=ev.date_time, possible_proxy=ev.possible_proxy, account=account_key(report, n), place=place)
                 for n, acc in enumerate(report.reported_people) for ev in acc.ip_events]
    matches = [pm.HashMatch(file_id=m["file_id"], hash_type=m["hash_type"], bank=m["bank"], match_type=m["match_type"], distance=m["distance"],
                            category=m["category"], series=m["series"], victim_identified=m["victim_identified"], suppressed_by=m["suppressed_by"])
               for m in store.hashsets.matches_of(report_id)]
    r = store.work.route_of(report_id)
    names = {ag.id: ag.name for ag in agencies()}
    routing = pm.Routing(agency_id=r["agency_id"], agency_name=names.get(r["agency_id"]), reason=r["reason"], confidence=r["confidence"],
                         alternatives=r["alternatives"]) if r else None
    mode = dl.gate_mode_for(r["agency_id"] if r else None)
    notices = store.work.notices_for(report_id=report_id)
    requests = preservation_requests(store, report_id)
    return pm.PackageData(
        report=report, assessment=assessment, subject=subject, identifiers=list(idents.values()), ip_events=ip_events,
        hash_matches=matches, routing=routing, deadlines=dl.report_deadlines(report, requests, now), preservation_requests=requests,
        file_access=dl.file_access_statuses(report, mode),
        checklist=pm.LegalChecklist(deconfliction_checked=True, preservation_request_sent=bool(requests),
                                    notes=[f"deconfliction: subject also has case {n['other_case_ref']} at {n['other_agency_id']}" for n in notices]),
        generated_at=now, generated_by=by,
    )


def evaluate_outcomes(store: Store) -> dict[str, Any]:
    """Per tier, what the closed cases came to: did the higher tiers hold the cases where a child was
    safeguarded or an arrest made, and how long did closing take."""
    by_tier: dict[str, dict[str, Any]] = {}
    hours: dict[str, list[float]] = {}
    closed = 0
    for row in store.work.agency_queue(None, include_closed=True):
        if row["state"] != "closed":
            continue
        closed += 1
        t = str(row["tier"])
        v = by_tier.setdefault(t, {"closed": 0, "outcomes": {}})
        v["closed"] += 1
        v["outcomes"][row["outcome"]] = v["outcomes"].get(row["outcome"], 0) + 1
        hours.setdefault(t, []).append((aware(row["updated_at"]) - aware(row["opened_at"])).total_seconds() / 3600)
    for t, v in by_tier.items():
        n = v["closed"]
        v["action_share"] = (v["outcomes"].get("child_safeguarded", 0) + v["outcomes"].get("arrest", 0)) / n
        v["unfounded_share"] = v["outcomes"].get("unfounded", 0) / n
        hs = sorted(hours[t])
        v["median_hours_to_close"] = hs[len(hs) // 2] if hs else None
    return {"closed": closed, "by_tier": dict(sorted(by_tier.items()))}
