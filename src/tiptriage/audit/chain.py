"""The audit chain: canonical bytes, chained hashes and a streaming verifier. Pure functions, no I/O but the key.

Every entry is hashed over the previous entry's hash and its own canonical bytes::

    hash(n) = SHA-256(bytes.fromhex(hash(n-1)) + canonical_bytes(entry n))      (genesis hash(0) = 64 zeros)

or, when a key is configured, HMAC-SHA256 with that key over the same bytes. A plain chain shows accidental damage and edits by
someone who does not recompute the rest of the chain; a keyed chain also shows edits by someone who can write to the database
but has no key, since they cannot compute a valid hash for anything they change. Neither shows the loss of the newest entries
(truncation) unless a separately stored head — the count and the last hash — is given to ``verify``.

The canonical bytes are compact JSON with sorted keys, ASCII only, times in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, and a format
version ``"v": 1``; they cover every field but ``hash``, so changing any field, ``seq`` and ``prev_hash`` included, changes them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

FORMAT_VERSION: Final = 1
GENESIS_HASH: Final = "0" * 64
KEY_ENV: Final = "TIPTRIAGE_AUDIT_KEY"
KEY_FILE_ENV: Final = "TIPTRIAGE_AUDIT_KEY_FILE"
MIN_KEY_BYTES: Final = 32

KNOWN_ACTIONS: Final = frozenset({"login", "login_failed", "logout", "read", "search", "change", "export", "ingest", "assess", "decide"})
OUTCOMES: Final = frozenset({"ok", "denied", "failed"})

# Field limits, checked before hashing so that what is stored is exactly what was hashed on every backend
# (SQLite does not enforce VARCHAR lengths and PostgreSQL refuses NUL characters).
MAX_LENGTHS: Final = {"user": 128, "agency": 128, "source_address": 64, "object_type": 32, "object_id": 256, "action": 32}
MAX_DETAIL_BYTES: Final = 4096
_ACTION_RE: Final = re.compile(r"[a-z][a-z0-9_.-]*")
_HEX64_RE: Final = re.compile(r"[0-9a-f]{64}")


class AuditError(Exception):
    """An audit entry that cannot be written, or a chain that cannot be appended to safely."""


class AuditKeyError(AuditError):
    """The audit key is missing, malformed, or not the key the chain was started with."""


def _check_text(name: str, value: str | None, *, required: bool = False) -> None:
    if value is None:
        if required:
            raise AuditError(f"{name} is required")
        return
    if not isinstance(value, str):
        raise AuditError(f"{name} must be a string, not {type(value).__name__}")
    if required and not value:
        raise AuditError(f"{name} must not be empty")
    if len(value) > MAX_LENGTHS[name]:
        raise AuditError(f"{name} is longer than {MAX_LENGTHS[name]} characters")
    if "\x00" in value:
        raise AuditError(f"{name} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise AuditError(f"{name} is not valid Unicode text ({e.reason})") from None


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def canonical_detail(detail: Mapping[str, Any]) -> str:
    """The detail as the canonical JSON text that is stored and hashed; refuses what JSON cannot carry exactly."""
    if not isinstance(detail, Mapping):
        raise AuditError(f"detail must be a mapping, not {type(detail).__name__}")
    try:
        text = _canonical_json(dict(detail))
    except (TypeError, ValueError) as e:
        raise AuditError(f"detail is not JSON-serialisable: {e}") from None
    if len(text) > MAX_DETAIL_BYTES:
        raise AuditError(f"detail is {len(text)} bytes as JSON; at most {MAX_DETAIL_BYTES} (keep it short: ids, counts, reasons)")
    if "\\u0000" in text:
        raise AuditError("detail contains a NUL character")
    return text


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What happened, before it is given its place in the chain. Validated on construction; ``detail`` is normalised
    through canonical JSON (tuples become lists, keys must be strings), so the stored entry reads back exactly equal."""

    user: str
    action: str
    outcome: str = "ok"
    object_type: str | None = None
    object_id: str | None = None
    agency: str | None = None
    source_address: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_text("user", self.user, required=True)
        _check_text("agency", self.agency)
        _check_text("source_address", self.source_address)
        _check_text("object_type", self.object_type)
        _check_text("object_id", self.object_id)
        _check_text("action", self.action, required=True)
        if not _ACTION_RE.fullmatch(self.action):
            raise AuditError(f"action {self.action!r} must be a lower-case token such as {', '.join(sorted(KNOWN_ACTIONS))}")
        if self.outcome not in OUTCOMES:
            raise AuditError(f"outcome {self.outcome!r} must be one of {', '.join(sorted(OUTCOMES))}")
        if (self.object_type is None) != (self.object_id is None):
            raise AuditError("object_type and object_id go together: give both or neither")
        object.__setattr__(self, "detail", json.loads(canonical_detail(self.detail)))


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One entry of the chain as stored. Not validated: entries read back from a database may have been tampered with,
    and ``verify`` must report that rather than fail on it."""

    seq: int
    at: datetime
    user: str
    agency: str | None
    source_address: str | None
    object_type: str | None
    object_id: str | None
    action: str
    outcome: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditHead:
    """The end of a chain: how many entries it has and the hash of the last (``seq`` 0 and the genesis hash when empty).
    Keep a copy somewhere the database's writers cannot reach and give it to ``verify`` to detect a truncated tail."""

    seq: int
    hash: str

    @classmethod
    def empty(cls) -> AuditHead:
        return cls(0, GENESIS_HASH)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """``checked``: how many entries verified before the first problem (all of them when ``ok``). ``first_bad_seq``: the seq of the
    first entry that is wrong or missing. ``head``: the last entry that verified, to record for the next verification."""

    ok: bool
    checked: int
    first_bad_seq: int | None
    problem: str | None
    head: AuditHead


