"""Every protected column in one list, and the passes over them: key rotation, index re-keying, first encryption, key usage.

A pass walks each table in primary-key order, a bounded batch at a time (keyset pagination: memory stays flat whatever the
table's size), and rewrites only the rows that need it: a value sealed with another key than the current one, a keyed hash
made with another index key, or — on a database from before encryption at rest — a value still in clear. Each batch commits
on its own, and every value names its key, so an interrupted pass is resumed by running it again: what was done is skipped.

Rewrites are compare-and-set (the row must still hold what was read), so a row changed meanwhile by the service is left as the
service wrote it rather than overwritten with an older value; ``usage`` then shows whether anything is left under an old key.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa

from tiptriage.store.audit import AuditRepository
from tiptriage.store.crypto import (
    BINARY_MAGIC,
    CONVERTED_META_KEY,
    INDEX_META_KEY,
    INDEX_NEXT_META_KEY,
    KEY_BYTES,
    KEY_ID_BYTES,
    TEXT_PREFIX,
    Cipher,
    DataKeyError,
    Keyring,
    aad,
    is_sealed_bytes,
    is_sealed_text,
    read_wrapped,
    sealed_key_id,
    unwrap_index_key,
    wrap_index_key,
)
from tiptriage.store.schema import (
    account_links,
    agency_records,
    blob_chunks,
    blobs,
    case_events,
    cases,
    link_decisions,
    report_accounts,
    report_file_hashes,
    report_locations,
    report_routes,
    reports,
    route_events,
    store_meta,
    subject_accounts,
)
from tiptriage.store.users import users

Progress = Callable[[str, int, int], None]  # (table, rows done, rows in the table)


@dataclass(frozen=True)
class Protected:
    """One table's protected columns. ``bind``: the row key every value's associated data names (see ``crypto.aad``);
    ``order``: unique, never-null columns to walk the table by."""

    table: sa.Table
    order: tuple[str, ...]
    bind: tuple[str, ...]
    sealed: tuple[str, ...] = ()
    indexed: tuple[tuple[str, str], ...] = ()  # (keyed-hash column, the column holding its encrypted clear value)
    binary: bool = False
    batch: int = 500

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def encrypted(self) -> tuple[str, ...]:
        return self.sealed + tuple(e for _, e in self.indexed)

    def context(self, column: str, row: dict[str, Any]) -> bytes:
        return aad(self.name, column, *(row[c] for c in self.bind))


# The repositories seal with exactly these associated data; the tests read every one of them back after a rotation.
PROTECTED: Final[tuple[Protected, ...]] = (
    Protected(reports, ("id",), ("id",), sealed=("data",)),
    Protected(blobs, ("sha256",), ("sha256",), sealed=("data",), binary=True, batch=8),  # up to 1 MiB a row
    Protected(blob_chunks, ("sha256", "seq"), ("sha256", "seq"), sealed=("data",), binary=True, batch=8),
    Protected(users, ("id",), ("username",), sealed=("totp_secret",)),
    Protected(report_locations, ("report_id",), ("report_id",), sealed=("estimate",)),
    Protected(report_routes, ("report_id",), ("report_id",), sealed=("reason",)),
    Protected(route_events, ("id",), ("report_id",), sealed=("reason",)),
    Protected(cases, ("id",), ("id",), sealed=("outcome_reason",)),
    Protected(case_events, ("id",), ("case_id",), sealed=("note",)),
    Protected(account_links, ("id",), ("a", "b", "kind"), sealed=("evidence",), indexed=(("a", "a_enc"), ("b", "b_enc"))),
    Protected(link_decisions, ("id",), ("kind", "a", "b", "decided_by"), sealed=("reason",), indexed=(("a", "a_enc"), ("b", "b_enc"))),
    Protected(agency_records, ("record_id",), ("record_id",), indexed=(("key", "key_enc"),)),
    Protected(report_accounts, ("report_id", "account_key"), ("account_key",), indexed=(("account_key", "account_enc"),)),
    Protected(subject_accounts, ("account_key",), ("account_key",), indexed=(("account_key", "account_enc"),)),
    Protected(report_file_hashes, ("report_id", "file_id", "hash_type", "value"), ("account",),
              indexed=(("account", "account_enc"),), batch=2000),
)

_BY_NAME: Final = {p.name: p for p in PROTECTED}


def spec(table: str) -> Protected:
    return _BY_NAME[table]


@dataclass
class TableResult:
    rows: int = 0
    rewritten: int = 0
    conflicts: int = 0  # rows changed by someone else between reading and rewriting; left as they were written


@dataclass
class RotationResult:
    key_id: str
    previous_key_ids: list[str]
    index_rekeyed: bool
    tables: dict[str, TableResult] = field(default_factory=dict)
    left_under_other_keys: dict[str, dict[str, int]] = field(default_factory=dict)  # table.column → key id (or "clear") → values

    @property
    def rewritten(self) -> int:
        return sum(t.rewritten for t in self.tables.values())

    @property
    def conflicts(self) -> int:
        return sum(t.conflicts for t in self.tables.values())

    @property
    def complete(self) -> bool:
        return not self.left_under_other_keys

    def as_json(self) -> dict[str, object]:
        return {"key_id": self.key_id, "previous_key_ids": self.previous_key_ids, "index_rekeyed": self.index_rekeyed,
                "rewritten": self.rewritten, "conflicts": self.conflicts, "complete": self.complete,
                "tables": {k: vars(v) for k, v in self.tables.items()}, "left_under_other_keys": self.left_under_other_keys}


# -- one row ------------------------------------------------------------------------------------------

def _clear_of(p: Protected, column: str, value: Any, row: dict[str, Any], src: Cipher, allow_clear: bool) -> str | bytes:
    sealed = is_sealed_bytes(bytes(value)) if p.binary else is_sealed_text(value)
    if sealed:
        ctx = p.context(column, row)
        return src.open(bytes(value), ctx) if p.binary else src.open_text(value, ctx)
    if not allow_clear:
        raise DataKeyError(f"{p.name}.{column} holds a value that is not encrypted (row {[row[c] for c in p.order]}); "
                           "it was written around the store")
    return bytes(value) if p.binary else str(value)


def _stale(value: Any, kid: str) -> bool:
    return sealed_key_id(bytes(value) if isinstance(value, memoryview) else value) != kid


def _transform(p: Protected, row: dict[str, Any], src: Cipher, dst: Cipher, rekey: bool, allow_clear: bool) -> dict[str, Any] | None:
    """The row's new values, or None when it is already sealed with the current key and hashed with the current index key."""
    kid = dst.keyring.current.id
    stale = any(row[c] is not None and _stale(row[c], kid) for c in p.encrypted)
    legacy = any(row[h] is not None and row[e] is None for h, e in p.indexed)
    if not (stale or legacy or rekey):
        return None
    target = dict(row)
    identifiers: dict[str, str] = {}
    for h, e in p.indexed:
        if row[h] is None:
            continue
        if row[e] is None:
            if not allow_clear:
                raise DataKeyError(f"{p.name}.{h} has a keyed hash without its encrypted copy {e} (row {[row[c] for c in p.order]})")
            identifiers[h] = str(row[h])  # from before encryption at rest: the column holds the identifier itself
        else:
            identifiers[h] = src.open_text(row[e], p.context(e, row))
        target[h] = dst.index(identifiers[h])
    if not (stale or legacy) and all(target[h] == row[h] for h in identifiers):
        return None
    clear = {c: _clear_of(p, c, row[c], row, src, allow_clear) for c in p.sealed if row[c] is not None}
    for c, v in clear.items():
        ctx = p.context(c, target)
        target[c] = dst.seal(v, ctx) if isinstance(v, bytes) else dst.seal_text(v, ctx)
    for h, e in p.indexed:
        if h in identifiers:
            target[e] = dst.seal_text(identifiers[h], p.context(e, target))
    out = {f"o_{c}": row[c] for c in p.order}
    for c in _mutable(p):
        out[f"o_{c}"] = row[c]
        out[f"n_{c}"] = target[c]
    return out


