"""CSV hash sets, streamed row by row.

The file is UTF-8 (a leading byte-order mark is allowed), comma-separated with double-quote quoting
(RFC 4180). The first row is a header naming the columns, in any order and letter case.

Required columns:

* ``hash_type``: ``MD5``, ``SHA1``, ``SHA256``, ``PDQ``, ``PHOTODNA`` or ``VPDQ`` (frames as in ``hashes/video.py``), any letter case (``SHA-1``,
  ``SHA-256`` and ``PDNA`` are read as the same);
* ``value``: the hash, hex digits for MD5/SHA1/SHA256/PDQ (any case, stored lower-case), the set's
  own text for PhotoDNA.

Optional columns:

* ``category``: the set's category code for the item, e.g. ``1`` or ``CAT1``;
* ``series``: the set's series name or code;
* ``victim_identified``, ``offender_identified``, ``is_distributed``: ``true``, ``false`` or empty
  (``1``/``0`` and ``yes``/``no`` are read too);
* ``media_id``: the set's own id for the item;
* ``updated_at``: ISO 8601 date and time with a zone, e.g. ``2024-05-01T12:00:00Z``.

Other columns are ignored and empty cells read as absent. A row that breaks these rules is refused
with its line number (the physical line it starts on; the header is line 1) and the rest of the file
goes in. A header without ``hash_type`` and ``value`` is one refusal, and nothing is read.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from tiptriage.hashes.entries import HashEntry, HashSetItem, Refusal, check_hash
from tiptriage.hashes.formats import HashSetLimits, file_too_large
from tiptriage.model import HashType, hash_type_of

REQUIRED = ("hash_type", "value")
OPTIONAL = ("category", "series", "victim_identified", "media_id", "offender_identified", "is_distributed", "updated_at")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
_BOM = b"\xef\xbb\xbf"


class _LineTooLong(Exception):
    def __init__(self, line: int, cap: int) -> None:
        super().__init__(f"line {line} is longer than {cap} bytes")
        self.line = line
        self.cap = cap


class _Lines:
    """Decoded physical lines for csv.reader, each capped in length, noting where UTF-8 is broken.

    Decoding line by line (not the whole stream) lets a bad byte cost only the row it sits in.
    """

    def __init__(self, fh: BinaryIO, cap: int) -> None:
        self.fh = fh
        self.cap = cap
        self.number = 0
        self.offset = 0
        self.bad: dict[int, int] = {}  # line number -> byte offset of its first invalid byte

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = self.fh.readline(self.cap + 1)
        if not raw:
            raise StopIteration
        self.number += 1
        start = self.offset
        self.offset += len(raw)
        if len(raw) > self.cap:
            raise _LineTooLong(self.number, self.cap)
        if self.number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
            start += len(_BOM)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.bad[self.number] = start + exc.start
            return raw.decode("utf-8", errors="replace")


def iter_items(path: Path, limits: HashSetLimits | None = None) -> Iterator[HashSetItem]:
    """Stream the entries of a CSV hash set, refusing bad rows by line number."""
    limits = limits or HashSetLimits()
    if (too_large := file_too_large(path, limits)) is not None:
        yield too_large
        return
    # csv's own field limit is process-wide, so it is honoured rather than raised.
    field_cap = min(limits.max_field_chars, csv.field_size_limit())
    with path.open("rb") as fh:
        lines = _Lines(fh, 4 * limits.max_field_chars + 4096)
        reader = csv.reader(lines)
        try:
            header = next(reader, None)
            if header is None:
                yield Refusal("line 1", "the file is empty: a header row naming hash_type and value is required")
                return
            if 1 in lines.bad:
                yield Refusal("line 1", f"invalid UTF-8 at byte offset {lines.bad[1]} in the header")
                return
            columns: dict[str, int] = {}
            for i, name in enumerate(header):
                columns.setdefault(name.strip().lower(), i)
            missing = [c for c in REQUIRED if c not in columns]
            if missing:
                found = ", ".join(repr(h.strip()[:40]) for h in header[:20]) or "nothing"
                yield Refusal(
                    "line 1", f"the header must name the columns hash_type and value; missing {', '.join(missing)}; found {found}"
                )
                return
            last = reader.line_num
            for row in reader:
                first, last = last + 1, reader.line_num
                bad = [lines.bad.pop(n) for n in range(first, last + 1) if n in lines.bad]
                if not any(cell.strip() for cell in row):
                    continue
                place = f"line {first}"
                if bad:
                    yield Refusal(place, f"invalid UTF-8 at byte offset {bad[0]}; the row is skipped")
                    continue
                yield _row(row, columns, len(header), place, field_cap)
        except _LineTooLong as exc:
            yield Refusal(f"line {exc.line}", f"{exc}; reading stops")
        except csv.Error as exc:
            yield Refusal(f"line {reader.line_num}", f"not readable as CSV ({exc}); reading stops")


def _flag(v: str | None, column: str) -> bool | None:
    if v is None:
        return None
    low = v.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"{column} must be true, false or empty, not {v[:60]!r}")


def _row(row: list[str], columns: dict[str, int], width: int, place: str, field_cap: int) -> HashEntry | Refusal:
    if len(row) > width and any(c.strip() for c in row[width:]):
        return Refusal(place, f"{len(row)} fields, but the header names {width} columns (an unquoted comma?)")

    def cell(name: str) -> str | None:
        i = columns.get(name)
        if i is None or i >= len(row):
            return None
        return row[i].strip() or None

    for name in columns:
        v = cell(name)
        if v is not None and len(v) > field_cap:
            return Refusal(place, f"{name} is {len(v)} characters, over the limit of {field_cap}")
    type_text = cell("hash_type")
    if type_text is None:
        return Refusal(place, "missing hash_type")
    hash_type = hash_type_of(type_text)
    if hash_type is HashType.OTHER:
        return Refusal(place, f"unknown hash_type {type_text[:40]!r}: expected MD5, SHA1, SHA256, PDQ, PHOTODNA or VPDQ")
    raw = cell("value")
    if raw is None:
        return Refusal(place, "missing value")
    try:
        value = check_hash(hash_type, raw)
        victim = _flag(cell("victim_identified"), "victim_identified")
        offender = _flag(cell("offender_identified"), "offender_identified")
        distributed = _flag(cell("is_distributed"), "is_distributed")
        updated_at = _timestamp(cell("updated_at"))
    except ValueError as exc:
        return Refusal(place, str(exc))
    return HashEntry(
        hash_type=hash_type,
        value=value,
        media_id=cell("media_id"),
        category=cell("category"),
        series=cell("series"),
        victim_identified=victim,
        offender_identified=offender,
        is_distributed=distributed,
        updated_at=updated_at,
    )


def _timestamp(v: str | None) -> datetime | None:
    if v is None:
        return None
    try:
        parsed = datetime.fromisoformat(v)
    except ValueError:
        raise ValueError(f"updated_at {v[:60]!r} is not an ISO 8601 date and time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"updated_at {v!r} has no time zone; it must carry one (e.g. Z or +02:00)")
    return parsed
