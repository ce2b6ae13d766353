"""SIGKILL in the middle of a large ingest, several times at random points: every report stored exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from tiptriage import synth
from tiptriage.store import Store

N_REPORTS = 3000


def test_killed_ingests_leave_every_report_exactly_once(db_url: str, tmp_path: Path) -> None:
    data = synth.generate(N_REPORTS, seed=21)
    subs = synth.write(data, tmp_path / "gen", "xml")
    Store(db_url).dispose()  # migrate before timing the kills
    env = {**os.environ, "TIPTRIAGE_DATABASE_URL": db_url}
    cmd = [sys.executable, "-m", "tiptriage", "ingest", str(subs), "--json"]
    rng = random.Random(1234)
    targets = sorted(rng.sample(range(50, N_REPORTS - 500), 4))  # kill once this many reports are stored
    watcher = Store(db_url)
    kills = 0
    for target in targets:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and watcher.count_reports() < target:
            time.sleep(rng.uniform(0.005, 0.03))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    watcher.dispose()
    assert kills == len(targets), "an ingest finished before it could be killed"
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=True)
    assert '"quarantined": 0' in final.stdout
    store = Store(db_url)
    try:
        assert store.count_reports() == N_REPORTS
        assert set(store.report_ids()) == set(data.truth["reports"])
        with store.engine.connect() as conn:
            n_sub = conn.execute(sa.text("select count(*) from submissions")).scalar_one()
            orphans = conn.execute(sa.text(
                "select count(*) from submission_documents d left join blobs b on b.sha256 = d.sha256 where b.sha256 is null"
            )).scalar_one()
        assert n_sub == N_REPORTS and orphans == 0
        again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=True)
        assert f'"duplicates": {N_REPORTS}' in again.stdout
    finally:
        store.dispose()