def _mutable(p: Protected) -> tuple[str, ...]:
    return p.sealed + tuple(c for pair in p.indexed for c in pair)


def _update(p: Protected) -> sa.Update:
    t = p.table
    where = [t.c[c] == sa.bindparam(f"o_{c}", type_=t.c[c].type) for c in p.order if c not in _mutable(p)]
    where += [t.c[c].is_not_distinct_from(sa.bindparam(f"o_{c}", type_=t.c[c].type)) for c in _mutable(p)]
    return t.update().where(*where).values({c: sa.bindparam(f"n_{c}", type_=t.c[c].type) for c in _mutable(p)})


def _walk(engine: sa.Engine, p: Protected, src: Cipher, dst: Cipher, rekey: bool, allow_clear: bool,
          progress: Progress | None, batch: int | None) -> TableResult:
    t = p.table
    size = min(batch, p.batch) if batch and p.binary else batch or p.batch  # original bytes: never more than p.batch MiB at once
    cols = [t.c[c] for c in dict.fromkeys(p.order + p.bind + _mutable(p))]
    order = [t.c[c] for c in p.order]
    result = TableResult()
    with engine.connect() as conn:
        total = int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
    stmt = _update(p)
    last: tuple[Any, ...] | None = None
    while True:
        q = sa.select(*cols).order_by(*order).limit(size)
        if last is not None:
            q = q.where(sa.tuple_(*order) > sa.tuple_(*last) if len(order) > 1 else order[0] > last[0])
        with engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(q).mappings()]
        if not rows:
            break
        changes = [c for r in rows if (c := _transform(p, r, src, dst, rekey, allow_clear)) is not None]
        if changes:
            with engine.begin() as conn:  # one transaction a batch
                if conn.dialect.supports_sane_multi_rowcount:  # one round trip a batch; the rows not matched are conflicts
                    done = min(conn.execute(stmt, changes).rowcount, len(changes))
                else:
                    done = sum(min(conn.execute(stmt, c).rowcount, 1) for c in changes)
            result.rewritten += done
            result.conflicts += len(changes) - done
        result.rows += len(rows)
        last = tuple(rows[-1][c] for c in p.order)
        if progress:
            progress(p.name, min(result.rows, total), total)
    return result


