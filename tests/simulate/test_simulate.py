"""The triage simulator: conservation, determinism, hand-computed cases, a reference queue, the policy
comparison on the default calibration, identical arrivals under compare(), reports and charts."""

from __future__ import annotations

import ast
import csv
import json
import math
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tiptriage import simulate
from tiptriage.assess.policy import load_default_policy, policy_to_yaml
from tiptriage.simulate import report
from tiptriage.simulate.backtest import LabelledReport, backtest
from tiptriage.simulate.calibration import CLASSES, LIVE_VICTIM_CLASSES, Calibration, derived_class_mix, load_default_calibration
from tiptriage.simulate.engine import Schedule, make_arrivals, policy_key, quantile, serve

POLICIES = ["fifo", "offence-type", "default"]
SMALL_AGENCIES = 4


def small_calibration(**changes: Any) -> Calibration:
    """The default calibration at the per-task-force load of the national one, for a few agencies."""
    cal = load_default_calibration()
    per_agency = cal.volume.referrals_per_year.value / cal.volume.task_forces.value
    return cal.with_updates(referrals_per_year=per_agency * SMALL_AGENCIES, task_forces=SMALL_AGENCIES, **changes)


@pytest.fixture(scope="module")
def comparison() -> dict[str, Any]:
    return simulate.compare(POLICIES, days=120, investigators=8, seed=7, calibration=small_calibration())


def _inf(x: float | None) -> float:
    return math.inf if x is None else x


# -- calibration -------------------------------------------------------------------------------------------


def test_calibration_figures_carry_sources_and_derivations_hold() -> None:
    cal = load_default_calibration()
    raw = json.loads((Path(simulate.__file__).parents[1] / "data" / "simulation_calibration.json").read_text("utf-8"))

    def figures(node: Any) -> list[dict[str, Any]]:
        if isinstance(node, dict) and "value" in node and "status" in node:
            return [node]
        return [f for v in node.values() for f in figures(v)] if isinstance(node, dict) else []

    found = figures({k: v for k, v in raw.items() if k != "indicators"})
    assert len(found) > 40
    for f in found:
        assert f["source"] and f["status"]
        if f["status"] in ("primary", "secondary", "unverified"):
            assert any(tok.strip().startswith("S") for tok in f["source"].split(";")), f
    assert raw["indicators"]["source"] == "assumption"
    for klass, share in derived_class_mix(cal).items():
        assert cal.class_mix[klass].value == pytest.approx(share, abs=1e-6), klass
    assert sum(cal.mix().values()) == pytest.approx(1.0)
    assert cal.volume.referrals_per_year.value == 1_100_000 and cal.volume.task_forces.value == 61
    assert cal.preservation_days.value == 365
    assert cal.references["icac_investigations_fy2024"].value == 203467 and cal.references["icac_investigations_fy2024"].source == "S34"


def test_calibration_rejects_bad_data() -> None:
    data = load_default_calibration().model_dump(by_alias=True)
    data["class_mix"]["spam"]["value"] = 0.5
    with pytest.raises(ValueError, match="sum to 1"):
        Calibration.model_validate(data)
    with pytest.raises(KeyError):
        load_default_calibration().with_updates(nonsense=1)


def test_simulate_never_touches_the_store() -> None:
    for path in (Path(simulate.__file__).parent).glob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert not name.startswith(("tiptriage.store", "sqlalchemy", "alembic", "psycopg")), f"{path.name} imports {name}"


# -- the working clock -------------------------------------------------------------------------------------


def test_working_clock_round_trip() -> None:
    s = Schedule((0, 1, 2, 3, 4), 8.0, 6.0)
    t = np.linspace(-200.0, 2000.0, 4001)
    w = s.work_time(t)
    assert np.all(np.diff(w) >= 0)
    back = s.calendar_time(w)
    assert np.all(back >= t - 1e-9)  # first working moment at or after t
    hour = t % 24.0
    inside = (np.floor(t / 24.0) % 7 < 5) & (hour >= 8.0) & (hour < 14.0)
    assert np.allclose(back[inside], t[inside])
    assert s.work_time(np.asarray([0.0, 14.0, 24 * 7.0]))[2] == 30.0  # a whole week gives 5 x 6 hours
    assert np.allclose(Schedule.always().work_time(t), t)


