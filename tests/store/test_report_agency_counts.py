"""The queue's per-agency counts (``report_agency_counts``, kept by triggers of migration 0012) against a GROUP BY over
``report_agency`` after every kind of write the code makes to it (single and bulk inserts, COPY on PostgreSQL, updates that move
rows between tiers, scores and agencies or leave them, deletes), and the page read from the counts against the plain
ORDER BY ... LIMIT ... OFFSET over the access rows, at random offsets, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from tiptriage.store import Store
from tiptriage.store.bulk import insert_rows
from tiptriage.store.schema import reports, submissions
from tiptriage.store.users import access_row_page, report_agency, report_agency_counts

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _reports(store: Store, n: int, rng: random.Random) -> list[str]:
    """``n`` bare reports (the access rows' foreign key), received at few distinct times so that the order's ties are broken
    by the report id."""
    ids = [f"r{i:05d}" for i in range(n)]
    with store.engine.begin() as conn:
        conn.execute(submissions.insert(), [{"digest": f"{i:064x}", "format": "csv", "path": "x", "report_id": rid, "id_from_digest": False,
                                             "container": False, "status": "accepted", "received_at": T0} for i, rid in enumerate(ids)])
        conn.execute(reports.insert(), [{"id": rid, "submission_digest": f"{i:064x}", "incident_type": "x", "incident_datetime": T0,
                                         "received_at": T0 + timedelta(minutes=rng.randrange(20)), "escalated": False, "file_count": 0,
                                         "data": "", "stored_at": T0} for i, rid in enumerate(ids)])
    return ids


def _access_row(rid: str, agency: str, rng: random.Random) -> dict[str, Any]:
    tier = rng.choice([1, 2, 3, 3, 4, None])
    return {"report_id": rid, "agency_id": agency, "via": "routed", "assigned_at": T0, "tier": tier,
            "score": rng.randrange(0, 12) if tier is not None else None,
            "received_at": T0 + timedelta(minutes=rng.randrange(20)) if tier is not None else None}


def _counts(conn: sa.Connection) -> dict[tuple[str, int, int], int]:
    c = report_agency_counts
    return {(r[0], r[1], r[2]): int(r[3]) for r in conn.execute(sa.select(c.c.agency_id, c.c.tier, c.c.score, c.c.n)) if r[3] != 0}


def _grouped(conn: sa.Connection) -> dict[tuple[str, int, int], int]:
    ra = report_agency
    q = (sa.select(ra.c.agency_id, ra.c.tier, ra.c.score, sa.func.count()).where(ra.c.tier.is_not(None))
         .group_by(ra.c.agency_id, ra.c.tier, ra.c.score))
    return {(r[0], r[1], r[2]): int(r[3]) for r in conn.execute(q)}


def _agree(store: Store) -> None:
    with store.engine.connect() as conn:
        assert _counts(conn) == _grouped(conn)
        negative = conn.execute(sa.select(sa.func.count()).select_from(report_agency_counts).where(report_agency_counts.c.n < 0)).scalar_one()
        assert negative == 0


def test_counts_equal_a_group_by_after_inserts_updates_and_deletes(store: Store) -> None:
    rng = random.Random(7)
    ids = _reports(store, 400, rng)
    ra = report_agency
    with store.engine.begin() as conn:  # one row at a time, as ReportAccessRepository.assign
        for rid in ids[:50]:
            conn.execute(ra.insert().values(**_access_row(rid, "agency-a", rng)))
    _agree(store)
    with store.engine.begin() as conn:  # executemany; COPY on PostgreSQL (store.work routing)
        conn.execute(ra.insert(), [_access_row(rid, "agency-a", rng) for rid in ids[50:150]])
        insert_rows(conn, ra, [_access_row(rid, "agency-b", rng) for rid in ids[150:300]])
    _agree(store)
    with store.engine.begin() as conn:  # INSERT ... SELECT, as the load bench fills an agency
        conn.execute(ra.insert().from_select(
            ["report_id", "agency_id", "via", "assigned_at", "tier", "score", "received_at"],
            sa.select(ra.c.report_id, sa.literal("agency-c"), ra.c.via, ra.c.assigned_at, ra.c.tier, ra.c.score, ra.c.received_at)
            .where(ra.c.agency_id == "agency-a")))
    _agree(store)

    with store.engine.begin() as conn:
        # between tiers and scores, one row and many
        conn.execute(ra.update().where(ra.c.report_id == ids[0], ra.c.agency_id == "agency-a").values(tier=1, score=11))
        conn.execute(ra.update().where(ra.c.agency_id == "agency-b", ra.c.tier == 3).values(tier=2))
        conn.execute(ra.update().where(ra.c.agency_id == "agency-a", ra.c.score < 4).values(score=ra.c.score + 5))
        # assessed, and no longer assessed (the sort keys cleared)
        conn.execute(ra.update().where(ra.c.agency_id == "agency-c", ra.c.tier.is_(None)).values(tier=4, score=0, received_at=T0))
        conn.execute(ra.update().where(ra.c.agency_id == "agency-c", ra.c.tier == 1).values(tier=None, score=None, received_at=None))
        # keys set to what they were, as queue_keys.refresh does for most rows
        conn.execute(ra.update().where(ra.c.agency_id == "agency-b").values(tier=ra.c.tier, score=ra.c.score, received_at=ra.c.received_at))
        # re-routed to another agency (store.work moves a report by deleting and inserting; an UPDATE must count too)
        conn.execute(ra.update().where(ra.c.agency_id == "agency-b", ra.c.report_id < ids[200]).values(agency_id="agency-d"))
    _agree(store)
    with store.engine.begin() as conn:
        conn.execute(ra.delete().where(ra.c.report_id == ids[1]))
        conn.execute(ra.delete().where(ra.c.agency_id == "agency-c", ra.c.tier == 3))
    _agree(store)
    with store.engine.begin() as conn:  # a rolled-back write leaves the counts as they were
        before = _counts(conn)
    with store.engine.connect() as conn:
        tx = conn.begin()
        conn.execute(ra.delete().where(ra.c.agency_id == "agency-a"))
        tx.rollback()
        assert _counts(conn) == before
    with store.engine.begin() as conn:
        conn.execute(ra.delete())
        assert _counts(conn) == {}
    _agree(store)
    with store.engine.begin() as conn:  # emptied at once: TRUNCATE on PostgreSQL fires no row or statement trigger of 0012
        insert_rows(conn, ra, [_access_row(rid, "agency-e", rng) for rid in ids[:100]])
    _agree(store)
    with store.engine.begin() as conn:
        conn.execute(sa.text("TRUNCATE report_agency" if conn.dialect.name == "postgresql" else "DELETE FROM report_agency"))
        assert _counts(conn) == {}
    _agree(store)


def _old_page(conn: sa.Connection, agency: str, tier: int | None, limit: int, offset: int) -> tuple[list[str], int]:
    """The page and total as they were read before the counts: count the rows, skip ``offset`` of them."""
    ra = report_agency
    mine = [ra.c.agency_id == agency, ra.c.tier.is_not(None)] + ([ra.c.tier == tier] if tier is not None else [])
    total = int(conn.execute(sa.select(sa.func.count()).select_from(ra).where(*mine)).scalar_one())
    q = (sa.select(ra.c.report_id).where(*mine).order_by(ra.c.tier, ra.c.score.desc(), ra.c.received_at, ra.c.report_id)
         .limit(limit).offset(offset))
    return [str(r[0]) for r in conn.execute(q)], total


def test_pages_from_the_counts_equal_the_counted_and_skipped_pages(store: Store) -> None:
    rng = random.Random(11)
    ids = _reports(store, 700, rng)
    with store.engine.begin() as conn:
        conn.execute(report_agency.insert(), [_access_row(rid, "agency-a", rng) for rid in ids[:600]]
                     + [_access_row(rid, "agency-b", rng) for rid in ids[300:]])
    with store.engine.connect() as conn:
        total_a = _old_page(conn, "agency-a", None, 1, 0)[1]
        cases: list[tuple[str, int | None, int, int]] = [("agency-a", None, 50, 0), ("agency-a", None, 7, total_a - 1),
                                                          ("agency-a", None, 7, total_a), ("agency-a", None, 5, total_a + 9),
                                                          ("agency-nobody", None, 10, 0), ("agency-a", 9, 10, 0)]
        for _ in range(120):
            agency = rng.choice(["agency-a", "agency-b"])
            cases.append((agency, rng.choice([None, None, 1, 2, 3, 4]), rng.choice([1, 3, 10, 50]), rng.randrange(0, 620)))
        for agency, tier, limit, offset in cases:
            assert access_row_page(conn, agency, tier=tier, limit=limit, offset=offset) == _old_page(conn, agency, tier, limit, offset), \
                (agency, tier, limit, offset)


def test_the_migration_counts_the_access_rows_already_there(db_url: str) -> None:
    from alembic import command

    from tiptriage.store.db import _alembic_config, migrate

    rng = random.Random(5)
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "0011")
        store = Store(db_url, migrate_schema=False)
        ids = _reports(store, 200, rng)
        with engine.begin() as conn:
            conn.execute(report_agency.insert(), [_access_row(rid, rng.choice(["agency-a", "agency-b"]), rng) for rid in ids])
        migrate(engine)
        _agree(store)
        with engine.connect() as conn:
            assert _counts(conn)  # something was counted
        store.dispose()
    finally:
        engine.dispose()
