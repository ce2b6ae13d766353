"""Matching reported files against the hash indexes, and turning raw hits into results.

Pure functions over data: the indexes and the entries' bank metadata come in, match rows and
per-report summaries go out. Bank rules applied here:
- a perceptual hit counts only within its bank's ``max_distance`` and when the query's quality (if known)
  reaches the bank's ``min_quality``;
- a hit in a negative bank suppresses the other banks' hits of the same hash type on that file (a known
  false positive); the suppressed hits are kept, marked with the negative bank, so the reason is visible.
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from tiptriage.hashes.exact import WIDTHS, ExactIndex
from tiptriage.hashes.pdq_index import PDQIndex, pdq_from_hex
from tiptriage.hashes.video import VideoIndex, parse_vpdq, usable
from tiptriage.model import HashType

MAX_RADIUS = 63  # the widest per-bank threshold accepted
VIDEO_QUERY_MIN_QUALITY = 50  # python-threatexchange's VPDQ_QUALITY_THRESHOLD


@dataclass(frozen=True)
class Hit:
    report_id: str
    file_id: str
    entry_id: int
    hash_type: HashType
    distance: int  # 0 for exact


@dataclass
class HashIndexes:
    exact: ExactIndex = field(default_factory=ExactIndex)
    pdq: PDQIndex = field(default_factory=PDQIndex)
    seq: int = 0  # the newest hash-set import reflected here
    max_pdq_id: int = 0
    video: VideoIndex = field(default_factory=VideoIndex)

    def refresh(self, changes: Iterable[list[tuple[int, str, str, bool]]], seq: int) -> int:
        """Apply entry changes (id, hash type, value, deleted) made after ``self.seq``; returns how many.

        Entry ids only grow and an id always names the same value, so a change is an addition (a new id),
        a withdrawal, or a withdrawn entry coming back: nothing is ever rebuilt.
        """
        applied = 0
        for batch in changes:
            applied += len(batch)
            exact_max, pdq_max = self.exact.max_entry_id, self.max_pdq_id  # ids above these are new
            exact_types = {t.value for t in WIDTHS}
            for t in WIDTHS:
                new = [(i, v) for i, ht, v, d in batch if ht == t.value and not d and i > exact_max]
                if new:
                    self.exact.add(t, [v for _, v in new], np.array([i for i, _ in new], dtype=np.int64))
            self.exact.remove(i for i, ht, _, d in batch if ht in exact_types and d)
            self.exact.restore(i for i, ht, _, d in batch if ht in exact_types and not d and i <= exact_max)
            gone = [i for i, ht, _, d in batch if ht == HashType.PDQ.value and d and i <= pdq_max]
            if gone:
                self.pdq.remove(np.array(gone, dtype=np.int64))
            # new entries, and withdrawn ones that came back (removal only marks rows dead, so they are added again)
            pdq_add = [(i, v) for i, ht, v, d in batch if ht == HashType.PDQ.value and not d]
            if pdq_add:
                self.pdq.add(pdq_from_hex([v for _, v in pdq_add]), np.array([i for i, _ in pdq_add], dtype=np.int64))
                self.max_pdq_id = max(self.max_pdq_id, max(i for i, _ in pdq_add))
            for i, ht, v, d in batch:
                if ht != HashType.VPDQ.value:
                    continue
                self.video.remove(i)  # a withdrawal, or a re-add of the same entry: never two copies
                if not d:
                    with contextlib.suppress(ValueError):  # refused at import; one that slipped through matches nothing
                        self.video.add(i, usable(parse_vpdq(v), 0))
        self.seq = seq
        return applied

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.exact.save(folder)
        self.pdq.save(folder / "pdq")
        self.video.save(folder / "video")
        (folder / "manifest.json").write_text(json.dumps({"seq": self.seq, "max_pdq_id": self.max_pdq_id, "format": 1}))

    @classmethod
    def load(cls, folder: Path) -> HashIndexes:
        manifest = folder / "manifest.json"
        if not manifest.exists():
            return cls()
        meta = json.loads(manifest.read_text())
        return cls(ExactIndex.load(folder), PDQIndex.load(folder / "pdq"), int(meta["seq"]), int(meta["max_pdq_id"]), VideoIndex.load(folder / "video"))


def find_hits(rows: list[dict[str, Any]], idx: HashIndexes, radius: int = 31) -> list[Hit]:
    """Raw hits for report file hash rows (report_id, file_id, hash_type, value), vectorised per type.

    ``radius`` is the widest threshold of any bank: search cost grows steeply with it (at 10M hashes
    about 6,000 queries/s at 31 and 40/s at 63), so it is never wider than some bank needs."""
    hits: list[Hit] = []
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_type[r["hash_type"]].append(r)
    for t in WIDTHS:
        group = by_type.get(t.value, [])
        for r, ids in zip(group, idx.exact.lookup(t, [g["value"] for g in group]), strict=True):
            hits.extend(Hit(r["report_id"], r["file_id"], i, t, 0) for i in ids)
    group = by_type.get(HashType.PDQ.value, [])
    if group and len(idx.pdq):
        qi, found, dist = idx.pdq.search(pdq_from_hex([g["value"] for g in group]), max_distance=radius)
        for q, i, d in zip(qi.tolist(), found.tolist(), dist.tolist(), strict=True):
            r = group[q]
            hits.append(Hit(r["report_id"], r["file_id"], int(i), HashType.PDQ, int(d)))
    for r in by_type.get(HashType.VPDQ.value, []):
        try:
            frames = usable(parse_vpdq(r["value"]), VIDEO_QUERY_MIN_QUALITY)
        except ValueError:
            continue  # an unreadable vPDQ from a provider matches nothing; the file counts as novel
        for entry_id, d in idx.video.search(frames, radius):
            hits.append(Hit(r["report_id"], r["file_id"], entry_id, HashType.VPDQ, d))
    return hits


def resolve(
    hits: list[Hit],
    entries: dict[int, dict[str, Any]],
    file_rows: list[dict[str, Any]],
    file_counts: dict[str, int],
    viral: set[tuple[str, str]],
    seq: int,
    now: datetime,
    quality: dict[tuple[str, str], int] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Apply bank thresholds and negative banks; return (match rows, per-report summaries)."""
    quality = quality or {}
    kept: list[tuple[Hit, dict[str, Any]]] = []
    for h in hits:
        e = entries.get(h.entry_id)
        if e is None or e["deleted"]:
            continue
        if h.hash_type in (HashType.PDQ, HashType.VPDQ):
            if h.distance > e["max_distance"]:
                continue
            q = quality.get((h.report_id, h.file_id))
            if q is not None and q < e["min_quality"]:
                continue
        kept.append((h, e))
    negative: dict[tuple[str, str, HashType], str] = {}
    for h, e in kept:
        if e["negative"]:
            negative.setdefault((h.report_id, h.file_id, h.hash_type), e["bank"])
    rows = []
    for h, e in kept:
        if e["negative"]:
            continue
        rows.append({
            "report_id": h.report_id, "file_id": h.file_id, "bank": e["bank"], "entry_id": h.entry_id,
            "hash_type": h.hash_type.value, "match_type": {HashType.PDQ: "perceptual", HashType.VPDQ: "video"}.get(h.hash_type, "exact"),
            "distance": h.distance, "category": e["category"], "series": e["series"], "victim_identified": e["victim_identified"],
            "suppressed_by": negative.get((h.report_id, h.file_id, h.hash_type)),
        })
    known: dict[str, set[str]] = defaultdict(set)
    unidentified: set[str] = set()
    for r in rows:
        if r["suppressed_by"] is None:
            known[r["report_id"]].add(r["file_id"])
            if r["series"] and r["victim_identified"] is False:
                unidentified.add(r["report_id"])
    hashed: dict[str, set[str]] = defaultdict(set)
    viral_files: dict[str, set[str]] = defaultdict(set)
    for fr in file_rows:
        hashed[fr["report_id"]].add(fr["file_id"])
        if (fr["hash_type"], fr["value"]) in viral:
            viral_files[fr["report_id"]].add(fr["file_id"])
    summaries = []
    for rid, n_files in file_counts.items():
        k = len(known[rid])
        summaries.append({
            "report_id": rid, "files": n_files, "known_files": k, "novel_files": len(hashed[rid]) - k,
            "unhashed_files": n_files - len(hashed[rid]), "viral_files": len(viral_files[rid]),
            "unidentified_victim_series": rid in unidentified, "matched_seq": seq, "matched_at": now,
        })
    return rows, summaries
