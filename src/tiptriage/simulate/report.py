"""Simulation results out: JSON, CSV and charts (matplotlib, Agg canvas; no display needed).

A result is ``{"setup": {...}, "policies": {name: result}}`` as :func:`tiptriage.simulate.compare`,
:func:`tiptriage.simulate.run` and :func:`tiptriage.simulate.backtest.backtest` return it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "CSV_FIELDS",
    "plot_backlog",
    "plot_time_to_action",
    "rows",
    "to_json",
    "write_backlog_csv",
    "write_csv",
    "write_json",
    "write_report",
]

CSV_FIELDS = ("policy", "group", "arrivals", "actioned", "waiting", "expired", "median_hours", "p90_hours", "median_days",
              "p90_days", "cohort", "within_1d", "within_7d", "within_30d")
GROUP_ORDER = ("live_victim", "imminent_danger", "sextortion", "enticement_meeting", "suspected_production", "known_possession",
               "viral_reshare", "informational", "spam", "all")


def to_json(result: Mapping[str, Any]) -> str:
    """One JSON document (no NaN or infinity: a time not reached is ``null``)."""
    return json.dumps(result, indent=2, allow_nan=False) + "\n"


def write_json(result: Mapping[str, Any], path: str | Path) -> Path:
    p = Path(path)
    p.write_text(to_json(result), "utf-8")
    return p


def _groups(res: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    measures: dict[str, Mapping[str, Any]] = {**res["classes"], **res["groups"]}
    ordered = [g for g in GROUP_ORDER if g in measures] + sorted(g for g in measures if g not in GROUP_ORDER)
    return [(g, measures[g]) for g in ordered]


def _days(h: float | None) -> float | None:
    return None if h is None else h / 24.0


def rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per policy and class or group (live_victim, all): the measures of the CSV."""
    out: list[dict[str, Any]] = []
    for name, res in result["policies"].items():
        for group, m in _groups(res):
            row = {"policy": name, "group": group, **{k: m.get(k) for k in CSV_FIELDS if k in m}}
            row["median_days"], row["p90_days"] = _days(m.get("median_hours")), _days(m.get("p90_hours"))
            out.append({k: row.get(k) for k in CSV_FIELDS})
    return out


