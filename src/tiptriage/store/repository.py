"""The intake repository: submissions, their original bytes, reports and the quarantine.

Each batch is written in one transaction: a process killed at any point leaves either the whole
batch or none of it, and re-running the ingest skips what is already there by digest.

The store opens only with a data key (``store.crypto``): report JSON and original bytes are sealed here, in the writer, so the
parsing processes never hold the key.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tiptriage.intake import IntakeError, Submission
from tiptriage.model import Report
from tiptriage.store import blobs
from tiptriage.store.assessments import AssessmentRepository
from tiptriage.store.audit import AuditRepository
from tiptriage.store.bulk import insert_rows
from tiptriage.store.crypto import INDEX_NEXT_META_KEY, Cipher, DataKeyError, Keyring, aad, attach, read_wrapped
from tiptriage.store.db import database_url, make_engine, migrate
from tiptriage.store.hashsets import HashSetRepository
from tiptriage.store.links import LinkRepository
from tiptriage.store.preservation import PreservationRepository
from tiptriage.store.rotation import encrypt_existing
from tiptriage.store.schema import quarantine, reports, store_meta, submission_documents, submissions
from tiptriage.store.times import aware as _aware
from tiptriage.store.times import utc as _utc
from tiptriage.store.work import WorkRepository


def report_row(r: Report) -> dict[str, Any]:
    """The stored row of a report: the canonical model as JSON plus the columns queues filter on.
    A pure function, so parsing processes can build rows and the writer only inserts them."""
    return {
        "id": r.id,
        "provider": r.provider,
        "incident_type": r.incident_type.value,
        "incident_datetime": _utc(r.incident_datetime),
        "received_at": _utc(r.received_at),
        "escalated": r.is_escalated,
        "file_count": len(r.files),
        "data": r.model_dump_json(exclude_none=True),
    }


@dataclass(frozen=True)
class Known:
    status: str  # accepted | quarantined
    report_id: str | None
    error: IntakeError | None


@dataclass(frozen=True)
class QuarantineEntry:
    id: int
    digest: str
    path: str
    place: str
    rule: str
    reason: str
    status: str
    created_at: datetime
    format: str
    resolved_report_id: str | None

    @property
    def error(self) -> IntakeError:
        return IntakeError(self.path, self.place, self.rule, self.reason)


def _report_context(report_id: str) -> bytes:
    return aad("reports", "data", report_id)


class Store:
    """The store. ``keyring``: the data keys; by default from ``TIPTRIAGE_DATA_KEY_FILE`` or ``TIPTRIAGE_DATA_KEY``, and without
    one the store does not open (``DataKeyError``), before it touches the database."""

    def __init__(self, url: str | None = None, keyring: Keyring | None = None, *, migrate_schema: bool = True) -> None:
        """``migrate_schema=False`` for a role that may not change the schema (the service's row-level-security role): the owner
        migrates and encrypts, this store only reads and writes rows."""
        ring = keyring if keyring is not None else Keyring.from_env()
        self.url = database_url(url)
        self.engine = make_engine(self.url)
        if migrate_schema:
            migrate(self.engine)
        with self.engine.connect() as conn:
            rekeying = read_wrapped(conn, INDEX_NEXT_META_KEY) is not None
        if rekeying:
            self.engine.dispose()
            raise DataKeyError("a re-keying of the index key was interrupted and keyed hashes are half changed: finish it first "
                               "with `tiptriage keys rotate --new-key-file FILE --rekey-index` (FILE: the key it was started with)")
        self.cipher = Cipher(ring, self.engine)
        try:
            _ = self.cipher.index_key  # opening the index key checks the data key against this database, here and now
        except Exception:
            self.engine.dispose()
            raise
        attach(self.engine, self.cipher)
        if migrate_schema:
            encrypt_existing(self.engine, self.cipher)

    @property
    def hashsets(self) -> HashSetRepository:
        return HashSetRepository(self.engine)

    @property
    def work(self) -> WorkRepository:
        return WorkRepository(self.engine)

    @property
    def preservation(self) -> PreservationRepository:
        return PreservationRepository(self.engine)

    @property
    def audit(self) -> AuditRepository:
        return AuditRepository(self.engine)

    @property
    def assessments(self) -> AssessmentRepository:
        return AssessmentRepository(self.engine)

    @property
    def links(self) -> LinkRepository:
        return LinkRepository(self.engine)

    @property
    def instance_id(self) -> str:
        """A random id made when the database was created: saved indexes are only valid for their database."""
        with self.engine.begin() as conn:
            found = conn.execute(sa.select(store_meta.c.value).where(store_meta.c.key == "instance_id")).scalar_one_or_none()
            if found is None:
                found = uuid.uuid4().hex
                conn.execute(store_meta.insert().values(key="instance_id", value=found))
            return str(found)

    @property
    def index_dir(self) -> Path:
        """Where saved hash indexes live (a cache; rebuilt from the database when missing or stale):
        TIPTRIAGE_INDEX_DIR, else beside a SQLite file, else the user's cache folder."""
        explicit = os.environ.get("TIPTRIAGE_INDEX_DIR")
        if explicit:
            return Path(explicit) / self.instance_id
        url = sa.engine.make_url(self.url)
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            return Path(f"{url.database}.index") / self.instance_id
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        return cache / "tiptriage" / "index" / self.instance_id

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def dispose(self) -> None:
        self.engine.dispose()

    # -- intake -------------------------------------------------------------------------------

    def known(self, digests: list[str]) -> dict[str, Known]:
        if not digests:
            return {}
        out: dict[str, Known] = {}
        with self.engine.connect() as conn:
            q = (
                sa.select(submissions.c.digest, submissions.c.status, submissions.c.report_id, quarantine)
                .select_from(submissions.outerjoin(quarantine, quarantine.c.digest == submissions.c.digest))
                .where(submissions.c.digest.in_(digests))
            )
            for row in conn.execute(q).mappings():
                err = None
                if row["status"] == "quarantined" and row["rule"] is not None:
                    err = IntakeError(row["path"], row["place"], row["rule"], row["reason"])
                out[row["digest"]] = Known(row["status"], row["report_id"], err)
        return out

    def save_batch(
        self,
        accepted: list[tuple[Submission, dict[str, Any]]],
        refused: list[tuple[Submission, IntakeError]],
        received_at: datetime,
    ) -> list[tuple[Submission, IntakeError]]:
        """Write a batch atomically. Returns the accepted submissions that were refused here
        (a report id already stored from different bytes) after adding them to the quarantine."""
        refused = list(refused)
        with self.engine.begin() as conn:
            ids = [r["id"] for _, r in accepted]
            taken = {row[0] for row in conn.execute(sa.select(reports.c.id).where(reports.c.id.in_(ids)))} if ids else set()
            keep: list[tuple[Submission, dict[str, Any]]] = []
            conflicts: list[tuple[Submission, IntakeError]] = []
            for sub, rep in accepted:
                if rep["id"] in taken:
                    err = IntakeError(sub.path, "-", "report-id-unique", f"report {rep['id']!r} is already stored from different bytes; a changed report needs a new id")
                    conflicts.append((sub, err))
                else:
                    taken.add(rep["id"])
                    keep.append((sub, rep))
            refused.extend(conflicts)
            self._write_submissions(conn, [(s, "accepted", r["id"]) for s, r in keep] + [(s, "quarantined", s.report_id or None) for s, _ in refused], received_at)
            if keep:
                now = datetime.now(UTC)
                insert_rows(conn, reports, [{**r, "data": self.cipher.seal_text(r["data"], _report_context(r["id"])), "submission_digest": s.digest,
                                             "stored_at": now} for s, r in keep])
            if refused:
                now = datetime.now(UTC)
                conn.execute(
                    quarantine.insert(),
                    [
                        {
                            "digest": s.digest,
                            "path": e.path,
                            "place": e.place,
                            "rule": e.rule,
                            "reason": e.reason,
                            "status": "open",
                            "created_at": now,
                        }
                        for s, e in refused
                    ],
                )
        return conflicts

    def _write_submissions(self, conn: sa.Connection, rows: list[tuple[Submission, str, str | None]], received_at: datetime) -> None:
        if not rows:
            return
        docs: dict[str, bytes] = {}
        doc_rows: list[dict[str, Any]] = []
        for sub, _, _ in rows:
            if sub.spill is not None:
                sha, _size = blobs.put_file(conn, sub.spill, self.cipher)
                doc_rows.append({"digest": sub.digest, "position": 0, "name": sub.spill.name, "sha256": sha})
                continue
            for i, d in enumerate(sub.documents):
                docs[d.sha256] = d.data
                doc_rows.append({"digest": sub.digest, "position": i, "name": d.name, "sha256": d.sha256})
        blobs.put_many(conn, docs, self.cipher)
        insert_rows(
            conn,
            submissions,
            [
                {
                    "digest": sub.digest,
                    "format": sub.format.value,
                    "path": sub.path,
                    "report_id": rid,
                    "id_from_digest": sub.id_from_digest,
                    "container": sub.container,
                    "line": sub.line,
                    "status": status,
                    "received_at": _utc(received_at),
                }
                for sub, status, rid in rows
            ],
        )
        insert_rows(conn, submission_documents, doc_rows)

    # -- reports ------------------------------------------------------------------------------

    def _report(self, report_id: str, sealed: str) -> Report:
        return Report.model_validate_json(self.cipher.open_text(sealed, _report_context(report_id)))

    def get_report(self, report_id: str) -> Report | None:
        with self.engine.connect() as conn:
            data = conn.execute(sa.select(reports.c.data).where(reports.c.id == report_id)).scalar_one_or_none()
        return self._report(report_id, data) if data is not None else None

    def count_reports(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(reports)).scalar_one())

    def iter_reports(self, batch: int = 1000) -> Iterator[Report]:
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch).execute(sa.select(reports.c.id, reports.c.data).order_by(reports.c.id))
            for rid, data in result:
                yield self._report(rid, data)

    def report_ids(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(reports.c.id).order_by(reports.c.id))]

    def incident_type_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(reports.c.incident_type, sa.func.count()).group_by(reports.c.incident_type))
            return {r[0]: int(r[1]) for r in rows}

    def original_documents(self, digest: str) -> list[tuple[str, bytes]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(submission_documents.c.name, submission_documents.c.sha256)
                .where(submission_documents.c.digest == digest)
                .order_by(submission_documents.c.position)
            ).all()
            return [(name, blobs.get(conn, sha, self.cipher)) for name, sha in rows]

    def original_sizes(self, digest: str) -> list[tuple[str, int]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(submission_documents.c.name, submission_documents.c.sha256)
                .where(submission_documents.c.digest == digest)
                .order_by(submission_documents.c.position)
            ).all()
            return [(name, blobs.size_of(conn, sha)) for name, sha in rows]

    def submission_row(self, digest: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(submissions).where(submissions.c.digest == digest)).mappings().one_or_none()
            return dict(row) if row else None

    # -- quarantine ---------------------------------------------------------------------------

    def _entries(self, where: Any) -> list[QuarantineEntry]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(quarantine, submissions.c.format)
                .select_from(quarantine.join(submissions, submissions.c.digest == quarantine.c.digest))
                .where(where)
                .order_by(quarantine.c.id)
            ).mappings()
            return [
                QuarantineEntry(
                    id=r["id"], digest=r["digest"], path=r["path"], place=r["place"], rule=r["rule"], reason=r["reason"],
                    status=r["status"], created_at=_aware(r["created_at"]), format=r["format"], resolved_report_id=r["resolved_report_id"],
                )
                for r in rows
            ]

    def quarantine_entries(self, status: str | None = "open") -> list[QuarantineEntry]:
        return self._entries(quarantine.c.status == status if status else sa.true())

    def quarantine_entry(self, entry_id: int) -> QuarantineEntry | None:
        found = self._entries(quarantine.c.id == entry_id)
        return found[0] if found else None

    def resolve_quarantine(self, entry: QuarantineEntry, sub: Submission, report: Report) -> None:
        """A quarantined submission now reads: store its report and close the entry, atomically."""
        with self.engine.begin() as conn:
            if conn.execute(sa.select(reports.c.id).where(reports.c.id == report.id)).first():
                raise IntakeError(entry.path, "-", "report-id-unique", f"report {report.id!r} is already stored")
            row = report_row(report)
            conn.execute(
                reports.insert(),
                {**row, "data": self.cipher.seal_text(row["data"], _report_context(report.id)), "submission_digest": entry.digest,
                 "stored_at": datetime.now(UTC)},
            )
            conn.execute(submissions.update().where(submissions.c.digest == entry.digest).values(status="accepted", report_id=report.id))
            conn.execute(quarantine.update().where(quarantine.c.id == entry.id).values(status="resolved", resolved_report_id=report.id))

    def update_quarantine_reason(self, entry: QuarantineEntry, err: IntakeError) -> None:
        with self.engine.begin() as conn:
            conn.execute(quarantine.update().where(quarantine.c.id == entry.id).values(place=err.place, rule=err.rule, reason=err.reason))

    def file_counts(self, report_ids: list[str]) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(reports.c.id, reports.c.file_count).where(reports.c.id.in_(report_ids)))
            return {r[0]: int(r[1]) for r in rows}

    def get_reports(self, report_ids: list[str]) -> list[Report]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(reports.c.id, reports.c.data).where(reports.c.id.in_(report_ids)))
            return [self._report(r[0], r[1]) for r in rows]
