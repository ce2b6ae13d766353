"""What a hash set holds, as every format reader yields it: entries, tombstones and refusals.

Readers stream these; the store upserts entries, deletes what tombstones name, and reports refusals
(with the file and place) while the rest of the file goes in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from tiptriage.model import HashType

HEX_LENGTHS = {HashType.MD5: 32, HashType.SHA1: 40, HashType.SHA256: 64, HashType.PDQ: 64}
_HEX = re.compile(r"^[0-9a-f]+$")
PDQ_ALL_ZERO = "0" * 64
PDQ_ALL_ONE = "f" * 64


@dataclass(frozen=True)
class HashEntry:
    """One known hash. ``media_id`` is the set's own id for the item (VICS MediaID, NCMEC id)."""

    hash_type: HashType
    value: str  # lower-case hex for MD5/SHA1/SHA256/PDQ; opaque text for PhotoDNA
    media_id: str | None = None
    category: str | None = None
    series: str | None = None
    victim_identified: bool | None = None
    offender_identified: bool | None = None
    is_distributed: bool | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Tombstone:
    """The set withdrew an item: remove every entry with this media id."""

    media_id: str


@dataclass(frozen=True)
class Refusal:
    """An entry that cannot go in: where in the file, and why."""

    place: str  # e.g. "line 12", "/value/3/MD5", "/queryResult/images/image[4]/fingerprints/pdq"
    reason: str


HashSetItem = HashEntry | Tombstone | Refusal


def check_hash(hash_type: HashType, value: str) -> str:
    """Normalise a hash value or raise ValueError saying why it is refused."""
    v = value.strip()
    expected = HEX_LENGTHS.get(hash_type)
    if hash_type is HashType.VPDQ:
        from tiptriage.hashes.video import parse_vpdq  # video builds on the PDQ index, which imports this module

        parse_vpdq(v)
        return v
    if expected is None:
        if not v:
            raise ValueError(f"empty {hash_type.value} value")
        return v
    v = v.lower()
    if len(v) != expected:
        raise ValueError(f"{hash_type.value} must be {expected} hex digits, got {len(v)}")
    if not _HEX.match(v):
        raise ValueError(f"{hash_type.value} is not hexadecimal: {value[:80]!r}")
    if hash_type is HashType.PDQ and v in (PDQ_ALL_ZERO, PDQ_ALL_ONE):
        raise ValueError("PDQ hash of all zeros or all ones (a blank or degenerate image) is refused")
    return v