def format_time(at: datetime) -> str:
    """UTC with microseconds and a 'Z': ``2024-05-01T12:00:00.000000Z``. Naive times are refused, not guessed."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("audit times must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_bytes(entry: AuditEntry) -> bytes:
    """The bytes that are hashed: every field of the entry but ``hash``, as compact, key-sorted, ASCII JSON."""
    doc = {
        "v": FORMAT_VERSION,
        "seq": entry.seq,
        "at": format_time(entry.at),
        "user": entry.user,
        "agency": entry.agency,
        "source_address": entry.source_address,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "action": entry.action,
        "outcome": entry.outcome,
        "detail": entry.detail,
        "prev_hash": entry.prev_hash,
    }
    return _canonical_json(doc).encode("ascii")


def chain_hash(prev_hash: str, canonical: bytes, key: bytes | None = None) -> str:
    """SHA-256 (or HMAC-SHA256 with ``key``) over the previous hash's 32 bytes followed by the canonical bytes; lower-case hex."""
    if not _HEX64_RE.fullmatch(prev_hash):
        raise ValueError("prev_hash must be 64 lower-case hex digits")
    data = bytes.fromhex(prev_hash) + canonical
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def entry_hash(entry: AuditEntry, key: bytes | None = None) -> str:
    """The hash the entry should carry, computed from its other fields."""
    return chain_hash(entry.prev_hash, canonical_bytes(entry), key)


def seal(seq: int, at: datetime, event: AuditEvent, prev_hash: str, key: bytes | None = None) -> AuditEntry:
    """The entry for ``event`` at position ``seq`` after an entry whose hash is ``prev_hash``."""
    if seq < 1:
        raise AuditError("seq starts at 1")
    unsealed = AuditEntry(
        seq=seq,
        at=at.astimezone(UTC),
        user=event.user,
        agency=event.agency,
        source_address=event.source_address,
        object_type=event.object_type,
        object_id=event.object_id,
        action=event.action,
        outcome=event.outcome,
        detail=event.detail,
        prev_hash=prev_hash,
        hash="",
    )
    return replace(unsealed, hash=entry_hash(unsealed, key))


def key_id(key: bytes) -> str:
    """A short fingerprint of the key, stored in the chain header so a wrong key is named as such. Reveals nothing of the key."""
    return hmac.new(key, b"tiptriage audit key id", hashlib.sha256).hexdigest()[:16]


