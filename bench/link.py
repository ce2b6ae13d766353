"""Benchmark: resolve the accounts of N synthetic reports into people, against planted truth.

Compares in the same run the deterministic-keys-only baseline (same normalised e-mail or phone) with
the full linker (deterministic + Splink on DuckDB): time, peak resident memory, pairwise precision and
recall over accounts.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import sys
import time
from collections import defaultdict
from typing import Any

from tiptriage import synth
from tiptriage.link.records import build_records
from tiptriage.link.resolve import Decisions, cluster, deterministic_links, probabilistic_links


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _score(clusters: dict[str, str], truth_pairs: set[tuple[str, str]]) -> dict[str, float]:
    groups: dict[str, list[str]] = defaultdict(list)
    for a, c in clusters.items():
        groups[c].append(a)
    got = {tuple(sorted(p)) for g in groups.values() if len(g) > 1 for p in itertools.combinations(g, 2)}
    tp = len(got & truth_pairs)  # type: ignore[operator]
    return {"predicted_pairs": len(got), "true_pairs": len(truth_pairs), "precision": round(tp / max(1, len(got)), 5),
            "recall": round(tp / max(1, len(truth_pairs)), 5)}


def main(n: int = 200_000) -> dict[str, Any]:
    t0 = time.perf_counter()
    data = synth.generate(n, seed=12)
    gen_s = time.perf_counter() - t0
    accounts_in_reports = {f"{r.reported_people[0].esp_service}:{r.reported_people[0].esp_identifier}".lower() for r in data.reports}
    groups: dict[str, list[str]] = defaultdict(list)
    for pid, accs in data.truth["persons"].items():
        groups[pid] = [a.lower() for a in accs if a.lower() in accounts_in_reports]
    truth_pairs = {tuple(sorted(p)) for g in groups.values() for p in itertools.combinations(g, 2)}
    t = time.perf_counter()
    records, _ = build_records(data.reports, treat_documentation_as_public=True)
    records_s = time.perf_counter() - t
    del data
    t = time.perf_counter()
    det = deterministic_links(records)
    det_clusters, _ = cluster(records, det, Decisions())
    det_s = time.perf_counter() - t
    t = time.perf_counter()
    prob, notes = probabilistic_links(records)
    full_clusters, _ = cluster(records, det + prob, Decisions())
    full_s = time.perf_counter() - t
    return {
        "benchmark": "link", "reports": n, "accounts": len(records), "people_in_truth": len(groups),
        "machine": {"cpus": os.cpu_count()}, "target": {"reports": 1_000_000, "seconds": 600, "peak_rss_mb": 8192},
        "generate_seconds": round(gen_s, 1), "build_records_seconds": round(records_s, 1),
        "deterministic_only": {"seconds": round(det_s, 2), **_score(det_clusters, truth_pairs)},  # type: ignore[arg-type]
        "deterministic_plus_splink": {"seconds": round(records_s + det_s + full_s, 2), "splink_seconds": round(full_s, 2),
                                      **_score(full_clusters, truth_pairs), "notes": notes},  # type: ignore[arg-type]
        "peak_rss_mb": round(_rss_mb(), 1),
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000), indent=2))
