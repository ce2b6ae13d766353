"""Benchmark: the exact-hash index (MD5/SHA1/SHA256) against the plain alternative, a Python set of hex strings.

Memory per entry and lookups per second, measured in the same run on the same keys.
"""

from __future__ import annotations

import json
import os
import sys
import time
import tracemalloc
from typing import Any

import numpy as np

from tiptriage.hashes.exact import ExactIndex
from tiptriage.model import HashType


def main(n: int = 2_000_000, queries: int = 200_000) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    values = [bytes(r).hex() for r in raw]
    present = [values[i] for i in rng.integers(0, n, queries // 2)]
    absent = [bytes(r).hex() for r in rng.integers(0, 256, size=(queries - len(present), 16), dtype=np.uint8)]
    q = present + absent
    tracemalloc.start()
    t = time.perf_counter()
    idx = ExactIndex()
    idx.add(HashType.MD5, values, np.arange(n, dtype=np.int64))
    build_s = time.perf_counter() - t
    ours_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    t = time.perf_counter()
    found = idx.lookup(HashType.MD5, q)
    ours_qps = len(q) / (time.perf_counter() - t)
    hits = sum(1 for f in found if f)
    tracemalloc.start()
    as_dict = {v: i for i, v in enumerate(values)}
    dict_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    t = time.perf_counter()
    dict_hits = sum(1 for v in q if v in as_dict)
    dict_qps = len(q) / (time.perf_counter() - t)
    return {
        "benchmark": "exact_index", "entries": n, "queries": len(q), "machine": {"cpus": os.cpu_count()},
        "ours": {"build_s": round(build_s, 2), "bytes_per_entry": round(idx.nbytes() / n, 1),
                 "traced_bytes_per_entry": round(ours_bytes / n, 1), "lookups_per_s": round(ours_qps), "hits": hits},
        "python_dict_of_hex": {"bytes_per_entry": round(dict_bytes / n, 1), "lookups_per_s": round(dict_qps), "hits": dict_hits},
        "memory_ratio": round(dict_bytes / max(1, idx.nbytes()), 1),
    }


if __name__ == "__main__":
    print(json.dumps(main(*(int(a) for a in sys.argv[1:3])), indent=2))
