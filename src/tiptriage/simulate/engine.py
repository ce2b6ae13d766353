"""A discrete-event simulator of tip queues: which ordering of the queue reaches children at risk soonest.

Time is in hours from the start of the run (day 0 is a Monday, 00:00). Arrivals (referrals) come each day
with the calibrated weekly pattern and viral bursts; each has a truth class, an agency (task force), a
handling time and indicator columns sampled per class, so the REAL policy engine
(:func:`tiptriage.assess.policy.evaluate_columns`) ranks them; no rule is copied here.

Each agency has K investigators who work only in the calibrated working hours. The simulation runs on a
*working-time clock* W (hours of investigator time since the start): a report that arrives out of hours
waits until the next working block, and a piece of work that does not fit in a block continues in the
next. On that clock every agency is a non-preemptive priority queue with K servers: whenever an
investigator is free, they take the report first in the policy's order among those waiting (ties by
arrival), and the report's *first action* is the moment they start it. A report not started within the
provider's preservation window (calibrated: 1 year) expires and leaves the queue. Agencies are independent.

Policies: ``fifo`` (arrival order), ``offence-type`` (production > distribution > possession > viewing >
none, from the offence indicators, then arrival), ``default`` (the default YAML policy: tier, then score,
then arrival) or the path of a YAML policy (same key). Each policy's key is computed once per arrival,
vectorised; the queue of each agency is a heap of those keys.

Conservation: every arrival ends actioned, waiting (still queued at the end) or expired. Results are a
deterministic function of the seed. Nothing here touches the operational store.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

from tiptriage.assess.policy import Policy, evaluate_columns, load_default_policy, load_policy, policy_fingerprint
from tiptriage.simulate.calibration import CLASSES, LIVE_VICTIM_CLASSES, Calibration

__all__ = [
    "BUILTIN_POLICIES",
    "Arrivals",
    "Outcome",
    "PolicyKey",
    "Schedule",
    "generate_arrivals",
    "make_arrivals",
    "policy_key",
    "quantile",
    "sample_indicators",
    "serve",
    "simulate_policy",
    "summarise",
]

F64: TypeAlias = NDArray[np.float64]
I64: TypeAlias = NDArray[np.int64]
BUILTIN_POLICIES = ("fifo", "offence-type", "default")
ENTICEMENT = "Online Enticement of Children for Sexual Acts"
WITHIN_DAYS = (1, 7, 30)
OFFENCE_LEVELS = ("production", "distribution", "possession", "viewing", "none")


# -- working time ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """Investigators work ``hours_per_day`` from ``start_hour`` on ``workdays`` (0 = Monday)."""

    workdays: tuple[int, ...] = (0, 1, 2, 3, 4)
    start_hour: float = 8.0
    hours_per_day: float = 6.0

    def __post_init__(self) -> None:
        days = tuple(sorted(set(self.workdays)))
        if not days or days[0] < 0 or days[-1] > 6:
            raise ValueError("workdays: day numbers 0 (Monday) to 6 (Sunday), at least one")
        if not 0 < self.hours_per_day <= 24 or not self.start_hour >= 0 or self.start_hour + self.hours_per_day > 24:
            raise ValueError("working block must lie within a day: 0 <= start_hour, 0 < hours_per_day, start_hour + hours_per_day <= 24")
        object.__setattr__(self, "workdays", days)

    @classmethod
    def always(cls) -> Schedule:
        """Round the clock, every day: working time equals calendar time."""
        return cls((0, 1, 2, 3, 4, 5, 6), 0.0, 24.0)

    @classmethod
    def from_calibration(cls, cal: Calibration) -> Schedule:
        wh = cal.working_hours
        return cls(tuple(wh.workdays.value), wh.start_hour.value, wh.hours_per_day.value)

    def work_time(self, t: F64) -> F64:
        """W(t): investigator hours available from time 0 to calendar time ``t`` (negative before 0)."""
        t = np.asarray(t, np.float64)
        is_work = np.zeros(7, np.bool_)
        is_work[list(self.workdays)] = True
        before = np.concatenate([[0], np.cumsum(is_work)[:-1]]).astype(np.float64)  # workdays earlier in the week
        day = np.floor(t / 24.0)
        dow = (day % 7).astype(np.int64)
        week = np.floor(day / 7.0)
        inday = np.where(is_work[dow], np.clip(t - 24.0 * day - self.start_hour, 0.0, self.hours_per_day), 0.0)
        return np.asarray(self.hours_per_day * (week * len(self.workdays) + before[dow]) + inday, np.float64)

    def calendar_time(self, w: F64) -> F64:
        """The calendar time at which working time ``w`` is reached (the start of the next block at a block's end)."""
        w = np.asarray(w, np.float64)
        days = np.asarray(self.workdays, np.float64)
        k = np.floor(w / self.hours_per_day)
        off = w - k * self.hours_per_day
        nw = len(self.workdays)
        week = np.floor(k / nw)
        r = (k - week * nw).astype(np.int64)
        return np.asarray(24.0 * (7.0 * week + days[r]) + self.start_hour + off, np.float64)


# -- arrivals ----------------------------------------------------------------------------------------------


@dataclass
class Arrivals:
    """Referrals sorted by time: their class (index into ``labels``), agency, handling hours and indicators."""

    time_h: F64
    klass: NDArray[np.int16]
    agency: NDArray[np.int32]
    handling_h: F64
    columns: dict[str, NDArray[Any]]
    labels: tuple[str, ...] = CLASSES
    live: frozenset[str] = frozenset(LIVE_VICTIM_CLASSES)
    n_agencies: int = 1
    _tiers: dict[str, tuple[NDArray[np.int8], I64]] = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        return int(self.time_h.shape[0])

    def counts(self) -> dict[str, int]:
        c = np.bincount(self.klass, minlength=len(self.labels))
        return {label: int(c[i]) for i, label in enumerate(self.labels)}

    def assess(self, policy: Policy, key: str) -> tuple[NDArray[np.int8], I64]:
        """Tiers and scores under ``policy`` (cached under ``key``, its fingerprint), from the policy engine."""
        if key not in self._tiers:
            tiers, scores, _ = evaluate_columns(policy, self.columns, self.n)
            self._tiers[key] = (tiers, scores)
        return self._tiers[key]


def make_arrivals(time_h: Sequence[float] | F64, labels: Sequence[str], handling_h: Sequence[float] | F64,
                  columns: Mapping[str, Any] | None = None, agency: Sequence[int] | None = None,
                  live: Sequence[str] = LIVE_VICTIM_CLASSES) -> Arrivals:
    """Arrivals from explicit lists (for replays and small hand-made cases); sorted by time, stable."""
    t = np.asarray(time_h, np.float64)
    n = t.shape[0]
    names = tuple(dict.fromkeys([*CLASSES, *labels]))
    index = {c: i for i, c in enumerate(names)}
    klass = np.fromiter((index[x] for x in labels), np.int16, n)
    ag = np.zeros(n, np.int32) if agency is None else np.asarray(agency, np.int32)
    order = np.argsort(t, kind="stable")
    cols = {k: np.asarray(v)[order] for k, v in (columns or {}).items()}
    return Arrivals(t[order], klass[order], ag[order], np.asarray(handling_h, np.float64)[order], cols, names,
                    frozenset(live), int(ag.max()) + 1 if n else 1)


def _band(age: F64) -> NDArray[Any]:
    band = np.full(age.shape[0], "unknown", dtype=object)
    band[age < 3] = "infant_toddler"
    band[(age >= 3) & (age < 12)] = "prepubescent"
    band[age >= 12] = "pubescent"
    return band


def sample_indicators(cal: Calibration, klass: NDArray[np.int16], rng: np.random.Generator) -> dict[str, NDArray[Any]]:
    """Indicator columns for arrivals of the given classes, drawn from the calibration's per-class rates."""
    n = int(klass.shape[0])
    specs = [cal.indicators.classes[c] for c in CLASSES]
    cols: dict[str, NDArray[Any]] = {}
    # incident type: one categorical draw per arrival, from its class's distribution
    types = sorted({t for s in specs for t in s.incident_type})
    code = np.zeros(n, np.int64)
    u = rng.random(size=n)
    for ci, s in enumerate(specs):
        mask = klass == ci
        cum = np.cumsum(np.asarray([s.incident_type.get(name, 0.0) for name in types], np.float64))
        code[mask] = np.minimum(np.searchsorted(cum, u[mask] * float(cum[-1]), side="right"), len(types) - 1)
    cols["incident_type"] = np.asarray(types, dtype=object)[code]
    cols["enticement"] = cols["incident_type"] == ENTICEMENT
    for name in sorted({b for s in specs for b in s.bools}):
        p = np.asarray([s.bools.get(name, 0.0) for s in specs], np.float64)
        cols[name] = rng.random(size=n) < p[klass]
    for name in sorted({i for s in specs for i in s.ints}):
        got = [s.ints.get(name) for s in specs]
        p = np.asarray([g.p if g else 0.0 for g in got], np.float64)
        lo = np.asarray([g.lo if g else 0 for g in got], np.float64)
        hi = np.asarray([g.hi if g else 0 for g in got], np.float64)
        other = np.asarray([math.nan if g is None or g.otherwise is None else float(g.otherwise) for g in got], np.float64)
        hit = rng.random(size=n) < p[klass]
        value = lo[klass] + np.floor(rng.random(size=n) * (hi[klass] - lo[klass] + 1.0))
        cols[name] = np.where(hit, value, other[klass])
    false = np.zeros(n, np.bool_)
    novel = cols.get("novel_uploaded_files")
    production = np.zeros(n, np.bool_) if novel is None else np.nan_to_num(novel) >= 1
    cols["offence_production"] = production
    distribution = cols.get("offence_distribution", false)
    cols["offence_possession"] = cols.get("offence_possession", false) & ~production & ~distribution
    age = cols.get("victim_age_min")
    cols["victim_band"] = _band(np.full(n, math.nan) if age is None else age)
    return cols


def _lognormal(rng: np.random.Generator, mean: F64, cv: float) -> F64:
    if cv <= 0:
        return mean.copy()
    s2 = math.log1p(cv * cv)
    return np.asarray(mean * np.exp(rng.normal(-s2 / 2.0, math.sqrt(s2), mean.shape[0])), np.float64)


def generate_arrivals(cal: Calibration, days: int, seed: int, agencies: int | None = None) -> Arrivals:
    """One realisation of ``days`` days of referrals (plus the calibrated initial backlog), deterministic in ``seed``."""
    if days < 0:
        raise ValueError("days must be non-negative")
    rng = np.random.default_rng(seed)
    n_ag = int(agencies if agencies is not None else cal.volume.task_forces.value)
    if n_ag < 1:
        raise ValueError("at least one agency")
    backlog = int(cal.volume.initial_backlog_days.value)
    day = np.arange(-backlog, days, dtype=np.int64)
    weekly = np.asarray(cal.weekly_pattern.value, np.float64)
    weekly = weekly / weekly.mean()
    b = cal.bursts
    mean_len = (b.min_days.value + b.max_days.value) / 2.0
    burst_share = b.per_year.value * mean_len * b.extra_volume.value / 365.0
    base = cal.volume.referrals_per_year.value / 365.0 / (1.0 + burst_share)
    counts = rng.poisson(base * weekly[day % 7])
    # bursts: Poisson number of viral events, each over consecutive days, extra volume of the burst mix
    n_bursts = int(rng.poisson(b.per_year.value * day.shape[0] / 365.0)) if b.classes.value else 0
    starts = rng.integers(0, max(1, day.shape[0]), n_bursts)
    lengths = rng.integers(int(b.min_days.value), int(b.max_days.value) + 1, n_bursts)
    extra = np.zeros(day.shape[0], np.int64)
    for s, ln in zip(starts.tolist(), lengths.tolist(), strict=True):
        span = slice(s, min(s + ln, day.shape[0]))
        extra[span] += rng.poisson(base * b.extra_volume.value, span.stop - span.start)
    mix = cal.mix()
    p_mix = np.asarray([mix[c] for c in CLASSES], np.float64)
    n_base, n_extra = int(counts.sum()), int(extra.sum())
    klass_base = rng.choice(len(CLASSES), size=n_base, p=p_mix / p_mix.sum())
    if n_extra:
        bw = np.asarray([b.classes.value.get(c, 0.0) for c in CLASSES], np.float64)
        klass_extra = rng.choice(len(CLASSES), size=n_extra, p=bw / bw.sum())
    else:
        klass_extra = np.zeros(0, np.int64)
    klass = np.concatenate([klass_base, klass_extra]).astype(np.int16)
    day_of = np.concatenate([np.repeat(day, counts), np.repeat(day, extra)])
    n = int(klass.shape[0])
    t = (day_of.astype(np.float64) + rng.random(size=n)) * 24.0
    shares = cal.volume.agency_shares.value
    if shares and len(shares) == n_ag:
        w = np.asarray(shares, np.float64)
        agency = np.asarray(rng.choice(n_ag, size=n, p=w / w.sum()), np.int32)
    else:
        agency = rng.integers(0, n_ag, size=n, dtype=np.int32)
    order = np.argsort(t, kind="stable")
    t, klass, agency = t[order], klass[order], agency[order]
    cols = sample_indicators(cal, klass, rng)
    arrivals = Arrivals(t, klass, agency, np.zeros(n), cols, CLASSES, frozenset(LIVE_VICTIM_CLASSES), n_ag)
    default_policy = load_default_policy()[0]
    tiers, _ = arrivals.assess(default_policy, policy_fingerprint(default_policy))
    hours = np.asarray([cal.handling_hours[c].value for c in CLASSES], np.float64)[klass]
    factor = np.asarray([cal.handling_tier_factor.value[str(k)] for k in range(1, 5)], np.float64)[tiers.astype(np.int64) - 1]
    arrivals.handling_h = _lognormal(rng, hours * factor, cal.handling_cv.value)
    return arrivals


# -- policy keys -------------------------------------------------------------------------------------------


@dataclass
class PolicyKey:
    """A policy's order over arrivals: ``rank[i]`` (0 = first) and, for YAML policies, tiers and scores."""

    name: str
    kind: str
    rank: I64
    tiers: NDArray[np.int8] | None = None
    scores: I64 | None = None
    policy_name: str | None = None


def _ranks(*keys: NDArray[Any]) -> I64:
    """Ranks of a lexicographic order, most significant key first; ties broken by arrival index."""
    n = keys[0].shape[0] if keys else 0
    order = np.lexsort((np.arange(n), *reversed(keys)))
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n, dtype=np.int64)
    return rank


