"""Synthetic data with planted ground truth: category codes and neutral placeholders only."""

from __future__ import annotations

import json
from pathlib import Path

from tiptriage.intake import csv_rows, cybertip_json
from tiptriage.intake.cybertip_xml_writer import write_submission
from tiptriage.synth.generator import CLASS_MIX, LIVE_VICTIM_CLASSES, Synthetic, generate

FORMATS = ("xml", "json", "csv")


def write(data: Synthetic, out: Path, fmt: str = "xml") -> Path:
    """Write submissions to ``out/submissions`` and the ground truth to ``out/truth.json``."""
    subs = out / "submissions"
    subs.mkdir(parents=True, exist_ok=True)
    if fmt == "xml":
        for r in data.reports:
            write_submission(r, subs)
    elif fmt == "json":
        for r in data.reports:
            (subs / f"{r.id}.json").write_bytes(cybertip_json.write_json(r))
    elif fmt == "csv":
        csv_rows.write_csv(data.reports, subs / "reports.csv")
    else:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    (out / "truth.json").write_text(json.dumps(data.truth, indent=1, sort_keys=True), encoding="utf-8")
    return subs


__all__ = ["CLASS_MIX", "FORMATS", "LIVE_VICTIM_CLASSES", "Synthetic", "generate", "write"]