def _csv_text(header: list[str], body: list[list[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in body:
        w.writerow(["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for v in r])
    return buf.getvalue()


def write_csv(result: Mapping[str, Any], path: str | Path) -> Path:
    """The measures per policy and class; an empty cell is a time not reached within the run."""
    p = Path(path)
    p.write_text(_csv_text(list(CSV_FIELDS), [[r[k] for k in CSV_FIELDS] for r in rows(result)]), "utf-8")
    return p


def write_backlog_csv(result: Mapping[str, Any], path: str | Path) -> Path:
    """Day, then the backlog (all reports, live-victim reports) of each policy at the end of that day."""
    pols = list(result["policies"].items())
    n = max((len(r["backlog"]["total"]) for _, r in pols), default=0)
    header = ["day"] + [f"{name}:{s}" for name, _ in pols for s in ("total", "live_victim")]
    body = [[d + 1] + [r["backlog"][s][d] if d < len(r["backlog"][s]) else None for _, r in pols for s in ("total", "live_victim")]
            for d in range(n)]
    p = Path(path)
    p.write_text(_csv_text(header, body), "utf-8")
    return p


def _save(fig: Any, base: Path) -> list[Path]:
    paths = [base.with_suffix(".png"), base.with_suffix(".svg")]
    fig.savefig(paths[0], format="png", dpi=110, metadata={"Software": None})
    fig.savefig(paths[1], format="svg", metadata={"Date": None})
    return paths


def plot_time_to_action(result: Mapping[str, Any], base: str | Path) -> list[Path]:
    """Bars of median time to first action per class and policy, with the 90th percentile as a whisker
    mark (days, log scale). A time not reached within the run is drawn as a hatched bar to the run's end."""
    from matplotlib.artist import Artist
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    pols = list(result["policies"].items())
    groups = [g for g, _ in _groups(pols[0][1])] if pols else []
    groups = [g for g in groups if g != "all"]
    finite = [v / 24.0 for _, r in pols for _, m in _groups(r) for v in (m.get("median_hours"), m.get("p90_hours")) if v]
    days = result.get("setup", {}).get("days")
    ceiling = float(days) if isinstance(days, int | float) and days > 0 else max(finite, default=1.0) * 2.0
    floor = min([v for v in finite if v > 0] + [ceiling]) / 2.0
    fig = Figure(figsize=(max(9.0, 1.1 * len(groups) + 5.0), 5.0))
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(pols))
    colours = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]
    for j, (_name, res) in enumerate(pols):
        measures = dict(_groups(res))
        xs, heights, hatched, p90x, p90y = [], [], [], [], []
        for i, g in enumerate(groups):
            m = measures.get(g, {})
            x = i - 0.4 + width * (j + 0.5)
            med = m.get("median_hours")
            if m.get("arrivals", 0) == 0:
                continue
            xs.append(x)
            heights.append(med / 24.0 if med is not None else ceiling)
            hatched.append(med is None)
            p90 = m.get("p90_hours")
            p90x.append(x)
            p90y.append(p90 / 24.0 if p90 is not None else ceiling)
        colour = colours[j % len(colours)]
        bars = ax.bar(xs, [max(h, floor) - floor for h in heights], width=width * 0.95, bottom=floor, color=colour)
        for bar, hatch in zip(bars, hatched, strict=True):
            if hatch:
                bar.set_hatch("//")
                bar.set_alpha(0.45)
        ax.scatter(p90x, p90y, marker="_", s=180, color="black", zorder=3)
    ax.set_yscale("log")
    ax.set_ylim(floor, ceiling * 1.5)
    ax.axhline(ceiling, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([g.replace("_", "\n") for g in groups], fontsize=8)
    ax.set_ylabel("time to first action (days, log scale)")
    ax.set_title("Time from referral to first action, by truth class (hatched: not reached within the run)")
    handles: list[Artist] = [Patch(facecolor=colours[j % len(colours)], label=f"{name}: median") for j, (name, _) in enumerate(pols)]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label="not reached in the run"))
    handles.append(Line2D([], [], color="black", marker="_", markersize=12, linestyle="none", label="90th percentile"))
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    return _save(fig, Path(base))


def plot_backlog(result: Mapping[str, Any], base: str | Path) -> list[Path]:
    """The backlog at the end of each day, all reports and live-victim reports, one line per policy."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 6.0))
    top, bottom = fig.subplots(2, 1, sharex=True)
    for name, res in result["policies"].items():
        total = res["backlog"]["total"]
        live = res["backlog"]["live_victim"]
        top.plot(range(1, len(total) + 1), total, label=name, linewidth=1.2)
        bottom.plot(range(1, len(live) + 1), live, label=name, linewidth=1.2)
    top.set_ylabel("reports waiting")
    top.set_title("Backlog at the end of each day")
    bottom.set_ylabel("live-victim reports waiting")
    bottom.set_xlabel("day")
    top.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, Path(base))


def write_report(result: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Everything into ``out_dir``: result.json, measures.csv, backlog.csv and both charts as PNG and SVG."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": write_json(result, out / "result.json"), "csv": write_csv(result, out / "measures.csv"),
             "backlog_csv": write_backlog_csv(result, out / "backlog.csv")}
    png, svg = plot_time_to_action(result, out / "time_to_first_action")
    files["time_to_first_action_png"], files["time_to_first_action_svg"] = png, svg
    png, svg = plot_backlog(result, out / "backlog")
    files["backlog_png"], files["backlog_svg"] = png, svg
    return files
