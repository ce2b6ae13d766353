"""Bulk inserts: COPY on PostgreSQL (far less server work than INSERT for large batches), executemany elsewhere."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


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
