"""NCMEC hash-sharing API (v2) entries documents, streamed entry by entry.

The document is ``queryResult`` holding ``images`` and ``videos``; each holds ``image``/``video``
entries (``member``, ``timestamp``, ``id``, ``classification``, ``fingerprints/{md5, sha1, pdq, pdna,
...}``, ``feedback``) and ``deletedImage``/``deletedVideo`` tombstones naming an ``id``. Elements are
matched by local name, so any namespace (the API uses ``https://hashsharing.ncmec.org/hashsharing/v2``)
or none is read the same.

Mapping: ``id`` -> media id, ``classification`` -> category, ``timestamp`` -> updated_at (left unset
when it has no time zone or cannot be read: the hash is still good), ``md5``/``sha1``/``pdq`` -> those
hash types, ``pdna`` -> PhotoDNA (kept as opaque text). Fingerprint types the matcher cannot use
(``netclean``, ``videntifier``, ``tmk_pdqf``, ``ssvh_*``) are skipped; an entry with none it can use
is refused. Feedback and paging are ignored.

Parsing goes through defusedxml with DTDs, entities and external references forbidden, so entity
expansion is refused before anything expands, and every entry is dropped from the tree once read so
memory stays flat however long the document is. Other API documents (status, feedback) are answered
with one refusal naming their root element.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO
from xml.etree.ElementTree import Element, ParseError

import defusedxml
from defusedxml.ElementTree import iterparse

from tiptriage.hashes.entries import HashEntry, HashSetItem, Refusal, Tombstone, check_hash
from tiptriage.hashes.formats import HashSetLimits, file_too_large
from tiptriage.model import HashType

ROOT = "queryResult"
_CONTAINERS = ("images", "videos")
_ENTRIES = ("image", "video")
_TOMBSTONES = ("deletedImage", "deletedVideo")
_FINGERPRINTS = {"md5": HashType.MD5, "sha1": HashType.SHA1, "pdq": HashType.PDQ, "pdna": HashType.PHOTODNA}


def _local(tag: str) -> str:
    return tag[tag.index("}") + 1 :] if tag[:1] == "{" else tag


def _text(el: Element | None) -> str | None:
    if el is None:
        return None
    t = (el.text or "").strip()
    return t or None


def iter_items(path: Path, limits: HashSetLimits | None = None) -> Iterator[HashSetItem]:
    """Stream the entries and tombstones of an NCMEC hash-sharing entries document."""
    limits = limits or HashSetLimits()
    if (too_large := file_too_large(path, limits)) is not None:
        yield too_large
        return
    try:
        with path.open("rb") as fh:
            yield from _stream(fh, limits)
    except defusedxml.DTDForbidden:
        yield Refusal("-", "a document type declaration (DTD) is not accepted: entities and external DTDs are refused")
    except defusedxml.EntitiesForbidden as exc:
        yield Refusal("-", f"entity declaration {exc.name!r} refused")
    except defusedxml.ExternalReferenceForbidden:
        yield Refusal("-", "external reference refused")
    except ParseError as exc:
        line, col = exc.position
        # Everything before this point has been yielded already; this ends the file.
        yield Refusal(f"line {line}, column {col}", f"not well-formed XML ({exc}); reading stops here")


def _stream(source: BinaryIO, limits: HashSetLimits) -> Iterator[HashSetItem]:
    stack: list[Element] = []
    seen: dict[tuple[str, str], int] = {}
    for event, el in iterparse(source, events=("start", "end"), forbid_dtd=True, forbid_entities=True, forbid_external=True):
        if event == "start":
            if not stack and _local(el.tag) != ROOT:
                name = _local(el.tag)
                yield Refusal(f"/{name}", f"not a hash-sharing entries document (root <{name}>, expected <{ROOT}>)")
                return
            stack.append(el)
            continue
        stack.pop()
        if len(stack) == 2:
            container = _local(stack[1].tag)
            if container in _CONTAINERS:
                name = _local(el.tag)
                n = seen[(container, name)] = seen.get((container, name), 0) + 1
                yield from _entry(el, name, f"/{ROOT}/{container}/{name}[{n}]", limits)
        if 1 <= len(stack) <= 2:
            # Detach what has been read; a cleared element left in its parent would still cost memory per entry.
            stack[-1].remove(el)


def _entry(el: Element, name: str, place: str, limits: HashSetLimits) -> Iterator[HashSetItem]:
    if name not in _ENTRIES and name not in _TOMBSTONES:
        return
    for sub in el.iter():
        if sub.text is not None and len(sub.text) > limits.max_field_chars:
            yield Refusal(f"{place}/{_local(sub.tag)}", f"text of {len(sub.text)} characters, over the limit of {limits.max_field_chars}")
            return
    kids: dict[str, Element] = {}
    for child in el:
        kids.setdefault(_local(child.tag), child)
    media_id = _text(kids.get("id"))
    if name in _TOMBSTONES:
        if media_id is None:
            yield Refusal(place, f"<{name}> without an <id> cannot be applied")
        else:
            yield Tombstone(media_id=media_id)
        return
    category = _text(kids.get("classification"))
    updated_at = _timestamp(_text(kids.get("timestamp")))
    found = False
    unusable: list[str] = []
    fingerprints = kids.get("fingerprints")
    for fp in fingerprints if fingerprints is not None else ():
        fp_name = _local(fp.tag)
        hash_type = _FINGERPRINTS.get(fp_name.lower())
        if hash_type is None:
            unusable.append(fp_name)
            continue
        raw = _text(fp)
        if raw is None:
            continue
        found = True
        try:
            value = check_hash(hash_type, raw)
        except ValueError as exc:
            yield Refusal(f"{place}/fingerprints/{fp_name}", str(exc))
            continue
        yield HashEntry(hash_type=hash_type, value=value, media_id=media_id, category=category, updated_at=updated_at)
    if not found:
        extra = f"; it has only {', '.join(unusable)}" if unusable else ""
        yield Refusal(place, f"no fingerprint of a usable type (md5, sha1, pdq, pdna){extra}")


def _timestamp(v: str | None) -> datetime | None:
    if v is None:
        return None
    try:
        parsed = datetime.fromisoformat(v)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
