"""The service's audit appender: appends from many threads at once are written several to a transaction, in one gapless
chain that verifies exactly as one written an entry at a time; each caller gets its own entry, committed, or the error."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

import pytest
import sqlalchemy as sa

from tiptriage.audit import AuditEntry, AuditError, AuditEvent, AuditKeyError
from tiptriage.store import Store
from tiptriage.store.audit import AuditRepository, GroupAppender

KEY = b"k" * 32


class CountingRepository(AuditRepository):
    """The real repository, noting how many events each transaction of its own wrote."""

    def __init__(self, engine: sa.Engine, key: bytes | None) -> None:
        super().__init__(engine, key=key)
        self.batches: list[int] = []

    def append_many(self, events: Iterable[AuditEvent]) -> list[AuditEntry]:
        events = list(events)
        self.batches.append(len(events))
        return super().append_many(events)


def _until(condition: Callable[[], bool], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _read(appender: GroupAppender, i: int) -> AuditEntry:
    return appender.submit(AuditEvent(user=f"analyst{i}", action="read", object_type="report", object_id=f"R-{i}", agency="agency-a",
                                      source_address="10.0.0.7", detail={"via": "routed", "i": i}))


def _in_threads(work: Callable[[int], None], n: int) -> list[threading.Thread]:
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads


def test_appends_that_arrive_while_the_head_is_held_are_written_in_one_transaction(store: Store) -> None:
    repo = CountingRepository(store.engine, key=None)
    appender = GroupAppender(repo)
    got: dict[int, AuditEntry] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            got[i] = _read(appender, i)
        except BaseException as e:
            errors.append(e)

    with store.engine.begin() as conn:  # a change and its entry, holding the chain head until it commits
        repo.append_in(conn, [AuditEvent(user="sup", action="change", object_type="case", object_id="C-1")])
        first = _in_threads(work, 1)
        _until(lambda: repo.batches == [1])  # the first read writes at once, alone, and waits for the head
        rest = _in_threads(lambda i: work(i + 1), 7)
        _until(lambda: appender.waiting == 7)
    for t in first + rest:
        t.join()
    assert not errors
    assert repo.batches == [1, 7]  # eight reads, two transactions
    assert sorted(e.seq for e in got.values()) == list(range(2, 10))
    stored = {e.seq: e for e in repo.iter_entries()}
    assert all(stored[e.seq] == e for e in got.values())  # each caller got its own entry, as stored
    assert {stored[e.seq].object_id for e in got.values()} == {f"R-{i}" for i in range(8)}
    result = repo.verify()
    assert result.ok and result.checked == 9, result.problem


def test_many_threads_appending_at_once_keep_one_gapless_chain(store: Store) -> None:
    repo = CountingRepository(store.engine, key=KEY)
    appender = GroupAppender(repo, max_batch=16)
    start = threading.Barrier(12)
    got: dict[int, list[int]] = {}

    def work(t: int) -> None:
        start.wait()
        got[t] = [_read(appender, t * 100 + i).seq for i in range(20)]

    for th in _in_threads(work, 12):
        th.join()
    seqs = sorted(s for per in got.values() for s in per)
    assert seqs == list(range(1, 241))
    assert all(per == sorted(per) for per in got.values())  # each thread's entries in its own order
    assert sum(repo.batches) == 240 and max(repo.batches) <= 16
    result = repo.verify()
    assert result.ok and result.checked == 240, result.problem


def test_an_invalid_event_is_refused_in_its_callers_thread_and_nothing_is_written(store: Store) -> None:
    repo = CountingRepository(store.engine, key=None)
    appender = GroupAppender(repo)
    with pytest.raises(AuditError):
        appender.submit(AuditEvent(user="analyst", action="Read Everything", object_type="report", object_id="R-1"))
    with pytest.raises(AuditError):
        appender.submit(AuditEvent(user="analyst", action="read", object_type="report"))  # an id goes with a type
    assert repo.batches == [] and repo.head().seq == 0
    assert _read(appender, 1).seq == 1


def test_a_batch_that_cannot_be_written_fails_for_each_of_its_callers(store: Store) -> None:
    AuditRepository(store.engine, key=KEY).append("setup", "change", object_type="chain", object_id="keyed")
    repo = CountingRepository(store.engine, key=None)  # a keyed chain, and no key configured: nothing may be appended
    appender = GroupAppender(repo)
    failures: list[BaseException] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        try:
            _read(appender, i)
        except AuditKeyError as e:
            with lock:
                failures.append(e)

    with store.engine.begin() as conn:
        AuditRepository(store.engine, key=KEY).append_in(conn, [AuditEvent(user="sup", action="change", object_type="case", object_id="C-1")])
        threads = _in_threads(work, 1)
        _until(lambda: repo.batches == [1])
        threads += _in_threads(lambda i: work(i + 1), 4)
        _until(lambda: appender.waiting == 4)
    for t in threads:
        t.join()
    assert len(failures) == 5 and repo.batches == [1, 4]
    assert repo.head().seq == 2  # the setup entry and the change's, nothing of the failed reads
    assert AuditRepository(store.engine, key=KEY).verify().ok