# -- what is sealed with which key -------------------------------------------------------------------------

def usage(engine: sa.Engine) -> dict[str, dict[str, int]]:
    """For every protected column: how many values each key id sealed (``clear`` for values not encrypted), counted in SQL."""
    out: dict[str, dict[str, int]] = {}
    n = len(TEXT_PREFIX)
    with engine.connect() as conn:
        for p in PROTECTED:
            for c in p.encrypted:
                col = p.table.c[c]
                counts: dict[str, int] = {}
                if p.binary:
                    head = sa.func.substr(col, 1, len(BINARY_MAGIC) + KEY_ID_BYTES, type_=sa.LargeBinary)
                    for value, count in conn.execute(sa.select(head, sa.func.count()).where(col.is_not(None)).group_by(head)):
                        v = bytes(value)
                        kid = v[len(BINARY_MAGIC) :].hex() if v[: len(BINARY_MAGIC)] == BINARY_MAGIC else "clear"
                        counts[kid] = counts.get(kid, 0) + int(count)
                else:
                    kid_expr = sa.case((sa.func.substr(col, 1, n) == TEXT_PREFIX, sa.func.substr(col, n + 1, 2 * KEY_ID_BYTES)), else_="clear")
                    for kid, count in conn.execute(sa.select(kid_expr, sa.func.count()).where(col.is_not(None)).group_by(kid_expr)):
                        counts[str(kid)] = counts.get(str(kid), 0) + int(count)
                for h, e in p.indexed:  # a keyed hash without its encrypted copy is an identifier from before encryption
                    if e == c:
                        legacy = conn.execute(sa.select(sa.func.count()).select_from(p.table)
                                              .where(p.table.c[h].is_not(None), col.is_(None))).scalar_one()
                        if legacy:
                            counts["clear"] = counts.get("clear", 0) + int(legacy)
                if counts:
                    out[f"{p.name}.{c}"] = counts
        wrapped = read_wrapped(conn, INDEX_META_KEY)
        if wrapped is not None:
            out["store_meta.index_key"] = {sealed_key_id(wrapped) or "clear": 1}
    return out


def _left_over(engine: sa.Engine, kid: str) -> dict[str, dict[str, int]]:
    return {col: rest for col, counts in usage(engine).items() if (rest := {k: v for k, v in counts.items() if k != kid})}


# -- the passes ---------------------------------------------------------------------------------------------

