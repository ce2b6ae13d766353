"""The store's paths through the driver, pipelined (PostgreSQL): ``DriverTransaction`` leaves its pooled connection as it found
it whatever happens, and the audit log's pipelined append stores what the general append stores, with the same checks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from tiptriage.audit import AuditError, AuditEvent, AuditKeyError
from tiptriage.store import Store, db
from tiptriage.store.audit import AuditRepository, audit_head, audit_log


@pytest.fixture
def pg_store(store: Store) -> Iterator[Store]:
    if store.engine.dialect.name != "postgresql":
        pytest.skip("the pipelined paths are PostgreSQL's driver's; SQLite keeps SQLAlchemy's")
    yield store


def _event(i: int) -> AuditEvent:
    return AuditEvent(user=f"analyst{i % 3}", action="read", outcome="ok" if i % 4 else "denied", object_type="report",
                      object_id=f"R-{i}", agency="agency-a" if i % 2 else None, source_address="10.0.0.7",
                      detail={"i": i, "via": "routed", "note": "é ☃"})


def _spy(repo: AuditRepository, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each append went through the pipelined path (True) or fell back to the general one (False)."""
    taken: list[bool] = []
    real = repo._append_pipelined

    def spied(events: list[AuditEvent]) -> Any:
        out = real(events)
        taken.append(out is not None)
        return out

    monkeypatch.setattr(repo, "_append_pipelined", spied)
    return taken


@pytest.mark.parametrize("key", [None, b"k" * 32])
def test_the_pipelined_append_stores_what_the_general_append_stores(pg_store: Store, monkeypatch: pytest.MonkeyPatch,
                                                                   key: bytes | None) -> None:
    repo = AuditRepository(pg_store.engine, key=key)
    taken = _spy(repo, monkeypatch)
    appended = [repo.append_many([_event(0)])[0]]  # the first entry: the general path (it fixes whether the chain is keyed)
    appended += repo.append_many([_event(i) for i in range(1, 6)])
    with pg_store.engine.begin() as conn:  # inside a caller's transaction: the general path
        appended += repo.append_in(conn, [_event(6), _event(7)])
    appended += repo.append_many([_event(8)])
    assert taken == [False, True, True]
    assert [e.seq for e in appended] == list(range(1, 10))
    assert list(repo.iter_entries()) == appended  # read back exactly as sealed, whichever path wrote them
    result = repo.verify()
    assert result.ok and result.checked == 9 and result.head == repo.head()
    with pg_store.engine.begin() as conn:  # an entry the pipelined path wrote, edited behind the log's back, is found
        conn.execute(audit_log.update().where(audit_log.c.seq == 3).values(object_id="R-other"))
    bad = repo.verify()
    assert not bad.ok and bad.first_bad_seq == 3


def test_the_pipelined_append_refuses_as_the_general_one_and_writes_nothing(pg_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    keyed = AuditRepository(pg_store.engine, key=b"k" * 32)
    keyed.append_many([_event(0), _event(1)])
    plain = AuditRepository(pg_store.engine, key=None)
    taken = _spy(plain, monkeypatch)
    with pytest.raises(AuditKeyError):
        plain.append_many([_event(2)])
    with pg_store.engine.begin() as conn:  # an entry past the head, written behind the log's back
        row = conn.execute(sa.select(audit_log).where(audit_log.c.seq == 2)).mappings().one()
        conn.execute(audit_log.insert().values({**row, "seq": 3}))
    with pytest.raises(AuditError, match="already exists"):
        keyed.append_many([_event(2)])
    assert keyed.head().seq == 2 and taken == []  # the key check comes before anything is sealed or written
    with pg_store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one() == 3
        assert conn.execute(sa.select(audit_head.c.seq)).scalar_one() == 2


def test_a_driver_transaction_gives_its_connection_back_as_it_found_it(pg_store: Store) -> None:
    engine = db.make_engine(pg_store.url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE driver_probe (x integer PRIMARY KEY)")

        def pooled_state() -> tuple[bool, Any]:
            with engine.connect() as conn:
                pg: Any = conn.connection.driver_connection
                return pg.autocommit, pg.info.transaction_status

        idle = pooled_state()
        with db.DriverTransaction(engine) as tx:
            tx.send("INSERT INTO driver_probe VALUES (1)")
            tx.end()
        assert pooled_state() == idle
        with db.DriverTransaction(engine) as tx:  # left without end: rolled back
            tx.send("INSERT INTO driver_probe VALUES (2)")
        with pytest.raises(psycopg.errors.UniqueViolation), db.DriverTransaction(engine) as tx:  # fails at the commit
            tx.send("INSERT INTO driver_probe VALUES (3)")
            tx.send("INSERT INTO driver_probe VALUES (1)")
            tx.end()
        with pytest.raises(ZeroDivisionError), db.DriverTransaction(engine) as tx:  # the caller's own error, mid-way
            tx.send("INSERT INTO driver_probe VALUES (4)")
            assert tx.send("SELECT count(*) FROM driver_probe").fetchone() == (2,)  # one round trip; sees its own insert
            raise ZeroDivisionError
        assert pooled_state() == idle and engine.pool.checkedout() == 0  # type: ignore[attr-defined]  # QueuePool
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT x FROM driver_probe ORDER BY x").scalars().all() == [1]
        with db.DriverTransaction(engine) as tx:  # the connection dies mid-transaction: dropped from the pool, not reused
            pid = tx.send("SELECT pg_backend_pid()").fetchone()[0]
            with pg_store.engine.connect() as admin:
                admin.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
            with pytest.raises(psycopg.OperationalError):
                tx.end()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != pid
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS driver_probe")
        engine.dispose()
