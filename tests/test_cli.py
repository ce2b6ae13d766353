"""The command-line contract, run as a user runs it: the installed ``tiptriage`` in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXE = shutil.which("tiptriage", path=str(Path(sys.executable).parent)) or "tiptriage"


def run(args: list[str], db: Path, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIPTRIAGE_DATABASE_URL": f"sqlite:///{db}", "COLUMNS": "200"}
    proc = subprocess.run([EXE, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"tiptriage {' '.join(args)} exited {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}")
    return proc


@pytest.fixture
def data(tmp_path: Path) -> Path:
    run(["generate", "--reports", "40", "--seed", "11", "--out", str(tmp_path / "gen")], tmp_path / "unused.db")
    return tmp_path / "gen"


def test_ingest_json_is_one_object_and_quarantine_does_not_fail_the_run(tmp_path: Path, data: Path) -> None:
    (data / "submissions" / "zz-broken.xml").write_bytes(b"<report><incidentSummary>")
    db = tmp_path / "t.db"
    proc = run(["ingest", str(data / "submissions"), "--json"], db)
    out = json.loads(proc.stdout)  # exactly one JSON document, nothing else on stdout
    assert out["accepted"] == 40 and out["duplicates"] == 0 and out["quarantined"] == 1
    assert out["errors"][0]["path"].endswith("zz-broken.xml") and "well-formed" in out["errors"][0]["reason"]
    again = json.loads(run(["ingest", str(data / "submissions"), "--json"], db).stdout)
    assert (again["accepted"], again["duplicates"]) == (0, 40)
    strict = run(["ingest", str(data / "submissions" / "zz-broken.xml"), "--json", "--strict"], db, check=False)
    assert strict.returncode == 1 and json.loads(strict.stdout)["quarantined"] == 1


def test_show_prints_the_stored_canonical_model(tmp_path: Path, data: Path) -> None:
    db = tmp_path / "t.db"
    run(["ingest", str(data / "submissions")], db)
    truth = json.loads((data / "truth.json").read_text())
    rid = sorted(truth["reports"])[0]
    model = json.loads(run(["show", rid, "--json"], db).stdout)
    assert model["id"] == rid and model["incident_type"] and model["source"]["format"] == "cybertip-xml"
    text = run(["show", rid], db).stdout
    assert rid in text and "incident type" in text
    missing = run(["show", "NOPE-1"], db, check=False)
    assert missing.returncode == 1 and "no report" in missing.stderr


def test_quarantine_list_show_retry(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    p = tmp_path / "in" / "r.xml"
    p.parent.mkdir()
    p.write_bytes(b"<report><incidentSummary><incidentType>Child Sex Tourism</incidentType>"
                  b"<incidentDateTime>2026-10-01T08:00:00Z</incidentDateTime></incidentSummary>"
                  b"<additionalInfo>" + b"y" * 3000 + b"</additionalInfo></report>")
    run(["ingest", str(p), "--max-bytes", "1000"], db)
    listed = json.loads(run(["quarantine", "list", "--json"], db).stdout)
    assert len(listed) == 1 and listed[0]["rule"] == "size-limit"
    shown = json.loads(run(["quarantine", "show", str(listed[0]["id"]), "--json", "--save", str(tmp_path / "orig")], db).stdout)
    assert shown["documents"][0]["size"] == p.stat().st_size
    assert (tmp_path / "orig" / "r.xml").read_bytes() == p.read_bytes()
    retried = json.loads(run(["quarantine", "retry", "--json"], db).stdout)
    assert len(retried["resolved"]) == 1
    assert json.loads(run(["quarantine", "list", "--json"], db).stdout) == []


def test_generate_formats_and_truth(tmp_path: Path) -> None:
    for fmt in ("xml", "json", "csv"):
        out = tmp_path / fmt
        run(["generate", "--reports", "25", "--seed", "2", "--out", str(out), "--format", fmt], tmp_path / "x.db")
        truth = json.loads((out / "truth.json").read_text())
        assert len(truth["reports"]) == 25
        db = tmp_path / f"{fmt}.db"
        res = json.loads(run(["ingest", str(out / "submissions"), "--json"], db).stdout)
        assert res["accepted"] == 25, res


def test_demo_runs_end_to_end_in_its_own_folder(tmp_path: Path) -> None:
    proc = run(["demo", "--reports", "150", "--out", "demo"], tmp_path / "unused.db", cwd=tmp_path)
    assert (tmp_path / "demo" / "tiptriage.db").exists()
    assert "accepted 150" in proc.stdout and "quarantined 3" in proc.stdout
    assert "tiptriage show" in proc.stdout  # ends with next steps


def test_hashset_import_list_and_triage(tmp_path: Path, data: Path) -> None:
    db = tmp_path / "t.db"
    run(["ingest", str(data / "submissions")], db)
    bank = data / "hashsets" / "known.csv"
    imported = json.loads(run(["hashset", "import", str(bank), "--name", "known", "--json"], db).stdout)
    assert imported["bank"] == "known" and imported["added"] > 0 and imported["refused"] == 0
    listed = json.loads(run(["hashset", "list", "--json"], db).stdout)
    assert [b["name"] for b in listed] == ["known"] and set(listed[0]["entries"]) == {"MD5", "SHA1", "PDQ"}
    tri = json.loads(run(["triage", "--json"], db).stdout)
    truth = json.loads((data / "truth.json").read_text())
    assert tri["reports_matched"] == 40
    known_reports = [rid for rid, t in truth["reports"].items() if t["class"] == "known_possession"]
    text = run(["show", known_reports[0]], db).stdout
    assert "in bank known" in text and "exact" in text
    again = json.loads(run(["triage", "--json"], db).stdout)
    assert again["reports_matched"] == 0  # nothing new
    bad = run(["hashset", "import", str(tmp_path / "missing.csv"), "--name", "x"], db, check=False)
    assert bad.returncode == 2 and "no such file" in bad.stderr


def test_reads_and_changes_are_audited_and_tampering_is_named(tmp_path: Path, data: Path) -> None:
    import sqlite3

    db = tmp_path / "t.db"
    run(["ingest", str(data / "submissions")], db)
    run(["triage"], db)
    truth = json.loads((data / "truth.json").read_text())
    rid = sorted(truth["reports"])[0]
    run(["show", rid], db)
    explained = run(["explain", rid], db).stdout
    assert f"{rid}: tier" in explained and "source:" in explained
    answer = json.loads(run(["queue", "--format", "json", "--limit", "5"], db).stdout)
    queue = answer["items"]
    assert answer["total"] >= len(queue) == 5 and queue[0]["tier"] <= queue[-1]["tier"]
    # the queue contract: every item names its report, tier, score, reasons, subject, bundle and agency
    assert all({"report_id", "tier", "score", "reasons", "subject_id", "bundle_id", "agency_id"} <= set(i) for i in queue)
    assert all(i["reasons"] and i["subject_id"] for i in queue)
    ok = json.loads(run(["audit", "verify", "--json"], db).stdout)
    assert ok["ok"] is True and ok["checked"] >= 5
    with sqlite3.connect(db) as conn:
        actions = [r[0] for r in conn.execute("select action from audit_log order by seq")]
        assert actions[:3] == ["ingest", "assess", "read"] and actions.count("read") >= 3
        conn.execute("update audit_log set object_id = 'someone-else' where seq = 3")
    broken = run(["audit", "verify", "--json"], db, check=False)
    assert broken.returncode == 1 and json.loads(broken.stdout)["first_bad_seq"] == 3


def test_demo_never_wipes_a_folder_that_is_not_a_demo(tmp_path: Path) -> None:
    precious = tmp_path / "mine"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    proc = run(["demo", "--reports", "20", "--out", str(precious)], tmp_path / "unused.db", check=False)
    assert proc.returncode == 2 and "not an earlier demo" in proc.stderr
    assert (precious / "notes.txt").read_text() == "keep me"
