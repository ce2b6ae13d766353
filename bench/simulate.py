"""Benchmark: one simulated national year (about 1.1 million referrals to 61 ICAC task forces) under the
compared policies, on identical arrivals; wall time per phase, peak resident memory and the headline
measures (live-victim time to first action). Writes nothing itself (bench/run.py writes the JSON).

    python bench/simulate.py            # prints the JSON
"""

from __future__ import annotations

import json
import os
import resource
import time
from typing import Any

from tiptriage.simulate.calibration import load_default_calibration
from tiptriage.simulate.engine import Schedule, generate_arrivals, policy_key, serve, summarise

POLICIES = ("fifo", "offence-type", "default")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(days: int = 365, seed: int = 0) -> dict[str, Any]:
    cal = load_default_calibration()
    staff = int(cal.investigators_per_agency.value)
    t0 = time.perf_counter()
    arrivals = generate_arrivals(cal, days, seed)
    t_gen = time.perf_counter() - t0
    schedule = Schedule.from_calibration(cal)
    per_policy: dict[str, Any] = {}
    for name in POLICIES:
        t1 = time.perf_counter()
        key = policy_key(name, arrivals)
        t2 = time.perf_counter()
        outcome = serve(arrivals, key, staff, schedule, days, cal.preservation_days.value)
        t3 = time.perf_counter()
        res = summarise(arrivals, key, outcome)
        t4 = time.perf_counter()
        live = res["groups"]["live_victim"]
        per_policy[name] = {
            "rank_s": round(t2 - t1, 3), "queue_s": round(t3 - t2, 3), "summary_s": round(t4 - t3, 3), "total_s": round(t4 - t1, 3),
            "actioned": res["actioned"], "waiting": res["waiting"], "expired": res["expired"],
            "utilisation": round(res["utilisation"], 4),
            "live_victim_median_hours": None if live["median_hours"] is None else round(live["median_hours"], 2),
            "live_victim_p90_hours": None if live["p90_hours"] is None else round(live["p90_hours"], 2),
            "live_victim_within_7d": None if live["within_7d"] is None else round(live["within_7d"], 4),
        }
    total = time.perf_counter() - t0
    return {
        "bench": "simulate",
        "days": days,
        "seed": seed,
        "referrals": arrivals.n,
        "task_forces": arrivals.n_agencies,
        "investigators_per_task_force": staff,
        "policies": list(POLICIES),
        "generate_s": round(t_gen, 3),
        "total_s": round(total, 3),
        "target_s": 60,
        "cpu_count": os.cpu_count(),
        "peak_rss_mb": round(_rss_mb(), 1),
        "per_policy": per_policy,
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
