"""Engines: the SQLite file by default (WAL), PostgreSQL when TIPTRIAGE_DATABASE_URL names it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, Final

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
