"""The hash-chained audit log: concurrent appends keep one gapless chain, and every kind of tampering done directly in SQL
(edit, deletion, reordering, insertion, truncation, re-forging without the key) is detected and named at the right entry."""

from __future__ import annotations

import itertools
import json
import threading
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tiptriage.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditError,
    AuditEvent,
    AuditHead,
    AuditKeyError,
    canonical_bytes,
    chain_hash,
    entry_hash,
    load_key,
    seal,
    verify,
)
from tiptriage.store import Store
from tiptriage.store.audit import AUDIT_TABLES, AuditRepository, app_role_grants, audit_head, audit_log
from tiptriage.store.schema import metadata

KEY = b"k" * 32
T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
N = 40


def make_repo(store: Store, key: bytes | None = None) -> AuditRepository:
    # Until the migration has them: create_all checks first, so this is a no-op once it does.
    metadata.create_all(store.engine, tables=list(AUDIT_TABLES))
    return AuditRepository(store.engine, key=key)


def event(i: int) -> AuditEvent:
    return AuditEvent(
        user=f"analyst{i % 3}",
        action=["read", "change", "export", "assess"][i % 4],
        outcome="ok" if i % 5 else "denied",
        object_type="report",
        object_id=f"R-{i}",
        agency="ICAC-TX" if i % 2 else None,
        source_address="10.0.0.7",
        detail={"i": i, "fields": ["tier"], "reason": "queue review"},
    )


def fill(repo: AuditRepository, n: int = N) -> list[AuditEntry]:
    return repo.append_many(event(i) for i in range(1, n + 1))


def execute(store: Store, sql: str, **params: Any) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def reforge_from(store: Store, seq: int, key: bytes | None) -> None:
    """What someone with write access does to hide an edit: recompute every hash from ``seq`` on, and the head."""
    repo = AuditRepository(store.engine, key=None)
    entries = list(repo.iter_entries())
    prev = entries[seq - 2].hash if seq > 1 else GENESIS_HASH
    with store.engine.begin() as conn:
        for e in entries[seq - 1 :]:
            fixed = replace(e, prev_hash=prev)
            fixed = replace(fixed, hash=entry_hash(fixed, key))
            conn.execute(audit_log.update().where(audit_log.c.seq == e.seq).values(prev_hash=fixed.prev_hash, hash=fixed.hash))
            prev = fixed.hash
        conn.execute(audit_head.update().values(hash=prev))


# -- the pure chain -------------------------------------------------------------------------------


def pure_chain(n: int, key: bytes | None = None) -> list[AuditEntry]:
    out: list[AuditEntry] = []
    prev = GENESIS_HASH
    for i in range(1, n + 1):
        out.append(seal(i, T0 + timedelta(seconds=i), event(i), prev, key))
        prev = out[-1].hash
    return out


def test_canonical_bytes_and_hash_are_pinned() -> None:
    """Changing the canonical form would make every stored chain fail verification: this vector must never change."""
    e = seal(1, T0, AuditEvent(user="ana", action="read", object_type="report", object_id="R-1", detail={"b": 1, "a": "é"}), GENESIS_HASH)
    assert canonical_bytes(e) == (
        b'{"action":"read","agency":null,"at":"2026-01-02T03:04:05.678901Z","detail":{"a":"\\u00e9","b":1},"object_id":"R-1",'
        b'"object_type":"report","outcome":"ok","prev_hash":"' + GENESIS_HASH.encode() + b'","seq":1,"source_address":null,'
        b'"user":"ana","v":1}'
    )
    assert e.hash == "da785f8534a20b14bcf4b4fc5f59f9503148c5554086d6ccbd81dee7d31648c3"
    assert chain_hash(GENESIS_HASH, canonical_bytes(e)) == e.hash
    assert chain_hash(GENESIS_HASH, canonical_bytes(e), KEY) != e.hash


def test_times_are_utc_with_microseconds_and_naive_times_are_refused() -> None:
    e = seal(1, datetime(2026, 1, 2, 5, 4, 5, tzinfo=UTC) + timedelta(hours=0), event(1), GENESIS_HASH)
    assert b'"at":"2026-01-02T05:04:05.000000Z"' in canonical_bytes(e)
    with pytest.raises(ValueError, match="timezone-aware"):
        canonical_bytes(replace(e, at=datetime(2026, 1, 2)))