# -- hand-computable cases ---------------------------------------------------------------------------------


def test_one_investigator_fifo_and_default_match_hand_computation() -> None:
    """Round-the-clock, one investigator, 2 hours each; arrivals at 0, 1, 2 h, the third escalated.
    FIFO starts at 0, 2, 4 (waits 0, 1, 2). The default policy takes the escalated report at t=2 (waits 0, 3, 0)."""
    reports = [LabelledReport(0.0, "known_possession", {"offence_possession": True}, 2.0),
               LabelledReport(1.0, "known_possession", {"offence_possession": True}, 2.0),
               LabelledReport(2.0, "imminent_danger", {"escalated": True}, 2.0)]
    out = backtest(reports, ["fifo", "default", "offence-type"], investigators=1, schedule=Schedule.always())
    fifo, default, offence = (out["policies"][p] for p in ("fifo", "default", "offence-type"))
    assert fifo["classes"]["known_possession"]["median_hours"] == 0.0  # waits 0 and 1: inverted-CDF median = 0
    assert fifo["classes"]["known_possession"]["p90_hours"] == 1.0
    assert fifo["classes"]["imminent_danger"]["median_hours"] == 2.0
    assert default["classes"]["imminent_danger"]["median_hours"] == 0.0
    assert default["classes"]["known_possession"]["p90_hours"] == 3.0
    assert offence["classes"]["imminent_danger"]["median_hours"] == 2.0  # no offence indicator: last
    assert fifo["groups"]["all"]["within_1d"] == 1.0
    # busy 6 h of a 24 h day (the run ends at the end of the day of the last start)
    assert fifo["utilisation"] == pytest.approx(0.25)
    assert fifo["actioned"] == 3 and fifo["waiting"] == 0 and fifo["expired"] == 0
    assert default["tiers"]["imminent_danger"] == {"1": 1, "2": 0, "3": 0, "4": 0}


def test_working_hours_carry_work_over_the_weekend() -> None:
    """Tip block 08:00-14:00 Mon-Fri. A: Fri 13:00, 2 h; B: Fri 13:30, 1 h; C: Sat 10:00, 1 h.
    A runs 13:00-14:00 Friday and 08:00-09:00 Monday; B starts Mon 09:00 (67.5 h), C Mon 10:00 (48 h)."""
    fri = 4 * 24.0
    arr = make_arrivals([fri + 13.0, fri + 13.5, fri + 24.0 + 10.0], ["known_possession"] * 3, [2.0, 1.0, 1.0])
    key = policy_key("fifo", arr)
    out = serve(arr, key, 1, Schedule((0, 1, 2, 3, 4), 8.0, 6.0), None, 365.0)
    assert (out.start_h - arr.time_h).tolist() == [0.0, 67.5, 48.0]
    # a run that ends on Sunday leaves B and C waiting
    cut = serve(arr, key, 1, Schedule((0, 1, 2, 3, 4), 8.0, 6.0), 7.0, 365.0)
    assert cut.actioned.tolist() == [True, False, False] and cut.waiting.tolist() == [False, True, True]


def test_preservation_window_expires_unreached_reports() -> None:
    """One investigator busy 30 h from t=0; a report at t=1 with a 1-day window lapses at t=25."""
    cal = load_default_calibration().with_updates(preservation_days=1)
    out = backtest([(0.0, "known_possession", {}, 30.0), (1.0, "sextortion", {"sextortion": True}, 1.0)],
                   "default", investigators=1, calibration=cal, schedule=Schedule.always())
    res = out["policies"]["default"]
    assert res["classes"]["known_possession"]["actioned"] == 1
    assert res["classes"]["sextortion"]["expired"] == 1 and res["classes"]["sextortion"]["median_hours"] is None
    assert res["backlog"]["total"][:2] == [1, 0]  # waiting at the end of day 1, gone by the end of day 2