def _index_keys(engine: sa.Engine, ring: Keyring, rekey: bool) -> tuple[bytes, bytes, bool]:
    """(index key in use, index key to hash with from now on, whether they differ). A re-keying that was interrupted is
    resumed with the key it started with, whether or not it was asked for again."""
    opener = Cipher(ring, engine)
    with engine.connect() as conn:
        wrapped = read_wrapped(conn, INDEX_META_KEY)
        wrapped_next = read_wrapped(conn, INDEX_NEXT_META_KEY)
    current = opener.index_key if wrapped is None else unwrap_index_key(opener, wrapped)
    if wrapped_next is not None:
        return current, unwrap_index_key(opener, wrapped_next, INDEX_NEXT_META_KEY), True
    if not rekey:
        return current, current, False
    fresh = secrets.token_bytes(KEY_BYTES)
    with engine.begin() as conn:  # saved before any hash changes, so an interruption can resume with the same key
        conn.execute(store_meta.insert().values(key=INDEX_NEXT_META_KEY, value=wrap_index_key(opener, fresh, INDEX_NEXT_META_KEY)))
    return current, fresh, True


def rotate(engine: sa.Engine, ring: Keyring, *, rekey_index: bool = False, progress: Progress | None = None,
           batch: int | None = None, by: str = "tiptriage", source: str | None = None) -> RotationResult:
    """Re-seal every protected value with ``ring.current`` (the other keys of ``ring`` open what is sealed with them) and
    re-wrap the index key with it; with ``rekey_index``, also make a new index key and recompute every keyed hash.
    Every run, finished or not, leaves an audit entry (``change`` of ``data_key``) naming the key ids, never a key."""
    detail: dict[str, Any] = {"operation": "rotate", "previous_key_ids": list(ring.ids[1:]), "rekey_index_asked": rekey_index}
    try:
        result = _rotate(engine, ring, rekey_index, progress, batch)
    except Exception as e:
        _audit(engine, by, source, ring.current.id, "failed", {**detail, "error": type(e).__name__, "message": str(e)[:300]})
        raise
    _audit(engine, by, source, ring.current.id, "ok" if result.complete else "failed",
           {**detail, "index_rekeyed": result.index_rekeyed, "rewritten": result.rewritten, "conflicts": result.conflicts,
            "complete": result.complete})
    return result


def _audit(engine: sa.Engine, by: str, source: str | None, kid: str, outcome: str, detail: dict[str, Any]) -> None:
    AuditRepository(engine).append(by[:128], "change", outcome, object_type="data_key", object_id=kid, source_address=source, detail=detail)


def _rotate(engine: sa.Engine, ring: Keyring, rekey_index: bool, progress: Progress | None, batch: int | None) -> RotationResult:
    old_index, new_index, rekey = _index_keys(engine, ring, rekey_index)
    src = Cipher(ring, engine, index_key=old_index)
    dst = Cipher(ring, engine, index_key=new_index)
    result = RotationResult(ring.current.id, list(ring.ids[1:]), rekey)
    for p in PROTECTED:
        result.tables[p.name] = _walk(engine, p, src, dst, rekey, False, progress, batch)
    with engine.begin() as conn:  # the switch to the new index key is the last step, in one transaction
        conn.execute(store_meta.delete().where(store_meta.c.key.in_([INDEX_META_KEY, INDEX_NEXT_META_KEY])))
        conn.execute(store_meta.insert().values(key=INDEX_META_KEY, value=wrap_index_key(dst, new_index)))
    result.left_under_other_keys = _left_over(engine, ring.current.id)
    return result


def encrypt_existing(engine: sa.Engine, cipher: Cipher, progress: Progress | None = None) -> int:
    """Seal what a database from before encryption at rest holds in clear (once; the store does it when first opened with a
    key). Returns how many rows were rewritten."""
    with engine.connect() as conn:
        if read_wrapped(conn, CONVERTED_META_KEY) is not None:
            return 0
    index = cipher.index_key
    src = Cipher(cipher.keyring, engine, index_key=index)
    done = sum(_walk(engine, p, src, src, False, True, progress, None).rewritten for p in PROTECTED)
    try:
        with engine.begin() as conn:
            conn.execute(store_meta.insert().values(key=CONVERTED_META_KEY, value="1"))
    except sa.exc.IntegrityError:
        return done  # another process finished the same pass
    if done:
        _audit(engine, "tiptriage", None, cipher.keyring.current.id, "ok", {"operation": "encrypt-existing", "rewritten": done})
    return done


def rekey_in_progress(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        return read_wrapped(conn, INDEX_NEXT_META_KEY) is not None
