"""§ 2703(f) requests recorded from the command line: their clocks in the package and on the list, the one renewal the
statute allows only while the first 90 days run, and every change audited."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tiptriage import pipeline, synth
from tiptriage.store import Store

EXE = str(Path(sys.executable).parent / "tiptriage")


def run_cli(args: list[str], db_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIPTRIAGE_DATABASE_URL": db_url, "COLUMNS": "200"}
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, timeout=300)


def test_a_request_is_recorded_renewed_once_and_shown_in_the_package(db_url: str, tmp_path: Path) -> None:
    store = Store(db_url)
    synth.write(synth.generate(6, seed=21), tmp_path, "xml")
    pipeline.ingest(store, [tmp_path / "submissions"])
    pipeline.triage(store)
    rid = store.report_ids()[0]
    store.dispose()
    sent = (datetime.now(UTC) - timedelta(days=10)).replace(microsecond=0)
    ok = run_cli(["preserve", "record", rid, "--provider", "Service A", "--sent", sent.isoformat(), "--reference", "PR-77"], db_url)
    assert ok.returncode == 0, ok.stderr
    first_end = sent + timedelta(days=90)
    assert f"until {first_end:%Y-%m-%d}" in ok.stdout

    naive = run_cli(["preserve", "record", rid, "--provider", "Service A", "--sent", "2026-01-01T10:00:00"], db_url)
    assert naive.returncode == 2 and "no time zone" in naive.stderr
    twice = run_cli(["preserve", "record", rid, "--provider", "Service A", "--sent", sent.isoformat()], db_url)
    assert twice.returncode == 1 and "already recorded" in twice.stderr

    renewed = run_cli(["preserve", "renew", rid, "--provider", "Service A"], db_url)
    assert renewed.returncode == 0, renewed.stderr
    assert f"lapses {first_end + timedelta(days=90):%Y-%m-%d}" in renewed.stdout
    again = run_cli(["preserve", "renew", rid, "--provider", "Service A"], db_url)
    assert again.returncode == 1 and "no unrenewed" in again.stderr

    # a request that has lapsed cannot be renewed: that is a new request
    old = datetime(2025, 1, 6, tzinfo=UTC)
    assert run_cli(["preserve", "record", rid, "--provider", "Service B", "--sent", old.isoformat()], db_url).returncode == 0
    late = run_cli(["preserve", "renew", rid, "--provider", "Service B"], db_url)
    assert late.returncode == 1 and "lapsed at 2025-04-06" in late.stderr

    res = run_cli(["package", rid, "--format", "json", "--out", str(tmp_path / "p.json")], db_url)
    assert res.returncode == 0, res.stderr
    pkg = json.loads((tmp_path / "p.json").read_text())
    assert [(r["provider"], r["reference"], r["renewed_at"] is not None) for r in pkg["preservation_requests"]] == [
        ("Service B", None, False), ("Service A", "PR-77", True)]
    clocks = {(d["kind"], d["provider"]): d for d in pkg["deadlines"]}
    assert len(clocks) == 3 and pkg["checklist"]["preservation_request_sent"] is True
    renewed_clock = next(d for d in pkg["deadlines"] if d["provider"] == "Service A" and d["kind"] != "provider_preservation")
    assert renewed_clock["renewed"] is True and renewed_clock["renewable"] is False
    assert datetime.fromisoformat(renewed_clock["expires_at"]) == first_end + timedelta(days=90)

    listed = run_cli(["preserve", "list", rid], db_url)
    assert listed.returncode == 0 and len(listed.stdout.strip().splitlines()) == 3 and "PR-77" not in listed.stderr
    store = Store(db_url)
    changes = [e for e in store.audit.iter_entries() if e.object_type == "preservation" and e.action == "change"]
    assert len(changes) == 3  # two records and one renewal; refusals change nothing
    store.dispose()
