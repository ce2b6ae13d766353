"""Synthetic data with planted ground truth: category codes and neutral placeholders only."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tiptriage.intake import csv_rows, cybertip_json
from tiptriage.intake.cybertip_xml_writer import write_submission
from tiptriage.synth.columnar import SynthColumns, generate_columns
from tiptriage.synth.generator import CLASS_MIX, EXPECTED_TIER, LIVE_VICTIM_CLASSES, Synthetic, generate

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
    write_hashset(data, out / "hashsets" / "known.csv")
    return subs


def write_hashset(data: Synthetic, path: Path) -> None:
    """The known-content bank that goes with the data: every known and viral item (MD5, SHA1, PDQ), a
    category code, and a series for some known items, a few with the victim not yet identified."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["hash_type", "value", "category", "series", "victim_identified", "media_id"])
        for i, item in enumerate(data.truth["known_items"]):
            series = f"S{i % 40:03d}" if i % 3 == 0 else ""
            victim = "" if not series else ("false" if i % 40 < 4 else "true")
            for t in ("md5", "sha1", "pdq"):
                w.writerow([t.upper(), item[t], str(1 + i % 2), series, victim, f"K{i:06d}"])
        for i, item in enumerate(data.truth["viral_items"]):  # widely shared items are usually known too
            for t in ("md5", "sha1", "pdq"):
                w.writerow([t.upper(), item[t], "2", "", "", f"V{i:05d}"])


__all__ = ["CLASS_MIX", "EXPECTED_TIER", "FORMATS", "LIVE_VICTIM_CLASSES", "SynthColumns", "Synthetic", "generate", "generate_columns", "write"]
