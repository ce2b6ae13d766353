"""Project VIC VICS JSON (OData) hash sets, streamed record by record.

Two shapes are read, as written by VICS 2.0 exporters (``@odata.context`` ending ``#Media`` or ``#Cases``):

* a hash set: ``{"@odata.context": "...#Media", "value": [ {media}, {media}, ... ]}``;
* a case: ``{"@odata.context": "...#Cases", "value": [ {"CaseID": "...", "Media": [ {media}, ... ]} ]}``.

A media record's fields, matched in any letter case: ``MediaID``, ``Category``, ``MD5``, ``SHA1``,
``SHA256``, ``PDQ``, ``PhotoDNA``, ``VictimIdentified``, ``OffenderIdentified``, ``IsDistributed``
(JSON booleans or the strings "true"/"false"; anything else leaves the flag unset), ``Series`` (text, or an object with ``Name``) and
``DateUpdated`` (ISO 8601; OData ``/Date(ms)/`` too). ``AlternativeHashes`` (``[{HashName, HashValue}]``)
adds hashes of a type the record does not carry directly. ``MediaFiles``, ``Exifs`` and every other
key are ignored. One record yields one ``HashEntry`` per hash it carries, all sharing its media id,
category, series and flags.

The file is never loaded whole: it is decoded in chunks and each array element is parsed on its own
with ``json.JSONDecoder.raw_decode``, so memory holds one chunk and one record. A record that is not
well-formed JSON is refused and reading resumes at the next element when the brackets and quotes
allow finding it; otherwise a final refusal names the byte offset and reading stops.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from tiptriage.hashes.entries import HashEntry, HashSetItem, Refusal, check_hash
from tiptriage.hashes.formats import HashSetLimits, file_too_large
from tiptriage.model import HashType

_CHUNK = 1 << 18
_BOM = codecs.BOM_UTF8
_WS = re.compile(r"[ \t\n\r]*")
_STRUCTURAL = re.compile(r'[][{}",]')
_IN_STRING = re.compile(r'["\\]')
_DECODER = json.JSONDecoder()
# A truncated literal or number ("fals", "-1.5e") fails within a few characters of the buffer's end.
_TAIL = 8
# Case -> Media -> record is the deepest real nesting; more is a hostile document.
_MAX_STREAM_DEPTH = 4
# Stepping over an unread value keeps one entry per open bracket; real documents nest a few deep.
_MAX_SKIP_NESTING = 10_000

_HASH_KEYS = (
    ("md5", HashType.MD5),
    ("sha1", HashType.SHA1),
    ("sha256", HashType.SHA256),
    ("pdq", HashType.PDQ),
    ("photodna", HashType.PHOTODNA),
)
_HASH_NAMES = {
    "md5": HashType.MD5,
    "sha1": HashType.SHA1,
    "sha-1": HashType.SHA1,
    "sha256": HashType.SHA256,
    "sha-256": HashType.SHA256,
    "pdq": HashType.PDQ,
    "photodna": HashType.PHOTODNA,
    "pdna": HashType.PHOTODNA,
}
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
_ODATA_DATE = re.compile(r"^/Date\((-?\d{1,15})(?:[+-]\d{4})?\)/$")


def _ws_end(text: str, i: int) -> int:
    m = _WS.match(text, i)
    return m.end() if m else i


class _Fatal(Exception):
    """The stream cannot be followed past this byte."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset = offset
        self.reason = reason


