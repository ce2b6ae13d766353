"""Backtesting: replay labelled reports (arrival, truth class or recorded outcome, indicators) under policies.

Each report keeps its real arrival time and indicators; the queue is the simulator's (K investigators per
agency, working hours, preservation window), so the measures are the same as a simulation's, grouped by
label. Handling time is the report's own when given, else the calibration's for its truth class, else the
calibration's mean over the class mix (for labels that are outcomes, not classes). Datetimes are measured
from Monday 00:00 of the week of the earliest arrival, so weekdays line up with the working hours.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeAlias

import numpy as np

from tiptriage.assess.policy import Indicator, Policy
from tiptriage.simulate.calibration import CLASSES, LIVE_VICTIM_CLASSES, Calibration, load_default_calibration
from tiptriage.simulate.engine import Schedule, make_arrivals, simulate_policy

__all__ = ["LabelledReport", "backtest", "to_columns"]

IndicatorInput: TypeAlias = Indicator | bool | int | float | str | None


@dataclass(frozen=True)
class LabelledReport:
    """One recorded report: when it arrived, its truth class or recorded outcome, and its indicators."""

    arrival: datetime | float
    label: str
    indicators: Mapping[str, IndicatorInput] = field(default_factory=dict)
    handling_hours: float | None = None
    agency: int = 0


def _value(v: IndicatorInput) -> bool | int | float | str | None:
    return v.value if isinstance(v, Indicator) else v


def to_columns(indicators: Sequence[Mapping[str, IndicatorInput]]) -> dict[str, np.ndarray[Any, np.dtype[Any]]]:
    """Object columns (``None`` = missing) of every indicator named in any report, for ``evaluate_columns``."""
    names = sorted({k for r in indicators for k in r})
    n = len(indicators)
    cols: dict[str, np.ndarray[Any, np.dtype[Any]]] = {}
    for name in names:
        col = np.empty(n, dtype=object)
        for j, r in enumerate(indicators):
            col[j] = _value(r.get(name))
        cols[name] = col
    return cols


def _hours(arrivals: Sequence[datetime | float]) -> tuple[list[float], str | None]:
    if not arrivals:
        return [], None
    if all(isinstance(a, datetime) for a in arrivals):
        stamps = [a for a in arrivals if isinstance(a, datetime)]
        first = min(stamps)
        t0 = (first - timedelta(days=first.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
        return [(a - t0).total_seconds() / 3600.0 for a in stamps], t0.isoformat()
    if any(isinstance(a, datetime) for a in arrivals):
        raise ValueError("arrival times must be all datetimes or all hours from the start")
    return [float(a) for a in arrivals if not isinstance(a, datetime)], None


def backtest(reports: Sequence[LabelledReport | tuple[Any, ...]], policies: str | Policy | Sequence[str | Policy] = "default",
             investigators: int | Sequence[int] = 1, calibration: Calibration | None = None, days: float | None = None,
             schedule: Schedule | None = None, live_labels: Sequence[str] | None = None) -> dict[str, Any]:
    """Replay ``reports`` under each policy; ``{"setup": ..., "policies": {name: result}}`` like a simulation.

    ``reports`` are :class:`LabelledReport` or tuples ``(arrival, label, indicators[, handling_hours[, agency]])``.
    ``days=None`` runs until every report is actioned or expired (else the run ends ``days`` days after
    the start). ``live_labels`` names the labels that count as a child at risk (default: the live-victim classes).
    """
    items = [r if isinstance(r, LabelledReport) else LabelledReport(*r) for r in reports]
    cal = calibration if calibration is not None else load_default_calibration()
    sched = schedule if schedule is not None else Schedule.from_calibration(cal)
    times, t0 = _hours([r.arrival for r in items])
    mix = cal.mix()
    mean_hours = sum(mix[c] * cal.handling_hours[c].value for c in CLASSES)
    handling = [r.handling_hours if r.handling_hours is not None
                else (cal.handling_hours[r.label].value if r.label in cal.handling_hours else mean_hours) for r in items]
    if any(not (h > 0 and math.isfinite(h)) for h in handling):
        raise ValueError("handling hours must be positive and finite")
    live = tuple(live_labels) if live_labels is not None else LIVE_VICTIM_CLASSES
    arrivals = make_arrivals(times, [r.label for r in items], handling, to_columns([r.indicators for r in items]),
                             [r.agency for r in items], live)
    chosen: list[str | Policy] = [policies] if isinstance(policies, str | Policy) else list(policies)
    results: dict[str, Any] = {}
    for p in chosen:
        res = simulate_policy(arrivals, p, investigators, sched, days, cal.preservation_days.value)
        results[res["policy"] if isinstance(p, Policy) else p] = res
    return {
        "setup": {"reports": len(items), "days": days, "t0": t0, "agencies": arrivals.n_agencies,
                  "investigators": investigators if isinstance(investigators, int) else list(investigators),
                  "live_labels": list(live), "arrivals_by_class": {k: v for k, v in arrivals.counts().items() if v}},
        "policies": results,
    }