def _reference(arrive: list[float], rank: list[int], service: list[float], k: int) -> list[float]:
    """A plain O(n^2) multi-server priority queue, round the clock and without a horizon."""
    n, free, start, done = len(arrive), [0.0] * k, [math.nan] * len(arrive), [False] * len(arrive)
    for _ in range(n):
        s = min(range(k), key=lambda x: free[x])
        t = max(free[s], min(arrive[i] for i in range(n) if not done[i]))
        best = min((i for i in range(n) if not done[i] and arrive[i] <= t), key=lambda i: rank[i])
        start[best], done[best] = t, True
        free[s] = t + service[best]
    return start


@pytest.mark.parametrize("seed", range(6))
def test_queue_matches_a_reference_implementation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = 60, 1 + seed % 3
    times = np.sort(rng.random(n) * 40.0).tolist()
    service = (0.5 + rng.random(n) * 3.0).tolist()
    arr = make_arrivals(times, ["known_possession"] * n, service,
                        {"escalated": rng.random(n) < 0.2, "offence_distribution": rng.random(n) < 0.4})
    for name in ("fifo", "default", "offence-type"):
        key = policy_key(name, arr)
        out = serve(arr, key, k, Schedule.always(), None, 365.0)
        expected = _reference(arr.time_h.tolist(), key.rank.tolist(), arr.handling_h.tolist(), k)
        assert np.allclose(out.start_h, expected), name


def test_quantile_is_inverted_cdf_with_unreached_as_infinite() -> None:
    assert quantile(np.asarray([3.0, 1.0, 2.0]), 0.5) == 2.0
    assert quantile(np.asarray([1.0, 2.0]), 0.5) == 1.0
    assert quantile(np.asarray([1.0, math.inf, math.inf]), 0.5) == math.inf
    assert quantile(np.asarray([1.0] * 9 + [math.inf]), 0.9) == 1.0


# -- simulation at small scale -----------------------------------------------------------------------------


def test_conservation_for_every_class_and_policy() -> None:
    cal = small_calibration(initial_backlog_days=40, preservation_days=30)
    out = simulate.compare(POLICIES, days=60, investigators=6, seed=3, calibration=cal)
    total = out["setup"]["arrivals"]
    assert total == sum(out["setup"]["arrivals_by_class"].values())
    expired_any = 0
    for res in out["policies"].values():
        assert res["actioned"] + res["waiting"] + res["expired"] == res["arrivals"] == total
        for klass, m in res["classes"].items():
            assert m["actioned"] + m["waiting"] + m["expired"] == m["arrivals"] == out["setup"]["arrivals_by_class"][klass]
        live = res["groups"]["live_victim"]
        assert live["arrivals"] == sum(res["classes"][c]["arrivals"] for c in LIVE_VICTIM_CLASSES)
        assert res["backlog"]["total"][-1] == res["waiting"]
        assert res["backlog"]["live_victim"][-1] == live["waiting"]
        assert 0.0 < res["utilisation"] <= 1.0 + 1e-9
        expired_any += res["expired"]
    assert expired_any > 0  # the 30-day window lapses for part of the 40-day initial backlog


def test_deterministic_for_a_seed() -> None:
    cal = small_calibration()
    a = simulate.run("default", days=30, investigators=5, seed=11, calibration=cal)
    b = simulate.run("default", days=30, investigators=5, seed=11, calibration=cal)
    c = simulate.run("default", days=30, investigators=5, seed=12, calibration=cal)
    assert report.to_json(a) == report.to_json(b)
    assert a["setup"]["arrivals_by_class"] != c["setup"]["arrivals_by_class"]


def test_compare_uses_identical_arrivals(comparison: dict[str, Any]) -> None:
    counts = comparison["setup"]["arrivals_by_class"]
    assert set(counts) == set(CLASSES) and sum(counts.values()) == comparison["setup"]["arrivals"]
    for res in comparison["policies"].values():
        assert {c: m["arrivals"] for c, m in res["classes"].items()} == counts
    alone = simulate.compare(["fifo"], days=120, investigators=8, seed=7, calibration=small_calibration())
    assert alone["policies"]["fifo"] == comparison["policies"]["fifo"]


