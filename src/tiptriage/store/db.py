"""Engines: the SQLite file by default (WAL), PostgreSQL when TIPTRIAGE_DATABASE_URL names it."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any, Final, cast

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

DEFAULT_URL = "sqlite:///tiptriage.db"


def database_url(explicit: str | None = None) -> str:
    return explicit or os.environ.get("TIPTRIAGE_DATABASE_URL") or DEFAULT_URL


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers (the server, `queue`) run beside an ingest; NORMAL is durable across process crashes.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        db_path = sa.engine.make_url(url).database
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # the service runs up to TIPTRIAGE_SERVER_THREADS (16) requests at once per process, each holding at most one connection:
    # a pool smaller than that opens and closes a connection for each request beyond it (with SQLAlchemy's default pool, 5
    # kept and 10 more opened and closed again, the load benchmark opened about a thousand PostgreSQL connections in 30 s)
    size = int(os.environ.get("TIPTRIAGE_DB_POOL_SIZE", "20"))
    engine = sa.create_engine(url, pool_size=size, max_overflow=size)
    sa.event.listen(engine, "checkin", _returned)
    sa.event.listen(engine, "checkout", _pinger(engine.dialect))
    return engine


# A pooled connection is checked with a round trip before use only when it has lain idle this long: SQLAlchemy's pre-ping
# did it on every checkout, a round trip in each of the three transactions of every audited read. A connection broken
# while in use within this time (the server restarted under load) fails the one request that next uses it; that failure
# invalidates the whole pool, so the requests after it connect afresh.
PING_IDLE_AFTER_S: Final = 2.0


def _returned(_dbapi_connection: Any, record: Any) -> None:
    record.info["returned_at"] = time.monotonic()


def _pinger(dialect: sa.Dialect) -> Callable[[Any, Any, Any], None]:
    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("returned_at")
        if returned is None or time.monotonic() - returned < PING_IDLE_AFTER_S:
            return  # new, or in use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as e:
            if dialect.is_disconnect(e, dbapi_connection, None):
                raise sa.exc.InvalidatePoolError() from e  # as the pre-ping does: the pool reconnects, and drops the others
            raise

    return ping_if_idle


def _alembic_config(connection: sa.Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("tiptriage.store").joinpath("migrations")))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to the newest revision; cheap when it already is."""
    with engine.begin() as conn:
        cfg = _alembic_config(conn)
        head = ScriptDirectory.from_config(cfg).get_current_head()
        if MigrationContext.configure(conn).get_current_revision() == head:
            return
        command.upgrade(cfg, "head")


# -- the driver, pipelined, for the service's busiest paths (PostgreSQL) ---------------------------------------------------


@dataclass(frozen=True)
class DriverSQL:
    """A SQLAlchemy statement compiled once for psycopg: its SQL (named ``%(name)s`` parameters, the casts SQLAlchemy
    renders) and the values of the parameters it fixed itself (a literal 0, a LIMIT 1)."""

    sql: str
    params: Mapping[str, Any]


def driver_sql(statement: sa.ClauseElement) -> DriverSQL:
    """``statement`` as the store's PostgreSQL engines would send it, so a path through the driver runs the very SQL (and gets
    the same plans) as the general path through SQLAlchemy."""
    from sqlalchemy.dialects.postgresql import psycopg as pg_psycopg

    compiled = statement.compile(dialect=pg_psycopg.dialect())  # type: ignore[no-untyped-call]  # SQLAlchemy's own class
    return DriverSQL(str(compiled), dict(compiled.params))


class DriverTransaction:
    """One transaction on a pooled PostgreSQL connection, spoken straight to psycopg with its statements pipelined: each
    statement is queued, a cursor's ``fetchone``/``fetchall`` before ``end`` waits for the answers queued so far (one round
    trip), and ``end`` sends COMMIT (or ROLLBACK), waits for every answer left (one more) and gives the connection back.
    The cursors of statements sent before ``end`` are read after it.

    Why: every audited read of the service took six to ten round trips through SQLAlchemy (BEGIN, the agency's SET, the
    statement, the ROLLBACK or COMMIT, each a wait and a wake-up of a server process on the same two cores); pipelined, a
    transaction of any number of statements whose parameters do not hang on an earlier answer takes one, and one more for
    each answer the next statement needs. The connection is put in autocommit mode while in use, so that BEGIN is a queued
    statement like any other (psycopg waits for an implicit BEGIN in pipeline mode), and back as it was after.

    Transactions begun here do not fire the engine's ``begin`` event: a caller that reads case data binds the agency itself
    (``tiptriage.store.rls``), inside the transaction."""

    def __init__(self, engine: sa.Engine, begin: str = "BEGIN") -> None:
        self._raw = engine.raw_connection()
        self._pg: Any = cast(Any, self._raw.driver_connection)
        self._stack = ExitStack()
        self._done = False
        try:
            self._pg.autocommit = True
            self._stack.enter_context(self._pg.pipeline())
            self.send(begin)
        except BaseException:
            self._abandon(*sys.exc_info())
            raise

    def send(self, sql: str, params: Mapping[str, Any] | None = None, *, as_dicts: bool = False) -> Any:
        """Queue one statement; returns its psycopg cursor (rows as dicts with ``as_dicts``)."""
        from psycopg.rows import dict_row

        cur = self._pg.cursor(row_factory=dict_row) if as_dicts else self._pg.cursor()
        cur.execute(sql, params)
        return cur

    def end(self, commit: bool = True) -> None:
        """COMMIT (or ROLLBACK) and wait for every answer; the connection goes back to the pool. Raises what any statement
        sent raised (nothing is then committed)."""
        if self._done:
            return
        try:
            self.send("COMMIT" if commit else "ROLLBACK")
            self._done = True
            self._stack.close()  # leaving pipeline mode sends the sync and reads every answer
        except BaseException:
            self._done = False
            self._abandon(*sys.exc_info())
            raise
        self._release()

    def __enter__(self) -> DriverTransaction:
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if not self._done:
            if typ is None:
                self.end(commit=False)
            else:
                self._abandon(typ, exc, tb)

    def _abandon(self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        """After an error: out of pipeline mode, the transaction rolled back, the connection back to the pool (or dropped
        from it when it is broken)."""
        self._done = True
        with suppress(Exception):  # the error being raised is the one that matters
            self._stack.__exit__(typ, exc, tb)
        self._release()

    def _release(self) -> None:
        from psycopg.pq import TransactionStatus

        pg = self._pg
        healthy = not (pg.closed or pg.broken)
        if healthy:
            try:
                if pg.info.transaction_status != TransactionStatus.IDLE:
                    pg.execute("ROLLBACK")
                pg.autocommit = False
            except Exception:
                healthy = False
        if healthy:
            self._raw.close()
        else:
            self._raw.invalidate()  # dropped from the pool, as SQLAlchemy does with a connection found broken
