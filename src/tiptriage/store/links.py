"""Subjects, their accounts and links, analysts' link decisions, and bundles.

Account keys are stored as keyed hashes (``Cipher.index``), with a sealed copy where a person must read them again; the
methods here take and return account keys in clear, so linking works exactly as before and only this module knows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from tiptriage.store.bulk import insert_rows
from tiptriage.store.crypto import Cipher, aad, cipher_of
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


def _link_context(column: str, a: str, b: str, kind: str) -> bytes:
    return aad("account_links", column, a, b, kind)


def _decision_context(column: str, kind: str, a: str, b: str | None, by: str) -> bytes:
    return aad("link_decisions", column, kind, a, b, by)


class LinkRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.cipher: Cipher = cipher_of(engine)

    def subject_id(self, anchor: str) -> str:
        """A subject's id from its anchor account key: keyed, so a guessed account cannot be confirmed from the id alone."""
        return "S-" + self.cipher.keyed_id(anchor, 12)

    def _report_accounts(self, memberships: list[tuple[str, str]]) -> list[dict[str, Any]]:
        # bound to the account's hash alone: one seal serves all of an account's reports, and a copy moved to another
        # account's row still fails
        sealed: dict[str, tuple[str, str]] = {}
        rows = []
        for report_id, account in sorted(set(memberships)):
            if account not in sealed:
                h = self.cipher.index(account)
                sealed[account] = (h, self.cipher.seal_text(account, aad("report_accounts", "account_enc", h)))
            h, enc = sealed[account]
            rows.append({"report_id": report_id, "account_key": h, "account_enc": enc})
        return rows

    def _subject_account(self, row: dict[str, Any]) -> dict[str, Any]:
        h = self.cipher.index(row["account_key"])
        return {**row, "account_key": h, "account_enc": self.cipher.seal_text(row["account_key"], aad("subject_accounts", "account_enc", h))}

    def _link(self, row: dict[str, Any]) -> dict[str, Any]:
        a, b, kind = self.cipher.index(row["a"]), self.cipher.index(row["b"]), row["kind"]
        seal = self.cipher.seal_text
        return {**row, "a": a, "b": b, "evidence": seal(row["evidence"], _link_context("evidence", a, b, kind)),
                "a_enc": seal(row["a"], _link_context("a_enc", a, b, kind)), "b_enc": seal(row["b"], _link_context("b_enc", a, b, kind))}

    def _open_link(self, r: sa.RowMapping) -> dict[str, Any]:
        a, b, kind = r["a"], r["b"], r["kind"]
        out = {k: v for k, v in r.items() if k not in ("a_enc", "b_enc")}
        return {**out, "a": self.cipher.open_text(r["a_enc"], _link_context("a_enc", a, b, kind)),
                "b": self.cipher.open_text(r["b_enc"], _link_context("b_enc", a, b, kind)),
                "evidence": json.loads(self.cipher.open_text(r["evidence"], _link_context("evidence", a, b, kind)))}

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
        # hashed and sealed before the transaction, so the write lock is not held while the CPU works
        accounts, members, links = self._report_accounts(memberships), [self._subject_account(m) for m in member_rows], [self._link(lk) for lk in link_rows]
        with self.engine.begin() as conn:
            for table in (report_accounts, subjects, subject_accounts, account_links, bundles, bundle_reports):
                conn.execute(table.delete())
            insert_rows(conn, report_accounts, accounts)
            insert_rows(conn, subjects, subject_rows)
            insert_rows(conn, subject_accounts, members)
            if links:
                conn.execute(account_links.insert(), links)
            insert_rows(conn, bundles, bundle_rows)
            insert_rows(conn, bundle_reports, bundle_member_rows)

    def decide(self, kind: str, a: str, b: str | None, reason: str, user: str) -> int:
        ha, hb = self.cipher.index(a), (self.cipher.index(b) if b is not None else None)
        seal = self.cipher.seal_text
        with self.engine.begin() as conn:
            res = conn.execute(link_decisions.insert().values(
                kind=kind, a=ha, b=hb, reason=seal(reason, _decision_context("reason", kind, ha, hb, user)), decided_by=user,
                decided_at=datetime.now(UTC), a_enc=seal(a, _decision_context("a_enc", kind, ha, hb, user)),
                b_enc=self.cipher.seal_opt(b, _decision_context("b_enc", kind, ha, hb, user)),
            ))
            pk = res.inserted_primary_key
            assert pk is not None
            return int(pk[0])

    def decisions(self) -> list[dict[str, Any]]:
        """Analysts' decisions in the order they were made, with the account keys and reasons in clear."""
        out = []
        with self.engine.connect() as conn:
            for r in conn.execute(sa.select(link_decisions).order_by(link_decisions.c.id)).mappings():
                ctx = (r["kind"], r["a"], r["b"], r["decided_by"])
                row = {k: v for k, v in r.items() if k not in ("a_enc", "b_enc")}
                out.append({**row, "a": self.cipher.open_text(r["a_enc"], _decision_context("a_enc", *ctx)),
                            "b": self.cipher.open_opt(r["b_enc"], _decision_context("b_enc", *ctx)),
                            "reason": self.cipher.open_text(r["reason"], _decision_context("reason", *ctx))})
        return out

    def known_account(self, key: str) -> bool:
        h = self.cipher.index(key)
        with self.engine.connect() as conn:
            return conn.execute(sa.select(report_accounts.c.account_key).where(report_accounts.c.account_key == h).limit(1)).first() is not None

    def subject_of(self, key: str) -> str | None:
        h = self.cipher.index(key)
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(subject_accounts.c.subject_id).where(subject_accounts.c.account_key == h)).scalar_one_or_none()
            return str(found) if found is not None else None

    def subject(self, subject_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(subjects).where(subjects.c.id == subject_id)).mappings().one_or_none()
            if row is None:
                return None
            q = sa.select(subject_accounts.c.account_key, subject_accounts.c.account_enc).where(subject_accounts.c.subject_id == subject_id)
            clear = {h: self.cipher.open_text(enc, aad("subject_accounts", "account_enc", h)) for h, enc in conn.execute(q)}
            reps = conn.execute(
                sa.select(report_accounts.c.report_id, report_accounts.c.account_key)
                .where(report_accounts.c.account_key.in_(list(clear)))
                .order_by(report_accounts.c.report_id)
            ).all()
            links = [self._open_link(r) for r in
                     conn.execute(sa.select(account_links).where(account_links.c.subject_id == subject_id).order_by(account_links.c.id)).mappings()]
            return {**dict(row), "account_keys": sorted(clear.values()),
                    "report_accounts": [{"report_id": r[0], "account": clear[r[1]]} for r in reps], "links": links}

    def groups_of(self, report_ids: list[str]) -> dict[str, tuple[str | None, str | None]]:
        """Report -> (its subject, its viral bundle), None where it has none; a report of several accounts names the subject
        of the first (they are one subject unless an analyst split them)."""
        out: dict[str, tuple[str | None, str | None]] = {r: (None, None) for r in report_ids}
        subject: dict[str, str] = {}
        bundle: dict[str, str] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(report_ids), 900):
                part = report_ids[i : i + 900]
                q = (sa.select(report_accounts.c.report_id, subject_accounts.c.subject_id)
                     .select_from(report_accounts.join(subject_accounts, subject_accounts.c.account_key == report_accounts.c.account_key))
                     .where(report_accounts.c.report_id.in_(part)).order_by(report_accounts.c.report_id, report_accounts.c.account_key))
                for rid, sid in conn.execute(q):
                    subject.setdefault(str(rid), str(sid))
                q2 = sa.select(bundle_reports.c.report_id, bundle_reports.c.bundle_id).where(bundle_reports.c.report_id.in_(part))
                for rid, bid in conn.execute(q2):
                    bundle.setdefault(str(rid), str(bid))
        return {r: (subject.get(r), bundle.get(r)) for r in out}

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
        sealed = [{**r, "estimate": self.cipher.seal_text(r["estimate"], location_context(r["report_id"]))} for r in rows]
        with self.engine.begin() as conn:
            ids = [r["report_id"] for r in rows]
            for i in range(0, len(ids), 500):
                conn.execute(report_locations.delete().where(report_locations.c.report_id.in_(ids[i : i + 500])))
            insert_rows(conn, report_locations, sealed)

    def location_of(self, report_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(report_locations).where(report_locations.c.report_id == report_id)).mappings().one_or_none()
            return {**dict(r), "estimate": json.loads(self.cipher.open_text(r["estimate"], location_context(report_id)))} if r else None


def location_context(report_id: str) -> bytes:
    return aad("report_locations", "estimate", report_id)
