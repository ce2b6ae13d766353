"""Benchmark: resolve the accounts of N synthetic reports into people, against planted truth.

Compares in the same run the deterministic-keys-only baseline (same normalised e-mail or phone) with the
full linker (deterministic + Splink on DuckDB): time, peak resident memory, pairwise precision and recall
over accounts. Reports come from the columnar generator (``synth.columnar``) in batches and go through the
columnar link path (``link.frame``): every distinct identifier is normalised by ``enrich.identifiers``, as
for stored reports, and no report is ever a Python object.

    python bench/link.py [N_REPORTS] [N_PEOPLE]     # default 1,000,000 reports, 0.3 people per report
    BENCH_LINK_N=200000 python bench/run.py link    # the same through `make bench`, with a smaller N

Peak memory is the process's high-water mark (ru_maxrss), generation included.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any

import numpy as np
import pyarrow as pa  # type: ignore[import-untyped]

from tiptriage.link.frame import LINKS_SCHEMA, Observations
from tiptriage.link.resolve import splink_pairs
from tiptriage.synth.columnar import generate_columns

LINKER_COLUMNS = ["report_id", "provider", "esp_service", "esp_identifier", "email", "phone", "screen_name", "display_name", "ip", "country"]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pairs(*labels: np.ndarray) -> int:
    """Pairs of accounts that share every label given: the sum of C(k, 2) over the groups."""
    _, counts = np.unique(np.stack(labels), axis=1, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def _score(cluster: np.ndarray, person: np.ndarray) -> dict[str, float]:
    got, true, tp = _pairs(cluster), _pairs(person), _pairs(cluster, person)
    return {"predicted_pairs": got, "true_pairs": true, "precision": round(tp / max(1, got), 5), "recall": round(tp / max(1, true), 5)}


def main(n: int = 1_000_000, people: int | None = None) -> dict[str, Any]:
    load_at_start = os.getloadavg()[0]
    t0 = time.perf_counter()
    data = generate_columns(n, seed=12, people=people)
    gen_s = time.perf_counter() - t0
    obs = Observations(treat_documentation_as_public=True)
    seen_acc: list[np.ndarray] = []
    seen_person: list[np.ndarray] = []
    ingest_s = 0.0
    for batch in data.batches():
        t = time.perf_counter()
        acc = obs.add_columns(batch.select(LINKER_COLUMNS))
        ingest_s += time.perf_counter() - t
        seen_acc.append(acc)
        seen_person.append(batch.column("truth_person").to_numpy())
    gen_s = time.perf_counter() - t0 - ingest_s
    person = np.full(obs.n_accounts, -1, dtype=np.int64)
    person[np.concatenate(seen_acc)] = np.concatenate(seen_person)
    del seen_acc, seen_person
    rss_after_ingest = _rss_mb()

    t = time.perf_counter()
    det = obs.deterministic_links()
    det_res = obs.cluster(det)
    det_s = time.perf_counter() - t

    t = time.perf_counter()
    table = obs.splink_table()
    table_s = time.perf_counter() - t
    t = time.perf_counter()
    pairs, notes = splink_pairs(table)
    splink_s = time.perf_counter() - t
    t = time.perf_counter()
    prob = pairs.append_column("kind", pa.array(["probabilistic"] * pairs.num_rows, pa.string())).select(LINKS_SCHEMA.names)
    full = obs.cluster(pa.concat_tables([det, prob.cast(LINKS_SCHEMA)]))
    cluster_s = time.perf_counter() - t
    link_s = ingest_s + det_s + table_s + splink_s + cluster_s
    return {
        "benchmark": "link", "reports": n, "accounts": obs.n_accounts, "people_generated": data.people,
        "people_in_truth": len(np.unique(person)),
        # the machine is shared: the load when the run began says how far the times are from a quiet one
        "machine": {"cpus": os.cpu_count(), "load_average_1m_at_start": round(load_at_start, 2)}, "target": {"reports": 1_000_000, "seconds": 600, "peak_rss_mb": 8192},
        "generate_seconds": round(gen_s, 1),
        "ingest_normalise_seconds": round(ingest_s, 1),
        "deterministic_only": {"seconds": round(ingest_s + det_s, 2), "links": det.num_rows, **_score(det_res.anchor_index, person)},
        "deterministic_plus_splink": {"seconds": round(link_s, 2), "splink_seconds": round(splink_s, 2),
                                      "splink_input_seconds": round(table_s, 2), "cluster_seconds": round(cluster_s, 2),
                                      "probabilistic_links": pairs.num_rows, **_score(full.anchor_index, person), "notes": notes},
        "rss_after_ingest_mb": round(rss_after_ingest, 1),
        "peak_rss_mb": round(_rss_mb(), 1),
        "total_seconds": round(time.perf_counter() - t0, 1),
    }


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    print(json.dumps(main(*args), indent=2))
