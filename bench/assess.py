"""Benchmark: assess N reports with the default policy.

Three measurements in one run:
- the vectorised engine (`evaluate_columns`) on N reports held as indicator columns;
- the per-report engine (`evaluate_many`) on the same reports, the alternative;
- the end-to-end pipeline stage (`pipeline.assess`: read each stored report, derive its indicators with
  evidence, evaluate, store) on a smaller stored set, as reports/s.
The columns are sampled from the indicators of real synthetic reports so the mix of fired rules is realistic.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tiptriage import pipeline, synth
from tiptriage.assess.policy import evaluate_columns, evaluate_many, indicators_to_columns, load_default_policy
from tiptriage.store import Store


def main(n: int = 1_000_000, stored: int = 5_000) -> dict[str, Any]:
    policy, version = load_default_policy()
    with tempfile.TemporaryDirectory() as tmp:
        data = synth.generate(stored, seed=5)
        synth.write(data, Path(tmp), "xml")
        store = Store(f"sqlite:///{tmp}/bench.db")
        pipeline.ingest(store, [Path(tmp) / "submissions"])
        pipeline.import_hashset(store, Path(tmp) / "hashsets" / "known.csv", "known")
        pipeline.triage(store)  # enrich, match, link, then a first assessment
        t = time.perf_counter()
        res = pipeline.assess(store)
        pipeline_s = time.perf_counter() - t
        sample = [{k: v for k, v in json.loads(row["indicators"]).items()} for row in _rows(store)]
        store.dispose()
    from tiptriage.assess.policy import Indicator

    sample_ind = [{k: Indicator.model_validate(v) for k, v in r.items()} for r in sample]
    base = indicators_to_columns(policy, sample_ind)
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(sample_ind), n)
    columns = {k: v[pick] for k, v in base.items()}
    t = time.perf_counter()
    tiers, _scores, _fired = evaluate_columns(policy, columns, n)
    vec_s = time.perf_counter() - t
    m = min(n, 100_000)
    reports = [sample_ind[i] for i in pick[:m]]
    t = time.perf_counter()
    evaluate_many(policy, reports)
    row_s = (time.perf_counter() - t) * n / m
    return {
        "benchmark": "assess", "reports": n, "policy": policy.name, "policy_version": version, "machine": {"cpus": os.cpu_count()},
        "target": {"reports": 1_000_000, "seconds": 60},
        "vectorised_seconds": round(vec_s, 2),
        "per_report_seconds_extrapolated": round(row_s, 1), "per_report_measured_on": m,
        "speedup": round(row_s / vec_s, 1),
        "tiers": {str(k): int(v) for k, v in zip(*np.unique(tiers, return_counts=True), strict=True)},
        "pipeline_stage": {"stored_reports": res.assessed, "seconds": round(pipeline_s, 2), "reports_per_s": round(res.assessed / pipeline_s, 1)},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _rows(store: Store) -> list[dict[str, Any]]:
    import sqlalchemy as sa

    from tiptriage.store.schema import assessments

    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(assessments.c.indicators)).mappings()]


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000), indent=2))
