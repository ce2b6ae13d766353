"""`make bench`: run every benchmark and write its JSON to bench/results/.

    python bench/run.py                 # all, at the sizes the issues name
    python bench/run.py ingest link     # some of them
Sizes can be lowered for a quick look: BENCH_INGEST_N, BENCH_PDQ_N, BENCH_LINK_N, BENCH_ASSESS_N, BENCH_SERVER_N (and
BENCH_SERVER_CLIENTS, BENCH_SERVER_SECONDS, BENCH_SERVER_WORKERS).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# benchmark module (bench/NAME.py) → (environment variable for its size, default size or None)
BENCHES: dict[str, tuple[str | None, int | None]] = {
    "ingest": ("BENCH_INGEST_N", 100_000),
    "exact": (None, None),
    "pdq_index": ("BENCH_PDQ_N", 10_000_000),
    "link": ("BENCH_LINK_N", 1_000_000),
    "assess": ("BENCH_ASSESS_N", 1_000_000),
    "simulate": (None, None),
    "server_load": ("BENCH_SERVER_N", 100_000),
    "crypto": ("BENCH_CRYPTO_N", 20_000),
}


def main() -> None:
    sys.path.insert(0, str(HERE))
    RESULTS.mkdir(exist_ok=True)
    if not (os.environ.get("TIPTRIAGE_DATA_KEY") or os.environ.get("TIPTRIAGE_DATA_KEY_FILE")):
        # the store opens only with a data key; the benchmarks' databases are temporary, so a throwaway key serves them all
        from tiptriage.store.crypto import encode_key, generate_key

        os.environ["TIPTRIAGE_DATA_KEY"] = encode_key(generate_key())
    for name in sys.argv[1:] or list(BENCHES):
        env, default = BENCHES[name]
        module = importlib.import_module(name)
        args = [int(os.environ.get(env, default))] if env and default is not None else []
        result = module.main(*args)
        result["when"] = datetime.now(UTC).isoformat(timespec="seconds")
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
