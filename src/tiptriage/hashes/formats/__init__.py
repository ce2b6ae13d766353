"""Readers for known-hash set files: Project VIC VICS JSON, NCMEC hash-sharing XML, and a documented CSV.

Every reader is ``iter_items(path, limits=None)`` and streams ``HashEntry``, ``Tombstone`` and
``Refusal`` items, so a set of hundreds of megabytes is read in bounded memory and one bad entry
is reported where it sits while the rest of the file goes in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tiptriage.hashes.entries import HashSetItem, Refusal


@dataclass(frozen=True)
class HashSetLimits:
    """Bounds on what one reader holds in memory at a time.

    ``max_field_chars`` caps one value read whole: a VICS media record, an XML element's text, a CSV
    field. ``max_file_bytes`` is off by default because the readers stream; set it to refuse big
    files outright.
    """

    max_field_chars: int = 1_000_000
    max_file_bytes: int | None = None


def file_too_large(path: Path, limits: HashSetLimits) -> Refusal | None:
    if limits.max_file_bytes is None:
        return None
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        return Refusal("-", f"file is {size} bytes, over the limit of {limits.max_file_bytes}")
    return None


Reader = Callable[[Path, HashSetLimits | None], Iterator[HashSetItem]]

# The readers import HashSetLimits from this package, so they can only be imported once it exists.
from tiptriage.hashes.formats import csvset, ncmec, vics  # noqa: E402

FORMATS: dict[str, Reader] = {"vics": vics.iter_items, "ncmec": ncmec.iter_items, "csv": csvset.iter_items}

_BOM = b"\xef\xbb\xbf"
_BY_SUFFIX = {".json": "vics", ".xml": "ncmec", ".csv": "csv"}


def sniff(path: Path) -> str:
    """Name the format of ``path``: its first significant byte decides, then its extension, else CSV."""
    with path.open("rb") as fh:
        head = fh.read(4096)
    if head.startswith(_BOM):
        head = head[len(_BOM) :]
    first = head.lstrip()[:1]
    if first == b"{":
        return "vics"
    if first == b"<":
        return "ncmec"
    return _BY_SUFFIX.get(path.suffix.lower(), "csv")


__all__ = ["FORMATS", "HashSetLimits", "Reader", "file_too_large", "sniff"]
