"""Engines: the SQLite file by default (WAL), PostgreSQL when TIPTRIAGE_DATABASE_URL names it."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

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
    # the service's threadpool runs up to 40 requests at once per process: with SQLAlchemy's default pool (5 kept, 10 more
    # opened and closed again) the load benchmark opened about a thousand PostgreSQL connections in 30 s
    size = int(os.environ.get("TIPTRIAGE_DB_POOL_SIZE", "20"))
    return sa.create_engine(url, pool_pre_ping=True, pool_size=size, max_overflow=size)


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
