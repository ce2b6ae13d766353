"""Encryption at rest of personal fields, and keyed hashes of identifiers so equality joins still work.

What is stored, and how:

* **Encrypted values** (report JSON, original bytes, TOTP secrets, location evidence, link evidence, free text): AES-256-GCM
  with a random 96-bit nonce per value. The associated data names the table, the column and the row's key
  (``aad``), so a ciphertext copied into another row or column fails authentication instead of being read as that row's value.
  Every value carries the id of the key that sealed it, so a key rotation can go row by row, be interrupted and resume.
  Binary columns hold ``TTE1 | key id (4 bytes) | nonce (12) | ciphertext and tag``; text columns hold
  ``tte1.<key id hex>.<base64 of nonce, ciphertext and tag>``.
* **Keyed hashes** (normalised identifiers: account keys, agency-record keys, the flood-protection account): HMAC-SHA256 under
  the *index key*, truncated to 128 bits, as ``<kind>:<hex>``. The kind (the part before the first ``:``: ``email``, ``phone``,
  an ESP's service name, ``report``) stays readable, because queries count services and it says nothing about the person.
  Where a person must see the identifier again (``tiptriage subject show``), an encrypted copy sits beside the hash.

Keys:

* The **data key** (32 random bytes, base64) comes from ``TIPTRIAGE_DATA_KEY_FILE`` (a file readable by its owner only; a
  file that group or others may read or write is refused) or ``TIPTRIAGE_DATA_KEY``; one of them, never both. Either may hold
  several keys (one per line in the file, comma-separated in the variable): the first seals new values, the others only open
  values not yet rotated. The key never enters the database; a copy of the database without it is unreadable.
* The **index key** (for the keyed hashes, and the keyed subject ids) is 32 random bytes made when the database is created,
  stored in ``store_meta`` sealed under the data key. It is not derived from the data key (HKDF would tie the two): kept
  apart, a data-key rotation only re-wraps it and every hash, subject id and join stays as it was. It changes only when a
  rotation asks for it (``--rekey-index``, after a suspected compromise of a database copy together with a key), which
  recomputes every keyed hash from its encrypted copy; subject ids follow at the next ``tiptriage link``.

Without a key nothing opens: ``Store`` raises ``DataKeyError`` naming both variables (``tiptriage keys generate`` makes one;
``tiptriage demo`` makes one inside its own folder).

What stays readable, and why: ids, times, tiers, scores, states and counts (queues sort and filter on them); the assessment's
rules and evidence (they name record ids, kinds of identifier and a coarse place, never an identifier: the queue searches
them); a report's estimated country, region and city; SHA-256 digests of whole submissions and the file hashes reports carry
(matching needs them); quarantine reasons (at most a short quote of a malformed date or code); the audit log, whose entries
are hash-chained as written, so what callers put in it stays readable (they must not put identifiers there); session
source addresses of staff, which the audit log holds anyway.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import stat
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tiptriage.store.schema import store_meta

KEY_ENV: Final = "TIPTRIAGE_DATA_KEY"
KEY_FILE_ENV: Final = "TIPTRIAGE_DATA_KEY_FILE"
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
KEY_ID_BYTES: Final = 4
INDEX_HEX: Final = 32  # 128 bits of HMAC: collisions are out of reach, and the index stays small
MAX_KIND: Final = 64  # the readable kind in a keyed hash is cut here, so a long service name cannot overflow a key column

BINARY_MAGIC: Final = b"TTE1"
TEXT_PREFIX: Final = "tte1."
_AAD_VERSION: Final = b"tiptriage-at-rest-v1"
_NONE_PART: Final = b"\xff\xff\xff\xff"
_KEY_ID_LABEL: Final = b"tiptriage data key id v1"
_BINARY_HEAD: Final = len(BINARY_MAGIC) + KEY_ID_BYTES + NONCE_BYTES
INDEX_META_KEY: Final = "index_key"
INDEX_NEXT_META_KEY: Final = "index_key_next"
CONVERTED_META_KEY: Final = "encrypted_at_rest"


class CryptoError(Exception):
    """Base of the errors below."""


class DataKeyError(CryptoError):
    """No data key, a malformed or unsafe one, or not the key the data was sealed with."""


class DecryptionError(CryptoError):
    """A stored value failed authentication: a wrong key, a value altered, or a value moved from another row or column."""


def missing_key_message() -> str:
    return (f"no data key is configured: set {KEY_FILE_ENV} to a file holding the base64 key (mode 0600), or {KEY_ENV} to the "
            "key itself; `tiptriage keys generate --out FILE` makes one")


def key_id(key: bytes) -> str:
    """A short public fingerprint of a data key, stored in every value it seals. Reveals nothing of the key."""
    return hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[: 2 * KEY_ID_BYTES]


@dataclass(frozen=True)
class DataKey:
    key: bytes = field(repr=False)
    id: str

    @classmethod
    def of(cls, key: bytes) -> DataKey:
        if len(key) != KEY_BYTES:
            raise DataKeyError(f"a data key is {KEY_BYTES} bytes (base64 of {KEY_BYTES} random bytes), not {len(key)}")
        return cls(key, key_id(key))


def generate_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def _decode_key(text: str, where: str, n: int) -> DataKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise DataKeyError(f"key {n} in {where} is not base64") from None
    if len(raw) != KEY_BYTES:
        raise DataKeyError(f"key {n} in {where} is {len(raw)} bytes; a data key is {KEY_BYTES} random bytes, base64-encoded")
    return DataKey.of(raw)


def _check_file_mode(path: Path) -> None:
    try:
        st = path.stat()
    except OSError as e:
        raise DataKeyError(f"cannot read the data key file {path}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise DataKeyError(f"the data key file {path} is not a regular file")
    if os.name == "posix" and st.st_mode & 0o077:
        # a key others can read is no longer a secret; one others can write can be swapped for theirs
        raise DataKeyError(f"the data key file {path} has mode {stat.S_IMODE(st.st_mode):04o}: group or others may use it; "
                           f"run `chmod 600 {path}`")


@dataclass(frozen=True)
class Keyring:
    """The current data key (seals new values) and earlier ones (open values sealed before a rotation)."""

    current: DataKey
    previous: tuple[DataKey, ...] = ()

    def __post_init__(self) -> None:
        ids = [k.id for k in self.all]
        if len(set(ids)) != len(ids):
            raise DataKeyError("the keyring holds the same key twice (or two keys with one id)")

    @property
    def all(self) -> tuple[DataKey, ...]:
        return (self.current, *self.previous)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(k.id for k in self.all)

    def get(self, kid: str) -> DataKey | None:
        return next((k for k in self.all if k.id == kid), None)

    def with_current(self, key: DataKey) -> Keyring:
        """This ring with ``key`` sealing from now on and every key of this ring kept for opening."""
        return Keyring(key, tuple(k for k in self.all if k.id != key.id))

    @classmethod
    def of(cls, *keys: bytes) -> Keyring:
        if not keys:
            raise DataKeyError(missing_key_message())
        made = [DataKey.of(k) for k in keys]
        return cls(made[0], tuple(made[1:]))

    @classmethod
    def parse(cls, text: str, where: str) -> Keyring:
        """Keys, first the current one: one per line (``#`` comments and blank lines ignored) or separated by commas."""
        parts = [p for line in text.splitlines() if not line.lstrip().startswith("#") for p in line.split(",") if p.strip()]
        if not parts:
            raise DataKeyError(f"{where} holds no key")
        made = [_decode_key(p, where, n) for n, p in enumerate(parts, start=1)]
        return cls(made[0], tuple(made[1:]))

    @classmethod
    def from_file(cls, path: Path) -> Keyring:
        try:
            return cls._from_file(path)
        except DataKeyError as e:
            raise DataKeyError(str(e)) from None  # a fresh traceback: no frame holding key text is shown

    @classmethod
    def _from_file(cls, path: Path) -> Keyring:
        _check_file_mode(path)
        try:
            text = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as e:
            raise DataKeyError(f"cannot read the data key file {path}: {getattr(e, 'strerror', None) or e}") from None
        return cls.parse(text, f"the file {path}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Keyring:
        try:
            return cls._from_env(os.environ if environ is None else environ)
        except DataKeyError as e:
            raise DataKeyError(str(e)) from None

    @classmethod
    def _from_env(cls, env: Mapping[str, str]) -> Keyring:
        path, value = env.get(KEY_FILE_ENV), env.get(KEY_ENV)
        if path and value:
            raise DataKeyError(f"set {KEY_FILE_ENV} or {KEY_ENV}, not both")
        if path:
            return cls._from_file(Path(path))
        if value:
            return cls.parse(value, KEY_ENV)
        raise DataKeyError(missing_key_message())


def write_key_file(path: Path, keys: Iterable[bytes], note: str = "") -> None:
    """Write keys (the first is current) to a new file created with mode 0600; an existing file is never replaced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        f.write(f"# tiptriage data key (AES-256-GCM), first line current; {note or 'made'} {stamp}. Keep it apart from the database.\n")
        for k in keys:
            f.write(encode_key(k) + "\n")


def aad(table: str, column: str, *row_key: object) -> bytes:
    """The associated data of one stored value: where it belongs. Each part is length-prefixed, so ("a", "bc") and
    ("ab", "c") differ whatever characters the parts hold, and None differs from an empty string."""
    out = bytearray(_AAD_VERSION)
    for part in (table, column, *row_key):
        if part is None:
            out += _NONE_PART
            continue
        b = str(part).encode("utf-8")
        out += len(b).to_bytes(4, "big") + b
    return bytes(out)


def _parts(context: bytes) -> list[str | None]:
    out: list[str | None] = []
    i = len(_AAD_VERSION)
    while i + 4 <= len(context):
        head = context[i : i + 4]
        i += 4
        if head == _NONE_PART:
            out.append(None)
            continue
        n = int.from_bytes(head, "big")
        out.append(context[i : i + n].decode("utf-8", "replace"))
        i += n
    return out


def is_sealed_text(value: str) -> bool:
    return value.startswith(TEXT_PREFIX)


def is_sealed_bytes(value: bytes) -> bool:
    return value[: len(BINARY_MAGIC)] == BINARY_MAGIC


def sealed_key_id(value: str | bytes) -> str | None:
    """The id of the key a stored value was sealed with, or None when it is not a sealed value."""
    if isinstance(value, bytes | bytearray | memoryview):
        b = bytes(value[:_BINARY_HEAD])
        return b[len(BINARY_MAGIC) : len(BINARY_MAGIC) + KEY_ID_BYTES].hex() if is_sealed_bytes(b) and len(b) == _BINARY_HEAD else None
    if not is_sealed_text(value):
        return None
    kid = value[len(TEXT_PREFIX) : len(TEXT_PREFIX) + 2 * KEY_ID_BYTES]
    return kid if len(kid) == 2 * KEY_ID_BYTES and value[len(TEXT_PREFIX) + len(kid) : len(TEXT_PREFIX) + len(kid) + 1] == "." else None


class Cipher:
    """Seals and opens values with a keyring, and makes keyed hashes with the database's index key (loaded on first use)."""

    def __init__(self, keyring: Keyring, engine: sa.Engine | None = None, index_key: bytes | None = None) -> None:
        self.keyring = keyring
        self._engine = engine
        self._aead = {k.id: AESGCM(k.key) for k in keyring.all}
        self._index_key = index_key

    def __repr__(self) -> str:
        return f"Cipher(keys={list(self.keyring.ids)})"

    # -- values ----------------------------------------------------------------------------------

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        kid = self.keyring.current.id
        return BINARY_MAGIC + bytes.fromhex(kid) + nonce + self._aead[kid].encrypt(nonce, plaintext, context)

    def open(self, sealed: bytes, context: bytes) -> bytes:
        data = bytes(sealed)
        if not is_sealed_bytes(data) or len(data) < _BINARY_HEAD + TAG_BYTES:
            raise DecryptionError(f"not an encrypted value ({_where(context)}): stored without encryption, or damaged")
        kid = data[len(BINARY_MAGIC) : len(BINARY_MAGIC) + KEY_ID_BYTES].hex()
        nonce = data[len(BINARY_MAGIC) + KEY_ID_BYTES : _BINARY_HEAD]
        return self._open(kid, nonce, data[_BINARY_HEAD:], context)

    def seal_text(self, text: str, context: bytes) -> str:
        packed = self.seal(text.encode("utf-8"), context)
        return f"{TEXT_PREFIX}{self.keyring.current.id}.{base64.b64encode(packed[len(BINARY_MAGIC) + KEY_ID_BYTES :]).decode('ascii')}"

    def open_text(self, sealed: str, context: bytes) -> str:
        kid = sealed_key_id(sealed) if isinstance(sealed, str) else None
        if kid is None:
            raise DecryptionError(f"not an encrypted value ({_where(context)}): stored without encryption, or damaged")
        try:
            body = base64.b64decode(sealed[len(TEXT_PREFIX) + len(kid) + 1 :], validate=True)
        except (binascii.Error, ValueError):
            raise DecryptionError(f"damaged encrypted value ({_where(context)}): not base64") from None
        if len(body) < NONCE_BYTES + TAG_BYTES:
            raise DecryptionError(f"damaged encrypted value ({_where(context)}): too short")
        return self._open(kid, body[:NONCE_BYTES], body[NONCE_BYTES:], context).decode("utf-8")

    def _open(self, kid: str, nonce: bytes, body: bytes, context: bytes) -> bytes:
        aead = self._aead.get(kid)
        if aead is None:
            raise DataKeyError(f"a value ({_where(context)}) is sealed with data key {kid}, which is not in the keyring "
                               f"(keys configured: {', '.join(self.keyring.ids)}); configure that key ({KEY_FILE_ENV} or {KEY_ENV})")
        try:
            return aead.decrypt(nonce, body, context)
        except InvalidTag:
            raise DecryptionError(f"authentication failed for a value sealed with key {kid} ({_where(context)}): the key is wrong, "
                                  "or the value was altered or moved from another row or column") from None

    def seal_opt(self, text: str | None, context: bytes) -> str | None:
        return None if text is None else self.seal_text(text, context)

    def open_opt(self, sealed: str | None, context: bytes) -> str | None:
        return None if sealed is None else self.open_text(sealed, context)

    # -- keyed hashes ----------------------------------------------------------------------------

    @property
    def index_key(self) -> bytes:
        if self._index_key is None:
            if self._engine is None:
                raise DataKeyError("keyed hashes need the database's index key, and this cipher has no database")
            self._index_key = load_index_key(self._engine, self)
        return self._index_key

    def index(self, clear: str) -> str:
        """The keyed hash of a normalised identifier: ``<kind>:<128-bit HMAC hex>``; equal identifiers give equal hashes."""
        kind = clear.partition(":")[0][:MAX_KIND] if ":" in clear else ""
        return f"{kind}:{keyed_hex(self.index_key, clear)}"

    def keyed_id(self, clear: str, n: int) -> str:
        """An id derived from ``clear`` that cannot be recomputed without the index key (``n`` hex characters)."""
        return hmac.new(self.index_key, b"id\x1f" + clear.encode("utf-8"), hashlib.sha256).hexdigest()[:n]


def keyed_hex(index_key: bytes, clear: str) -> str:
    return hmac.new(index_key, clear.encode("utf-8"), hashlib.sha256).hexdigest()[:INDEX_HEX]


def _where(context: bytes) -> str:
    """Table, column and row of a value, from its associated data, for error messages."""
    parts = _parts(context)
    if len(parts) < 2:
        return "unknown place"
    row = "/".join("-" if p is None else p for p in parts[2:])
    return f"{parts[0]}.{parts[1]}" + (f", row {row}" if row else "")


# -- the index key in store_meta -------------------------------------------------------------------

def index_context(name: str) -> bytes:
    return aad("store_meta", "value", name)


def read_wrapped(conn: sa.Connection, name: str) -> str | None:
    found = conn.execute(sa.select(store_meta.c.value).where(store_meta.c.key == name)).scalar_one_or_none()
    return None if found is None else str(found)


def unwrap_index_key(cipher: Cipher, wrapped: str, name: str = INDEX_META_KEY) -> bytes:
    raw = base64.b64decode(cipher.open_text(wrapped, index_context(name)))
    if len(raw) != KEY_BYTES:
        raise DecryptionError(f"the stored {name} is not {KEY_BYTES} bytes")
    return raw


def wrap_index_key(cipher: Cipher, raw: bytes, name: str = INDEX_META_KEY) -> str:
    return cipher.seal_text(encode_key(raw), index_context(name))


def load_index_key(engine: sa.Engine, cipher: Cipher) -> bytes:
    """The database's index key, made (and stored sealed) on first use. A wrong data key fails here, at open, by name."""
    with engine.connect() as conn:
        wrapped = read_wrapped(conn, INDEX_META_KEY)
    if wrapped is None:
        try:
            with engine.begin() as conn:
                conn.execute(store_meta.insert().values(key=INDEX_META_KEY, value=wrap_index_key(cipher, secrets.token_bytes(KEY_BYTES))))
        except sa.exc.IntegrityError:
            pass  # another process made it first: use theirs
        with engine.connect() as conn:
            wrapped = read_wrapped(conn, INDEX_META_KEY)
        assert wrapped is not None
    kid = sealed_key_id(wrapped)
    if kid is not None and cipher.keyring.get(kid) is None:
        raise DataKeyError(f"this database is encrypted with data key {kid}, which is not the configured key "
                           f"({', '.join(cipher.keyring.ids)}): set {KEY_FILE_ENV} or {KEY_ENV} to the database's key")
    return unwrap_index_key(cipher, wrapped)


# -- which cipher serves which engine -----------------------------------------------------------------

_CIPHERS: weakref.WeakKeyDictionary[sa.Engine, Cipher] = weakref.WeakKeyDictionary()


def attach(engine: sa.Engine, cipher: Cipher) -> None:
    """Repositories are made from an engine alone (the service makes its own); they find the engine's cipher here."""
    _CIPHERS[engine] = cipher


def cipher_of(engine: sa.Engine) -> Cipher:
    """The cipher attached to ``engine``, or one from the environment's keyring, attached from now on."""
    found = _CIPHERS.get(engine)
    if found is None:
        found = Cipher(Keyring.from_env(), engine)
        _CIPHERS[engine] = found
    return found