def load_key(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The audit key, or None when none is configured.

    ``TIPTRIAGE_AUDIT_KEY_FILE`` names a file holding the key (preferred: a secret mounted by the deployment, readable only by
    the service's user), or ``TIPTRIAGE_AUDIT_KEY`` holds it. Either way the key is the text, stripped of surrounding white space,
    as UTF-8, and at least 32 bytes — e.g. ``python -c "import secrets; print(secrets.token_hex(32))"``. Never put it in the
    repository or in the database: whoever holds it can re-forge the chain.
    """
    env = os.environ if environ is None else environ
    path, value = env.get(KEY_FILE_ENV), env.get(KEY_ENV)
    if path and value:
        raise AuditKeyError(f"set {KEY_FILE_ENV} or {KEY_ENV}, not both")
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise AuditKeyError(f"cannot read the audit key from {KEY_FILE_ENV}={path}: {e.strerror}") from None
        where = f"the file {path}"
    elif value:
        text, where = value, KEY_ENV
    else:
        return None
    key = text.strip().encode("utf-8")
    if len(key) < MIN_KEY_BYTES:
        raise AuditKeyError(f"the audit key in {where} is {len(key)} bytes; at least {MIN_KEY_BYTES} are needed")
    return key


def _missing(first: int, last: int) -> str:
    return f"entry {first} is missing" if first == last else f"entries {first}–{last} are missing"


def verify(
    entries: Iterable[AuditEntry],
    key: bytes | None,
    expected_head: AuditHead | None = None,
    *,
    head_is_end: bool = False,
) -> VerifyResult:
    """Check a chain in seq order, in constant memory, and stop at the first problem.

    Each entry must have the next seq (a gap is a deletion; a repeated or smaller seq is a reordering or an insertion), must name
    the previous entry's hash as its ``prev_hash`` (else reordered, inserted or replaced), and must carry the hash of its own
    contents (else edited). With ``key`` the hashes are HMAC-SHA256, so a chain re-hashed without the key fails at its first
    re-hashed entry.

    With ``expected_head`` (recorded earlier, stored apart from the log) the chain must contain that entry with that hash, so a
    truncated tail is detected. With ``head_is_end`` the head must also be the last entry: anything after it was not written
    through the append that moves the head.
    """
    prev = AuditHead.empty()
    checked = 0

    def bad(seq: int, problem: str) -> VerifyResult:
        return VerifyResult(False, checked, seq, problem, prev)

    for entry in entries:
        seq = entry.seq
        if not isinstance(seq, int) or seq < 1:
            return bad(prev.seq + 1, f"entry {seq!r} after entry {prev.seq}: not a valid seq (seqs start at 1)")
        if expected_head is not None and head_is_end and prev.seq == expected_head.seq:
            return bad(
                seq,
                f"entry {seq} follows the recorded head (entry {expected_head.seq}): it was not appended through the audit log (inserted?)",
            )
        if seq == prev.seq:
            return bad(seq, f"entry {seq} appears twice (inserted?)")
        if seq < prev.seq:
            return bad(seq, f"entry {seq} follows {prev.seq}: out of order (reordered?)")
        if seq > prev.seq + 1:
            if prev.seq == 0:
                return bad(1, f"entry {seq} is the first entry: {_missing(1, seq - 1)} (deleted?)")
            return bad(prev.seq + 1, f"entry {seq} follows {prev.seq}: {_missing(prev.seq + 1, seq - 1)} (deleted?)")
        if entry.prev_hash != prev.hash:
            if prev.seq == 0:
                return bad(seq, f"entry {seq}: its prev_hash is not the genesis hash (replaced, or the chain was cut?)")
            return bad(seq, f"entry {seq}: its prev_hash is not the hash of entry {prev.seq} (reordered, inserted or replaced?)")
        try:
            expected = entry_hash(entry, key)
        except (TypeError, ValueError, AttributeError) as e:
            return bad(seq, f"entry {seq}: its contents cannot be hashed ({e}) (edited?)")
        if expected != entry.hash:
            return bad(seq, f"entry {seq}: its hash does not match its contents (edited?)")
        if expected_head is not None and seq == expected_head.seq and entry.hash != expected_head.hash:
            return bad(seq, f"entry {seq}: its hash is not the one in the recorded head (the chain was rewritten from here or earlier?)")
        prev = AuditHead(seq, entry.hash)
        checked += 1

    if expected_head is not None:
        if prev.seq < expected_head.seq:
            return bad(
                prev.seq + 1,
                f"the log ends at entry {prev.seq} but the recorded head is entry {expected_head.seq}: "
                f"{_missing(prev.seq + 1, expected_head.seq)} (truncated?)",
            )
        if expected_head.seq == 0 and expected_head.hash != GENESIS_HASH:
            return bad(1, "the recorded head has no entries but is not the genesis hash (head altered?)")
    return VerifyResult(True, checked, None, None, prev)
