"""The audit log's tables and repository: an append-only, hash-chained record of who read or changed what.

``audit_log`` holds the entries (see ``tiptriage.audit.chain`` for the hashing). ``audit_head`` is a one-row table (id = 1) holding
the chain header: the seq and hash of the last entry, and whether the chain is keyed (HMAC) and with which key (a fingerprint).
Every append locks that row, reads the head, writes the entries and moves the head in one transaction, so concurrent appenders,
in threads or processes, queue up and never fork the chain or leave a gap:

* on SQLite the transaction starts with ``BEGIN IMMEDIATE`` (the database's write lock is taken before the head is read);
* on PostgreSQL the head row is read with ``SELECT ... FOR UPDATE`` at READ COMMITTED.

The head is kept apart from the entries, so deleting the newest entries from ``audit_log`` alone is detected; someone who can also
rewrite ``audit_head`` is caught only by a head recorded elsewhere (``head()``, exported on a schedule) given to ``verify``.

On PostgreSQL the application's role may only add to and read the log — no UPDATE, DELETE or TRUNCATE — and the tables are owned
by a different role (the one migrations run as), since an owner can always change its own tables. ``APP_ROLE_GRANTS`` is the SQL,
to run as that owner, with ``{app_role}`` replaced by the application's role (``app_role_grants`` does that safely). Even so,
whoever owns the database can rewrite the log and recompute a plain SHA-256 chain; with ``TIPTRIAGE_AUDIT_KEY`` set the chain is
HMAC-keyed and cannot be re-forged without the key.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from functools import cache
from typing import Any, Final, Literal

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tiptriage.audit.chain import (
    FORMAT_VERSION,
    GENESIS_HASH,
    KEY_ENV,
    KEY_FILE_ENV,
    AuditEntry,
    AuditError,
    AuditEvent,
    AuditHead,
    AuditKeyError,
    VerifyResult,
    key_id,
    load_key,
    seal,
    verify,
)
from tiptriage.store.db import DriverSQL, DriverTransaction, driver_sql
from tiptriage.store.schema import metadata

APP_ROLE_GRANTS: Final = """\
REVOKE ALL ON TABLE audit_log, audit_head FROM PUBLIC;
REVOKE ALL ON TABLE audit_log, audit_head FROM {app_role};
GRANT SELECT, INSERT ON TABLE audit_log TO {app_role};
GRANT SELECT, INSERT, UPDATE ON TABLE audit_head TO {app_role};
"""

_ROLE_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


def app_role_grants(app_role: str) -> str:
    """``APP_ROLE_GRANTS`` for one role, its name checked and quoted as an identifier."""
    if not _ROLE_RE.fullmatch(app_role):
        raise ValueError(f"not a plain role name: {app_role!r}")
    return APP_ROLE_GRANTS.format(app_role=f'"{app_role}"')


# The user column is "username": "user" is reserved in PostgreSQL, where `SELECT user FROM audit_log` silently returns the
# database role on every row instead of the column — a trap for anyone reviewing the log by hand.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("username", sa.String(128), nullable=False),
    sa.Column("agency", sa.String(128)),
    sa.Column("source_address", sa.String(64)),
    sa.Column("object_type", sa.String(32)),
    sa.Column("object_id", sa.String(256)),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("outcome", sa.String(8), nullable=False),  # ok | denied | failed
    sa.Column("detail", sa.Text, nullable=False),  # canonical JSON, exactly the text that was hashed
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)
sa.Index("ix_audit_log_object", audit_log.c.object_type, audit_log.c.object_id)
sa.Index("ix_audit_log_user_at", audit_log.c.username, audit_log.c.at)

audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # always 1
    sa.Column("seq", sa.BigInteger, nullable=False),  # the last entry's seq; 0 when empty
    sa.Column("hash", sa.String(64), nullable=False),  # the last entry's hash; the genesis hash when empty
    sa.Column("keyed", sa.Boolean, nullable=False),  # HMAC-SHA256 with the audit key (fixed by the first append)
    sa.Column("key_id", sa.String(16)),  # a fingerprint of that key, to name a wrong key as such
    sa.Column("format", sa.Integer, nullable=False),  # the canonical-bytes format version
    sa.CheckConstraint("id = 1", name="ck_audit_head_single_row"),
)

AUDIT_TABLES: Final = (audit_log, audit_head)
AUDIT_HEAD_SEED: Final = {"id": 1, "seq": 0, "hash": GENESIS_HASH, "keyed": False, "key_id": None, "format": FORMAT_VERSION}


# Built once: every audited request runs them, and a statement object keeps its cache key, so each execution finds its
# compiled SQL without walking the statement again
_LOCK_HEAD: Final = sa.select(audit_head).where(audit_head.c.id == 1).with_for_update()
_INSERT_ENTRIES: Final = audit_log.insert()
_MOVE_HEAD: Final = audit_head.update().where(audit_head.c.id == 1).values(
    seq=sa.bindparam("new_seq", type_=sa.BigInteger), hash=sa.bindparam("new_hash", type_=sa.String))

_ENTRY_COLUMNS: Final = tuple(c.name for c in audit_log.c)
_PG_ARRAY_TYPES: Final = {"seq": "bigint[]", "at": "timestamptz[]"}  # the rest are text
_PG_APPEND: Final = sa.text(
    "WITH moved AS (UPDATE audit_head SET seq = :new_seq, hash = :new_hash WHERE id = 1) "
    f"INSERT INTO audit_log ({', '.join(_ENTRY_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"CAST(:{c} AS {_PG_ARRAY_TYPES.get(c, 'text[]')})" for c in _ENTRY_COLUMNS) + ")"
)


@cache
def _pipelined_statements() -> tuple[DriverSQL, DriverSQL]:
    return driver_sql(_LOCK_HEAD), driver_sql(_PG_APPEND)


def _head_moved(seq: int) -> AuditError:
    return AuditError(f"audit_head says the log ends at entry {seq} but entry {seq + 1} already exists: "
                      "the head was changed outside the audit log; run the audit verification")


@dataclass(frozen=True, slots=True)
class ChainHeader:
    head: AuditHead
    keyed: bool
    key_id: str | None
    format: int


class _Default(Enum):
    REPOSITORY_KEY = 0


_REPOSITORY_KEY: Final = _Default.REPOSITORY_KEY
_UNREADABLE_TIME: Final = datetime.min.replace(tzinfo=UTC)


def _row(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at,
        "username": entry.user,
        "agency": entry.agency,
        "source_address": entry.source_address,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "action": entry.action,
        "outcome": entry.outcome,
        "detail": json.dumps(entry.detail, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False),
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def _read_time(value: Any) -> datetime:
    """Stored times back as aware UTC. A value that is no time at all (only possible by writing to the database directly)
    becomes a sentinel that can never hash correctly, so ``verify`` reports the entry as edited instead of failing."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return _UNREADABLE_TIME
    if not isinstance(value, datetime):
        return _UNREADABLE_TIME
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _read_detail(text: Any) -> dict[str, Any]:
    try:
        detail = json.loads(text)
    except (TypeError, ValueError):
        detail = None
    # Anything but a JSON object was written behind the log's back; keeping the text makes the hash check fail on it.
    return detail if isinstance(detail, dict) else {"unreadable detail": str(text)}


