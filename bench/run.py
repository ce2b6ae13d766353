"""`make bench`: run every benchmark and write its JSON to bench/results/."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ingest

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    RESULTS.mkdir(exist_ok=True)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    result = ingest.main(n)
    result["when"] = datetime.now(UTC).isoformat(timespec="seconds")
    (RESULTS / "ingest.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
