"""`make bench`: run every benchmark and write its JSON to bench/results/.

    python bench/run.py                 # all, at the sizes the issues name
    python bench/run.py ingest link     # some of them
Sizes can be lowered for a quick look: BENCH_INGEST_N, BENCH_PDQ_N, BENCH_LINK_N.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ingest
import pdq_index

import assess
import link
import simulate

RESULTS = Path(__file__).resolve().parent / "results"

BENCHES: dict[str, Callable[[], dict[str, Any]]] = {
    "ingest": lambda: ingest.main(int(os.environ.get("BENCH_INGEST_N", 100_000))),
    "exact": lambda: exact.main(),
    "pdq_index": lambda: pdq_index.main(int(os.environ.get("BENCH_PDQ_N", 10_000_000))),
    "link": lambda: link.main(int(os.environ.get("BENCH_LINK_N", 200_000))),
    "assess": lambda: assess.main(int(os.environ.get("BENCH_ASSESS_N", 1_000_000))),
    "simulate": lambda: simulate.main(),
}


def main() -> None:
    RESULTS.mkdir(exist_ok=True)
    wanted = sys.argv[1:] or list(BENCHES)
    for name in wanted:
        result = BENCHES[name]()
        result["when"] = datetime.now(UTC).isoformat(timespec="seconds")
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