def _entry(row: sa.RowMapping) -> AuditEntry:
    return AuditEntry(
        seq=row["seq"],
        at=_read_time(row["at"]),
        user=row["username"],
        agency=row["agency"],
        source_address=row["source_address"],
        object_type=row["object_type"],
        object_id=row["object_id"],
        action=row["action"],
        outcome=row["outcome"],
        detail=_read_detail(row["detail"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


class AuditRepository:
    """Appends to and reads the audit log. ``key``: the HMAC key, or None for a plain SHA-256 chain; by default it is read
    from the environment (``TIPTRIAGE_AUDIT_KEY_FILE`` or ``TIPTRIAGE_AUDIT_KEY``, see ``tiptriage.audit.chain.load_key``)."""

    def __init__(self, engine: sa.Engine, key: bytes | Literal["env"] | None = "env") -> None:
        if isinstance(key, str) and key != "env":
            raise TypeError('the audit key must be bytes (or "env" to read it from the environment)')
        self.engine = engine
        self.key: bytes | None = load_key() if isinstance(key, str) else key
        self._dialect = engine.dialect.name
        # SQLite: the driver's own transaction handling is switched off so the transaction can begin as we say.
        self._manual = engine.execution_options(isolation_level="AUTOCOMMIT") if self._dialect == "sqlite" else None

    # -- transactions --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, *, write: bool) -> Iterator[sa.Connection]:
        if self._manual is not None:
            with self._manual.connect() as conn:
                conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                except BaseException:
                    with contextlib.suppress(sa.exc.DBAPIError):
                        conn.exec_driver_sql("ROLLBACK")
                    raise
                conn.exec_driver_sql("COMMIT")
            return
        with self.engine.connect() as conn:
            if self._dialect == "postgresql":  # writers queue on the head row; a reader sees one snapshot
                conn.execution_options(isolation_level="READ COMMITTED" if write else "REPEATABLE READ")
            with conn.begin():
                yield conn

    def _lock_head(self, conn: sa.Connection) -> ChainHeader:
        q = _LOCK_HEAD
        row = conn.execute(q).mappings().one_or_none()
        if row is None:
            if self._dialect == "postgresql":
                conn.execute(postgresql.insert(audit_head).values(**AUDIT_HEAD_SEED).on_conflict_do_nothing())
            elif self._dialect == "sqlite":
                conn.execute(sqlite.insert(audit_head).values(**AUDIT_HEAD_SEED).on_conflict_do_nothing())
            else:
                conn.execute(audit_head.insert().values(**AUDIT_HEAD_SEED))
            row = conn.execute(q).mappings().one()
        return ChainHeader(AuditHead(row["seq"], row["hash"]), bool(row["keyed"]), row["key_id"], row["format"])

    def _check_key(self, header: ChainHeader) -> None:
        if header.head.seq == 0:
            return  # an empty chain takes the key (or none) of its first append
        if header.keyed and self.key is None:
            raise AuditKeyError(
                f"the audit chain is keyed (HMAC-SHA256, key id {header.key_id}) but no key is configured: set {KEY_FILE_ENV} or {KEY_ENV}"
            )
        if not header.keyed and self.key is not None:
            raise AuditKeyError(
                f"the audit chain was started without a key and a key is now configured: unset {KEY_FILE_ENV} and {KEY_ENV}, "
                "or start a new database with the key (a chain must not mix keyed and unkeyed entries)"
            )
        if self.key is not None and header.key_id != key_id(self.key):
            raise AuditKeyError(f"the configured audit key (id {key_id(self.key)}) is not the chain's key (id {header.key_id})")

    # -- writing -------------------------------------------------------------------------------

    def append(
        self,
        user: str,
        action: str,
        outcome: str = "ok",
        *,
        object_type: str | None = None,
        object_id: str | None = None,
        agency: str | None = None,
        source_address: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> AuditEntry:
        """Record one event; returns the entry as stored. Raises ``AuditError`` for an invalid event, before anything is written."""
        event = AuditEvent(
            user=user,
            action=action,
            outcome=outcome,
            object_type=object_type,
            object_id=object_id,
            agency=agency,
            source_address=source_address,
            detail=dict(detail or {}),
        )
        return self.append_many([event])[0]

    def append_many(self, events: Iterable[AuditEvent]) -> list[AuditEntry]:
        """Record several events in order, in one transaction of their own: all of them get consecutive seqs, or none is written."""
        events = list(events)
        if not events:
            return []
        if self._dialect == "postgresql":
            appended = self._append_pipelined(events)
            if appended is not None:
                return appended
        with self._transaction(write=True) as conn:
            return self._append_locked(conn, events)

    def _append_pipelined(self, events: list[AuditEvent]) -> list[AuditEntry] | None:
        """PostgreSQL: ``_append_locked``'s transaction through the driver, pipelined (``store.db.DriverTransaction``): the
        head locked and read (one round trip), then the entries with the head's move and the commit (one more), where
        SQLAlchemy took five or six (BEGIN, the request's agency bound for row-level security, which the log's tables do not
        have, the lock, the write, the commit). Every audited read of the service waits for it. The same statements, the same
        checks, the same rows. None, having written nothing, for a chain with no entry yet (its first append also records
        whether it is keyed), or no head row: ``_append_locked`` then writes."""
        lock, append = _pipelined_statements()
        with DriverTransaction(self.engine, "BEGIN ISOLATION LEVEL READ COMMITTED") as tx:
            row = tx.send(lock.sql, lock.params, as_dicts=True).fetchone()
            if row is None or row["seq"] == 0:
                return None
            header = ChainHeader(AuditHead(row["seq"], row["hash"]), bool(row["keyed"]), row["key_id"], row["format"])
            self._check_key(header)
            entries = self._sealed(header.head, events)
            rows = [_row(e) for e in entries]
            tx.send(append.sql, {**append.params, "new_seq": entries[-1].seq, "new_hash": entries[-1].hash,
                                 **{c: [r[c] for r in rows] for c in _ENTRY_COLUMNS}})
            try:
                tx.end()
            except psycopg.errors.UniqueViolation as e:
                raise _head_moved(header.head.seq) from e
        return entries

    def _sealed(self, head: AuditHead, events: list[AuditEvent]) -> list[AuditEntry]:
        entries: list[AuditEntry] = []
        prev = head
        for event in events:
            entry = seal(prev.seq + 1, datetime.now(UTC), event, prev.hash, self.key)
            entries.append(entry)
            prev = AuditHead(entry.seq, entry.hash)
        return entries

    def append_in(self, conn: sa.Connection, events: Iterable[AuditEvent]) -> list[AuditEntry]:
        """Record events inside the caller's transaction, so they commit or roll back with the change they describe.
        The chain stays locked until that transaction ends: call this last, just before committing. On SQLite the database's
        write lock is taken first, so the head cannot move between reading it and writing after it."""
        events = list(events)
        if not events:
            return []
        if self._dialect == "sqlite":
            conn.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=audit_head.c.seq))
        return self._append_locked(conn, events)

    def _append_locked(self, conn: sa.Connection, events: list[AuditEvent]) -> list[AuditEntry]:
        header = self._lock_head(conn)
        self._check_key(header)
        entries = self._sealed(header.head, events)
        prev = AuditHead(entries[-1].seq, entries[-1].hash)
        rows = [_row(e) for e in entries]
        try:
            if self._dialect == "postgresql" and header.head.seq > 0:
                # the entries and the head's move in one statement, one round trip (every audited read waits for it)
                conn.execute(_PG_APPEND, {"new_seq": prev.seq, "new_hash": prev.hash, **{c: [r[c] for r in rows] for c in _ENTRY_COLUMNS}})
                return entries
            conn.execute(_INSERT_ENTRIES, rows)
        except sa.exc.IntegrityError as e:
            raise _head_moved(header.head.seq) from e
        if header.head.seq == 0:
            conn.execute(audit_head.update().where(audit_head.c.id == 1).values(
                seq=prev.seq, hash=prev.hash, keyed=self.key is not None, key_id=key_id(self.key) if self.key else None, format=FORMAT_VERSION))
        else:
            conn.execute(_MOVE_HEAD, {"new_seq": prev.seq, "new_hash": prev.hash})
        return entries

    # -- reading -------------------------------------------------------------------------------

    def _select(self, start: int) -> sa.Select[Any]:
        # SQLite times are read as text and parsed here, so a hand-edited, unparseable time is reported by verify, not raised.
        at = sa.type_coerce(audit_log.c.at, sa.String).label("at") if self._dialect == "sqlite" else audit_log.c.at
        cols = [at if c.name == "at" else c for c in audit_log.c]
        return sa.select(*cols).where(audit_log.c.seq >= start).order_by(audit_log.c.seq)

    def _stream(self, conn: sa.Connection, start: int = 1) -> Iterator[AuditEntry]:
        result = conn.execute(self._select(start), execution_options={"yield_per": 1000})
        for row in result.mappings():
            yield _entry(row)

    def iter_entries(self, start: int = 1) -> Iterator[AuditEntry]:
        """Entries in seq order from ``start``, streamed (the whole log is never in memory)."""
        with self.engine.connect() as conn:
            yield from self._stream(conn, start)

    def _header(self, conn: sa.Connection) -> ChainHeader:
        row = conn.execute(sa.select(audit_head).where(audit_head.c.id == 1)).mappings().one_or_none()
        if row is None:
            return ChainHeader(AuditHead.empty(), False, None, FORMAT_VERSION)
        return ChainHeader(AuditHead(row["seq"], row["hash"]), bool(row["keyed"]), row["key_id"], row["format"])

    def header(self) -> ChainHeader:
        with self.engine.connect() as conn:
            return self._header(conn)

    def head(self) -> AuditHead:
        """The stored head: the last entry's seq and hash. Record it somewhere the database's writers cannot change, and pass it
        to ``verify(expected_head=...)`` later to detect a truncated tail."""
        return self.header().head

    def verify(self, key: bytes | _Default | None = _REPOSITORY_KEY, expected_head: AuditHead | None = None) -> VerifyResult:
        """Verify the whole chain in one consistent snapshot, against the stored head (which must be its last entry) and, when
        given, against a head recorded elsewhere earlier (which must still be in it, unchanged)."""
        use_key = self.key if isinstance(key, _Default) else key
        with self._transaction(write=False) as conn:
            header = self._header(conn)
            if header.keyed and use_key is None:
                return VerifyResult(
                    False,
                    0,
                    None,
                    f"the chain is keyed (HMAC-SHA256, key id {header.key_id}) but no key was given: set {KEY_FILE_ENV} or {KEY_ENV}",
                    AuditHead.empty(),
                )
            if header.keyed and use_key is not None and header.key_id != key_id(use_key):
                return VerifyResult(
                    False,
                    0,
                    None,
                    f"the key given (id {key_id(use_key)}) is not the chain's key (id {header.key_id}), or the header was altered",
                    AuditHead.empty(),
                )
            result = verify(self._stream(conn), use_key, header.head, head_is_end=True)
            if not result.ok and use_key is not None and not header.keyed:
                note = "the chain header says the chain is not keyed, but it is being verified with a key (started without a key, or the header was altered?)"
                return VerifyResult(False, result.checked, result.first_bad_seq, f"{note}; with the key: {result.problem}", result.head)
            if result.ok and expected_head is not None:
                return self._check_recorded(conn, result, expected_head)
            return result

    def _check_recorded(self, conn: sa.Connection, result: VerifyResult, recorded: AuditHead) -> VerifyResult:
        end = result.head
        if recorded.seq > end.seq:
            first = end.seq + 1
            missing = f"entry {first} is missing" if first == recorded.seq else f"entries {first}–{recorded.seq} are missing"
            problem = f"the log ends at entry {end.seq} but the recorded head is entry {recorded.seq}: {missing} (truncated?)"
            return VerifyResult(False, result.checked, first, problem, end)
        if recorded.seq == 0:
            found: str | None = GENESIS_HASH
        else:
            found = conn.execute(sa.select(audit_log.c.hash).where(audit_log.c.seq == recorded.seq)).scalar_one_or_none()
        if found != recorded.hash:
            problem = f"entry {recorded.seq}: its hash is not the one in the recorded head (the chain was rewritten from here or earlier?)"
            return VerifyResult(False, result.checked, max(recorded.seq, 1), problem, end)
        return result


@dataclass(eq=False)
class _Waiting:
    event: AuditEvent
    entry: AuditEntry | None = None
    error: BaseException | None = None
    done: bool = False


class GroupAppender:
    """Appends from the many threads of one process (a server's request handlers), written together: while one transaction
    holds the chain head, the events that arrive meanwhile wait and the next of their callers writes them all in one
    transaction (``append_many``: one head lock, one commit) instead of one each. Nothing waits on a timer: an append with
    no other in flight is written at once, alone.

    The chain, its hashing and its verification are those of ``AuditRepository``; only the number of commits changes.
    ``append`` returns once the caller's own entry is committed (never earlier), so a read is still on record before its
    answer leaves. An invalid event is refused in its caller's thread before it can join a batch; an error while writing a
    batch (the database gone, a wrong audit key) is raised to every caller whose event was in it, none of which was
    written. A change and its entry that must commit together still use ``AuditRepository.append_in``."""

    def __init__(self, repository: AuditRepository, max_batch: int = 256) -> None:
        self.repository = repository
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: list[_Waiting] = []
        self._writing = False

    @property
    def waiting(self) -> int:
        """How many events wait for the batch being written to commit (a measure of contention on the chain head)."""
        with self._cond:
            return len(self._queue)

    def submit(self, event: AuditEvent) -> AuditEntry:
        """As ``AuditRepository.append``: record one event (checked when it was made) and return the entry as stored."""
        mine = _Waiting(event)
        with self._cond:
            self._queue.append(mine)
            while not mine.done:
                if self._writing:
                    self._cond.wait()
                    continue
                # no batch is being written and this event is still waiting: write the oldest waiting ones, this one among
                # them unless more than a batch came before it (then the loop leads again)
                self._writing = True
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                self._cond.release()
                try:
                    self._write(batch)
                finally:
                    self._cond.acquire()
                    for waiting in batch:
                        if not waiting.done:  # only when the writer itself was interrupted (KeyboardInterrupt, SystemExit)
                            waiting.error, waiting.done = AuditError("the audit append was interrupted"), True
                    self._writing = False
                    self._cond.notify_all()
        if mine.error is not None:
            raise mine.error
        assert mine.entry is not None
        return mine.entry

    def _write(self, batch: list[_Waiting]) -> None:
        try:
            entries = self.repository.append_many([w.event for w in batch])
        except Exception as exc:  # every caller in the batch sees the error; none of its events was written
            with self._cond:
                for waiting in batch:
                    waiting.error, waiting.done = exc, True
            return
        with self._cond:
            for waiting, entry in zip(batch, entries, strict=True):
                waiting.entry, waiting.done = entry, True
