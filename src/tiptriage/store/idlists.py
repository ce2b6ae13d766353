"""``column IN (ids)`` with the ids as one bound value, for the long id lists of batch work.

SQLAlchemy's ``in_(list)`` binds one parameter per id, so every statement is compiled again for its list's length and a
list is cut to SQLite's limit of 999 bound values; at 100,000 reports that compiling cost about a second per assessment
run (measured with cProfile in ``bench/assess.py``'s stored path). Here the list travels as one value: a JSON array that
SQLite unpacks with ``json_each``, a text array that PostgreSQL compares with ``= ANY``. The statement's text does not
depend on the list, so it is compiled once and cached, and a list of any length is one statement.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


def among(col: sa.ColumnElement[str], ids: Sequence[str], dialect: str) -> sa.ColumnElement[bool]:
    """``col IN ids`` for the database ``dialect`` (``engine.dialect.name``)."""
    if dialect == "postgresql":
        return col == sa.func.any(sa.bindparam(None, list(ids), type_=postgresql.ARRAY(sa.String)))
    values = sa.func.json_each(sa.bindparam(None, json.dumps(list(ids)), type_=sa.String)).table_valued("value")
    return col.in_(sa.select(values.c.value))
