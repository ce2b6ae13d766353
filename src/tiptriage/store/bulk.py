"""Bulk writes: COPY on PostgreSQL (far less server work than INSERT for large batches), executemany elsewhere; and SQLite
upserts through the driver itself."""

from __future__ import annotations

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
    compiled = stmt.compile(dialect=conn.dialect, column_keys=columns)
    names = compiled.positiontup or []
    assert set(names) == set(columns), (names, columns)  # every parameter is a column of the rows, once
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
    params = list(zip(*columns_out, strict=True))
    raw.executemany(str(compiled), params)
