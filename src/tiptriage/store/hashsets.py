"""Hash banks, their entries, report file hashes, match results and viral hashes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from tiptriage.store.bulk import insert_rows
from tiptriage.store.crypto import aad, cipher_of
from tiptriage.store.schema import (
    file_matches,
    hash_banks,
    hash_entries,
    hash_imports,
    report_file_hashes,
    report_hash_summary,
    reports,
    viral_hashes,
)
from tiptriage.store.times import aware as _aware


@dataclass(frozen=True)
class Bank:
    id: int
    name: str
    negative: bool
    max_distance: int
    min_quality: int
    updated_at: datetime


@dataclass
class ImportCounts:
    import_id: int
    added: int = 0
    updated: int = 0
    removed: int = 0
    refused: int = 0


_ENTRY_FIELDS = ("media_id", "category", "series", "victim_identified", "offender_identified", "is_distributed", "source_updated_at")


def _bank(row: Any) -> Bank:
    return Bank(row.id, row.name, row.negative, row.max_distance, row.min_quality, _aware(row.updated_at))


class HashSetRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    # -- banks and imports -----------------------------------------------------------------------

    def ensure_bank(self, name: str, negative: bool, max_distance: int | None, min_quality: int | None) -> Bank:
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(hash_banks).where(hash_banks.c.name == name)).one_or_none()
            if row is None:
                conn.execute(hash_banks.insert().values(
                    name=name, negative=negative, max_distance=31 if max_distance is None else max_distance,
                    min_quality=50 if min_quality is None else min_quality, created_at=now, updated_at=now,
                ))
            else:
                if row.negative != negative:
                    kind = "negative" if row.negative else "positive"
                    raise ValueError(f"bank {name!r} already exists as a {kind} bank")
                changes: dict[str, Any] = {}
                if max_distance is not None:
                    changes["max_distance"] = max_distance
                if min_quality is not None:
                    changes["min_quality"] = min_quality
                if changes:
                    conn.execute(hash_banks.update().where(hash_banks.c.id == row.id).values(**changes))
            return _bank(conn.execute(sa.select(hash_banks).where(hash_banks.c.name == name)).one())

    def banks(self) -> list[Bank]:
        with self.engine.connect() as conn:
            return [_bank(r) for r in conn.execute(sa.select(hash_banks).order_by(hash_banks.c.name))]

    def start_import(self, bank: Bank, path: str, fmt: str) -> ImportCounts:
        with self.engine.begin() as conn:
            res = conn.execute(hash_imports.insert().values(bank_id=bank.id, path=path, format=fmt, started_at=datetime.now(UTC),
                                                            added=0, updated=0, removed=0, refused=0))
            pk = res.inserted_primary_key
            assert pk is not None
            return ImportCounts(int(pk[0]))

    def apply_chunk(self, bank: Bank, counts: ImportCounts, entries: list[dict[str, Any]], tombstones: list[str], refused: int) -> None:
        """Upsert entries and apply tombstones in one transaction; ``counts`` is updated in place."""
        seq = counts.import_id
        with self.engine.begin() as conn:
            if entries:
                # the last occurrence in a file wins, as a re-import would
                by_key = {(e["hash_type"], e["value"]): e for e in entries}
                keys = list(by_key)
                existing: dict[tuple[str, str], Any] = {}
                for i in range(0, len(keys), 500):
                    part = keys[i : i + 500]
                    cond = sa.tuple_(hash_entries.c.hash_type, hash_entries.c.value).in_(part)
                    for r in conn.execute(sa.select(hash_entries).where(hash_entries.c.bank_id == bank.id, cond)):
                        existing[(r.hash_type, r.value)] = r
                new_rows = []
                for key, e in by_key.items():
                    old = existing.get(key)
                    if old is None:
                        new_rows.append({**e, "bank_id": bank.id, "deleted": False, "seq": seq})
                        counts.added += 1
                    elif old.deleted or any(getattr(old, f) != e.get(f) for f in _ENTRY_FIELDS if f != "source_updated_at"):
                        conn.execute(hash_entries.update().where(hash_entries.c.id == old.id).values(
                            **{f: e.get(f) for f in _ENTRY_FIELDS}, deleted=False, seq=seq))
                        counts.updated += 1
                insert_rows(conn, hash_entries, new_rows)
            if tombstones:
                for i in range(0, len(tombstones), 500):
                    res = conn.execute(
                        hash_entries.update()
                        .where(hash_entries.c.bank_id == bank.id, hash_entries.c.media_id.in_(tombstones[i : i + 500]), hash_entries.c.deleted.is_(False))
                        .values(deleted=True, seq=seq)
                    )
                    counts.removed += res.rowcount or 0
            counts.refused += refused
            conn.execute(hash_imports.update().where(hash_imports.c.id == seq).values(
                added=counts.added, updated=counts.updated, removed=counts.removed, refused=counts.refused))
            conn.execute(hash_banks.update().where(hash_banks.c.id == bank.id).values(updated_at=datetime.now(UTC)))

    def entry_counts(self) -> dict[tuple[str, str], int]:
        """(bank name, hash type) → live entries."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(hash_banks.c.name, hash_entries.c.hash_type, sa.func.count())
                .select_from(hash_entries.join(hash_banks))
                .where(hash_entries.c.deleted.is_(False))
                .group_by(hash_banks.c.name, hash_entries.c.hash_type)
            )
            return {(r[0], r[1]): int(r[2]) for r in rows}

    def current_seq(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(hash_imports.c.id), 0))).scalar_one())

    def iter_entry_changes(self, after_seq: int, hash_types: Iterable[str], batch: int = 100_000) -> Iterator[list[tuple[int, str, str, bool]]]:
        """(entry id, hash type, value, deleted) changed after ``after_seq``, in batches (index refresh)."""
        with self.engine.connect() as conn:
            q = (
                sa.select(hash_entries.c.id, hash_entries.c.hash_type, hash_entries.c.value, hash_entries.c.deleted)
                .where(hash_entries.c.seq > after_seq, hash_entries.c.hash_type.in_(list(hash_types)))
                .order_by(hash_entries.c.id)
            )
            result = conn.execution_options(stream_results=True, yield_per=batch).execute(q)
            for part in result.partitions(batch):
                yield [(int(r[0]), str(r[1]), str(r[2]), bool(r[3])) for r in part]

    def entries_by_id(self, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
        wanted = sorted(set(ids))
        out: dict[int, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), 1000):
                q = (
                    sa.select(hash_entries, hash_banks.c.name.label("bank"), hash_banks.c.negative, hash_banks.c.max_distance, hash_banks.c.min_quality)
                    .select_from(hash_entries.join(hash_banks))
                    .where(hash_entries.c.id.in_(wanted[i : i + 1000]))
                )
                for r in conn.execute(q).mappings():
                    out[int(r["id"])] = dict(r)
        return out

    # -- report file hashes, flood protection --------------------------------------------------

    def reports_without_file_hashes(self, limit: int) -> list[str]:
        with self.engine.connect() as conn:
            q = (
                sa.select(reports.c.id)
                .where(~sa.exists().where(report_hash_summary.c.report_id == reports.c.id))
                .where(~sa.exists().where(report_file_hashes.c.report_id == reports.c.id))
                .order_by(reports.c.id)
                .limit(limit)
            )
            return [r[0] for r in conn.execute(q)]

    def add_file_hashes(self, rows: list[dict[str, Any]]) -> None:
        """Rows as ``pipeline.file_hash_rows`` makes them; the account is stored as its keyed hash (flood protection only counts
        distinct accounts) beside a sealed copy."""
        cipher = cipher_of(self.engine)
        # bound to the account's hash alone: hashed and sealed once an account, not once a file hash
        sealed: dict[str, tuple[str, str]] = {}
        stored = []
        for r in rows:
            account = r.get("account")
            if account is None:
                stored.append({**r, "account": None, "account_enc": None})
                continue
            got = sealed.get(account)
            if got is None:
                h = cipher.index(account)
                got = sealed[account] = (h, cipher.seal_text(account, aad("report_file_hashes", "account_enc", h)))
            stored.append({**r, "account": got[0], "account_enc": got[1]})
        with self.engine.begin() as conn:
            insert_rows(conn, report_file_hashes, stored)

    def flood_candidates(self, min_accounts: int) -> list[tuple[str, str]]:
        """Hashes seen from more than ``min_accounts`` distinct accounts at all (a cheap prefilter)."""
        with self.engine.connect() as conn:
            q = (
                sa.select(report_file_hashes.c.hash_type, report_file_hashes.c.value)
                .group_by(report_file_hashes.c.hash_type, report_file_hashes.c.value)
                .having(sa.func.count(sa.distinct(report_file_hashes.c.account)) > min_accounts)
            )
            return [(r[0], r[1]) for r in conn.execute(q)]

    def sightings(self, hash_type: str, value: str) -> list[tuple[datetime, str]]:
        with self.engine.connect() as conn:
            q = (
                sa.select(report_file_hashes.c.seen_at, report_file_hashes.c.account)
                .where(report_file_hashes.c.hash_type == hash_type, report_file_hashes.c.value == value, report_file_hashes.c.account.is_not(None))
                .order_by(report_file_hashes.c.seen_at)
            )
            return [(_aware(r[0]), r[1]) for r in conn.execute(q)]

    def mark_viral(self, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            if rows:
                keys = [(r["hash_type"], r["value"]) for r in rows]
                for i in range(0, len(keys), 500):
                    conn.execute(viral_hashes.delete().where(sa.tuple_(viral_hashes.c.hash_type, viral_hashes.c.value).in_(keys[i : i + 500])))
                insert_rows(conn, viral_hashes, rows)

    def viral_set(self) -> set[tuple[str, str]]:
        with self.engine.connect() as conn:
            return {(r[0], r[1]) for r in conn.execute(sa.select(viral_hashes.c.hash_type, viral_hashes.c.value))}

    def viral_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(viral_hashes).order_by(viral_hashes.c.accounts.desc())).mappings()]

    # -- matching ------------------------------------------------------------------------------

    def reports_to_match(self, seq: int, limit: int) -> list[str]:
        """Reports never matched, or matched before the newest hash-set change."""
        with self.engine.connect() as conn:
            q = (
                sa.select(reports.c.id)
                .select_from(reports.outerjoin(report_hash_summary, report_hash_summary.c.report_id == reports.c.id))
                .where(sa.or_(report_hash_summary.c.report_id.is_(None), report_hash_summary.c.matched_seq < seq))
                .order_by(reports.c.id)
                .limit(limit)
            )
            return [r[0] for r in conn.execute(q)]

    def file_hashes_for(self, report_ids: list[str]) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            q = sa.select(report_file_hashes).where(report_file_hashes.c.report_id.in_(report_ids))
            return [dict(r) for r in conn.execute(q).mappings()]

    def save_matches(self, report_ids: list[str], matches: list[dict[str, Any]], summaries: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(file_matches.delete().where(file_matches.c.report_id.in_(report_ids)))
            conn.execute(report_hash_summary.delete().where(report_hash_summary.c.report_id.in_(report_ids)))
            if matches:
                conn.execute(file_matches.insert(), matches)
            insert_rows(conn, report_hash_summary, summaries)

    def matches_of(self, report_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            q = sa.select(file_matches).where(file_matches.c.report_id == report_id).order_by(file_matches.c.file_id, file_matches.c.distance)
            return [dict(r) for r in conn.execute(q).mappings()]

    def summary_of(self, report_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(report_hash_summary).where(report_hash_summary.c.report_id == report_id)).mappings().one_or_none()
            return dict(r) if r else None
