"""The queue's sort keys kept beside each agency's access row (``report_agency``: tier, score, received time).

An agency's queue page is then a range of the index ``ix_report_agency_queue`` (agency, tier, score descending, received,
report) instead of a join and a sort of every report the agency sees. The keys are copies: every write of an assessment and
every new access row refreshes them here, in the same transaction, so a committed change is in the queue order at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from tiptriage.store.idlists import among
from tiptriage.store.schema import assessments, reports
from tiptriage.store.users import report_agency

_REFRESH_PG = sa.text("SELECT tiptriage_refresh_queue_keys(CAST(:ids AS text[]))")


def refresh(conn: sa.Connection, report_ids: Sequence[str]) -> None:
    """Copy the current tier, score and received time of ``report_ids`` onto every agency's access row of them."""
    ids = sorted(set(report_ids))
    if conn.dialect.name == "postgresql":
        if ids:
            conn.execute(_REFRESH_PG, {"ids": ids})
        return
    a = assessments.alias("a")
    r = reports.alias("r")
    values = {
        "tier": sa.select(a.c.tier).where(a.c.report_id == report_agency.c.report_id).scalar_subquery(),
        "score": sa.select(a.c.score).where(a.c.report_id == report_agency.c.report_id).scalar_subquery(),
        "received_at": sa.select(r.c.received_at).where(r.c.id == report_agency.c.report_id).scalar_subquery(),
    }
    if ids:
        conn.execute(report_agency.update().where(among(report_agency.c.report_id, ids, "sqlite")).values(**values))