def offence_levels(columns: Mapping[str, NDArray[Any]], n: int) -> I64:
    """0 production, 1 distribution, 2 possession, 3 viewing, 4 none: the offence-type ranking's key."""
    def flag(name: str) -> NDArray[np.bool_]:
        col = columns.get(name)
        if col is None:
            return np.zeros(n, np.bool_)
        return np.fromiter((x is True for x in col), np.bool_, n) if col.dtype == object else np.asarray(col, np.bool_)

    level = np.full(n, 4, np.int64)
    for i, name in reversed(list(enumerate(("offence_production", "offence_distribution", "offence_possession", "offence_viewing")))):
        level[flag(name)] = i
    return level


def policy_key(policy: str | Policy, arrivals: Arrivals) -> PolicyKey:
    """The order of ``policy`` over ``arrivals``: fifo, offence-type, default, a YAML path, or a Policy."""
    n = arrivals.n
    if isinstance(policy, Policy):
        tiers, scores = arrivals.assess(policy, policy_fingerprint(policy))
        return PolicyKey(policy.name, "yaml", _ranks(tiers.astype(np.int64), -scores, arrivals.time_h), tiers, scores, policy.name)
    if policy == "fifo":
        return PolicyKey(policy, "fifo", _ranks(arrivals.time_h))
    if policy == "offence-type":
        return PolicyKey(policy, "offence-type", _ranks(offence_levels(arrivals.columns, n), arrivals.time_h))
    if policy == "default":
        pol = load_default_policy()[0]
    else:
        path = Path(policy)
        if not path.is_file():
            raise ValueError(f"unknown policy '{policy}': use fifo, offence-type, default or the path of a YAML policy")
        pol = load_policy(path)[0]
    tiers, scores = arrivals.assess(pol, policy_fingerprint(pol))
    return PolicyKey(policy, "yaml", _ranks(tiers.astype(np.int64), -scores, arrivals.time_h), tiers, scores, pol.name)


