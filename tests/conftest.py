"""Shared fixtures: a real store on SQLite and, when TIPTRIAGE_TEST_POSTGRES_URL is set, on PostgreSQL, and a data key."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tiptriage.store import Store
from tiptriage.store.crypto import KEY_ENV, KEY_FILE_ENV, encode_key, generate_key

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
PG_ADMIN_URL = os.environ.get("TIPTRIAGE_TEST_POSTGRES_URL")
TEST_DATA_KEY = encode_key(generate_key())  # one per test session; the databases are temporary too


@pytest.fixture(autouse=True)
def _index_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Saved hash indexes go to a temporary folder, never into the checkout or the home folder."""
    monkeypatch.setenv("TIPTRIAGE_INDEX_DIR", str(tmp_path_factory.mktemp("index")))


@pytest.fixture(autouse=True)
def _data_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The store opens only with a data key: every test (and every command a test runs) gets this one from the environment."""
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    monkeypatch.setenv(KEY_ENV, TEST_DATA_KEY)
    return TEST_DATA_KEY


@pytest.fixture
def reference() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip(f"reference material not found at {REFERENCE} (../shared/reference is absent on this checkout)")
    return REFERENCE


def _pg_database() -> Iterator[str]:
    assert PG_ADMIN_URL is not None
    name = f"tiptriage_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(PG_ADMIN_URL is None, reason="TIPTRIAGE_TEST_POSTGRES_URL not set (CI sets it)"))]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'tiptriage.db'}"
    else:
        yield from _pg_database()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    yield s
    s.dispose()
