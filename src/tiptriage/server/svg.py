"""Charts and the subject graph as inline SVG, drawn on the server: no script library, nothing fetched, readable without
JavaScript. Every figure carries a text title for screen readers, and the pages show the same numbers as a table."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any, Final

TIER_COLOURS: Final = {1: "#b3261e", 2: "#c25e00", 3: "#2f5d8a", 4: "#5f6368"}  # each passes 4.5:1 against white


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{escape(title)}" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{"".join(body)}</svg>')


def stacked_bars(title: str, labels: Sequence[str], series: dict[int, Sequence[int]], width: int = 720, height: int = 220) -> str:
    """One bar per label, stacked by tier (the key of ``series``)."""
    pad_l, pad_b, pad_t = 36, 28, 8
    n = max(len(labels), 1)
    totals = [sum(s[i] for s in series.values()) for i in range(len(labels))]
    top = max([*totals, 1])
    bw = (width - pad_l) / n
    plot_h = height - pad_b - pad_t
    body = [f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width}" y2="{height - pad_b}" stroke="#444"/>',
            f'<text x="{pad_l - 4}" y="{pad_t + 10}" text-anchor="end" font-size="11">{top}</text>',
            f'<text x="{pad_l - 4}" y="{height - pad_b}" text-anchor="end" font-size="11">0</text>']
    for i, label in enumerate(labels):
        y = float(height - pad_b)
        for tier, values in sorted(series.items()):
            h = values[i] / top * plot_h
            if h > 0:
                y -= h
                body.append(f'<rect x="{pad_l + i * bw + 1:.1f}" y="{y:.1f}" width="{max(bw - 2, 1):.1f}" height="{h:.1f}" '
                            f'fill="{TIER_COLOURS.get(tier, "#777")}"><title>{escape(label)}: tier {tier}: {values[i]}</title></rect>')
        if n <= 12 or i % max(n // 6, 1) == 0:
            body.append(f'<text x="{pad_l + i * bw + bw / 2:.1f}" y="{height - 10}" text-anchor="middle" font-size="10">{escape(label[5:])}</text>')
    return _svg(width, height, title, body)


def hbars(title: str, rows: Sequence[tuple[str, int]], colour: str = "#2f5d8a", width: int = 480, row_h: int = 24) -> str:
    """Horizontal bars with their label and value."""
    rows = list(rows) or [("none", 0)]
    top = max([v for _, v in rows] + [1])
    label_w = 150
    height = row_h * len(rows) + 8
    body = []
    for i, (label, value) in enumerate(rows):
        y = 4 + i * row_h
        w = (width - label_w - 50) * value / top
        body.append(f'<text x="{label_w - 6}" y="{y + row_h * 0.65:.1f}" text-anchor="end" font-size="12">{escape(label[:24])}</text>'
                    f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" fill="{colour}"/>'
                    f'<text x="{label_w + w + 6:.1f}" y="{y + row_h * 0.65:.1f}" font-size="12">{value}</text>')
    return _svg(width, height, title, body)


def subject_graph(report_accounts: Sequence[dict[str, str]], links: Sequence[dict[str, Any]], focus: str | None = None) -> str:
    """Reports on the left, accounts on the right; a line where a report names an account, a dashed arc where two accounts are
    linked as one person (labelled with the kind of link and its probability)."""
    reports = sorted({r["report_id"] for r in report_accounts})
    accounts = sorted({r["account"] for r in report_accounts})
    row_h, width = 34, 720
    height = max(len(reports), len(accounts), 1) * row_h + 20
    rx, ax = 190, 470
    ry = {rid: 20 + i * row_h for i, rid in enumerate(reports)}
    ay = {acc: 20 + i * row_h for i, acc in enumerate(accounts)}
    body = []
    for r in report_accounts:
        body.append(f'<line x1="{rx}" y1="{ry[r["report_id"]]}" x2="{ax}" y2="{ay[r["account"]]}" stroke="#888"/>')
    for lk in links:
        if lk["a"] in ay and lk["b"] in ay:
            y1, y2 = ay[lk["a"]], ay[lk["b"]]
            bend = ax + 60 + abs(y2 - y1) / 3
            body.append(f'<path d="M{ax} {y1} C{bend} {y1} {bend} {y2} {ax} {y2}" fill="none" stroke="#2f5d8a" stroke-dasharray="5 3">'
                        f'<title>{escape(lk["kind"])} link, probability {float(lk["probability"]):.3f}</title></path>')
    for rid, y in ry.items():
        weight = ' font-weight="bold"' if rid == focus else ""
        body.append(f'<circle cx="{rx}" cy="{y}" r="7" fill="{"#b3261e" if rid == focus else "#5f6368"}"/>'
                    f'<text x="{rx - 12}" y="{y + 4}" text-anchor="end" font-size="12"{weight}>{escape(rid[:28])}</text>')
    for acc, y in ay.items():
        body.append(f'<rect x="{ax - 7}" y="{y - 7}" width="14" height="14" fill="#2f5d8a"/>'
                    f'<text x="{ax + 14}" y="{y + 4}" font-size="12">{escape(acc[:40])}</text>')
    return _svg(width, height, f"Subject: {len(reports)} reports, {len(accounts)} accounts, {len(links)} links", body)
