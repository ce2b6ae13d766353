"""Hashes of an operator's own files: MD5, SHA-1 and SHA-256 of the bytes, and PDQ for images.

PDQ is computed by the ``pdqhash`` package (Facebook's C++ reference behind Cython bindings) on Pillow's
``convert("RGB")`` decode. That is the recipe python-threatexchange uses, so our hashes equal the ones hash
sets built with it, bit for bit. Other decoders (the C++ tool, the pure-Python port) land a few bits away
on large JPEGs, which is why PDQ is compared by Hamming distance and never by string equality.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, Final

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

# pytx's PdqSignal.QUALITY_THRESHOLD: below it a PDQ hash is mostly noise (flat or tiny images) and
# matches far too many unrelated pictures.
DEFAULT_QUALITY_THRESHOLD: Final = 50

# The order pdqhash.compute_dihedral returns them in (the C++ pdqDihedralHash256esFromFloatLuma order).
DIHEDRAL_NAMES: Final = ("original", "rotate90", "rotate180", "rotate270", "flipx", "flipy", "flip_plus1", "flip_minus1")

NOT_AN_IMAGE: Final = "not an image Pillow can read"

_CHUNK: Final = 1 << 20
_PDQ_HEX = re.compile(r"[0-9a-fA-F]{64}")


class PdqOutcome(StrEnum):
    HASHED = "hashed"
    NOT_AN_IMAGE = "not_an_image"
    # Pillow's decompression-bomb limit (PIL.Image.MAX_IMAGE_PIXELS) said no; the bytes were never decoded.
    REFUSED = "refused"


@dataclass(frozen=True)
class FileHashes:
    """Everything ``hash_file`` learnt about one file. ``reason`` says why ``pdq`` is None."""

    path: Path
    size: int
    md5: str
    sha1: str
    sha256: str
    pdq_outcome: PdqOutcome
    pdq: str | None = None
    quality: int | None = None
    low_quality: bool = False
    dihedral: Mapping[str, str] | None = None
    reason: str | None = None

    @property
    def matchable_pdq(self) -> str | None:
        """The PDQ hash if it is fit to match against a hash set; None for low quality or no hash at all."""
        return None if self.low_quality else self.pdq

    @property
    def warning(self) -> str | None:
        """One line for a human (the CLI prints it on stderr), or None when there is nothing to say."""
        if self.reason is not None:
            return f"{self.path}: no PDQ: {self.reason}"
        if self.low_quality:
            return f"{self.path}: PDQ quality {self.quality} is too low to match on"
        return None


class _NoPdq(Exception):
    def __init__(self, outcome: PdqOutcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


def hash_file(path: Path, dihedral: bool = False, *, quality_threshold: int = DEFAULT_QUALITY_THRESHOLD) -> FileHashes:
    """Hash one file. Raises OSError only when the file itself cannot be read (missing, a folder, no permission)."""
    with path.open("rb") as f:
        md5 = hashlib.md5(usedforsecurity=False)
        sha1 = hashlib.sha1(usedforsecurity=False)
        sha256 = hashlib.sha256()
        size = 0
        while chunk := f.read(_CHUNK):
            size += len(chunk)
            md5.update(chunk)
            sha1.update(chunk)
            sha256.update(chunk)
        # Decoding from the same open file means the PDQ describes exactly the bytes just digested.
        f.seek(0)
        try:
            rgb = _decode_rgb(f)
        except _NoPdq as no:
            return FileHashes(path, size, md5.hexdigest(), sha1.hexdigest(), sha256.hexdigest(), no.outcome, reason=no.reason)
    hashes, quality = _pdq_hashes(rgb, dihedral)
    return FileHashes(
        path,
        size,
        md5.hexdigest(),
        sha1.hexdigest(),
        sha256.hexdigest(),
        PdqOutcome.HASHED,
        pdq=hashes[0],
        quality=quality,
        low_quality=quality < quality_threshold,
        dihedral=dict(zip(DIHEDRAL_NAMES, hashes, strict=True)) if dihedral else None,
    )


def _decode_rgb(f: BinaryIO) -> npt.NDArray[np.uint8]:
    # EXIF orientation is deliberately not applied: hash sets hash the stored pixels, and --dihedral covers
    # copies that were rotated or flipped.
    with warnings.catch_warnings():
        # Between MAX_IMAGE_PIXELS and twice that Pillow only warns and would go on to allocate the image;
        # an operator tool should refuse the whole band, not only what Pillow itself refuses.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(f) as im:
                return np.asarray(im.convert("RGB"), dtype=np.uint8)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise _NoPdq(PdqOutcome.REFUSED, f"refused: {e}") from e
        except UnidentifiedImageError as e:
            raise _NoPdq(PdqOutcome.NOT_AN_IMAGE, NOT_AN_IMAGE) from e
        # A header Pillow recognises can still hide damaged data, and its decoders fail with many exception
        # types (OSError, ValueError, EOFError, struct.error, ...). Any of them only means "no PDQ": the byte
        # hashes already stand, and one bad file must not stop the rest of the batch.
        except Exception as e:
            raise _NoPdq(PdqOutcome.NOT_AN_IMAGE, f"{NOT_AN_IMAGE} ({type(e).__name__}: {e})") from e


def _pdq_hashes(rgb: npt.NDArray[np.uint8], dihedral: bool) -> tuple[list[str], int]:
    """The one place that touches pdqhash, which ships no type information; only plain types leave it."""
    import pdqhash  # type: ignore[import-untyped]

    if dihedral:
        vectors, quality = pdqhash.compute_dihedral(rgb)
    else:
        vector, quality = pdqhash.compute(rgb)
        vectors = [vector]
    return [_bits_to_hex(v) for v in vectors], int(quality)


def _bits_to_hex(bits: npt.ArrayLike) -> str:
    # pdqhash gives 256 0/1 values, most significant bit first, the same order as the 64-hex-digit form.
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()


def pdq_distance(a: str, b: str) -> int:
    """Hamming distance between two PDQ hashes given as 64 hex digits (either case)."""
    return (_pdq_int(a) ^ _pdq_int(b)).bit_count()


def _pdq_int(value: str) -> int:
    # int(..., 16) alone would also accept "0x", "_", signs and whitespace, and a short string would
    # silently compare as if zero-padded.
    if not _PDQ_HEX.fullmatch(value):
        raise ValueError(f"not a PDQ hash (64 hex digits): {value!r}")
    return int(value, 16)


def as_json_record(hashes: FileHashes, dihedral: bool) -> dict[str, object]:
    """The ``tiptriage hash --json`` object for one file; ``dihedral`` is present only when asked for."""
    record: dict[str, object] = {
        "path": str(hashes.path),
        "md5": hashes.md5,
        "sha1": hashes.sha1,
        "sha256": hashes.sha256,
        "pdq": hashes.pdq,
        "quality": hashes.quality,
    }
    if dihedral:
        record["dihedral"] = dict(hashes.dihedral) if hashes.dihedral is not None else None
    return record


def hash_command_output(paths: Sequence[Path], dihedral: bool) -> list[dict[str, object]]:
    """What ``tiptriage hash --json`` prints: one object per path, in the order given."""
    return [as_json_record(hash_file(p, dihedral), dihedral) for p in paths]
