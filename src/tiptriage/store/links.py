"""Subjects, their accounts and links, analysts' link decisions, and bundles."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from tiptriage.store.bulk import insert_rows
from tiptriage.store.schema import (
    account_links,
    bundle_reports,
    bundles,
    link_decisions,
    report_accounts,
    report_file_hashes,
    report_locations,
    subject_accounts,
    subjects,
    viral_hashes,
)


class LinkRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def replace_all(
        self,
        memberships: list[tuple[str, str]],
        subject_rows: list[dict[str, Any]],
        member_rows: list[dict[str, Any]],
        link_rows: list[dict[str, Any]],
        bundle_rows: list[dict[str, Any]],
        bundle_member_rows: list[dict[str, Any]],
    ) -> None:
        """A rebuild replaces the derived tables in one transaction; decisions are never touched."""
        with self.engine.begin() as conn:
            for table in (report_accounts, subjects, subject_accounts, account_links, bundles, bundle_reports):
                conn.execute(table.delete())
            insert_rows(conn, report_accounts, [{"report_id": r, "account_key": a} for r, a in sorted(set(memberships))])
            insert_rows(conn, subjects, subject_rows)
            insert_rows(conn, subject_accounts, member_rows)
            if link_rows:
                conn.execute(account_links.insert(), link_rows)
            insert_rows(conn, bundles, bundle_rows)
            insert_rows(conn, bundle_reports, bundle_member_rows)

    def decide(self, kind: str, a: str, b: str | None, reason: str, user: str) -> int:
        with self.engine.begin() as conn:
            res = conn.execute(link_decisions.insert().values(kind=kind, a=a, b=b, reason=reason, decided_by=user, decided_at=datetime.now(UTC)))
            pk = res.inserted_primary_key
            assert pk is not None
            return int(pk[0])

    def decisions(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(link_decisions).order_by(link_decisions.c.id)).mappings()]

    def known_account(self, key: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(report_accounts.c.account_key).where(report_accounts.c.account_key == key).limit(1)).first() is not None

    def subject_of(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(subject_accounts.c.subject_id).where(subject_accounts.c.account_key == key)).scalar_one_or_none()
            return str(found) if found is not None else None

    def subject(self, subject_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(subjects).where(subjects.c.id == subject_id)).mappings().one_or_none()
            if row is None:
                return None
            accounts = [r[0] for r in conn.execute(sa.select(subject_accounts.c.account_key).where(subject_accounts.c.subject_id == subject_id).order_by(subject_accounts.c.account_key))]
            reps = conn.execute(
                sa.select(report_accounts.c.report_id, report_accounts.c.account_key)
                .where(report_accounts.c.account_key.in_(accounts))
                .order_by(report_accounts.c.report_id)
            ).all()
            links = [
                {**dict(r), "evidence": json.loads(r["evidence"])}
                for r in conn.execute(sa.select(account_links).where(account_links.c.subject_id == subject_id).order_by(account_links.c.id)).mappings()
            ]
            return {**dict(row), "account_keys": accounts, "report_accounts": [{"report_id": r[0], "account": r[1]} for r in reps], "links": links}

    def subject_sizes(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {r[0]: int(r[1]) for r in conn.execute(sa.select(subjects.c.id, subjects.c.accounts))}

    def bundle_list(self, limit: int = 50) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(bundles).order_by(bundles.c.reports.desc(), bundles.c.id).limit(limit)).mappings()]

    def viral_report_keys(self) -> list[tuple[str, str, str]]:
        """(report id, hash type, value) for every reported file hash marked viral by flood protection."""
        with self.engine.connect() as conn:
            q = sa.select(report_file_hashes.c.report_id, report_file_hashes.c.hash_type, report_file_hashes.c.value).select_from(
                report_file_hashes.join(viral_hashes, sa.and_(viral_hashes.c.hash_type == report_file_hashes.c.hash_type,
                                                              viral_hashes.c.value == report_file_hashes.c.value))
            )
            return [(r[0], r[1], r[2]) for r in conn.execute(q)]

    def save_locations(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        with self.engine.begin() as conn:
            ids = [r["report_id"] for r in rows]
            for i in range(0, len(ids), 500):
                conn.execute(report_locations.delete().where(report_locations.c.report_id.in_(ids[i : i + 500])))
            insert_rows(conn, report_locations, rows)

    def location_of(self, report_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(report_locations).where(report_locations.c.report_id == report_id)).mappings().one_or_none()
            return {**dict(r), "estimate": json.loads(r["estimate"])} if r else None
