"""Benchmark: assess N reports with the default policy, and the pipeline's assess stage before and after stored indicators.

The engine, on N reports held as indicator columns:
- the vectorised engine (`evaluate_columns`), and the per-report engine (`evaluate_many`) on the same reports;
  the columns are sampled from the indicators of real synthetic reports so the mix of fired rules is realistic.

The pipeline stage (`pipeline.assess`) on a stored, triaged synthetic set (BENCH_ASSESS_STORED reports, 100,000 by
default), every run rewriting every assessment (each one a day later than the last, so every `days_since_incident`
moves, as after a policy change):
- before: the per-report path (each report's JSON read and parsed, its indicators derived, evaluated alone);
- first assessment: the stored path on reports whose static indicators are not stored yet (derived once, and kept);
- after: the stored path (static indicators read as columns, context in bulk, every policy evaluated over vectors), its
  batches computed in ``default_workers()`` worker processes while the main process writes; each row compact (the fired
  rules name the indicators they read, and only the context indicators are kept: evidence is written back on reading);
- after, nothing changed: the stored path when no assessment differs (what a re-assessment costs for the unchanged);
- after, one process: the stored path with no worker processes (what one core does).
Each run also gives its steady rate (reports written per second from the end of the second batch to the end of the last,
when every process is busy), what it paid once beyond that rate (starting worker processes, reading the policies, the
first batches computed before anything is written, the last write alone), and so an estimate for 1,000,000 stored reports:
the once-paid seconds plus 1,000,000 at the steady rate. The store is not built at 1,000,000 reports here: ingesting and
triaging them would take about an hour on 2 cores.
Wall and CPU seconds are both given: on a shared machine wall time also counts other work. CPU seconds are this process's
only: the worker processes are the multiprocessing forkserver's children, not its own, so with workers they are the
writer's share.

BENCH_ASSESS_FROM names an existing triaged SQLite database to copy instead of generating one (building 100,000 reports
takes most of the time).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from tiptriage import pipeline, synth
from tiptriage.assess.policy import Indicator, evaluate_columns, evaluate_many, indicators_to_columns, load_default_policy
from tiptriage.hashes.flood import FloodRule
from tiptriage.store import Store
from tiptriage.store.indicators import IndicatorRepository
from tiptriage.store.schema import report_indicators


def _timed(run: Callable[[pipeline.Progress], pipeline.AssessResult]) -> dict[str, Any]:
    marks: list[tuple[float, int]] = []  # (seconds from the start, reports written) after each batch
    wall, cpu = time.perf_counter(), time.process_time()
    res = run(lambda done, _bytes: marks.append((time.perf_counter() - wall, done)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    out = {"reports": res.assessed, "written": res.changed, "facts_derived": res.facts_derived, "seconds": round(wall, 2),
           "cpu_seconds": round(cpu, 2), "reports_per_s": round(res.assessed / wall, 1), "reports_per_cpu_s": round(res.assessed / cpu, 1)}
    if len(marks) >= 4:
        # steady state: from the end of the second batch's write to the end of the last, when every process is busy; what
        # the run costs beyond that rate (starting the worker processes, reading the policies, the first batches computed
        # before the first write, the last write alone) is paid once however many reports there are
        (t_a, n_a), (t_b, n_b) = marks[1], marks[-1]
        rate = (n_b - n_a) / (t_b - t_a)
        fixed = wall - res.assessed / rate
        out.update(batches=len(marks), steady_reports_per_s=round(rate, 1), fixed_seconds=round(fixed, 2),
                   estimated_seconds_for_1m=round(fixed + 1_000_000 / rate, 1))
    return out


def stage(store: Store) -> dict[str, Any]:
    t0 = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    before = _timed(lambda p: pipeline.assess(store, now=t0, per_report=True, trigger="bench: per-report", progress=p))
    with store.engine.begin() as conn:
        conn.execute(report_indicators.delete())
    first = _timed(lambda p: pipeline.assess(store, now=t0 + timedelta(days=1), trigger="bench: first assessment", progress=p))
    after = _timed(lambda p: pipeline.assess(store, now=t0 + timedelta(days=2), trigger="bench: stored", progress=p))
    unchanged = _timed(lambda p: pipeline.assess(store, now=t0 + timedelta(days=2), trigger="bench: stored, unchanged", progress=p))
    one = _timed(lambda p: pipeline.assess(store, now=t0 + timedelta(days=3), trigger="bench: stored, one process", workers=1, progress=p))
    return {
        "stored_reports": after["reports"],
        "before": {"path": "per-report: report JSON -> indicators -> evaluate, one report at a time", **before},
        "first_assessment": {"path": "stored path, deriving and keeping the static indicators", **first},
        "after": {"path": "stored indicators as columns, context in bulk, vectorised policy", **after},
        "after_unchanged": {"path": "stored path, no assessment differs (nothing written)", **unchanged},
        "after_one_process": {"path": "stored path as 'after', batches computed in this process only (no worker processes)", **one},
        "workers": pipeline.default_workers(),
        "ratio": round(after["reports_per_s"] / before["reports_per_s"], 1),
        "ratio_cpu": round(after["reports_per_cpu_s"] / before["reports_per_cpu_s"], 1),
        # the figures earlier runs of this benchmark reported (the per-report stage): now the stored path's
        "seconds": after["seconds"],
        "reports_per_s": after["reports_per_s"],
        # 1,000,000 stored reports, estimated from this run: its steady rate, and what it paid once (see _timed)
        "estimated_seconds_for_1m_stored": after.get("estimated_seconds_for_1m"),
    }


def _prepared(tmp: str, stored: int) -> Store:
    src = os.environ.get("BENCH_ASSESS_FROM")
    if src:
        shutil.copyfile(src, f"{tmp}/bench.db")
        return Store(f"sqlite:///{tmp}/bench.db")
    data = synth.generate(stored, seed=5)
    synth.write(data, Path(tmp), "xml")
    store = Store(f"sqlite:///{tmp}/bench.db")
    pipeline.ingest(store, [Path(tmp) / "submissions"], workers=pipeline.default_workers())
    pipeline.import_hashset(store, Path(tmp) / "hashsets" / "known.csv", "known")
    pipeline.triage(store, FloodRule())  # enrich, match, link, route, then a first assessment
    return store


def main(n: int = 1_000_000, stored: int | None = None) -> dict[str, Any]:
    stored = stored or int(os.environ.get("BENCH_ASSESS_STORED", 100_000))
    policy, version = load_default_policy()
    load_before = os.getloadavg()  # other work on the machine's 2 cores stretches the wall times
    with tempfile.TemporaryDirectory() as tmp:
        store = _prepared(tmp, stored)
        pipeline_stage = stage(store)
        sample = [m for _, m in IndicatorRepository(store.engine).indicator_maps(store.report_ids()[:20_000])]
        store.dispose()

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
        "benchmark": "assess", "reports": n, "policy": policy.name, "policy_version": version,
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in load_before],
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "target": {"reports": 1_000_000, "seconds": 60},
        "vectorised_seconds": round(vec_s, 2),
        "per_report_seconds_extrapolated": round(row_s, 1), "per_report_measured_on": m,
        "speedup": round(row_s / vec_s, 1),
        "tiers": {str(k): int(v) for k, v in zip(*np.unique(tiers, return_counts=True), strict=True)},
        "pipeline_stage": pipeline_stage,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000), indent=2))
