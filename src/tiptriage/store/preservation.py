"""§ 2703(f) preservation requests an agency has sent, as its investigator records them: the clock of each (90 days,
renewable once for 90 more while it runs) is computed from these by ``tiptriage.packages.deadlines``. The reference is
the agency's or the provider's number, not personal data; nothing of the request's content is stored."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tiptriage.store.schema import metadata, reports
from tiptriage.store.times import aware

preservation_requests = sa.Table(
    "preservation_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("report_id", sa.String(128), sa.ForeignKey("reports.id"), nullable=False),
    sa.Column("provider", sa.String(256), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("renewed_at", sa.DateTime(timezone=True)),
    sa.Column("reference", sa.String(128)),
    sa.Column("recorded_by", sa.String(128), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("report_id", "provider", "sent_at", name="uq_preservation_request"),
)
sa.Index("ix_preservation_report", preservation_requests.c.report_id)


class PreservationRepository:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def record(self, report_id: str, provider: str, sent_at: datetime, reference: str | None, by: str, now: datetime) -> int:
        with self.engine.begin() as conn:
            if conn.execute(sa.select(reports.c.id).where(reports.c.id == report_id)).first() is None:
                raise LookupError(f"no report {report_id!r}")
            res = conn.execute(preservation_requests.insert().values(report_id=report_id, provider=provider, sent_at=sent_at,
                                                                     reference=reference, recorded_by=by, recorded_at=now))
            key = res.inserted_primary_key
            assert key is not None
            return int(key[0])

    def renew(self, report_id: str, provider: str, renewed_at: datetime) -> dict[str, Any]:
        """Mark the newest unrenewed request to ``provider`` renewed; the caller checks the law's arithmetic first."""
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(preservation_requests).where(
                preservation_requests.c.report_id == report_id, preservation_requests.c.provider == provider,
                preservation_requests.c.renewed_at.is_(None)).order_by(preservation_requests.c.sent_at.desc()).limit(1)).mappings().first()
            if row is None:
                raise LookupError(f"no unrenewed preservation request to {provider!r} is recorded for {report_id!r}")
            conn.execute(preservation_requests.update().where(preservation_requests.c.id == row["id"]).values(renewed_at=renewed_at))
            return {**dict(row), "sent_at": aware(row["sent_at"]), "renewed_at": renewed_at}

    def of(self, report_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(preservation_requests).where(preservation_requests.c.report_id == report_id)
                                .order_by(preservation_requests.c.sent_at, preservation_requests.c.id)).mappings()
            return [{**dict(r), "sent_at": aware(r["sent_at"]), "renewed_at": aware(r["renewed_at"]),
                     "recorded_at": aware(r["recorded_at"])} for r in rows]