def test_events_are_validated_before_anything_is_hashed() -> None:
    with pytest.raises(AuditError, match="outcome"):
        AuditEvent(user="ana", action="read", outcome="maybe")
    with pytest.raises(AuditError, match="NUL"):
        AuditEvent(user="a\x00b", action="read")
    with pytest.raises(AuditError, match="go together"):
        AuditEvent(user="ana", action="read", object_type="report")
    with pytest.raises(AuditError, match="at most"):
        AuditEvent(user="ana", action="export", detail={"ids": ["x" * 100] * 100})
    with pytest.raises(AuditError, match="JSON"):
        AuditEvent(user="ana", action="read", detail={"x": float("nan")})
    assert AuditEvent(user="ana", action="read", detail={"ids": ("a", "b")}).detail == {"ids": ["a", "b"]}


def test_verify_names_each_kind_of_damage() -> None:
    chain = pure_chain(10)
    assert verify(chain, None).ok
    edited = [*chain[:4], replace(chain[4], user="mallory"), *chain[5:]]
    assert verify(edited, None).problem == "entry 5: its hash does not match its contents (edited?)"
    assert verify([*chain[:4], *chain[6:]], None).problem == "entry 7 follows 4: entries 5–6 are missing (deleted?)"
    assert verify(chain[2:], None).problem == "entry 3 is the first entry: entries 1–2 are missing (deleted?)"
    assert verify([*chain[:5], chain[3], *chain[5:]], None).problem == "entry 4 follows 5: out of order (reordered?)"
    assert verify([*chain[:5], chain[4], *chain[5:]], None).problem == "entry 5 appears twice (inserted?)"
    short = verify(chain[:7], None, AuditHead(10, chain[9].hash))
    assert (short.first_bad_seq, short.problem) == (
        8,
        "the log ends at entry 7 but the recorded head is entry 10: entries 8–10 are missing (truncated?)",
    )
    assert short.checked == 7 and short.head == AuditHead(7, chain[6].hash)
    assert verify(chain, None, AuditHead(5, chain[4].hash)).ok  # an older recorded head: the log has grown since
    assert not verify(chain, None, AuditHead(5, chain[4].hash), head_is_end=True).ok
    assert verify(chain, None, AuditHead(5, "0" * 63 + "1")).first_bad_seq == 5


def test_verify_streams_in_constant_memory() -> None:
    def entries(n: int) -> Iterator[AuditEntry]:
        prev = GENESIS_HASH
        for i in range(1, n + 1):
            e = seal(i, T0, event(i), prev, KEY)
            prev = e.hash
            yield e

    tracemalloc.start()
    try:
        result = verify(entries(3_000), KEY)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.ok and result.checked == 3_000
    assert peak < 512 * 1024  # 3 000 entries held at once would take several megabytes


TEXT = st.characters(codec="utf-8", exclude_characters="\x00")  # what both backends store exactly
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "seq": st.integers(min_value=N + 1, max_value=10**9),  # moved past the end (smaller ones are taken: seq is the primary key)
    "at": st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    "user": st.text(TEXT, min_size=1, max_size=40),
    "agency": st.none() | st.text(TEXT, max_size=40),
    "source_address": st.none() | st.ip_addresses().map(str),
    "object_type": st.none() | st.sampled_from(["report", "subject", "bundle", "hashset"]),
    "object_id": st.none() | st.text(TEXT, max_size=40),
    "action": st.sampled_from(["login", "login_failed", "read", "change", "export", "ingest", "assess", "decide"]),
    "outcome": st.sampled_from(["ok", "denied", "failed"]),
    "detail": st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=10) | st.booleans() | st.none(), max_size=4),
    "prev_hash": st.text("0123456789abcdef", min_size=64, max_size=64),
    "hash": st.text("0123456789abcdef", min_size=64, max_size=64),
}
field_edits = st.sampled_from(sorted(FIELD_VALUES)).flatmap(lambda f: st.tuples(st.just(f), FIELD_VALUES[f]))


