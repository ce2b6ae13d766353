"""Exact-recall nearest-neighbour search over PDQ hashes (256 bits) by multi-index hashing.

Design (Norouzi, Punjani & Fleet, "Fast exact search in Hamming space with multi-index hashing", 2014):

* The 256 bits are cut into ``m`` contiguous substrings. If two codes differ in at most ``r`` bits, with
  ``r = s*m + a`` (``0 <= a < m``), then some substring among the first ``a + 1`` differs in at most ``s`` bits
  or some substring among the rest differs in at most ``s - 1`` (otherwise the total would be at least
  ``(a+1)(s+1) + (m-a-1)s = r + 1``). Searching each substring at that radius and verifying every candidate on
  all 256 bits is therefore exact: recall is 1.0 by construction, not by tuning.
* Each substring is a bucket index: row ids sorted by substring value, plus either a direct-address table of
  bucket starts (large segments: one gather per probe instead of a binary search) or the sorted values
  themselves for ``np.searchsorted`` (small segments, where a table of 2**bits entries would dwarf the data).
* Queries are processed in batches: every substring neighbour of every query in the batch is one element of
  one numpy array, so there is no Python loop per query, probe or candidate.
* Updates are log-structured: new hashes land in a small unindexed buffer (brute force), the buffer becomes a
  segment of its own, and segments are merged only when a newer one grows beyond a fraction of the older one
  (Bentley–Saxe), so adding 10,000 hashes to 10 million never re-sorts the 10 million. Removal is a
  tombstone mask; merges drop tombstoned rows.
* Persistence is one ``.npz`` of plain integer arrays and a JSON header, read with ``allow_pickle=False``:
  loading an index file cannot run code.

Not safe for concurrent mutation: one writer, and no searches while it writes.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import combinations, pairwise
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["DEFAULT_MAX_DISTANCE", "PDQIndex", "pdq_from_hex", "pdq_to_hex"]

BITS = 256
WORDS = BITS // 64
DEFAULT_MAX_DISTANCE = 31  # PDQ's own "confident match" threshold
FORMAT = "tiptriage-pdq-index"
FORMAT_VERSION = 1

U64 = NDArray[np.uint64]
U32 = NDArray[np.uint32]
I32 = NDArray[np.int32]
I64 = NDArray[np.int64]
Bool = NDArray[np.bool_]

# Below this many rows a segment is scanned exhaustively: building and probing substring indexes costs more
# than comparing every row.
BRUTE_FORCE_ROWS = 2048
# A newer segment is merged into the one before it once the older is at most this many times larger, so
# segment sizes grow geometrically and a row is re-indexed O(log n) times over its life.
MERGE_RATIO = 4
# A direct-address bucket table is used when it has at most this many entries per row; beyond it (small
# segments) binary search over the sorted substring values is cheaper in memory and about as fast.
TABLE_SLOTS_PER_ROW = 8
# Probes (substring neighbours) handled per numpy pass: large enough to amortise interpreter overhead,
# small enough that the working arrays stay in cache and memory stays bounded at large radii.
PROBE_BATCH = 1 << 18
BRUTE_FORCE_CELLS = 1 << 16
# Relative cost of verifying one candidate (random gather of 32 bytes + popcount) against one probe (one
# table or binary-search lookup). Measured on the reference machine; only steers the choice of m.
CANDIDATE_COST = 3.0
SEARCHSORTED_PROBE_COST = 4.0
SCAN_ROW_COST = 0.5


def pdq_from_hex(values: Sequence[str]) -> NDArray[np.uint8]:
    """Parse 64-hex-digit PDQ hashes into an ``(n, 32)`` uint8 array (first hex pair = first byte)."""
    for i, v in enumerate(values):
        if len(v) != 64:
            raise ValueError(f"PDQ hash {i} has {len(v)} hex digits, expected 64")
    if not values:
        return np.zeros((0, 32), dtype=np.uint8)
    try:
        raw = bytes.fromhex("".join(values))
    except ValueError as exc:
        raise ValueError(f"PDQ hashes contain a non-hex character: {exc}") from None
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, 32).copy()


def pdq_to_hex(hashes: NDArray[np.uint8]) -> list[str]:
    """Inverse of :func:`pdq_from_hex`."""
    arr = np.ascontiguousarray(hashes, dtype=np.uint8).reshape(-1, 32)
    return [row.tobytes().hex() for row in arr]


def _to_words(hashes: NDArray[Any] | Sequence[str]) -> U64:
    """(n, 32) bytes or hex strings -> (n, 4) uint64 whose bits, read most significant first, are the hash's bits.

    Big-endian words keep substring extraction a matter of shifts on at most two adjacent words.
    """
    if not isinstance(hashes, np.ndarray):
        hashes = pdq_from_hex(list(hashes))
    if hashes.dtype != np.uint8 or hashes.ndim != 2 or hashes.shape[1] != 32:
        raise ValueError(f"PDQ hashes must be an (n, 32) uint8 array, got {hashes.dtype} {hashes.shape}")
    be = np.ascontiguousarray(hashes).view(">u8")
    return be.astype(np.uint64)


def _from_words(words: U64) -> NDArray[np.uint8]:
    return np.ascontiguousarray(words.astype(">u8")).view(np.uint8).reshape(-1, 32)


def _distances(a: U64, b: U64) -> NDArray[np.uint16]:
    """Row-wise Hamming distance of two (k, 4) word arrays.

    Per-column popcounts summed in place: summing a (k, 4) array along axis 1 is several times slower.
    """
    d: NDArray[np.uint16] = np.bitwise_count(a[:, 0] ^ b[:, 0]).astype(np.uint16)
    for w in range(1, WORDS):
        d += np.bitwise_count(a[:, w] ^ b[:, w])
    return d


def _substring_keys(words: U64, start: int, length: int) -> U32:
    w, offset = divmod(start, 64)
    end = offset + length
    if end <= 64:
        v = words[:, w] >> np.uint64(64 - end)
    else:
        spill = end - 64
        v = (words[:, w] << np.uint64(spill)) | (words[:, w + 1] >> np.uint64(64 - spill))
    return (v & np.uint64((1 << length) - 1)).astype(np.uint32)


def _partition(m: int) -> list[tuple[int, int]]:
    """(start, length) of m contiguous substrings, longest first (they take the larger radius; see _radii)."""
    base, extra = divmod(BITS, m)
    lengths = [base + 1] * extra + [base] * (m - extra)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).tolist()
    return list(zip(starts, lengths, strict=True))


def _radii(m: int, r: int) -> list[int]:
    """Per-substring search radius for total radius r (Norouzi's refined pigeonhole; -1 = skip substring).

    The first a+1 substrings get s, the rest s-1. Substrings are ordered longest first because a longer
    substring at the same radius yields fewer candidates per probe.
    """
    s, a = divmod(r, m)
    return [s if k <= a else s - 1 for k in range(m)]


@lru_cache(maxsize=64)
def _flip_masks(length: int, radius: int) -> U32:
    """Every XOR mask of at most ``radius`` set bits in a ``length``-bit word, smallest weight first."""
    masks = [0]
    for k in range(1, radius + 1):
        masks.extend(sum(1 << b for b in bits) for bits in combinations(range(length), k))
    out = np.array(masks, dtype=np.uint32)
    out.setflags(write=False)
    return out


def _use_table(length: int, n: int) -> bool:
    # Below 32 bits so that probe + 1 cannot wrap in uint32.
    return length < 32 and (1 << length) <= TABLE_SLOTS_PER_ROW * n


def _ball(length: int, radius: int) -> int:
    return sum(math.comb(length, k) for k in range(radius + 1)) if radius >= 0 else 0


def _estimated_cost(m: int, n: int, r: int) -> float:
    """Relative per-query cost of a segment of n rows cut into m substrings, searched at radius r."""
    cost = 0.0
    for (_, length), radius in zip(_partition(m), _radii(m, r), strict=True):
        probes = _ball(length, radius)
        per_probe = 1.0 if _use_table(length, n) else SEARCHSORTED_PROBE_COST
        cost += probes * (per_probe + CANDIDATE_COST * n / (1 << length))
    return cost


def choose_substrings(n: int, r: int = DEFAULT_MAX_DISTANCE) -> int:
    """The number of substrings that minimises the estimated query cost for n rows at radius r.

    At least 8 so a substring value fits in uint32.
    """
    return min(range(8, 33), key=lambda m: _estimated_cost(m, n, r))


def _expand_ranges(lo: NDArray[Any], counts: NDArray[Any]) -> I64:
    """Concatenation of arange(lo[i], lo[i] + counts[i]) for all i, without a Python loop."""
    ends = np.cumsum(counts, dtype=np.int64)
    total = int(ends[-1]) if len(ends) else 0
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    shift: I64 = np.repeat(lo.astype(np.int64) - (ends - counts), counts)
    return np.arange(total, dtype=np.int64) + shift


@dataclass
class _Substring:
    start: int
    length: int
    rows: I32  # row numbers sorted by substring value
    table: I32 | None = None  # bucket starts into rows, 2**length + 1 entries (large segments)
    sorted_keys: U32 | None = None  # substring values in rows order (small segments)

    def lookup(self, probes: U32) -> tuple[NDArray[Any], NDArray[Any]]:
        """Start and length, in ``rows``, of the bucket of each probe value."""
        if self.table is not None:
            lo = self.table[probes]
            return lo, self.table[probes + np.uint32(1)] - lo
        assert self.sorted_keys is not None
        left = np.searchsorted(self.sorted_keys, probes, side="left")
        return left, np.searchsorted(self.sorted_keys, probes, side="right") - left


@dataclass
class _Segment:
    words: U64  # (n, 4)
    ids: I64
    alive: Bool
    substrings: list[_Substring] = field(default_factory=list)
    _id_order: I64 | None = None  # argsort of ids, built on first remove

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls) -> _Segment:
        return cls(words=np.zeros((0, WORDS), np.uint64), ids=np.zeros(0, np.int64), alive=np.zeros(0, bool))

    @property
    def indexed(self) -> bool:
        return bool(self.substrings)

    @property
    def m(self) -> int:
        return len(self.substrings)

    @classmethod
    def build(cls, words: U64, ids: I64, alive: Bool | None = None, m: int | None = None, threads: int = 1) -> _Segment:
        n = len(ids)
        if n >= 1 << 31:
            raise ValueError("a segment holds fewer than 2**31 rows")
        seg = cls(words=words, ids=ids, alive=np.ones(n, dtype=bool) if alive is None else alive)
        if n == 0 or (n < BRUTE_FORCE_ROWS and m is None):
            return seg
        m = m if m is not None else choose_substrings(n)
        parts = _partition(m)

        def one(part: tuple[int, int]) -> _Substring:
            start, length = part
            keys = _substring_keys(words, start, length)
            rows = np.argsort(keys).astype(np.int32)
            return _substring_from_sorted(start, length, keys, rows)

        if threads > 1:
            with ThreadPoolExecutor(threads) as pool:
                seg.substrings = list(pool.map(one, parts))
        else:
            seg.substrings = [one(p) for p in parts]
        return seg

    def id_order(self) -> I64:
        if self._id_order is None:
            self._id_order = np.argsort(self.ids, kind="stable")
        return self._id_order

    def remove(self, ids: I64) -> int:
        order = self.id_order()
        sorted_ids = self.ids[order]
        lo = np.searchsorted(sorted_ids, ids, side="left")
        hi = np.searchsorted(sorted_ids, ids, side="right")
        rows = order[_expand_ranges(lo, hi - lo)]
        newly = int(np.count_nonzero(self.alive[rows]))
        self.alive[rows] = False
        return newly

    def search(self, q: U64, r: int) -> tuple[I64, I64, NDArray[np.uint16]]:
        """(query row, segment row, distance) of every live row within r of some query in q."""
        if not self.indexed or _estimated_cost(self.m, len(self), r) > len(self) * SCAN_ROW_COST:
            return self._scan(q, r)
        radii = _radii(self.m, r)
        probes_per_query = sum(_ball(s.length, rad) for s, rad in zip(self.substrings, radii, strict=True))
        batch = max(1, PROBE_BATCH // max(1, probes_per_query))
        out_q: list[I64] = []
        out_r: list[I64] = []
        out_d: list[NDArray[np.uint16]] = []
        for b0 in range(0, len(q), batch):
            qb = q[b0 : b0 + batch]
            cand_q: list[I64] = []
            cand_r: list[NDArray[np.int32]] = []
            for sub, rad in zip(self.substrings, radii, strict=True):
                if rad < 0:
                    continue
                masks = _flip_masks(sub.length, rad)
                qkeys = _substring_keys(qb, sub.start, sub.length)
                probes = (qkeys[:, None] ^ masks[None, :]).ravel()
                lo, cnt = sub.lookup(probes)
                hit = np.flatnonzero(cnt)
                if len(hit) == 0:
                    continue
                lo, cnt = lo[hit], cnt[hit]
                pos = _expand_ranges(lo, cnt)
                cand_r.append(sub.rows[pos])
                cand_q.append(np.repeat(hit // len(masks), cnt))
            if not cand_r:
                continue
            cq = np.concatenate(cand_q)
            cr = np.concatenate(cand_r)
            d = _distances(np.take(self.words, cr, axis=0), qb[cq])
            keep = np.flatnonzero(d <= r)
            cq, cr64, d = cq[keep] + b0, cr[keep].astype(np.int64), d[keep]
            # A close neighbour usually shares several substrings with the query: report it once.
            if len(self.substrings) > 1 and len(cq):
                _, first = np.unique(cq * len(self) + cr64, return_index=True)
                cq, cr64, d = cq[first], cr64[first], d[first]
            out_q.append(cq)
            out_r.append(cr64)
            out_d.append(d)
        return self._alive_only(out_q, out_r, out_d)

    def _scan(self, q: U64, r: int) -> tuple[I64, I64, NDArray[np.uint16]]:
        n = len(self)
        out_q: list[I64] = []
        out_r: list[I64] = []
        out_d: list[NDArray[np.uint16]] = []
        if n == 0:
            return self._alive_only(out_q, out_r, out_d)
        rows_per = max(1, min(n, BRUTE_FORCE_CELLS))
        q_per = max(1, BRUTE_FORCE_CELLS // rows_per)
        for r0 in range(0, n, rows_per):
            block = self.words[r0 : r0 + rows_per]
            for q0 in range(0, len(q), q_per):
                qb = q[q0 : q0 + q_per]
                d = np.bitwise_count(qb[:, None, 0] ^ block[None, :, 0]).astype(np.uint16)
                for w in range(1, WORDS):
                    d += np.bitwise_count(qb[:, None, w] ^ block[None, :, w])
                qi, ri = np.nonzero(d <= r)
                out_q.append(qi.astype(np.int64) + q0)
                out_r.append(ri.astype(np.int64) + r0)
                out_d.append(d[qi, ri])
        return self._alive_only(out_q, out_r, out_d)

    def _alive_only(self, qs: list[I64], rs: list[I64], ds: list[NDArray[np.uint16]]) -> tuple[I64, I64, NDArray[np.uint16]]:
        if not qs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint16)
        cq, cr, d = np.concatenate(qs), np.concatenate(rs), np.concatenate(ds)
        live = np.flatnonzero(self.alive[cr])
        return cq[live], cr[live], d[live]


def _substring_from_sorted(start: int, length: int, keys: U32, rows: I32) -> _Substring:
    n = len(rows)
    if _use_table(length, n):
        counts = np.bincount(keys, minlength=1 << length)
        table = np.zeros((1 << length) + 1, dtype=np.int32)
        np.cumsum(counts, out=table[1:])
        return _Substring(start, length, rows, table=table)
    return _Substring(start, length, rows, sorted_keys=keys[rows])


class PDQIndex:
    """Exact Hamming-radius search over PDQ hashes, with cheap incremental adds and tombstone removal.

    >>> idx = PDQIndex()
    >>> idx.add(pdq_from_hex(["0" * 64, "f" * 64]), np.array([1, 2]))
    >>> idx.search(pdq_from_hex(["0" * 63 + "1"]))
    (array([0]), array([1]), array([1], dtype=int32))
    """

    def __init__(self, *, threads: int | None = None, substrings: int | None = None) -> None:
        """``threads``: worker threads for search and build (default: the CPUs this process may use).

        ``substrings``: force every segment to this many substrings (8..32), indexing even tiny segments;
        by default each segment picks the cheapest for its size (11 at 10M rows, 16 at 10k).
        """
        if substrings is not None and not 8 <= substrings <= 32:
            raise ValueError(f"substrings must be within 8..32, got {substrings}")
        self._segments: list[_Segment] = []  # indexed, oldest (largest) first
        self._buffer = _Segment.empty()  # newest rows, unindexed, scanned exhaustively
        self.threads = threads if threads is not None else max(1, len(os.sched_getaffinity(0)))
        self.substrings = substrings

    # --- size -------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Live (not removed) entries."""
        return sum(int(np.count_nonzero(s.alive)) for s in self._all_segments())

    @property
    def segment_sizes(self) -> list[int]:
        """Rows per segment, oldest first, the unindexed buffer last (tombstoned rows included)."""
        return [len(s) for s in self._all_segments()]

    @property
    def nbytes(self) -> int:
        """Bytes held by the index's arrays."""
        total = 0
        for s in self._all_segments():
            total += s.words.nbytes + s.ids.nbytes + s.alive.nbytes
            if s._id_order is not None:
                total += s._id_order.nbytes
            for sub in s.substrings:
                total += sub.rows.nbytes
                total += sub.table.nbytes if sub.table is not None else 0
                total += sub.sorted_keys.nbytes if sub.sorted_keys is not None else 0
        return total

    # --- updates ------------------------------------------------------------------------------------------

    def add(self, hashes: NDArray[np.uint8] | Sequence[str], ids: NDArray[np.integer[Any]] | Sequence[int]) -> None:
        """Add hashes ((n, 32) uint8, or 64-hex strings) with their int64 ids. Ids need not be unique."""
        words = _to_words(hashes)
        id_arr = np.asarray(ids, dtype=np.int64).reshape(-1)
        if len(id_arr) != len(words):
            raise ValueError(f"{len(words)} hashes but {len(id_arr)} ids")
        if len(words) == 0:
            return
        b = self._buffer
        alive = np.ones(len(words), bool)
        if len(b):
            # The buffer holds fewer than BRUTE_FORCE_ROWS rows, so copying it on every add stays cheap.
            words, id_arr, alive = np.concatenate([b.words, words]), np.concatenate([b.ids, id_arr]), np.concatenate([b.alive, alive])
        else:
            id_arr = id_arr.copy()  # the caller keeps its array; words is already our own copy
        self._buffer = _Segment(words=words, ids=id_arr, alive=alive)
        if len(self._buffer) >= BRUTE_FORCE_ROWS:
            self._flush()

    def _flush(self) -> None:
        """Index the buffer as a new segment, then merge while the newest segment is large next to the one before."""
        if not len(self._buffer):
            return
        self._segments.append(self._buffer)
        self._buffer = _Segment.empty()
        self._segments[-1] = self._merge(self._segments[-1])
        while len(self._segments) >= 2 and len(self._segments[-2]) <= MERGE_RATIO * len(self._segments[-1]):
            self._segments[-2:] = [self._merge(*self._segments[-2:])]
        self._segments = [s for s in self._segments if len(s)]

    def _merge(self, *segments: _Segment) -> _Segment:
        """One indexed segment of the live rows of ``segments`` (tombstoned rows are dropped here).

        The old substring indexes are freed before the new ones are built, so merging into a 10M-row segment
        does not hold two full sets of indexes at once. Should the build fail (memory), the old segments are
        left unindexed: still searched, exhaustively, so results stay exact.
        """
        if len(segments) == 1 and segments[0].alive.all():
            words, ids = segments[0].words, segments[0].ids
        else:
            words = np.concatenate([s.words[s.alive] for s in segments])
            ids = np.concatenate([s.ids[s.alive] for s in segments])
        for s in segments:
            s.substrings = []
        return _Segment.build(words, ids, m=self.substrings, threads=self.threads)

    def remove(self, ids: NDArray[np.integer[Any]] | Sequence[int]) -> int:
        """Tombstone every entry carrying one of these ids; returns how many entries were removed."""
        id_arr = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
        removed = sum(s.remove(id_arr) for s in self._all_segments())
        # Searches still visit tombstoned rows: reindex a segment once most of it is dead.
        for i, s in enumerate(self._segments):
            if len(s) and np.count_nonzero(s.alive) * 2 < len(s):
                self._segments[i] = self._merge(s)
        self._segments = [s for s in self._segments if len(s)]
        return removed

    def compact(self) -> None:
        """Merge everything into one segment without tombstones (e.g. before saving a long-lived index)."""
        self._segments = [*self._segments, self._buffer]
        self._buffer = _Segment.empty()
        merged = self._merge(*self._segments)
        self._segments = [merged] if len(merged) else []

    def _all_segments(self) -> list[_Segment]:
        return [*self._segments, self._buffer]

    # --- search ---------------------------------------------------------------------------------------------

    def search(self, queries: NDArray[np.uint8] | Sequence[str], max_distance: int = DEFAULT_MAX_DISTANCE) -> tuple[I64, I64, I32]:
        """Every (query index, id, distance) with distance <= max_distance, sorted by query, distance, id.

        Exact for any max_distance in 0..256; cost grows steeply past ~60.
        """
        if not 0 <= max_distance <= BITS:
            raise ValueError(f"max_distance must be within 0..{BITS}, got {max_distance}")
        q = _to_words(queries)
        segments = self._all_segments()
        chunks = self._query_chunks(len(q))

        def run(bounds: tuple[int, int]) -> tuple[list[I64], list[I64], list[I32]]:
            q0, q1 = bounds
            qs, ids, ds = [], [], []
            for seg in segments:
                qi, rows, d = seg.search(q[q0:q1], max_distance)
                qs.append(qi + q0)
                ids.append(seg.ids[rows])
                ds.append(d.astype(np.int32))
            return qs, ids, ds

        if len(chunks) > 1:
            with ThreadPoolExecutor(min(self.threads, len(chunks))) as pool:
                parts = list(pool.map(run, chunks))
        else:
            parts = [run(c) for c in chunks]
        all_q = [a for p in parts for a in p[0]]
        all_id = [a for p in parts for a in p[1]]
        all_d = [a for p in parts for a in p[2]]
        if not all_q:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32)
        qi, ids, d = np.concatenate(all_q), np.concatenate(all_id), np.concatenate(all_d)
        order = np.lexsort((ids, d, qi))
        return qi[order], ids[order], d[order]

    def _query_chunks(self, n: int) -> list[tuple[int, int]]:
        """Split queries so each thread gets several chunks (threads finish together even if chunks differ)."""
        if self.threads <= 1 or n < 64:
            return [(0, n)]
        parts = min(n // 32, self.threads * 4)
        edges = np.linspace(0, n, parts + 1).astype(int).tolist()
        return [(a, b) for a, b in pairwise(edges) if b > a]

    # --- persistence ------------------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the index to ``path`` (an uncompressed .npz of integer arrays; atomic replace)."""
        path = Path(path)
        segments = self._all_segments()
        header = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            # The last segment is always the unindexed buffer.
            "segments": [{"rows": len(s), "substrings": [[sub.start, sub.length] for sub in s.substrings]} for s in segments],
        }
        arrays: dict[str, NDArray[Any]] = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
        for i, s in enumerate(segments):
            arrays[f"s{i}_hashes"] = _from_words(s.words)
            arrays[f"s{i}_ids"] = s.ids
            arrays[f"s{i}_alive"] = s.alive
            for k, sub in enumerate(s.substrings):
                arrays[f"s{i}_rows{k}"] = sub.rows
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, allow_pickle=False, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path, *, threads: int | None = None, substrings: int | None = None) -> PDQIndex:
        """Read an index written by :meth:`save`; refuses files whose arrays do not index their hashes."""
        index = cls(threads=threads, substrings=substrings)
        with np.load(Path(path), allow_pickle=False) as z:
            try:
                header = json.loads(bytes(z["header"]).decode())
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{path}: not a PDQ index file ({exc})") from None
            if header.get("format") != FORMAT or header.get("version") != FORMAT_VERSION:
                raise ValueError(f"{path}: unsupported PDQ index format {header.get('format')!r} v{header.get('version')!r}")
            for i, meta in enumerate(header["segments"]):
                n = int(meta["rows"])
                words = _to_words(_expect(z, f"s{i}_hashes", np.uint8, (n, 32)))
                ids = _expect(z, f"s{i}_ids", np.int64, (n,))
                alive = _expect(z, f"s{i}_alive", np.bool_, (n,))
                seg = _Segment(words=words, ids=ids, alive=alive)
                parts = [(int(a), int(b)) for a, b in meta["substrings"]]
                if parts and parts != _partition(len(parts)):
                    raise ValueError(f"{path}: segment {i} has an invalid substring layout")
                for k, (start, length) in enumerate(parts):
                    rows = _expect(z, f"s{i}_rows{k}", np.int32, (n,))
                    keys = _substring_keys(words, start, length)
                    # A corrupt or hand-made file must not silently lose matches: the rows must be a
                    # permutation that sorts the substring values.
                    if n and (rows.min() < 0 or rows.max() >= n or np.count_nonzero(np.bincount(rows, minlength=n)) != n):
                        raise ValueError(f"{path}: segment {i} substring {k} rows are not a permutation")
                    if n and np.any(np.diff(keys[rows].astype(np.int64)) < 0):
                        raise ValueError(f"{path}: segment {i} substring {k} is not sorted")
                    seg.substrings.append(_substring_from_sorted(start, length, keys, rows))
                index._segments.append(seg)
        if index._segments and not index._segments[-1].indexed:
            index._buffer = index._segments.pop()
        return index


def _expect(z: Any, name: str, dtype: type[np.generic], shape: tuple[int, ...]) -> NDArray[Any]:
    try:
        arr: NDArray[Any] = z[name]
    except KeyError:
        raise ValueError(f"PDQ index file lacks array {name!r}") from None
    if arr.dtype != dtype or arr.shape != shape:
        raise ValueError(f"PDQ index array {name!r} is {arr.dtype} {arr.shape}, expected {np.dtype(dtype)} {shape}")
    return arr