class _Malformed(Exception):
    """One value is not well-formed JSON; the cursor is left at its start."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset = offset
        self.reason = reason


class _TooBig(Exception):
    """One value runs past the size limit; the cursor is left at its start."""


class _Cursor:
    """A window on the decoded text with a read position; refills from the file on demand."""

    def __init__(self, fh: BinaryIO, limit: int) -> None:
        self.fh = fh
        self.limit = limit
        self.buf = ""
        self.pos = 0
        self.base = 0  # byte offset in the file of buf[0]
        self.read = 0  # bytes read from the file so far
        self.eof = False
        self.bad_utf8: int | None = None
        self.decoder = codecs.getincrementaldecoder("utf-8")("strict")

    def offset(self, index: int | None = None) -> int:
        i = self.pos if index is None else index
        return self.base + len(self.buf[:i].encode("utf-8"))

    def fill(self, keep: int) -> bool:
        """Drop text before ``keep``, append the next chunk; False when the file has no more to give."""
        if self.eof:
            return False
        if keep:
            self.base += len(self.buf[:keep].encode("utf-8"))
            self.buf = self.buf[keep:]
            self.pos -= keep
        data = self.fh.read(_CHUNK)
        first = self.read == 0
        self.read += len(data)
        if first and data.startswith(_BOM):
            data = data[len(_BOM) :]
            self.base += len(_BOM)
        try:
            text = self.decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            # Keep what precedes the bad byte so every whole record before it still goes in.
            text = exc.object[: exc.start].decode("utf-8")
            self.bad_utf8 = self.read - len(exc.object) + exc.start
            self.eof = True
        else:
            self.eof = not data
        self.buf += text
        return bool(text) or not self.eof

    def ended(self, what: str) -> _Fatal:
        if self.bad_utf8 is not None:
            return _Fatal(self.bad_utf8, f"invalid UTF-8 at byte offset {self.bad_utf8}")
        return _Fatal(self.offset(len(self.buf)), f"the file ends {what} (truncated?)")

    def peek(self) -> str:
        """Skip whitespace; the next character, or "" at the end of the file."""
        while True:
            self.pos = _ws_end(self.buf, self.pos)
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.fill(self.pos):
                return ""

    def expect(self, char: str, what: str) -> None:
        c = self.peek()
        if c == "":
            raise self.ended(what)
        if c != char:
            raise _Fatal(self.offset(), f"expected {char!r} {what} at byte offset {self.offset()}, found {c!r}")
        self.pos += 1

    def delimiter(self, closer: str, what: str) -> str:
        c = self.peek()
        if c == "":
            raise self.ended(what)
        if c != "," and c != closer:
            raise _Fatal(self.offset(), f"expected ',' or {closer!r} {what} at byte offset {self.offset()}, found {c!r}")
        self.pos += 1
        return c

    def value(self) -> object:
        """Decode the JSON value at the cursor, reading more of the file while it looks cut off."""
        while True:
            start = self.pos
            try:
                obj, end = _DECODER.raw_decode(self.buf, start)
            except json.JSONDecodeError as exc:
                # Taken before any refill, which moves the buffer under exc.pos.
                at = self.offset(exc.pos)
                past_start = exc.pos - start
                unterminated = exc.msg.startswith("Unterminated string")
                if unterminated or len(self.buf) - exc.pos <= _TAIL:
                    if len(self.buf) - start > self.limit:
                        raise _TooBig from None
                    if self.fill(start):
                        continue
                    # At the end of the file only an open string or a value cut off at the very end is
                    # truncation; anything else (a trailing comma, say) is a broken record.
                    if unterminated or _ws_end(self.buf, self.pos + past_start) == len(self.buf):
                        raise self.ended("inside a value") from None
                raise _Malformed(at, f"{exc.msg} (byte offset {at})") from None
            except RecursionError:
                raise _Malformed(self.offset(start), f"JSON nested too deeply at byte offset {self.offset(start)}") from None
            # A number or literal that reaches the end of the buffer may continue in the next chunk.
            if end == len(self.buf) and self.buf[start] not in '{["' and self.fill(start):
                continue
            self.pos = end
            return obj

    def member_name(self, what: str) -> str:
        """Read ``"name":`` of an object member."""
        if self.peek() != '"':
            self.expect('"', f"to start {what}")  # raises, naming what is there instead
        name = self.must_value(what)
        self.expect(":", f"after {what}")
        return str(name)

    def must_value(self, what: str) -> object:
        try:
            return self.value()
        except _Malformed as exc:
            raise _Fatal(exc.offset, f"{what}: {exc.reason}") from None
        except _TooBig:
            raise _Fatal(self.offset(), f"{what} at byte offset {self.offset()} is over {self.limit} characters") from None

    def skip_element(self, closer: str, limit: int | None = None) -> str:
        """Step over one element without decoding it: to the ',' or ``closer`` that ends it, consumed.

        Only quotes and brackets (matched by kind) are followed, so an element whose values are broken
        but whose structure holds is stepped over; broken structure stops the reading where it shows.
        """
        closers: list[str] = []
        in_string = False
        scanned = 0
        i = self.pos
        start = self.offset()
        while True:
            m = (_IN_STRING if in_string else _STRUCTURAL).search(self.buf, i)
            if m is not None:
                c = m.group()
                i = m.end()
                if in_string:
                    if c == "\\":
                        i += 1
                    else:
                        in_string = False
                elif c == '"':
                    in_string = True
                elif c in "[{":
                    if len(closers) >= _MAX_SKIP_NESTING:
                        at = self.offset(i - 1)
                        raise _Fatal(at, f"JSON nested more than {_MAX_SKIP_NESTING} deep at byte offset {at}; reading stops")
                    closers.append("]" if c == "[" else "}")
                elif c in "]}":
                    if not closers and c == closer:
                        self.pos = i
                        return c
                    if not closers or closers.pop() != c:
                        at = self.offset(i - 1)
                        raise _Fatal(at, f"unbalanced {c!r} at byte offset {at}; cannot find the next record, reading stops")
                elif not closers:
                    self.pos = i
                    return c
                continue
            keep = min(i, len(self.buf))
            scanned += keep
            if limit is not None and scanned > limit:
                raise _Fatal(start, f"no end found within {limit} characters of the broken record at byte offset {start}; reading stops")
            i -= keep
            self.pos = len(self.buf)
            if not self.fill(keep):
                raise self.ended("inside a broken record")


def iter_items(path: Path, limits: HashSetLimits | None = None) -> Iterator[HashSetItem]:
    """Stream the entries of a VICS JSON file, refusing bad records where they sit."""
    limits = limits or HashSetLimits()
    if (too_large := file_too_large(path, limits)) is not None:
        yield too_large
        return
    with path.open("rb") as fh:
        cursor = _Cursor(fh, limits.max_field_chars)
        try:
            yield from _document(cursor)
        except _Fatal as exc:
            yield Refusal(f"byte {exc.offset}", exc.reason)


def _document(cur: _Cursor) -> Iterator[HashSetItem]:
    c = cur.peek()
    if c == "":
        if cur.bad_utf8 is not None:
            raise cur.ended("")
        raise _Fatal(0, "the file is empty")
    if c != "{":
        raise _Fatal(cur.offset(), f"not a VICS JSON document: expected a JSON object, found {c!r} at byte offset {cur.offset()}")
    cur.pos += 1
    found = False
    if cur.peek() == "}":
        cur.pos += 1
    else:
        while True:
            key = cur.member_name("a top-level member name")
            if key.lower() == "value":
                cur.expect("[", 'to open the "value" array')
                found = True
                yield from _array(cur, f"/{key}", 0)
                d = cur.delimiter("}", "after the value array")
            else:
                # Metadata such as @odata.context: step over it unread, whatever its size.
                d = cur.skip_element("}")
            if d == "}":
                break
    if not found:
        raise _Fatal(0, 'not a VICS JSON document: no top-level "value" array')


def _array(cur: _Cursor, prefix: str, depth: int) -> Iterator[HashSetItem]:
    """The elements of an array whose '[' was consumed; consumes its ']'."""
    if cur.peek() == "]":
        cur.pos += 1
        return
    index = 0
    while True:
        place = f"{prefix}/{index}"
        if cur.peek() == "":
            raise cur.ended("inside an array")
        try:
            rec = cur.value()
        except _Malformed as exc:
            yield Refusal(place, f"not well-formed JSON ({exc.reason}); the record is skipped")
            d = cur.skip_element("]", cur.limit)
        except _TooBig:
            if cur.peek() != "{" or depth >= _MAX_STREAM_DEPTH:
                raise _Fatal(cur.offset(), f"element at byte offset {cur.offset()} is over {cur.limit} characters") from None
            # A case holding all its media in one element: read it member by member instead.
            yield from _object_streamed(cur, place, depth + 1)
            d = cur.delimiter("]", "after an array element")
        else:
            yield from _element_items(rec, place)
            d = cur.delimiter("]", "after an array element")
        if d == "]":
            return
        index += 1


def _object_streamed(cur: _Cursor, place: str, depth: int) -> Iterator[HashSetItem]:
    cur.expect("{", "to open an object")
    fields: dict[str, object] = {}
    has_media = False
    if cur.peek() == "}":
        cur.pos += 1
    else:
        while True:
            key = cur.member_name("a member name")
            if key.lower() == "media" and cur.peek() == "[":
                cur.pos += 1
                has_media = True
                yield from _array(cur, f"{place}/{key}", depth)
            else:
                fields[key] = cur.must_value(f"member {key!r} of {place}")
            if cur.delimiter("}", "after an object member") == "}":
                break
    if not has_media:
        yield from _media_items(fields, place)


def _element_items(rec: object, place: str) -> Iterator[HashSetItem]:
    if isinstance(rec, dict):
        for key, media in rec.items():
            if key.lower() == "media" and isinstance(media, list):
                for i, m in enumerate(media):
                    yield from _media_items(m, f"{place}/{key}/{i}")
                return
    yield from _media_items(rec, place)


def _json_type(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "text"
    if isinstance(v, list):
        return "an array"
    return "an object"


def _text(v: object) -> str | None:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else str(v)
    if isinstance(v, str):
        return v.strip() or None
    return None


def _series(v: object) -> str | None:
    if isinstance(v, dict):
        return next((_text(x) for k, x in v.items() if k.lower() == "name"), None)
    if isinstance(v, list):
        names = [n for x in v if (n := _series(x))]
        return "; ".join(names) or None
    return _text(v)


def _flag(v: object) -> bool | None:
    """None for absent, empty or anything that is not a boolean."""
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str):
        low = v.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    return None


def _updated(v: object) -> datetime | None:
    """A zoned timestamp, or None: an unzoned or unreadable date is not worth losing the hash for."""
    if not isinstance(v, str):
        return None
    s = v.strip()
    m = _ODATA_DATE.match(s)
    if m:
        try:
            return datetime.fromtimestamp(int(m.group(1)) / 1000, UTC)
        except (ValueError, OverflowError, OSError):
            return None
    try:
        parsed = datetime.fromisoformat(s)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _media_items(rec: object, place: str) -> Iterator[HashSetItem]:
    if not isinstance(rec, dict):
        yield Refusal(place, f"a media record must be a JSON object, not {_json_type(rec)}")
        return
    fields: dict[str, tuple[str, object]] = {k.lower(): (k, v) for k, v in rec.items()}

    def get(name: str) -> object:
        return fields[name][1] if name in fields else None

    # An unreadable flag is unknown, not a reason to lose the record's hashes; a refusal would count
    # the record as not gone in, so the flag is left unset instead.
    flags = {name: _flag(get(name)) for name in ("victimidentified", "offenderidentified", "isdistributed")}

    hashes: dict[HashType, str] = {}
    refused = False
    for name, hash_type in _HASH_KEYS:
        if name not in fields:
            continue
        key, raw = fields[name]
        if raw is None or raw == "":
            continue
        if not isinstance(raw, str):
            yield Refusal(f"{place}/{key}", f"{hash_type.value} must be text, not {_json_type(raw)}")
            refused = True
            continue
        try:
            hashes[hash_type] = check_hash(hash_type, raw)
        except ValueError as exc:
            yield Refusal(f"{place}/{key}", str(exc))
            refused = True

    alternatives = fields.get("alternativehashes")
    if alternatives is not None and isinstance(alternatives[1], list):
        for i, alt in enumerate(alternatives[1]):
            if not isinstance(alt, dict):
                continue
            low = {k.lower(): v for k, v in alt.items()}
            name_v, value_v = low.get("hashname"), low.get("hashvalue")
            hash_type_alt = _HASH_NAMES.get(name_v.strip().lower()) if isinstance(name_v, str) else None
            if hash_type_alt is None or hash_type_alt in hashes or not isinstance(value_v, str) or not value_v.strip():
                continue
            try:
                hashes[hash_type_alt] = check_hash(hash_type_alt, value_v)
            except ValueError as exc:
                yield Refusal(f"{place}/{alternatives[0]}/{i}/HashValue", str(exc))
                refused = True

    if not hashes:
        if not refused:
            yield Refusal(place, "the media record carries no hash (MD5, SHA1, SHA256, PDQ or PhotoDNA)")
        return
    media_id = _text(get("mediaid"))
    category = _text(get("category"))
    series = _series(get("series"))
    updated_at = _updated(get("dateupdated"))
    for hash_type, value in hashes.items():
        yield HashEntry(
            hash_type=hash_type,
            value=value,
            media_id=media_id,
            category=category,
            series=series,
            victim_identified=flags["victimidentified"],
            offender_identified=flags["offenderidentified"],
            is_distributed=flags["isdistributed"],
            updated_at=updated_at,
        )