@given(position=st.integers(min_value=1, max_value=N), edit=field_edits, keyed=st.booleans())
@settings(max_examples=300, deadline=None)
def test_any_single_field_edit_is_found_at_its_entry_in_memory(position: int, edit: tuple[str, Any], keyed: bool) -> None:
    key = KEY if keyed else None
    chain = pure_chain(N, key)
    name, value = edit
    assume(getattr(chain[position - 1], name) != value)
    chain[position - 1] = replace(chain[position - 1], **{name: value})
    if name == "seq":
        chain.sort(key=lambda e: e.seq)
    result = verify(chain, key)
    assert not result.ok
    assert result.first_bad_seq == position, result.problem
    assert result.problem is not None and str(position) in result.problem


def test_keys_come_from_a_file_or_the_environment(tmp_path: Path) -> None:
    assert load_key({}) is None
    assert load_key({"TIPTRIAGE_AUDIT_KEY": " " + "x" * 32 + "\n"}) == b"x" * 32
    secret = tmp_path / "audit.key"
    secret.write_text("y" * 64 + "\n")
    assert load_key({"TIPTRIAGE_AUDIT_KEY_FILE": str(secret)}) == b"y" * 64
    with pytest.raises(AuditKeyError, match="not both"):
        load_key({"TIPTRIAGE_AUDIT_KEY_FILE": str(secret), "TIPTRIAGE_AUDIT_KEY": "x" * 32})
    with pytest.raises(AuditKeyError, match="at least 32"):
        load_key({"TIPTRIAGE_AUDIT_KEY": "short"})
    with pytest.raises(AuditKeyError, match="cannot read"):
        load_key({"TIPTRIAGE_AUDIT_KEY_FILE": str(tmp_path / "absent")})


def test_app_role_grants_allow_only_insert_and_select_on_the_log() -> None:
    sql = app_role_grants("tiptriage_app")
    assert 'GRANT SELECT, INSERT ON TABLE audit_log TO "tiptriage_app";' in sql
    assert "UPDATE ON TABLE audit_log" not in sql and "DELETE" not in sql and "TRUNCATE" not in sql
    with pytest.raises(ValueError):
        app_role_grants('app"; DROP TABLE audit_log; --')


# -- the stored log, on each backend ------------------------------------------------------------------


def test_concurrent_appenders_never_fork_the_chain(store: Store) -> None:
    repo = make_repo(store)
    start = threading.Barrier(4)
    got: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            start.wait()
            got[t] = [repo.append(f"user{t}", "read", object_type="report", object_id=f"R-{t}-{i}", detail={"i": i}).seq for i in range(25)]
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    seqs = sorted(s for per in got.values() for s in per)
    assert seqs == list(range(1, 101))
    assert all(per == sorted(per) for per in got.values())  # each thread's entries in its own order
    result = repo.verify()
    assert result.ok and result.checked == 100, result.problem
    assert [e.seq for e in repo.iter_entries()] == list(range(1, 101))
    assert repo.head() == result.head and repo.head().seq == 100


def test_entries_read_back_exactly_as_appended(store: Store) -> None:
    repo = make_repo(store)
    appended = fill(repo, 10)
    assert list(repo.iter_entries()) == appended
    assert list(repo.iter_entries(start=8)) == appended[7:]
    assert appended[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(appended))
    assert repo.append("ana", "login", source_address="192.0.2.1").seq == 11
    with pytest.raises(AuditError):
        repo.append("ana", "read", outcome="unknown")
    assert repo.head().seq == 11  # the refused event wrote nothing


def test_entries_appended_inside_a_change_commit_or_roll_back_with_it(store: Store) -> None:
    repo = make_repo(store)
    fill(repo, 3)
    with pytest.raises(RuntimeError), store.engine.begin() as conn:
        repo.append_in(conn, [AuditEvent(user="ana", action="change", object_type="report", object_id="R-1")])
        raise RuntimeError("the change failed")
    assert repo.head().seq == 3 and repo.verify().ok
    with store.engine.begin() as conn:
        entries = repo.append_in(conn, [event(4), event(5)])
    assert [e.seq for e in entries] == [4, 5] and list(repo.iter_entries(start=4)) == entries
    assert repo.verify().ok


