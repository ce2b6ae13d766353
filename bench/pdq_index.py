"""Benchmark: exact PDQ radius search at national scale, ours against faiss and python-threatexchange.

    python bench/pdq_index.py [N] [QUERIES]        # default 10,000,000 and 10,000

N random PDQ codes (ids 0..N-1) are indexed; the queries are stored codes with k random bits flipped,
k uniform over 0..31 (80 %), plus random codes far from everything (20 %). Each contender runs in a fresh
process, so its resident memory (VmRSS/VmHWM from /proc) is its own, on the same data (same seed):

- ``ours``: tiptriage.hashes.pdq_index.PDQIndex, every query, radius 31, the process's CPUs;
- ``faiss_flat``: faiss ``IndexBinaryFlat`` exhaustive ``range_search`` (radius 32 = distance <= 31),
  on a sample of the queries (queries/s is measured on that sample, not extrapolated from elsewhere);
- ``pytx``: python-threatexchange's PDQ index as ``PdqSignal.get_index_cls()`` returns it (a faiss
  ``IndexBinaryMultiHash`` under ``IndexBinaryIDMap2``), through its public per-hash ``query`` and, for
  fairness, its batched ``search_with_distance_in_result``. Killed above PYTX_RSS_LIMIT and retried at
  half the size; the result says at which N it ran.

Recall is checked two ways: every planted neighbour must be returned at its exact distance, and for a
subset of queries the full result must equal an exhaustive numpy scan of all N codes.
faiss-cpu and threatexchange are benchmark-only (``pip install faiss-cpu threatexchange``).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work"
SEED = 20240601
MAX_DISTANCE = 31
FAR_SHARE = 0.2
TRUTH_QUERIES = 250  # queries checked against an exhaustive scan of every code
FAISS_SAMPLE = 500
PYTX_SAMPLE = 1000
ADD_BATCH = 10_000
PYTX_RSS_LIMIT = 12 * 2**30

Triples = list[list[int]]


# --- data (identical in every process: same seed) ---------------------------------------------------------


def make_data(n: int, n_queries: int) -> tuple[NDArray[np.uint8], NDArray[np.uint8], NDArray[np.int64], NDArray[np.int64]]:
    """Codes, queries, each query's source row (-1: far query) and planted distance (-1: far)."""
    rng = np.random.default_rng(SEED)
    db = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    n_far = int(n_queries * FAR_SHARE)
    src = rng.integers(0, n, n_queries)
    k = rng.integers(0, MAX_DISTANCE + 1, n_queries)
    far = rng.permutation(n_queries)[:n_far]
    queries = flip(db[src], k, rng)
    queries[far] = rng.integers(0, 256, (n_far, 32), dtype=np.uint8)
    src[far], k[far] = -1, -1
    return db, queries, src, k


def flip(codes: NDArray[np.uint8], k: NDArray[np.int64], rng: np.random.Generator) -> NDArray[np.uint8]:
    """codes with k[i] distinct random bits of row i flipped, so row i lies exactly k[i] from the original."""
    order = np.argsort(rng.random((len(codes), 256)), axis=1)
    mask = np.zeros((len(codes), 256), dtype=bool)
    np.put_along_axis(mask, order, np.arange(256)[None, :] < k[:, None], axis=1)
    return codes ^ np.packbits(mask, axis=1)


def new_batch(n: int) -> tuple[NDArray[np.uint8], NDArray[np.int64], NDArray[np.uint8], NDArray[np.int64]]:
    """ADD_BATCH fresh codes (ids n..), and queries planted on them."""
    rng = np.random.default_rng(SEED + 1)
    codes = rng.integers(0, 256, (ADD_BATCH, 32), dtype=np.uint8)
    ids = np.arange(n, n + ADD_BATCH, dtype=np.int64)
    src = rng.integers(0, ADD_BATCH, 1000)
    return codes, ids, flip(codes[src], rng.integers(0, MAX_DISTANCE + 1, 1000), rng), ids[src]