# -- the queue ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What happened to each arrival: start of the first action (calendar hours, NaN if none) and status."""

    start_h: F64
    actioned: NDArray[np.bool_]
    expired: NDArray[np.bool_]
    waiting: NDArray[np.bool_]
    deadline_h: F64
    end_h: float
    busy_hours: float
    available_hours: float


def _serve_agency(wa: list[float], rk: list[int], sv: list[float], dl: list[float], k: int, horizon: float) -> list[float]:
    """Non-preemptive K-server priority queue on the working clock; returns the start (working time) or NaN."""
    m = len(wa)
    start = [math.nan] * m
    if k <= 0 or m == 0:
        return start
    local = {r: j for j, r in enumerate(rk)}
    free = [0.0] * k
    queue: list[int] = []
    push, pop, replace = heapq.heappush, heapq.heappop, heapq.heapreplace
    i = 0
    while True:
        t = free[0]
        if t >= horizon:
            break
        while i < m and wa[i] <= t:
            push(queue, rk[i])
            i += 1
        if not queue:
            if i >= m:
                break
            t = wa[i]
            if t >= horizon:
                break
            while i < m and wa[i] <= t:
                push(queue, rk[i])
                i += 1
        j = -1
        while queue:
            cand = local[pop(queue)]
            if dl[cand] > t:
                j = cand
                break
        if j < 0:
            continue  # everything waiting had expired; the investigator idles until the next arrival
        start[j] = t
        replace(free, t + sv[j])
    return start