def test_edited_entry_is_named(store: Store) -> None:
    repo = make_repo(store)
    fill(repo)
    execute(store, "UPDATE audit_log SET username = 'mallory' WHERE seq = 17")
    result = repo.verify()
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 17, 16)
    assert result.problem == "entry 17: its hash does not match its contents (edited?)"


def test_deleted_entry_is_named_by_the_gap(store: Store) -> None:
    repo = make_repo(store)
    fill(repo)
    execute(store, "DELETE FROM audit_log WHERE seq = 30")
    result = repo.verify()
    assert (result.first_bad_seq, result.problem) == (30, "entry 31 follows 29: entry 30 is missing (deleted?)")


def test_swapped_entries_are_named_at_the_first(store: Store) -> None:
    repo = make_repo(store)
    fill(repo)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_log SET seq = -1 WHERE seq = 21"))
        conn.execute(sa.text("UPDATE audit_log SET seq = 21 WHERE seq = 20"))
        conn.execute(sa.text("UPDATE audit_log SET seq = 20 WHERE seq = -1"))
    result = repo.verify()
    assert result.first_bad_seq == 20
    assert result.problem == "entry 20: its prev_hash is not the hash of entry 19 (reordered, inserted or replaced?)"


def test_truncated_tail_is_detected_by_the_stored_head_and_by_a_recorded_one(store: Store) -> None:
    repo = make_repo(store)
    fill(repo)
    recorded = repo.head()  # exported somewhere the database's writers cannot reach
    execute(store, "DELETE FROM audit_log WHERE seq > 35")
    result = repo.verify()
    assert (result.first_bad_seq, result.checked) == (36, 35)
    assert result.problem == "the log ends at entry 35 but the recorded head is entry 40: entries 36–40 are missing (truncated?)"

    # Rewinding the stored head too hides the truncation from the chain alone, but not from the recorded head.
    last = list(repo.iter_entries())[-1]
    with store.engine.begin() as conn:
        conn.execute(audit_head.update().values(seq=last.seq, hash=last.hash))
    assert repo.verify().ok
    result = repo.verify(expected_head=recorded)
    assert (result.first_bad_seq, result.problem) == (
        36,
        "the log ends at entry 35 but the recorded head is entry 40: entries 36–40 are missing (truncated?)",
    )
    # Appending after such a rewind continues the shortened chain, but the recorded head still shows the loss.
    for _ in range(5):
        repo.append("ana", "read")
    assert repo.verify().ok and repo.head().seq == N
    result = repo.verify(expected_head=recorded)
    assert (result.first_bad_seq, result.problem) == (
        N,
        f"entry {N}: its hash is not the one in the recorded head (the chain was rewritten from here or earlier?)",
    )


def test_rows_inserted_past_the_head_are_detected(store: Store) -> None:
    repo = make_repo(store)
    entries = fill(repo)
    forged = seal(N + 1, datetime.now(UTC), AuditEvent(user="mallory", action="read"), entries[-1].hash)
    with store.engine.begin() as conn:
        conn.execute(
            audit_log.insert().values(
                seq=forged.seq,
                at=forged.at,
                username=forged.user,
                action=forged.action,
                outcome=forged.outcome,
                detail="{}",
                prev_hash=forged.prev_hash,
                hash=forged.hash,
            )
        )
    result = repo.verify()
    assert (result.first_bad_seq, result.checked) == (N + 1, N)
    assert result.problem is not None and result.problem.startswith(f"entry {N + 1} follows the recorded head (entry {N})")
    with pytest.raises(AuditError, match="already exists"):
        repo.append("ana", "read")  # the head and the log disagree: refused loudly, nothing forked


def test_an_unkeyed_chain_can_be_reforged_but_not_past_a_recorded_head(store: Store) -> None:
    """Why the key matters: without it, someone with write access can recompute the whole chain after an edit."""
    repo = make_repo(store)
    fill(repo)
    recorded = repo.head()
    execute(store, "UPDATE audit_log SET object_id = 'R-999' WHERE seq = 17")
    reforge_from(store, 17, key=None)
    assert repo.verify().ok  # undetectable from the database alone
    result = repo.verify(expected_head=recorded)
    assert result.first_bad_seq == N and result.problem is not None and "recorded head" in result.problem


