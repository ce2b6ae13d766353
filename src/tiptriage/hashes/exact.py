"""Exact-hash index: per hash type a sorted array of fixed-width keys, looked up with searchsorted.

A key costs its digest (16, 20 or 32 bytes) plus an 8-byte entry id; lookups are vectorised over
a whole batch of query hashes. Saved as plain .npy arrays (never pickled).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tiptriage.model import HashType

WIDTHS = {HashType.MD5: 16, HashType.SHA1: 20, HashType.SHA256: 32}


def _keys(values: Iterable[str], width: int) -> npt.NDArray[np.void]:
    raw = b"".join(bytes.fromhex(v) for v in values)
    return np.frombuffer(raw, dtype=f"V{width}").copy() if raw else np.empty(0, dtype=f"V{width}")


def _as_sortable(keys: npt.NDArray[np.void], width: int) -> npt.NDArray[np.bytes_]:
    # fixed-width byte strings sort and compare bytewise; a view costs nothing
    return keys.view(f"S{width}")


class ExactIndex:
    def __init__(self) -> None:
        self._keys: dict[HashType, npt.NDArray[np.void]] = {t: np.empty(0, dtype=f"V{w}") for t, w in WIDTHS.items()}
        self._ids: dict[HashType, npt.NDArray[np.int64]] = {t: np.empty(0, dtype=np.int64) for t in WIDTHS}
        self._deleted: set[int] = set()
        self.max_entry_id = 0  # entry ids only grow, and an id always names the same hash value

    def __len__(self) -> int:
        return sum(len(v) for v in self._ids.values()) - len(self._deleted)

    def nbytes(self) -> int:
        return sum(k.nbytes for k in self._keys.values()) + sum(i.nbytes for i in self._ids.values())

    def add(self, hash_type: HashType, values: list[str], ids: npt.NDArray[np.int64]) -> None:
        width = WIDTHS[hash_type]
        keys = np.concatenate([self._keys[hash_type], _keys(values, width)])
        all_ids = np.concatenate([self._ids[hash_type], ids.astype(np.int64)])
        order = np.argsort(_as_sortable(keys, width), kind="stable")
        self._keys[hash_type], self._ids[hash_type] = keys[order], all_ids[order]
        if len(ids):
            self.max_entry_id = max(self.max_entry_id, int(ids.max()))

    def remove(self, ids: Iterable[int]) -> None:
        self._deleted.update(int(i) for i in ids)

    def restore(self, ids: Iterable[int]) -> None:
        """An entry withdrawn earlier came back (re-imported after a tombstone)."""
        self._deleted.difference_update(int(i) for i in ids)

    def lookup(self, hash_type: HashType, values: list[str]) -> list[list[int]]:
        """Entry ids equal to each query value (one list per query; the same hash may sit in several banks)."""
        width = WIDTHS[hash_type]
        keys = _as_sortable(self._keys[hash_type], width)
        if not values or len(keys) == 0:
            return [[] for _ in values]
        q = _as_sortable(_keys(values, width), width)
        lo = np.searchsorted(keys, q, side="left")
        hi = np.searchsorted(keys, q, side="right")
        ids = self._ids[hash_type]
        return [[int(i) for i in ids[a:b] if int(i) not in self._deleted] for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for t in WIDTHS:
            np.save(folder / f"exact-{t.value}-keys.npy", self._keys[t].view(np.uint8).reshape(-1, WIDTHS[t]), allow_pickle=False)
            np.save(folder / f"exact-{t.value}-ids.npy", self._ids[t], allow_pickle=False)
        (folder / "exact-deleted.json").write_text(json.dumps({"deleted": sorted(self._deleted), "max_entry_id": self.max_entry_id}))

    @classmethod
    def load(cls, folder: Path) -> ExactIndex:
        idx = cls()
        for t, w in WIDTHS.items():
            raw = np.load(folder / f"exact-{t.value}-keys.npy", allow_pickle=False)
            idx._keys[t] = np.ascontiguousarray(raw).view(f"V{w}").reshape(-1)
            idx._ids[t] = np.load(folder / f"exact-{t.value}-ids.npy", allow_pickle=False)
        meta = json.loads((folder / "exact-deleted.json").read_text())
        idx._deleted, idx.max_entry_id = set(meta["deleted"]), int(meta["max_entry_id"])
        return idx