def serve(arrivals: Arrivals, key: PolicyKey, investigators: int | Sequence[int], schedule: Schedule,
          days: float | None, preservation_days: float) -> Outcome:
    """Run every agency's queue under ``key``. ``days=None`` runs until every report is actioned or expired."""
    n = arrivals.n
    n_ag = max(arrivals.n_agencies, int(arrivals.agency.max()) + 1 if n else 1)
    staff = [int(investigators)] * n_ag if isinstance(investigators, int | np.integer) else [int(x) for x in investigators]
    if len(staff) != n_ag:
        raise ValueError(f"investigators: one number, or one per agency ({n_ag})")
    wa = schedule.work_time(arrivals.time_h)
    deadline = arrivals.time_h + 24.0 * preservation_days
    dl = schedule.work_time(deadline)
    end_cal = math.inf if days is None else 24.0 * float(days)
    horizon = math.inf if days is None else float(schedule.work_time(np.asarray([end_cal]))[0])
    start_w = np.full(n, math.nan)
    by_agency = np.argsort(arrivals.agency, kind="stable")  # within an agency, still in arrival order
    bounds = np.concatenate([[0], np.cumsum(np.bincount(arrivals.agency, minlength=n_ag))])
    for a in range(n_ag):
        idx = by_agency[bounds[a]:bounds[a + 1]]
        if idx.shape[0] == 0:
            continue
        got = _serve_agency(wa[idx].tolist(), key.rank[idx].tolist(), arrivals.handling_h[idx].tolist(), dl[idx].tolist(), staff[a], horizon)
        start_w[idx] = got
    actioned = ~np.isnan(start_w)
    start = np.full(n, math.nan)
    start[actioned] = schedule.calendar_time(start_w[actioned])
    done_w = start_w[actioned] + arrivals.handling_h[actioned]
    if days is None:  # the run ends at the end of the day in which the last work is done or the last report lapses
        last_done = float(schedule.calendar_time(np.asarray([done_w.max(initial=0.0)]))[0])
        end_cal = max(last_done, float(arrivals.time_h.max(initial=0.0)), float(deadline[~actioned].max(initial=0.0)))
        end_cal = math.ceil(end_cal / 24.0) * 24.0
        horizon = float(schedule.work_time(np.asarray([end_cal]))[0])
    busy = float(np.minimum(done_w, horizon).sum() - start_w[actioned].sum())
    expired = ~actioned & (deadline <= end_cal)
    waiting = ~actioned & ~expired
    return Outcome(start, actioned, expired, waiting, deadline, end_cal, busy, float(sum(staff)) * max(horizon, 0.0))