# --- measurement helpers ----------------------------------------------------------------------------------


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS and VmHWM (peak resident) in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def mb(b: float) -> float:
    return round(b / 2**20, 1)


def log(msg: str) -> None:
    print(f"[pdq-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def planted_recall(
    found: set[tuple[int, int, int]], src: NDArray[np.int64], k: NDArray[np.int64], queries: range | NDArray[np.int64]
) -> dict[str, Any]:
    """Share of planted (query, source id, exact distance) triples among those found."""
    want = [(int(q), int(src[q]), int(k[q])) for q in queries if src[q] >= 0]
    hit = sum(t in found for t in want)
    return {"planted": len(want), "found": hit, "recall": round(hit / len(want), 6) if want else None}


def triples(qi: NDArray[Any], ids: NDArray[Any], d: NDArray[Any]) -> set[tuple[int, int, int]]:
    return set(zip(qi.tolist(), ids.tolist(), d.tolist(), strict=True))


# --- workers (each in its own process) ---------------------------------------------------------------------


def worker_truth(n: int, n_queries: int) -> dict[str, Any]:
    """Exhaustive numpy scan of all n codes for the first TRUTH_QUERIES queries."""
    db, queries, _, _ = make_data(n, n_queries)
    words = np.ascontiguousarray(db).view(np.uint64)
    cols = [np.ascontiguousarray(words[:, w]) for w in range(4)]
    del db, words
    qwords = np.ascontiguousarray(queries[:TRUTH_QUERIES]).view(np.uint64)
    start = time.perf_counter()
    out: Triples = []
    for q in range(len(qwords)):
        d = np.bitwise_count(cols[0] ^ qwords[q, 0]).astype(np.uint16)
        for w in range(1, 4):
            d += np.bitwise_count(cols[w] ^ qwords[q, w])
        rows = np.flatnonzero(d <= MAX_DISTANCE)
        out.extend([q, int(r), int(d[r])] for r in rows)
    return {"matches": out, "seconds": round(time.perf_counter() - start, 2), "queries": len(qwords)}


