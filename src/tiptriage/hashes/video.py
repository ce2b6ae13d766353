"""Video matching on vPDQ: per-frame PDQ hashes, matched when enough of the query's frames match.

A vPDQ hash arrives as text in either of two forms:
- lines ``frame_number,pdq_hex,quality,timestamp`` (the vpdq library's documented output), separated by
  new lines or ``;``;
- the JSON list python-threatexchange writes: ``[{"hash": hex, "quality": q, "timestamp": t}, ...]``.
A query video matches a known video when at least ``QUERY_MATCH_PERCENT`` of its frames (those of
quality >= the bank's floor) lie within the bank's PDQ threshold of some frame of the known video
(python-threatexchange's VPDQ_QUERY_MATCH_THRESHOLD_PERCENT is 80 with distance 31 and quality 50).
The match's distance is the smallest radius at which that share is reached, so a bank threshold
applies to it exactly as to a single PDQ. Hashing videos needs the optional ``tiptriage[video]`` extra
(the vpdq library, built against FFmpeg); matching needs nothing beyond numpy.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tiptriage.hashes.entries import PDQ_ALL_ONE, PDQ_ALL_ZERO
from tiptriage.hashes.pdq_index import PDQIndex, pdq_from_hex

QUERY_MATCH_PERCENT = 80.0
FRAME_BITS = 20  # frame ids are entry_id << 20 | frame number: up to a million frames per video
_HEX = set("0123456789abcdef")


@dataclass(frozen=True)
class Frame:
    pdq: str
    quality: int | None


def parse_vpdq(text: str) -> list[Frame]:
    """Frames of a vPDQ hash in either accepted form; raises ValueError naming what is wrong."""
    t = text.strip()
    if not t:
        raise ValueError("empty vPDQ hash")
    frames: list[Frame] = []
    if t.startswith("["):
        try:
            items = json.loads(t)
        except json.JSONDecodeError as exc:
            raise ValueError(f"vPDQ JSON does not parse: {exc.msg} at {exc.pos}") from None
        for i, it in enumerate(items):
            if not isinstance(it, dict) or not isinstance(it.get("hash"), str):
                raise ValueError(f"vPDQ frame {i} has no hash")
            q = it.get("quality")
            frames.append(_frame(it["hash"], int(q) if isinstance(q, int | float) else None, i))
    else:
        for i, line in enumerate(p for p in t.replace(";", "\n").splitlines() if p.strip()):
            parts = [x.strip() for x in line.split(",")]
            if len(parts) < 2:
                raise ValueError(f"vPDQ frame {i}: expected frame_number,pdq_hex,quality,timestamp")
            quality = None
            if len(parts) > 2 and parts[2]:
                try:
                    quality = int(float(parts[2]))
                except ValueError:
                    raise ValueError(f"vPDQ frame {i}: quality {parts[2][:20]!r} is not a number") from None
            frames.append(_frame(parts[1], quality, i))
    if not frames:
        raise ValueError("vPDQ hash without frames")
    return frames


def _frame(hex_value: str, quality: int | None, i: int) -> Frame:
    v = hex_value.strip().lower()
    if len(v) != 64 or not set(v) <= _HEX:
        raise ValueError(f"vPDQ frame {i}: PDQ must be 64 hex digits")
    return Frame(v, quality)


def usable(frames: list[Frame], min_quality: int) -> list[str]:
    """Frame hashes fit to match: known quality at least the floor, and not a blank frame."""
    return [f.pdq for f in frames if (f.quality is None or f.quality >= min_quality) and f.pdq not in (PDQ_ALL_ZERO, PDQ_ALL_ONE)]


class VideoIndex:
    """All known videos' frames in one PDQ index; frame ids carry their entry id."""

    def __init__(self) -> None:
        self.frames = PDQIndex()
        self.frame_counts: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.frame_counts)

    def add(self, entry_id: int, frames: list[str]) -> None:
        if not frames:
            return
        n = min(len(frames), 1 << FRAME_BITS)
        ids = (np.int64(entry_id) << FRAME_BITS) + np.arange(n, dtype=np.int64)
        self.frames.add(pdq_from_hex(frames[:n]), ids)
        self.frame_counts[entry_id] = n

    def remove(self, entry_id: int) -> None:
        n = self.frame_counts.pop(entry_id, 0)
        if n:
            self.frames.remove((np.int64(entry_id) << FRAME_BITS) + np.arange(n, dtype=np.int64))

    def search(self, query_frames: list[str], radius: int, percent: float = QUERY_MATCH_PERCENT) -> list[tuple[int, int]]:
        """(entry id, distance) for every known video that ``percent`` of the query frames reach within ``radius``."""
        if not query_frames or not self.frame_counts:
            return []
        qi, ids, dist = self.frames.search(pdq_from_hex(query_frames), max_distance=radius)
        need = max(1, math.ceil(len(query_frames) * percent / 100.0))
        entries = ids >> FRAME_BITS
        best: dict[tuple[int, int], int] = {}  # (entry, query frame) → nearest frame distance
        for e, q, d in zip(entries.tolist(), qi.tolist(), dist.tolist(), strict=True):
            key = (int(e), int(q))
            if d < best.get(key, 1 << 30):
                best[key] = int(d)
        per_entry: dict[int, list[int]] = {}
        for (e, _q), d in best.items():
            per_entry.setdefault(e, []).append(d)
        out = []
        for e, ds in per_entry.items():
            if len(ds) >= need:
                out.append((e, sorted(ds)[need - 1]))
        return sorted(out)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.frames.save(folder / "frames")
        (folder / "videos.json").write_text(json.dumps({str(k): v for k, v in self.frame_counts.items()}))

    @classmethod
    def load(cls, folder: Path) -> VideoIndex:
        idx = cls()
        if (folder / "videos.json").exists():
            idx.frames = PDQIndex.load(folder / "frames")
            idx.frame_counts = {int(k): int(v) for k, v in json.loads((folder / "videos.json").read_text()).items()}
        return idx


def vpdq_available() -> bool:
    try:
        import vpdq  # type: ignore[import-not-found, import-untyped, unused-ignore]  # noqa: F401
    except ImportError:
        return False
    return True


def hash_video(path: Path, seconds_per_hash: float = 1.0) -> str:
    """vPDQ of a video file the operator holds, in the line form above. Needs ``tiptriage[video]``."""
    try:
        import vpdq
    except ImportError:
        raise RuntimeError(
            "video hashing is unavailable: install the optional extra tiptriage[video] (the vpdq library, "
            "which builds against Debian's FFmpeg development packages libavcodec-dev libavformat-dev libswscale-dev)"
        ) from None
    features = vpdq.computeHash(str(path), seconds_per_hash=seconds_per_hash)
    return "\n".join(f"{f.frame_number},{f.hex},{f.quality},{f.timestamp}" for f in features)