def test_default_policy_reaches_live_victims_sooner(comparison: dict[str, Any]) -> None:
    """Equal staff, identical arrivals: the default risk policy acts on the live-victim classes sooner
    (median and 90th percentile) than first-in-first-out and than the offence-type ranking."""
    pol = comparison["policies"]
    live = {name: pol[name]["groups"]["live_victim"] for name in POLICIES}
    assert live["default"]["arrivals"] > 100
    for other in ("fifo", "offence-type"):
        assert _inf(live["default"]["median_hours"]) < _inf(live[other]["median_hours"]), other
        assert _inf(live["default"]["p90_hours"]) < _inf(live[other]["p90_hours"]), other
        assert live["default"]["within_7d"] > live[other]["within_7d"], other
    assert live["default"]["p90_hours"] is not None and live["default"]["p90_hours"] < 7 * 24
    for klass in ("imminent_danger", "sextortion", "enticement_meeting"):
        assert _inf(pol["default"]["classes"][klass]["median_hours"]) < _inf(pol["fifo"]["classes"][klass]["median_hours"]), klass
    # the units are overloaded at this calibration: the queue grows under every policy
    assert all(pol[name]["utilisation"] > 0.95 for name in POLICIES)


def test_yaml_policy_path_runs_the_same_rules(tmp_path: Path, comparison: dict[str, Any]) -> None:
    path = tmp_path / "copy.yaml"
    path.write_text(policy_to_yaml(load_default_policy()[0]), "utf-8")
    out = simulate.compare(["default", str(path)], days=120, investigators=8, seed=7, calibration=small_calibration())
    a, b = out["policies"]["default"], out["policies"][str(path)]
    assert a["classes"] == b["classes"] and a["backlog"] == b["backlog"]
    assert b["policy_name"] == "icac-default"
    with pytest.raises(ValueError, match="unknown policy"):
        simulate.run("no-such-policy", days=5, calibration=small_calibration())


def test_backtest_with_datetimes_and_outcome_labels() -> None:
    monday = datetime(2026, 3, 2, tzinfo=UTC)
    reports = [LabelledReport(monday + timedelta(hours=9 + 0.1 * i), "no_action" if i % 2 else "child_safeguarded",
                              {"escalated": i % 2 == 0, "offence_possession": True}) for i in range(10)]
    out = backtest(reports, ["fifo", "default"], investigators=1, live_labels=["child_safeguarded"])
    assert out["setup"]["t0"] == monday.isoformat()
    fifo, default = out["policies"]["fifo"], out["policies"]["default"]
    assert fifo["groups"]["live_victim"]["arrivals"] == 5
    assert default["groups"]["live_victim"]["median_hours"] < fifo["groups"]["live_victim"]["median_hours"]
    assert fifo["classes"]["no_action"]["actioned"] == 5
    with pytest.raises(ValueError, match="all datetimes"):
        backtest([(monday, "a", {}), (1.0, "b", {})])


# -- reports -----------------------------------------------------------------------------------------------


def test_reports_and_charts_are_valid_files(tmp_path: Path, comparison: dict[str, Any]) -> None:
    files = report.write_report(comparison, tmp_path / "out")
    for key in ("time_to_first_action_png", "backlog_png"):
        data = files[key].read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000
    for key in ("time_to_first_action_svg", "backlog_svg"):
        root = ET.parse(files[key]).getroot()
        assert root.tag.endswith("svg")
    loaded = json.loads(files["json"].read_text("utf-8"))
    assert set(loaded["policies"]) == set(POLICIES)
    with files["csv"].open(newline="") as fh:
        measure_rows = list(csv.DictReader(fh))
    assert len(measure_rows) == len(POLICIES) * (len(CLASSES) + 2)
    assert {r["group"] for r in measure_rows} >= {"live_victim", "all", *CLASSES}
    with files["backlog_csv"].open(newline="") as fh:
        backlog_rows = list(csv.DictReader(fh))
    assert len(backlog_rows) == 120 and "default:live_victim" in backlog_rows[0]
