"""The one place that wires the stages together. The CLI, the server and the simulator call this.

Today: intake (discover → read → store, with quarantine). Later stages append here.
"""

from __future__ import annotations

import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tiptriage.intake import Document, IntakeError, Limits, Submission, iter_submissions, read
from tiptriage.intake.discover import submissions_in_file
from tiptriage.model import SourceFormat
from tiptriage.store import QuarantineEntry, Store, report_row

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
                received = row["received_at"] if row["received_at"].tzinfo else row["received_at"].replace(tzinfo=UTC)
                report = read(sub, received, limits)
                store.resolve_quarantine(entry, sub, report)
                result.resolved.append((entry.id, report.id))
            except IntakeError as err:
                store.update_quarantine_reason(entry, err)
                result.failing.append((entry.id, err))
    return result
