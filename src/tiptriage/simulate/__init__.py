"""Capacity and policy simulation: which triage policy, with the staff a unit has, reaches children at risk soonest.

    from tiptriage import simulate
    result = simulate.compare(["fifo", "offence-type", "default"], days=365, investigators=8, seed=1)
    result["policies"]["default"]["groups"]["live_victim"]["median_hours"]

Results are JSON-able dicts ``{"setup": {...}, "policies": {name: result}}`` (see
:func:`tiptriage.simulate.engine.summarise`); :mod:`tiptriage.simulate.report` writes CSV and charts and
:mod:`tiptriage.simulate.backtest` replays labelled reports. Nothing here reads or writes the operational store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tiptriage.simulate.calibration import Calibration, load_calibration, load_default_calibration
from tiptriage.simulate.engine import BUILTIN_POLICIES, Schedule, generate_arrivals, simulate_policy

__all__ = ["BUILTIN_POLICIES", "Calibration", "compare", "load_calibration", "load_default_calibration", "run"]


def compare(policies: Sequence[str], days: int = 365, investigators: int | None = None, seed: int = 0,
            calibration: Calibration | None = None, agencies: int | None = None) -> dict[str, Any]:
    """Run every policy over the SAME arrivals (one realisation for the seed) and return their results.

    ``investigators`` is per agency (default: the calibration's); ``agencies`` defaults to the calibration's
    task forces (61). Policies: ``fifo``, ``offence-type``, ``default`` or the path of a YAML policy.
    """
    names = list(dict.fromkeys(policies))
    if not names:
        raise ValueError("name at least one policy")
    cal = calibration if calibration is not None else load_default_calibration()
    staff = int(investigators if investigators is not None else cal.investigators_per_agency.value)
    if staff < 0:
        raise ValueError("investigators must be non-negative")
    arrivals = generate_arrivals(cal, days, seed, agencies)
    schedule = Schedule.from_calibration(cal)
    preservation = cal.preservation_days.value
    results = {name: simulate_policy(arrivals, name, staff, schedule, days, preservation) for name in names}
    return {
        "setup": {
            "days": days,
            "seed": seed,
            "agencies": arrivals.n_agencies,
            "investigators_per_agency": staff,
            "arrivals": arrivals.n,
            "arrivals_by_class": arrivals.counts(),
            "calibration": cal.summary(),
        },
        "policies": results,
    }


def run(policy: str, days: int = 365, investigators: int | None = None, seed: int = 0,
        calibration: Calibration | None = None, agencies: int | None = None) -> dict[str, Any]:
    """One policy; the same shape as :func:`compare` (``{"setup": ..., "policies": {policy: result}}``)."""
    return compare([policy], days=days, investigators=investigators, seed=seed, calibration=calibration, agencies=agencies)
