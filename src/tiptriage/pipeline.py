"""The one place that wires the stages together. The CLI, the server and the simulator call this.

Today: intake (discover → read → store, with quarantine). Later stages append here.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tiptriage.intake import Document, IntakeError, Limits, Submission, iter_submissions, read
from tiptriage.intake.discover import submissions_in_file
from tiptriage.model import Report, SourceFormat
from tiptriage.store import QuarantineEntry, Store

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


def ingest(
    store: Store,
    paths: Iterable[Path],
    fmt: str = "auto",
    limits: Limits | None = None,
    progress: Progress | None = None,
    batch_size: int = 500,
    batch_bytes: int = 64 * 1024 * 1024,
) -> IngestResult:
    """Read every submission under ``paths`` into the store; bad ones go to quarantine, the rest go on."""
    limits = limits or Limits()
    result = IngestResult()
    seen = 0
    seen_bytes = 0
    for batch in _batches(iter_submissions(paths, fmt, limits), batch_size, batch_bytes):
        received_at = datetime.now(UTC)
        known = store.known([s.digest for s in batch if s.digest])
        in_batch: set[str] = set()
        accepted: list[tuple[Submission, Report]] = []
        refused: list[tuple[Submission, IntakeError]] = []
        for sub in batch:
            seen += 1
            seen_bytes += sum(len(d.data) for d in sub.documents)
            if not sub.digest:  # a path that does not exist: nothing to keep, but say so
                assert sub.error is not None
                result.quarantined += 1
                result.errors.append(_error_entry(sub.error))
                continue
            prior = known.get(sub.digest)
            if prior is not None or sub.digest in in_batch:
                if prior is not None and prior.error is not None:
                    result.quarantined += 1
                    result.errors.append(_error_entry(prior.error))
                else:
                    result.duplicates += 1
                continue
            in_batch.add(sub.digest)
            try:
                accepted.append((sub, read(sub, received_at, limits)))
            except IntakeError as err:
                refused.append((sub, err))
        conflicts = store.save_batch(accepted, refused, received_at)
        result.accepted += len(accepted) - len(conflicts)
        for _, refusal in refused + conflicts:
            result.quarantined += 1
            result.errors.append(_error_entry(refusal))
        if progress:
            progress(seen, seen_bytes)
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
