"""Assessments (tier, score, the rules that fired, the indicators) and agency records of known persons.

Agency records are found by the keyed hash of their identifier (``Cipher.index``); the identifier itself is kept sealed. What
matched is reported as the kind of identifier (``email``, ``phone``, ...), never the identifier, because it goes into the
assessment's evidence, which stays readable for the queue's search and sort.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from tiptriage.store.bulk import insert_rows
from tiptriage.store.crypto import Cipher, aad, cipher_of
from tiptriage.store.indicators import expand
from tiptriage.store.schema import (
    agency_records,
    assessments,
    bundle_reports,
    bundles,
    deconfliction_notices,
    file_matches,
    report_accounts,
    report_hash_summary,
    report_indicators,
    report_locations,
    reports,
    subject_accounts,
)


class AssessmentRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.cipher: Cipher = cipher_of(engine)

    def import_records(self, rows: list[dict[str, Any]]) -> None:
        now = datetime.now(UTC)
        sealed = [{**r, "key": self.cipher.index(r["key"]), "imported_at": now,
                   "key_enc": self.cipher.seal_text(r["key"], aad("agency_records", "key_enc", r["record_id"]))} for r in rows]
        with self.engine.begin() as conn:
            ids = sorted({r["record_id"] for r in rows})
            for i in range(0, len(ids), 500):
                conn.execute(agency_records.delete().where(agency_records.c.record_id.in_(ids[i : i + 500])))
            insert_rows(conn, agency_records, sealed)

    def records_for(self, keys: set[str]) -> list[dict[str, Any]]:
        """Agency records whose identifier is one of ``keys`` (normalised, ``kind:value``); ``key`` in clear, ``matched_on``
        the kind of identifier."""
        if not keys:
            return []
        by_hash = {self.cipher.index(k): k for k in keys}
        with self.engine.connect() as conn:
            q = sa.select(agency_records).where(agency_records.c.key.in_(sorted(by_hash)))
            found = []
            for r in conn.execute(q).mappings():
                key = by_hash[r["key"]]
                found.append({**{k: v for k, v in r.items() if k != "key_enc"}, "key": key, "matched_on": key.partition(":")[0]})
            return found

    def context_rows(self, report_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Per report: hash summary, matches, subject and its reports/services, bundle, location."""
        out: dict[str, dict[str, Any]] = {r: {"matches": [], "subject_reports": [], "subject_services": []} for r in report_ids}
        with self.engine.connect() as conn:
            for r in conn.execute(sa.select(report_hash_summary).where(report_hash_summary.c.report_id.in_(report_ids))).mappings():
                out[r["report_id"]]["hash_summary"] = dict(r)
            # every list in a fixed order, so evidence reads the same on every backend (store.indicators reads it so too)
            for r in conn.execute(sa.select(file_matches).where(file_matches.c.report_id.in_(report_ids)).order_by(file_matches.c.id)).mappings():
                out[r["report_id"]]["matches"].append(dict(r))
            for r in conn.execute(sa.select(report_locations).where(report_locations.c.report_id.in_(report_ids))).mappings():
                out[r["report_id"]]["location"] = {**dict(r), "estimate": self.cipher.open_text(r["estimate"], aad("report_locations", "estimate", r["report_id"]))}
            q = (
                sa.select(bundle_reports.c.report_id, bundles)
                .select_from(bundle_reports.join(bundles, bundles.c.id == bundle_reports.c.bundle_id))
                .where(bundle_reports.c.report_id.in_(report_ids))
                .order_by(bundle_reports.c.report_id, bundles.c.id)
            )
            for r in conn.execute(q).mappings():
                out[r["report_id"]]["bundle"] = {k: r[k] for k in ("id", "reports", "representative_report_id", "key_kind")}
            for r in conn.execute(sa.select(deconfliction_notices).where(deconfliction_notices.c.report_id.in_(report_ids))
                                  .order_by(deconfliction_notices.c.id)).mappings():
                out[r["report_id"]].setdefault("deconfliction", []).append(dict(r))
            # the subject of each report's reported account, and everything else that subject reported
            subj = (
                sa.select(report_accounts.c.report_id, subject_accounts.c.subject_id)
                .select_from(report_accounts.join(subject_accounts, subject_accounts.c.account_key == report_accounts.c.account_key))
                .where(report_accounts.c.report_id.in_(report_ids))
                .order_by(report_accounts.c.report_id, subject_accounts.c.subject_id, report_accounts.c.account_key)
            )
            by_subject: dict[str, list[str]] = {}
            for rid, sid in conn.execute(subj):
                out[rid]["subject_id"] = sid
                by_subject.setdefault(sid, []).append(rid)
            if by_subject:
                q2 = (
                    sa.select(subject_accounts.c.subject_id, report_accounts.c.report_id, report_accounts.c.account_key)
                    .select_from(subject_accounts.join(report_accounts, report_accounts.c.account_key == subject_accounts.c.account_key))
                    .where(subject_accounts.c.subject_id.in_(list(by_subject)))
                    .order_by(subject_accounts.c.subject_id, report_accounts.c.report_id, report_accounts.c.account_key)
                )
                for sid, rid, acc in conn.execute(q2):
                    for own in by_subject[sid]:
                        out[own]["subject_reports"].append(rid)
                        out[own]["subject_services"].append(acc.split(":", 1)[0])
        return out

    def get(self, report_id: str) -> dict[str, Any] | None:
        """The stored assessment, its fired rules with their evidence and values and every indicator (``expand``)."""
        with self.engine.connect() as conn:
            q = (sa.select(assessments, report_indicators.c.static_json)
                 .select_from(assessments.outerjoin(report_indicators, report_indicators.c.report_id == assessments.c.report_id))
                 .where(assessments.c.report_id == report_id))
            r = conn.execute(q).mappings().one_or_none()
            if r is None:
                return None
            fired, held = expand(r["fired"], r["indicators"], r["static_json"])
            return {**{k: v for k, v in r.items() if k != "static_json"}, "fired": fired, "reasons": json.loads(r["reasons"]),
                    "indicators": held}

    def queue(self, limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
        """Most urgent first: tier, then score, then the oldest report first; each with its reasons (``explain`` and ``get``
        give the fired rules with their evidence)."""
        with self.engine.connect() as conn:
            q = (
                sa.select(assessments.c.report_id, assessments.c.tier, assessments.c.score, assessments.c.policy_version,
                          assessments.c.reasons, reports.c.incident_type, reports.c.received_at, reports.c.provider)
                .select_from(assessments.join(reports, reports.c.id == assessments.c.report_id))
                .order_by(assessments.c.tier, assessments.c.score.desc(), reports.c.received_at, reports.c.id)
                .offset(offset)
            )
            if limit is not None:
                q = q.limit(limit)
            return [{**dict(r), "reasons": json.loads(r["reasons"])} for r in conn.execute(q).mappings()]

    def tier_counts(self) -> dict[int, int]:
        with self.engine.connect() as conn:
            return {int(r[0]): int(r[1]) for r in conn.execute(sa.select(assessments.c.tier, sa.func.count()).group_by(assessments.c.tier))}

    def iter_all(self) -> Iterator[dict[str, Any]]:
        with self.engine.connect() as conn:
            for r in conn.execute(sa.select(assessments.c.report_id, assessments.c.tier, assessments.c.score)).mappings():
                yield dict(r)