def test_keyed_chain_detects_an_edit_rehashed_with_plain_sha256(store: Store) -> None:
    repo = make_repo(store, key=KEY)
    fill(repo)
    assert repo.verify().ok and repo.header().keyed
    execute(store, "UPDATE audit_log SET outcome = 'ok', username = 'someone_else' WHERE seq = 17")
    reforge_from(store, 17, key=None)  # every hash from 17 on recomputed with SHA-256, and the head moved to match
    result = repo.verify()
    assert (result.first_bad_seq, result.problem) == (17, "entry 17: its hash does not match its contents (edited?)")
    # ...and so is a chain re-hashed from the start, with the header flipped to "not keyed".
    reforge_from(store, 1, key=None)
    with store.engine.begin() as conn:
        conn.execute(audit_head.update().values(keyed=False, key_id=None))
    result = repo.verify()
    assert result.first_bad_seq == 1 and result.problem is not None and "header says the chain is not keyed" in result.problem
    assert AuditRepository(store.engine, key=None).verify().ok  # which is exactly why the verifier must hold the key


def test_keyed_chain_refuses_missing_or_wrong_keys(store: Store) -> None:
    repo = make_repo(store, key=KEY)
    fill(repo, 3)
    no_key = AuditRepository(store.engine, key=None)
    result = no_key.verify()
    assert not result.ok and result.problem is not None and "keyed" in result.problem
    with pytest.raises(AuditKeyError, match="no key is configured"):
        no_key.append("ana", "read")
    wrong = AuditRepository(store.engine, key=b"w" * 32)
    result = wrong.verify()
    assert not result.ok and result.problem is not None and "not the chain's key" in result.problem
    with pytest.raises(AuditKeyError, match="not the chain's key"):
        wrong.append("ana", "read")
    assert repo.head().seq == 3
    with pytest.MonkeyPatch.context() as mp:  # by default the key comes from the environment
        mp.setenv("TIPTRIAGE_AUDIT_KEY", KEY.decode())
        from_env = AuditRepository(store.engine)
        assert from_env.append("ana", "logout").seq == 4 and from_env.verify().ok
        mp.setenv("TIPTRIAGE_AUDIT_KEY", "e" * 32)
        with pytest.raises(AuditKeyError, match="not the chain's key"):
            AuditRepository(store.engine).append("ana", "read")


def test_unparseable_stored_values_are_reported_not_raised(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'audit.db'}")  # only SQLite stores times as text that can be made unparseable
    try:
        repo = make_repo(store)
        fill(repo, 5)
        execute(store, "UPDATE audit_log SET at = 'yesterday', detail = 'not json' WHERE seq = 3")
        result = repo.verify()
        assert (result.first_bad_seq, result.problem) == (3, "entry 3: its hash does not match its contents (edited?)")
    finally:
        store.dispose()


COLUMN = {"user": "username"}


@given(position=st.integers(min_value=1, max_value=N), edit=field_edits)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_single_field_edit_in_the_database_is_found_at_its_entry(store: Store, position: int, edit: tuple[str, Any]) -> None:
    repo = make_repo(store)
    if repo.head().seq == 0:  # the store lives across examples: build the chain once, restore it after each edit
        fill(repo)
    name, value = edit
    original = next(repo.iter_entries(start=position))
    assume(getattr(original, name) != value)
    column = COLUMN.get(name, name)
    stored = json.dumps(value) if name == "detail" else value
    with store.engine.begin() as conn:
        conn.execute(audit_log.update().where(audit_log.c.seq == position).values({column: stored}))
    try:
        result = repo.verify()
        assert not result.ok
        assert result.first_bad_seq == position, result.problem
    finally:
        back = json.dumps(original.detail) if name == "detail" else getattr(original, name)
        where = value if name == "seq" else position
        with store.engine.begin() as conn:
            conn.execute(audit_log.update().where(audit_log.c.seq == where).values({column: back}))
    assert repo.verify().ok