# -- measures ----------------------------------------------------------------------------------------------


def quantile(values: F64, q: float) -> float:
    """The smallest v with P(X <= v) >= q (inverted CDF); +inf counts as "not reached"."""
    n = values.shape[0]
    if n == 0:
        return math.nan
    k = max(0, math.ceil(q * n) - 1)
    return float(np.partition(values, k)[k])


def _finite(x: float) -> float | None:
    return None if math.isnan(x) or math.isinf(x) else x


def _measures(wait: F64, arrival: F64, end: float, mask: NDArray[np.bool_], outcome: Outcome) -> dict[str, Any]:
    w = wait[mask]
    out: dict[str, Any] = {
        "arrivals": int(mask.sum()),
        "actioned": int((outcome.actioned & mask).sum()),
        "waiting": int((outcome.waiting & mask).sum()),
        "expired": int((outcome.expired & mask).sum()),
        "median_hours": _finite(quantile(w, 0.5)),
        "p90_hours": _finite(quantile(w, 0.9)),
    }
    # one cohort for the three shares (so they rise with d): the arrivals that had the longest span before the
    # end, or every arrival when none is still waiting (then no time is censored by the end of the run)
    eligible = mask & (arrival + 24.0 * max(WITHIN_DAYS) <= end) if outcome.waiting.any() else mask
    n_el = int(eligible.sum())
    out["cohort"] = n_el
    for d in WITHIN_DAYS:
        out[f"within_{d}d"] = None if n_el == 0 else float((wait[eligible] <= 24.0 * d).sum()) / n_el
    return out


