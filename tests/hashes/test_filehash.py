"""``hash_file`` against the upstream PDQ reference vectors, read in place from ../shared/reference/pdq.

SOURCES.md there says which file holds what: the wasm CSV is a build of the C++ reference (upstream's
acceptance rule: within 10 bits on images of quality >= 80), expected_pdq_python_reference.csv comes from
the pure-Python port's tests (they allow 16 bits), and expected_pdq_pytx_pdqhash.csv from
python-threatexchange, which uses the same pdqhash package and Pillow decode as we do, so it must match exactly.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tiptriage.hashes.filehash import (
    DEFAULT_QUALITY_THRESHOLD,
    DIHEDRAL_NAMES,
    NOT_AN_IMAGE,
    FileHashes,
    PdqOutcome,
    as_json_record,
    hash_command_output,
    hash_file,
    pdq_distance,
)

CPP_CSV = "src/pdq/wasm/test/TestData/PDQMD5TestData.csv"
PY_CSV = "expected_pdq_python_reference.csv"
PYTX_CSV = "expected_pdq_pytx_pdqhash.csv"
DIH = "src/pdq/data/reg-test-input/dih"
JSON_KEYS = {"path", "md5", "sha1", "sha256", "pdq", "quality"}

# SOURCES.md: the C++ CSV's bridge-mods/aaa-orig.jpg was not copied because it is the same git blob as this one.
CPP_ALIASES = {"bridge-mods/aaa-orig.jpg": "reg-test-input/dih/bridge-1-original.jpg"}

# File-name suffix of each rotated/flipped bridge photo -> the dihedral hash of the original it should equal.
DIH_VARIANTS = {
    "rotate-90": "rotate90",
    "rotate-180": "rotate180",
    "rotate-270": "rotate270",
    "flipx": "flipx",
    "flipy": "flipy",
    "flip-plus-1": "flip_plus1",
    "flip-minus-1": "flip_minus1",
}
# Measured with pdqhash 0.2.8 + Pillow 13: every variant is 0-8 bits from its dihedral slot, and 102-130
# bits from every other slot. 8 is the tightest bound that holds; the gap to the next slot is huge.
DIH_MAX_DISTANCE = 8


def _pdq(reference: Path) -> Path:
    return reference / "pdq"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _reference_images(reference: Path) -> list[Path]:
    root = _pdq(reference) / "src"
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})


# --- reference vectors -------------------------------------------------------------------------------


def test_within_10_bits_of_the_cpp_reference_at_quality_80_and_up(reference: Path) -> None:
    pdq_root = _pdq(reference)
    compared: dict[str, int] = {}
    for row in _rows(pdq_root / CPP_CSV):
        # Paths are relative to pdq/wasm/test/...; rows outside pdq/data are the TMK videos (MD5 only).
        rel = row["FilePath"].removeprefix("../../../../")
        if not rel.startswith("data/"):
            continue
        rel = rel.removeprefix("data/")
        image = pdq_root / "src/pdq/data" / CPP_ALIASES.get(rel, rel)
        if not image.exists():
            continue  # SOURCES.md lists what was too large to copy (and b.jpg, absent upstream too)
        h = hash_file(image)
        assert h.pdq is not None and h.quality is not None
        if h.quality >= 80:
            compared[rel] = pdq_distance(h.pdq, row["Hash"])
    # Guard against a vacuous pass: 6 bridge-mods, wee.jpg and the aliased original (small.jpg is quality 0).
    assert len(compared) >= 8, compared
    assert max(compared.values()) <= 10, compared


def test_within_16_bits_of_the_python_port(reference: Path) -> None:
    pdq_root = _pdq(reference)
    distances: dict[str, int] = {}
    for row in _rows(pdq_root / PY_CSV):
        image = pdq_root / "src/pdq/data" / row["path_in_pdq_data"]
        if not image.exists():
            continue  # b.jpg is not upstream, c.png was not copied
        h = hash_file(image)
        assert h.pdq is not None
        distances[row["path_in_pdq_data"]] = pdq_distance(h.pdq, row["expected_pdq_hex"])
        assert distances[row["path_in_pdq_data"]] <= min(16, int(row["max_hamming_tolerance"])), row
    assert len(distances) >= 17, distances


def test_python_threatexchange_values_match_exactly(reference: Path) -> None:
    pdq_root = _pdq(reference)
    rows = _rows(pdq_root / PYTX_CSV)
    assert len(rows) == 3
    for row in rows:
        h = hash_file(pdq_root / "src/python-threatexchange" / row["path_in_python_threatexchange"])
        assert (h.pdq, h.quality) == (row["expected_pdq_hex"], int(row["expected_quality"])), row


def test_low_quality_reference_images_are_flagged_and_not_matchable(reference: Path) -> None:
    low: set[str] = set()
    for image in _reference_images(reference):
        h = hash_file(image)
        assert h.pdq_outcome is PdqOutcome.HASHED
        assert h.quality is not None and 0 <= h.quality <= 100
        assert h.low_quality == (h.quality < DEFAULT_QUALITY_THRESHOLD)
        if h.low_quality:
            low.add(image.name)
            assert h.matchable_pdq is None
            assert h.warning is not None and "quality" in h.warning
        else:
            assert h.matchable_pdq == h.pdq
            assert h.warning is None
    # Quality 0 (small.jpg), 3 and 4 (labelme q0003, q0004) and 36 (pytx's I16.png, upstream-asserted).
    assert low == {"small.jpg", "q0003.jpg", "q0004.jpg", "I16.png"}


def test_quality_threshold_is_configurable(reference: Path) -> None:
    image = _pdq(reference) / "src/python-threatexchange/threatexchange/tests/hashing/resources/I16.png"
    assert hash_file(image).low_quality
    lenient = hash_file(image, quality_threshold=30)
    assert not lenient.low_quality and lenient.matchable_pdq == lenient.pdq
    assert hash_file(_pdq(reference) / DIH / "bridge-1-original.jpg", quality_threshold=101).low_quality


def test_rotated_and_flipped_bridges_match_the_original_dihedral_hashes(reference: Path) -> None:
    dih = _pdq(reference) / DIH
    original = hash_file(dih / "bridge-1-original.jpg", dihedral=True)
    assert original.dihedral is not None
    assert tuple(original.dihedral) == DIHEDRAL_NAMES
    assert original.dihedral["original"] == original.pdq
    seen = set()
    for image in sorted(dih.glob("bridge-*.jpg")):
        suffix = image.stem.split("-", 2)[2]
        if suffix == "original":
            continue
        variant = hash_file(image)
        assert variant.pdq is not None
        distances = {name: pdq_distance(h, variant.pdq) for name, h in original.dihedral.items()}
        slot = DIH_VARIANTS[suffix]
        assert distances[slot] <= DIH_MAX_DISTANCE, (image.name, distances)
        assert min(distances.values()) == distances[slot], (image.name, distances)
        # Without --dihedral the variant would not match at all (PDQ's usual match threshold is 31).
        assert original.pdq is not None and pdq_distance(original.pdq, variant.pdq) > 31
        seen.add(slot)
    assert seen == set(DIH_VARIANTS.values())


# --- generated files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, (1 << 20) - 1, 1 << 20, 3 * (1 << 20) + 12345])
def test_byte_hashes_equal_hashlib(tmp_path: Path, size: int) -> None:
    data = random.Random(size).randbytes(size)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    h = hash_file(path)
    assert (h.md5, h.sha1, h.sha256, h.size) == (
        hashlib.md5(data).hexdigest(),
        hashlib.sha1(data).hexdigest(),
        hashlib.sha256(data).hexdigest(),
        size,
    )


def _noise_png(path: Path, width: int = 200, height: int = 150, seed: int = 7) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_noise_png_hashes(tmp_path: Path) -> None:
    h = hash_file(_noise_png(tmp_path / "noise.png"), dihedral=True)
    assert h.pdq_outcome is PdqOutcome.HASHED and h.reason is None
    assert h.pdq is not None and len(h.pdq) == 64 and int(h.pdq, 16) >= 0
    assert h.quality is not None and 0 <= h.quality <= 100
    assert h.dihedral is not None and h.dihedral["original"] == h.pdq
    assert len(set(h.dihedral.values())) == 8
    assert hash_file(tmp_path / "noise.png").dihedral is None
    assert h.md5 == hashlib.md5((tmp_path / "noise.png").read_bytes()).hexdigest()


def test_text_file_has_byte_hashes_but_no_pdq(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("an operator's notes, not a picture\n", encoding="utf-8")
    h = hash_file(path, dihedral=True)
    assert h.pdq_outcome is PdqOutcome.NOT_AN_IMAGE
    assert (h.pdq, h.quality, h.dihedral, h.low_quality, h.matchable_pdq) == (None, None, None, False, None)
    assert h.reason == NOT_AN_IMAGE
    assert h.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert h.warning is not None and NOT_AN_IMAGE in h.warning


def test_truncated_image_gives_no_pdq_with_a_reason(tmp_path: Path) -> None:
    whole = _noise_png(tmp_path / "whole.png").read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(whole[: len(whole) // 2])
    h = hash_file(path)
    assert h.pdq_outcome is PdqOutcome.NOT_AN_IMAGE and h.pdq is None
    assert h.reason is not None and h.reason.startswith(NOT_AN_IMAGE)


def _png_header_only(path: Path, width: int, height: int) -> Path:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def test_png_claiming_huge_dimensions_is_refused(tmp_path: Path) -> None:
    path = _png_header_only(tmp_path / "bomb.png", 100_000, 100_000)
    h = hash_file(path, dihedral=True)
    assert h.pdq_outcome is PdqOutcome.REFUSED
    assert (h.pdq, h.quality, h.dihedral) == (None, None, None)
    assert h.reason is not None and h.reason.startswith("refused") and "decompression bomb" in h.reason
    assert h.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("side", [12, 20], ids=["pillow-warns", "pillow-raises"])
def test_lowered_max_image_pixels_refuses_both_pillow_bands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, side: int) -> None:
    # 144 pixels is over the limit but under twice it (Pillow only warns); 400 is over twice it (Pillow raises).
    path = _noise_png(tmp_path / "small.png", side, side)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    h = hash_file(path)
    assert h.pdq_outcome is PdqOutcome.REFUSED and h.pdq is None
    assert h.reason is not None and "decompression bomb" in h.reason


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        hash_file(tmp_path / "absent.jpg")


# --- Hamming distance --------------------------------------------------------------------------------


def test_pdq_distance() -> None:
    zero, ones = "0" * 64, "f" * 64
    assert pdq_distance(zero, zero) == 0
    assert pdq_distance(zero, ones) == 256
    assert pdq_distance(zero, "0" * 63 + "1") == 1
    assert pdq_distance("8" + "0" * 63, zero) == 1
    assert pdq_distance("A" * 64, "a" * 64) == 0
    assert pdq_distance("a" * 64, "5" * 64) == 256


@pytest.mark.parametrize("bad", ["", "0" * 63, "0" * 65, "g" * 64, "0x" + "0" * 62, " " + "0" * 63, "0_" + "0" * 62, "-" + "0" * 63])
def test_pdq_distance_rejects_what_is_not_a_pdq_hash(bad: str) -> None:
    with pytest.raises(ValueError, match="not a PDQ hash"):
        pdq_distance(bad, "0" * 64)
    with pytest.raises(ValueError, match="not a PDQ hash"):
        pdq_distance("0" * 64, bad)


# --- what the CLI prints -------------------------------------------------------------------------------


def test_hash_command_output_records(reference: Path, tmp_path: Path) -> None:
    images = [_pdq(reference) / DIH / "bridge-1-original.jpg", _pdq(reference) / "src/pdq/data/misc-images/wee.jpg"]
    text = tmp_path / "t.txt"
    text.write_text("x", encoding="utf-8")
    plain = hash_command_output([*images, text], dihedral=False)
    assert [set(r) for r in plain] == [JSON_KEYS] * 3
    assert [r["path"] for r in plain] == [str(p) for p in [*images, text]]
    assert plain[0] == as_json_record(hash_file(images[0]), dihedral=False)
    assert (plain[2]["pdq"], plain[2]["quality"]) == (None, None)
    json.dumps(plain)  # plain JSON types only

    with_dih = hash_command_output([*images, text], dihedral=True)
    assert [set(r) for r in with_dih] == [JSON_KEYS | {"dihedral"}] * 3
    first = with_dih[0]["dihedral"]
    assert isinstance(first, dict) and list(first) == list(DIHEDRAL_NAMES) and first["original"] == plain[0]["pdq"]
    assert with_dih[2]["dihedral"] is None
    json.dumps(with_dih)


def _tiptriage() -> Path:
    exe = Path(sys.executable).parent / "tiptriage"
    if not exe.exists():
        pytest.skip(f"no tiptriage executable next to {sys.executable}")
    wired = subprocess.run([exe, "hash", "--help"], capture_output=True, timeout=60, check=False)
    if wired.returncode != 0:
        pytest.skip("`tiptriage hash` is not wired into the CLI yet")
    return exe


@pytest.mark.parametrize("dihedral", [False, True], ids=["plain", "dihedral"])
def test_cli_hash_json(reference: Path, dihedral: bool) -> None:
    exe = _tiptriage()
    images = [_pdq(reference) / DIH / "bridge-1-original.jpg", _pdq(reference) / "src/pdq/data/misc-images/wee.jpg"]
    args = [str(exe), "hash", "--json", *(["--dihedral"] if dihedral else []), *map(str, images)]
    run = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    records = json.loads(run.stdout)  # fails unless stdout is exactly one JSON document
    assert isinstance(records, list) and len(records) == 2
    expected_keys = JSON_KEYS | ({"dihedral"} if dihedral else set())
    for record, image in zip(records, images, strict=True):
        assert isinstance(record, dict) and set(record) == expected_keys
        expected: FileHashes = hash_file(image, dihedral)
        assert record == as_json_record(expected, dihedral)