def worker_ours(n: int, n_queries: int) -> dict[str, Any]:
    from tiptriage.hashes.pdq_index import PDQIndex

    db, queries, src, k = make_data(n, n_queries)
    ids = np.arange(n, dtype=np.int64)
    base = proc_status()
    idx = PDQIndex()
    t = time.perf_counter()
    idx.add(db, ids)
    build_s = time.perf_counter() - t
    built = proc_status()
    del db, ids  # the index holds its own copy; what remains resident is the index (plus the queries)
    after = proc_status()
    log(f"ours: built {n} in {build_s:.1f}s, {mb(after['VmRSS'])} MB resident")

    res: dict[str, Any] = {
        "n": n,
        "threads": idx.threads,
        "segments": idx.segment_sizes,
        "substrings": [s.m for s in idx._segments],
        "build_s": round(build_s, 2),
        "rss_before_build_mb": mb(base["VmRSS"]),
        "rss_after_build_mb": mb(built["VmRSS"]),
        "rss_index_only_mb": mb(after["VmRSS"]),
        "index_arrays_mb": mb(idx.nbytes),
        "peak_rss_mb": mb(after["VmHWM"]),
    }
    idx.search(queries[:200])  # warm-up: page in code paths, flip-mask caches
    searched: dict[str, Any] = {}
    for threads in (idx.threads, 1):
        idx.threads = threads
        t = time.perf_counter()
        qi, found, d = idx.search(queries, max_distance=MAX_DISTANCE)
        el = time.perf_counter() - t
        searched[f"threads_{threads}"] = {"queries": len(queries), "seconds": round(el, 3), "qps": round(len(queries) / el, 1)}
    idx.threads = res["threads"]
    res["search"] = searched
    res["qps"] = searched[f"threads_{res['threads']}"]["qps"]
    got = triples(qi, found, d)
    res["recall_planted"] = planted_recall(got, src, k, range(len(queries)))
    res["matches"] = len(got)
    res["truth_matches"] = sorted([q, i, dd] for q, i, dd in got if q < TRUTH_QUERIES)

    # larger radii stay exact but cost more: a sample
    wide: dict[str, Any] = {}
    for r in (47, 63):
        sample = queries[:500]
        t = time.perf_counter()
        qi_r, _, _ = idx.search(sample, max_distance=r)
        el = time.perf_counter() - t
        wide[str(r)] = {"queries": len(sample), "qps": round(len(sample) / el, 1), "matches": len(qi_r)}
    res["wider_radius"] = wide

    codes, new_ids, new_q, new_src = new_batch(n)
    t = time.perf_counter()
    idx.add(codes, new_ids)
    res["add_10k_s"] = round(time.perf_counter() - t, 4)
    res["segments_after_add"] = idx.segment_sizes
    qi, found, d = idx.search(new_q)
    new_found = {(int(q), int(i)) for q, i in zip(qi, found, strict=True)}
    res["recall_added"] = round(sum((q, int(s)) in new_found for q, s in enumerate(new_src)) / len(new_src), 6)
    old = idx.search(queries[:2000])
    res["recall_planted_after_add"] = planted_recall(triples(*old), src, k, range(min(2000, len(queries))))["recall"]
    t = time.perf_counter()
    idx.search(queries, max_distance=MAX_DISTANCE)
    res["qps_after_add"] = round(len(queries) / (time.perf_counter() - t), 1)

    t = time.perf_counter()
    removed = idx.remove(np.arange(0, n, max(1, n // 10_000)))
    res["remove_10k"] = {"removed": removed, "seconds_first": round(time.perf_counter() - t, 3)}
    t = time.perf_counter()
    idx.remove(np.arange(1, n, max(1, n // 10_000)))
    res["remove_10k"]["seconds_next"] = round(time.perf_counter() - t, 3)

    WORK.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        path = Path(tmp) / "pdq.index"
        t = time.perf_counter()
        idx.save(path)
        save_s = time.perf_counter() - t
        size = path.stat().st_size
        del idx
        t = time.perf_counter()
        loaded = PDQIndex.load(path)
        load_s = time.perf_counter() - t
        res["save_load"] = {"save_s": round(save_s, 2), "load_s": round(load_s, 2), "file_mb": mb(size), "entries": len(loaded)}
    res["peak_rss_mb_whole_run"] = mb(proc_status()["VmHWM"])
    return res


def worker_faiss(n: int, n_queries: int) -> dict[str, Any]:
    import faiss

    db, queries, src, k = make_data(n, n_queries)
    base = proc_status()
    index = faiss.IndexBinaryFlat(256)
    t = time.perf_counter()
    index.add(db)
    build_s = time.perf_counter() - t
    built = proc_status()
    del db  # faiss holds its own copy
    after = proc_status()
    sample = queries[:FAISS_SAMPLE]
    index.range_search(queries[-20:], MAX_DISTANCE + 1)  # warm-up
    t = time.perf_counter()
    lims, dist, labels = index.range_search(sample, MAX_DISTANCE + 1)  # strict: distance < 32
    el = time.perf_counter() - t
    qi = np.repeat(np.arange(len(sample)), np.diff(lims).astype(np.int64))
    got = triples(qi, labels, dist)
    return {
        "n": n,
        "threads": faiss.omp_get_max_threads(),
        "build_s": round(build_s, 2),
        "rss_before_build_mb": mb(base["VmRSS"]),
        "rss_after_build_mb": mb(built["VmRSS"]),
        "rss_index_only_mb": mb(after["VmRSS"]),
        "peak_rss_mb": mb(after["VmHWM"]),
        "sample_queries": len(sample),
        "seconds": round(el, 3),
        "qps": round(len(sample) / el, 1),
        "recall_planted": planted_recall(got, src, k, range(len(sample))),
        "truth_matches": sorted([q, i, d] for q, i, d in got if q < TRUTH_QUERIES),
    }


def worker_pytx(n: int, n_queries: int) -> dict[str, Any]:
    from threatexchange.signal_type.pdq.signal import PdqSignal

    db, queries, src, k = make_data(n, n_queries)
    blob = db.tobytes().hex()
    del db
    hexes = [blob[i : i + 64] for i in range(0, len(blob), 64)]
    del blob
    qhex = [q.tobytes().hex() for q in queries]
    base = proc_status()
    index_cls = PdqSignal.get_index_cls()
    t = time.perf_counter()
    index = index_cls(zip(hexes, range(n), strict=True))
    build_s = time.perf_counter() - t
    after = proc_status()
    log(f"pytx: built {n} in {build_s:.1f}s, {mb(after['VmRSS'])} MB resident")
    sample = qhex[:PYTX_SAMPLE]
    index.query(qhex[-1])  # warm-up
    t = time.perf_counter()
    per_query = [index.query(h) for h in sample]
    el = time.perf_counter() - t
    got = {(q, int(m.metadata), int(m.similarity_info.distance)) for q, ms in enumerate(per_query) for m in ms}
    # the same index through its batched call (one faiss range_search for all queries)
    inner = index.index
    t = time.perf_counter()
    batched = inner.search_with_distance_in_result(sample, MAX_DISTANCE)  # what query() uses: 31
    el_b = time.perf_counter() - t
    got_b = {(q, int(i), int(d)) for q, h in enumerate(sample) for i, _, d in batched[h]}
    return {
        "n": n,
        "class": f"{index_cls.__module__}.{index_cls.__qualname__}",
        "build_s": round(build_s, 2),
        "rss_before_build_mb": mb(base["VmRSS"]),
        "rss_after_build_mb": mb(after["VmRSS"]),
        "index_rss_mb": mb(after["VmRSS"] - base["VmRSS"]),
        "peak_rss_mb": mb(after["VmHWM"]),
        "sample_queries": len(sample),
        "query_seconds": round(el, 3),
        "qps": round(len(sample) / el, 1),
        "batched_qps": round(len(sample) / el_b, 1),
        "recall_planted": planted_recall(got, src, k, range(len(sample))),
        "recall_planted_batched": planted_recall(got_b, src, k, range(len(sample)))["recall"],
        "truth_matches": sorted([q, i, d] for q, i, d in got if q < TRUTH_QUERIES),
    }


WORKERS = {"truth": worker_truth, "ours": worker_ours, "faiss": worker_faiss, "pytx": worker_pytx}


# --- driver ---------------------------------------------------------------------------------------------------


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and its reaped children (the workers)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        total += ru.ru_utime + ru.ru_stime
    return total


def run_worker(name: str, n: int, n_queries: int, rss_limit: int | None = None) -> dict[str, Any]:
    """Run one worker in a fresh interpreter; kill it (and say so) if its resident memory passes rss_limit.

    Also reports how many CPUs other processes kept busy meanwhile: timings on a shared machine are only
    comparable when that is near 0.
    """
    busy0, mine0, wall0 = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", name, str(n), str(n_queries)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    peak = 0
    killed = False
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak, killed
        while not stop.is_set():
            try:
                rss = proc_status(proc.pid)["VmRSS"]
            except (OSError, KeyError):
                return
            peak = max(peak, rss)
            if rss_limit is not None and rss > rss_limit:
                killed = True
                proc.kill()
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    stop.set()
    watcher.join()
    wall = time.perf_counter() - wall0
    others = max(0.0, (busy_cpu_seconds() - busy0) - (own_cpu_seconds() - mine0)) / wall
    if killed:
        return {"n": n, "killed_over_rss_mb": mb(rss_limit or 0), "sampled_peak_rss_mb": mb(peak)}
    if proc.returncode != 0:
        return {"n": n, "failed": f"exit status {proc.returncode}", "sampled_peak_rss_mb": mb(peak)}
    result: dict[str, Any] = json.loads(out)
    result["other_processes_cpus"] = round(others, 2)
    return result


def exactness(truth: set[tuple[int, int, int]], got: Triples, queries: int) -> dict[str, Any]:
    """Compare a contender's matches for the first ``queries`` queries with the exhaustive scan."""
    mine = {tuple(t) for t in got if t[0] < queries}
    want = {t for t in truth if t[0] < queries}
    return {"queries": queries, "truth_matches": len(want), "missed": len(want - mine), "extra": len(mine - want), "exact": mine == want}


def main(n: int = 10_000_000, n_queries: int = 10_000) -> dict[str, Any]:
    log(f"n={n} queries={n_queries}")
    truth_res = run_worker("truth", n, n_queries)
    truth = {(q, i, d) for q, i, d in truth_res["matches"]}
    log(f"truth: {len(truth)} matches for {truth_res['queries']} queries in {truth_res['seconds']}s")

    ours = run_worker("ours", n, n_queries)
    log(f"ours: {ours.get('qps')} q/s")
    if "truth_matches" in ours:
        ours["exact_vs_scan"] = exactness(truth, ours.pop("truth_matches"), TRUTH_QUERIES)

    faiss_res = run_worker("faiss", n, n_queries)
    log(f"faiss: {faiss_res.get('qps')} q/s")
    if "truth_matches" in faiss_res:
        faiss_res["exact_vs_scan"] = exactness(truth, faiss_res.pop("truth_matches"), min(TRUTH_QUERIES, FAISS_SAMPLE))

    pytx_n = n
    while True:
        pytx = run_worker("pytx", pytx_n, n_queries, rss_limit=PYTX_RSS_LIMIT)
        log(f"pytx at n={pytx_n}: {pytx.get('qps') or pytx}")
        if "qps" in pytx or pytx_n <= 100_000:
            break
        pytx_n //= 2
    if "truth_matches" in pytx:
        if pytx_n == n:
            pytx["exact_vs_scan"] = exactness(truth, pytx.pop("truth_matches"), min(TRUTH_QUERIES, PYTX_SAMPLE))
        else:  # ground truth is for n codes; at a smaller n only the planted check applies
            pytx.pop("truth_matches")
        if pytx_n != n:
            pytx["note"] = f"built at n={pytx_n}, the largest halving of {n} under {mb(PYTX_RSS_LIMIT)} MB resident"

    result: dict[str, Any] = {
        "benchmark": "pdq_index",
        "n": n,
        "queries": n_queries,
        "max_distance": MAX_DISTANCE,
        "query_mix": f"{int((1 - FAR_SHARE) * 100)}% stored codes with 0..31 bits flipped, {int(FAR_SHARE * 100)}% random",
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(), "numpy": np.__version__},
        "target": {"recall": 1.0, "qps": 1000, "rss_mb": 4096, "vs_alternatives": 10},
        "ours": ours,
        "faiss_flat": faiss_res,
        "pytx": pytx,
        "truth": {"queries": truth_res["queries"], "matches": len(truth), "scan_seconds": truth_res["seconds"]},
    }
    ratios: dict[str, Any] = {}
    if "qps" in ours and "qps" in faiss_res:
        ratios["ours_over_faiss_flat"] = round(ours["qps"] / faiss_res["qps"], 1)
    if "qps" in ours and "qps" in pytx:
        ratios["ours_over_pytx_query"] = round(ours["qps"] / pytx["qps"], 1)
        ratios["ours_over_pytx_batched"] = round(ours["qps"] / pytx["batched_qps"], 1)
        if pytx["n"] != n:
            ratios["note"] = f"pytx ran at n={pytx['n']}, ours at n={n}: its queries/s at {n} would be lower"
    result["ratios"] = ratios
    result["when"] = datetime.now(UTC).isoformat(timespec="seconds")
    return result


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        name, n_arg, q_arg = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        print(json.dumps(WORKERS[name](n_arg, q_arg)))
    else:
        args = [int(a.replace("_", "")) for a in sys.argv[1:3]]
        print(json.dumps(main(*args), indent=2))