def _backlog(times: F64, starts: F64, expiries: F64, n_days: int) -> list[int]:
    ends = 24.0 * np.arange(1, n_days + 1, dtype=np.float64)
    arrived = np.searchsorted(np.sort(times), ends, side="right")
    started = np.searchsorted(np.sort(starts), ends, side="right")
    gone = np.searchsorted(np.sort(expiries), ends, side="right")
    return [int(x) for x in arrived - started - gone]


def summarise(arrivals: Arrivals, key: PolicyKey, outcome: Outcome) -> dict[str, Any]:
    """Per truth class and for the live-victim group: counts, median and p90 time to first action
    (hours; ``None`` = not reached within the run for that share), share actioned within 1, 7, 30 days
    (over the ``cohort`` of arrivals at least 30 days before the end, or all when nothing is left waiting;
    ``None`` if the cohort is empty), the
    backlog at the end of each day and investigator utilisation (busy / available working hours)."""
    wait = np.where(outcome.actioned, outcome.start_h - arrivals.time_h, math.inf)
    end = outcome.end_h
    used = [i for i, label in enumerate(arrivals.labels) if (arrivals.klass == i).any() or label in CLASSES]
    classes = {arrivals.labels[i]: _measures(wait, arrivals.time_h, end, arrivals.klass == i, outcome) for i in used}
    live_idx = [i for i, label in enumerate(arrivals.labels) if label in arrivals.live]
    live = np.isin(arrivals.klass, live_idx)
    everyone = np.ones(arrivals.n, np.bool_)
    n_days = max(0, math.ceil(end / 24.0)) if math.isfinite(end) else 0
    starts = outcome.start_h[outcome.actioned]
    exp = outcome.deadline_h[outcome.expired]
    result: dict[str, Any] = {
        "policy": key.name,
        "kind": key.kind,
        "policy_name": key.policy_name,
        "arrivals": arrivals.n,
        "actioned": int(outcome.actioned.sum()),
        "waiting": int(outcome.waiting.sum()),
        "expired": int(outcome.expired.sum()),
        "utilisation": outcome.busy_hours / outcome.available_hours if outcome.available_hours > 0 else None,
        "classes": classes,
        "groups": {"live_victim": _measures(wait, arrivals.time_h, end, live, outcome),
                   "all": _measures(wait, arrivals.time_h, end, everyone, outcome)},
        "backlog": {
            "total": _backlog(arrivals.time_h, starts, exp, n_days),
            "live_victim": _backlog(arrivals.time_h[live], outcome.start_h[live & outcome.actioned],
                                    outcome.deadline_h[live & outcome.expired], n_days),
        },
    }
    if key.tiers is not None:
        result["tiers"] = {arrivals.labels[i]: {str(t): int(c) for t, c in zip(range(1, 5), np.bincount(key.tiers[arrivals.klass == i], minlength=5)[1:], strict=True)}
                           for i in used}
    return result


def simulate_policy(arrivals: Arrivals, policy: str | Policy, investigators: int | Sequence[int], schedule: Schedule,
                    days: float | None, preservation_days: float) -> dict[str, Any]:
    """Rank, serve and summarise one policy over ``arrivals``."""
    key = policy_key(policy, arrivals)
    outcome = serve(arrivals, key, investigators, schedule, days, preservation_days)
    return summarise(arrivals, key, outcome)
