"""Bulk writes: COPY on PostgreSQL (far less server work than INSERT for large batches), executemany elsewhere; and SQLite
upserts through the driver itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert


def insert_rows(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), rows)
        return
    columns = list(rows[0])
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur, cur.copy(f'COPY {table.name} ({", ".join(columns)}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def upsert_rows_sqlite(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], key: str) -> None:
    """Insert ``rows`` into a SQLite ``table``, rewriting in place those whose ``key`` is there already: one statement per
    row, as a delete and an insert would change the key's and every index's b-tree twice. Every row has the same columns.

    The rows go to the driver as tuples: SQLAlchemy's executemany costs 2.6 times as much CPU for the same statement (27
    against 10 microseconds a row of ``assessments``, measured), and an assessment run writes every row it assesses. Each
    column's bind processor, where its type has one, is applied as SQLAlchemy would."""
    if not rows:
        return
    columns = list(rows[0])
    ins = sqlite_insert(table)
    stmt = ins.on_conflict_do_update(index_elements=[table.c[key]], set_={c: ins.excluded[c] for c in columns if c != key})
    _executemany(conn, table, stmt, columns, rows)


def update_rows_sqlite(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]], key: str, unchanged: Sequence[str]) -> None:
    """Rewrite the SQLite rows of ``table`` that ``rows`` name by ``key`` (they are there), leaving the ``unchanged``
    columns alone: the caller knows those hold the same values, and SQLite updates an index whose columns an UPDATE sets
    even when their values stay; not setting them keeps every index on them untouched (about a third less CPU for a
    re-assessment that keeps each tier and score, measured). Through the driver, as ``upsert_rows_sqlite``."""
    if not rows:
        return
    columns = [c for c in rows[0] if c != key and c not in unchanged]
    where = f"where_{key}"  # a bound parameter may not have a column's name in an UPDATE
    stmt = table.update().where(table.c[key] == sa.bindparam(where)).values({c: sa.bindparam(c) for c in columns})
    _executemany(conn, table, stmt, [*columns, where], rows, {where: key})


def _executemany(conn: sa.Connection, table: sa.Table, stmt: sa.Insert | sa.Update, params: list[str], rows: list[dict[str, Any]],
                 alias: dict[str, str] | None = None) -> None:
    """``stmt`` for each of ``rows`` through the driver; a parameter is the row's column of its name, or of ``alias[name]``."""
    compiled = stmt.compile(dialect=conn.dialect, column_keys=params)
    positions = compiled.positiontup or []
    assert sorted(positions) == sorted(params), (positions, params)  # every parameter is a column of the rows, once
    names = [(alias or {}).get(n, n) for n in positions]
    procs = [table.c[n].type.dialect_impl(conn.dialect).bind_processor(conn.dialect) for n in names]
    raw = conn.connection.driver_connection
    assert raw is not None
    columns_out = []
    for n, p in zip(names, procs, strict=True):
        values = [r[n] for r in rows]
        if p is not None:
            # processed once per distinct value: a batch's rows share their assessment time, whose processor (SQLAlchemy's
            # DATETIME storage format) would otherwise run once a row
            done: dict[Any, Any] = {}
            values = [None if v is None else done[v] if v in done else done.setdefault(v, p(v)) for v in values]
        columns_out.append(values)
    raw.executemany(str(compiled), list(zip(*columns_out, strict=True)))
