"""The SQLite upsert that rewrites assessments through the driver (``bulk.upsert_rows_sqlite``) stores exactly what
SQLAlchemy stores for the same rows, byte for byte (a datetime in SQLAlchemy's storage format, not the driver's), and
rewrites a row in place."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tiptriage.store import Store
from tiptriage.store.bulk import update_rows_sqlite, upsert_rows_sqlite
from tiptriage.store.schema import assessments, reports, submissions

AT = datetime(2026, 12, 1, 9, 30, 5, 120, tzinfo=UTC)


def _row(rid: str, tier: int, at: datetime) -> dict[str, Any]:
    return {"report_id": rid, "tier": tier, "score": 7, "policy_name": "p", "policy_version": "v1", "fired": "[]",
            "indicators": '{"known_files": [1, ["file f1"]]}', "assessed_at": at, "policy_agency": None, "own_tier": tier}


def _raw(store: Store) -> list[tuple[Any, ...]]:
    cols = ", ".join(f"CAST({c} AS TEXT)" for c in [col.name for col in assessments.c])
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(f"SELECT {cols} FROM assessments ORDER BY report_id")]


def test_the_driver_upsert_stores_what_sqlalchemy_stores(tmp_path: Path) -> None:
    stores = [Store(f"sqlite:///{tmp_path / name}.db") for name in ("orm", "raw")]
    for store in stores:
        with store.engine.begin() as conn:  # bare reports: the assessments' foreign key
            conn.execute(submissions.insert(), [{"digest": f"{i:064x}", "format": "csv", "path": "x", "report_id": r, "id_from_digest": False,
                                                 "container": False, "status": "accepted", "received_at": AT} for i, r in enumerate("ab")])
            conn.execute(reports.insert(), [{"id": r, "submission_digest": f"{i:064x}", "incident_type": "x", "incident_datetime": AT,
                                             "received_at": AT, "escalated": False, "file_count": 0, "data": "", "stored_at": AT}
                                            for i, r in enumerate("ab")])
    rows = [_row("a", 3, AT), _row("b", 1, AT)]
    with stores[0].engine.begin() as conn:
        conn.execute(assessments.insert(), rows)
    with stores[1].engine.begin() as conn:
        upsert_rows_sqlite(conn, assessments, rows, "report_id")
    assert _raw(stores[1]) == _raw(stores[0])
    assert "2026-12-01 09:30:05.000120" in _raw(stores[1])[0]  # SQLAlchemy's DATETIME storage format, not isoformat's

    later = [_row("a", 2, datetime(2026, 12, 2, tzinfo=UTC))]
    with stores[1].engine.begin() as conn:
        upsert_rows_sqlite(conn, assessments, later, "report_id")
    with stores[1].engine.connect() as conn:
        got = {r[0]: (r[1], r[2]) for r in conn.execute(sa.select(assessments.c.report_id, assessments.c.tier, assessments.c.assessed_at))}
    assert got["a"][0] == 2 and got["a"][1].replace(tzinfo=UTC) == datetime(2026, 12, 2, tzinfo=UTC)
    assert got["b"][0] == 1 and len(got) == 2  # rewritten in place; the other row untouched
    for store in stores:
        store.dispose()


def test_the_driver_update_rewrites_all_but_the_unchanged_columns_as_sqlalchemy_would(tmp_path: Path) -> None:
    """``update_rows_sqlite`` (a re-assessment that keeps each tier and score) stores what SQLAlchemy's own UPDATE stores,
    leaves the columns it is told are unchanged as they were, and touches no other row."""
    stores = [Store(f"sqlite:///{tmp_path / name}.db") for name in ("orm", "raw")]
    later = datetime(2026, 12, 2, 8, 0, 1, 5, tzinfo=UTC)
    for store in stores:
        with store.engine.begin() as conn:
            conn.execute(submissions.insert(), [{"digest": f"{i:064x}", "format": "csv", "path": "x", "report_id": r, "id_from_digest": False,
                                                 "container": False, "status": "accepted", "received_at": AT} for i, r in enumerate("abc")])
            conn.execute(reports.insert(), [{"id": r, "submission_digest": f"{i:064x}", "incident_type": "x", "incident_datetime": AT,
                                             "received_at": AT, "escalated": False, "file_count": 0, "data": "", "stored_at": AT}
                                            for i, r in enumerate("abc")])
            conn.execute(assessments.insert(), [_row("a", 3, AT), _row("b", 1, AT), _row("c", 4, AT)])
    new = [{**_row(r, 3, later), "fired": f'[{{"rule_id": "{r}"}}]', "indicators": "{}", "policy_version": "v2"} for r in "ab"]
    with stores[0].engine.begin() as conn:
        for r in new:
            conn.execute(assessments.update().where(assessments.c.report_id == r["report_id"])
                         .values({k: v for k, v in r.items() if k not in ("report_id", "tier", "score", "own_tier")}))
    with stores[1].engine.begin() as conn:
        update_rows_sqlite(conn, assessments, new, "report_id", unchanged=("tier", "score", "own_tier"))
    got = _raw(stores[1])
    assert got == _raw(stores[0])
    by_id = {r[0]: r for r in got}
    assert by_id["b"][1] == "1" and by_id["a"][1] == "3", "the tier stays as stored, though the rows passed say 3"
    assert by_id["b"][5] == '[{"rule_id": "b"}]' and "v2" in by_id["b"] and "2026-12-02 08:00:01.000005" in by_id["b"]
    assert by_id["c"] == tuple(_raw(stores[0])[2]) and "v1" in by_id["c"], "a row not named is left alone"
    for store in stores:
        store.dispose()
