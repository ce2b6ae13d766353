"""Per-agency policies through the command line, as an agency administrator uses them: a policy changes that agency's
ranking and no other's, every assessment names the policy and version that made it, a bad policy is refused with the
place of each error, and every change is kept. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tiptriage import pipeline, synth
from tiptriage.assess.policy import load_policy
from tiptriage.hashes.flood import FloodRule
from tiptriage.store import Store
from tiptriage.store.indicators import IndicatorRepository
from tiptriage.store.policies import PolicyRepository
from tiptriage.store.schema import assessments

EXE = shutil.which("tiptriage", path=str(Path(sys.executable).parent)) or "tiptriage"
DEFAULT_TEXT = resources.files("tiptriage.data").joinpath("policy_default.yaml").read_text("utf-8")
KNOWN_FILES_RULE = """  - id: known-files
    when: {indicator: known_files, ge: 1}
    points: 4
"""


def known_content_first(name: str = "known-content-first", points: int = 30) -> str:
    """The default policy, except that known content is contact-or-production priority (tier 2) for this agency."""
    assert DEFAULT_TEXT.count(KNOWN_FILES_RULE) == 1
    text = DEFAULT_TEXT.replace(KNOWN_FILES_RULE, KNOWN_FILES_RULE.replace("points: 4", f"tier_floor: 2\n    points: {points}"))
    return text.replace("name: icac-default", f"name: {name}")


def cli(args: list[str], db_url: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIPTRIAGE_DATABASE_URL": db_url, "TIPTRIAGE_USER": "admin-7", "COLUMNS": "200"}
    proc = subprocess.run([EXE, *args], capture_output=True, text=True, env=env, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"tiptriage {' '.join(args)} exited {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}")
    return proc


def state(store: Store) -> dict[str, dict[str, Any]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(assessments)).mappings().all()
    return {r["report_id"]: {k: r[k] for k in ("tier", "score", "policy_name", "policy_version", "policy_agency", "fired")} for r in rows}


@dataclass
class Routed:
    store: Store
    url: str
    tmp: Path
    a: str  # the agency that sets its own policy
    b: str  # another agency
    later: list[Path]  # submissions that arrive after the policy is set


@pytest.fixture
def routed(store: Store, db_url: str, tmp_path: Path) -> Iterator[Routed]:
    data = synth.generate(360, seed=41)
    synth.write(data, tmp_path, "xml")
    subs = sorted((tmp_path / "submissions").iterdir())
    pipeline.ingest(store, subs[:300])
    pipeline.import_hashset(store, tmp_path / "hashsets" / "known.csv", "known")
    pipeline.triage(store, FloodRule(accounts=5, days=7))
    now = state(store)
    routes = routes_of(store)
    # A: the agency with the most tier-3 known-content reports (the ones its policy lifts); B: the busiest other one
    lifted: dict[str, int] = {}
    for rid, agency in routes.items():
        if agency != "review" and now[rid]["tier"] == 3 and '"known-files"' in now[rid]["fired"]:
            lifted[agency] = lifted.get(agency, 0) + 1
    a = max(lifted, key=lambda k: lifted[k])
    counts = PolicyRepository(store.engine).routed_counts()
    b = max((k for k in counts if k not in (a, "review")), key=lambda k: counts[k])
    yield Routed(store, db_url, tmp_path, a, b, subs[300:])


def routes_of(store: Store) -> dict[str, str]:
    return IndicatorRepository(store.engine).routes(store.report_ids())


def test_an_agency_policy_changes_that_agencys_ranking_and_no_other(routed: Routed) -> None:
    store, a, b = routed.store, routed.a, routed.b
    before = state(store)
    queue_b = [r["report_id"] for r in store.work.agency_queue(b)]
    queue_a = [r["report_id"] for r in store.work.agency_queue(a)]
    path = routed.tmp / "a-policy.yaml"
    path.write_text(known_content_first())
    _, version = load_policy(path)

    out = json.loads(cli(["policy", "set", "--agency", a, str(path), "--note", "known content first", "--json"], routed.url).stdout)
    assert (out["action"], out["version"], out["previous_version"]) == ("set", version, None)
    after = state(store)
    mine = set(PolicyRepository(store.engine).routed_reports(a))
    assert out["reassessed"]["assessed"] == len(mine) > 0
    # that agency's reports: assessed under its policy, named in every assessment, and ranked differently
    assert all((after[r]["policy_agency"], after[r]["policy_version"], after[r]["policy_name"]) == (a, version, "known-content-first")
               for r in mine)
    lifted = [r for r in mine if after[r]["tier"] < before[r]["tier"]]
    assert lifted and all(before[r]["tier"] in (3, 4) and after[r]["tier"] == 2 for r in lifted)  # a floor outranks a cap
    assert [r["report_id"] for r in store.work.agency_queue(a)] != queue_a
    # everyone else's: untouched, to the byte, and so is their queue
    assert {r: after[r] for r in after if r not in mine} == {r: before[r] for r in before if r not in mine}
    assert [r["report_id"] for r in store.work.agency_queue(b)] == queue_b

    # explain names the agency's policy and version, who set it, and the assessment it replaced
    rid = next(r for r in lifted if before[r]["tier"] == 3)
    explained = json.loads(cli(["explain", rid, "--json"], routed.url).stdout)
    assert explained["policy"] == {**explained["policy"], "source": "agency", "agency_id": a, "version": version, "set_by": "admin-7"}
    assert explained["history"][0]["change"]["tier"] == [3, 2] and explained["history"][0]["policy_version"] != version
    assert f"policy of {a} set by admin-7" in explained["history"][0]["trigger"]
    text = cli(["explain", rid], routed.url).stdout
    assert f"agency {a}'s own policy, set by admin-7" in text and version in text and "earlier, until" in text

    # reports that arrive later and are routed to that agency are assessed under its policy; others keep the default
    pipeline.ingest(store, routed.later)
    pipeline.triage(store, FloodRule(accounts=5, days=7))
    newest = state(store)
    routes = routes_of(store)
    arrived = [r for r in newest if r not in after]
    assert any(routes.get(r) == a for r in arrived), "the later reports reach the agency too (seed 41)"
    default_version = pipeline.load_policies(store).default.version
    for r in arrived:
        expected = (a, version) if routes.get(r) == a else (None, default_version)
        assert (newest[r]["policy_agency"], newest[r]["policy_version"]) == expected, r


def test_a_bad_policy_is_refused_with_the_place_of_each_error(routed: Routed) -> None:
    store, a = routed.store, routed.a
    before = state(store)
    typo = routed.tmp / "typo.yaml"
    typo.write_text(DEFAULT_TEXT.replace("when: {indicator: sextortion, is: true}", "when: {indicator: sextorsion, is: true}"))
    line = DEFAULT_TEXT.splitlines().index("    when: {indicator: sextortion, is: true}") + 1
    proc = cli(["policy", "set", "--agency", a, str(typo)], routed.url, check=False)
    assert proc.returncode == 1
    assert f"{typo}:{line}: rules[3].when.indicator: unknown indicator 'sextorsion' (did you mean 'sextortion'?)" in proc.stderr
    assert "refused" in proc.stderr

    # valid YAML and a valid policy, but it reads an indicator tiptriage never derives: it would silently never fire
    unknown = routed.tmp / "unknown.yaml"
    unknown.write_text(DEFAULT_TEXT.replace("  sextortion: {type: bool", "  sextortion_v2: {type: bool, kind: risk}\n  sextortion: {type: bool")
                       .replace("when: {indicator: sextortion, is: true}", "when: {indicator: sextortion_v2, is: true}"))
    assert cli(["policy", "check", str(unknown)], routed.url).returncode == 0  # a valid policy...
    proc = cli(["policy", "set", "--agency", a, str(unknown)], routed.url, check=False)
    decl = unknown.read_text().splitlines().index("  sextortion_v2: {type: bool, kind: risk}") + 1
    assert proc.returncode == 1 and f"{unknown}:{decl}: indicators.sextortion_v2: tiptriage derives no indicator 'sextortion_v2'" in proc.stderr

    broken = routed.tmp / "broken.yaml"
    broken.write_text("name: x\nrules: [\n  - id: a\n")
    proc = cli(["policy", "set", "--agency", a, str(broken)], routed.url, check=False)
    assert proc.returncode == 1 and f"{broken}:3: (yaml) line 3" in proc.stderr

    good = routed.tmp / "good.yaml"
    good.write_text(known_content_first())
    proc = cli(["policy", "set", "--agency", "us-icac-nowhere", str(good)], routed.url, check=False)
    assert proc.returncode == 1 and "unknown agency 'us-icac-nowhere'" in proc.stderr

    # nothing was stored or re-assessed, and every refusal is in the audit log
    assert PolicyRepository(store.engine).history() == [] and state(store) == before
    failed = [e for e in store.audit.iter_entries() if e.object_type == "agency_policy" and e.outcome == "failed"]
    assert len(failed) == 4 and store.audit.verify().ok


def test_every_policy_change_is_kept_with_who_and_when(routed: Routed) -> None:
    store, a, url = routed.store, routed.a, routed.url
    first, second = routed.tmp / "v1.yaml", routed.tmp / "v2.yaml"
    first.write_text(known_content_first("known-first", 30))
    second.write_text("# second thoughts: a smaller lift\n" + known_content_first("known-first", 12).replace("version: 1", "version: 2"))
    _, v1 = load_policy(first)
    _, v2 = load_policy(second)
    cli(["policy", "set", "--agency", a, str(first), "--note", "trial"], url)
    again = json.loads(cli(["policy", "set", "--agency", a, str(first), "--json"], url).stdout)
    assert again["action"] == "unchanged"
    diff = json.loads(cli(["policy", "diff", "--agency", a, str(second), "--json"], url).stdout)
    assert diff["policy_a"]["fingerprint"] == v1 and diff["policy_b"]["fingerprint"] == v2 and diff["agency_id"] == a
    assert diff["reports"] == len(PolicyRepository(store.engine).routed_reports(a)) and diff["changed_reports"] > 0
    cli(["policy", "set", "--agency", a, str(second)], url)

    shown = cli(["policy", "show", "--agency", a], url)
    assert shown.stdout == second.read_text() and "set by admin-7" in shown.stderr  # as set, comments included
    assert json.loads(cli(["policy", "show", "--json"], url).stdout)["source"] == "default"
    listed = json.loads(cli(["policy", "list", "--json"], url).stdout)
    assert [(p["agency_id"], p["version"]) for p in listed["policies"]] == [(a, v2)]

    cli(["policy", "reset", "--agency", a, "--note", "trial over"], url)
    assert json.loads(cli(["policy", "list", "--json"], url).stdout)["policies"] == []
    history = json.loads(cli(["policy", "list", "--history", "--json"], url).stdout)["policies"]
    assert [(h["action"], h["version"], h["set_by"], h["note"]) for h in history] == [
        ("set", v1, "admin-7", "trial"), ("set", v2, "admin-7", None), ("reset", None, "admin-7", "trial over")]
    assert all(h["set_at"] for h in history)

    # each report of the agency went v1 -> v2 -> default, and every step is in its history
    rid = PolicyRepository(store.engine).routed_reports(a)[0]
    explained = json.loads(cli(["explain", rid, "--json"], url).stdout)
    assert explained["policy"]["source"] == "default" and explained["policy_agency"] is None
    steps = [h["policy_version"] for h in reversed(explained["history"])]
    assert steps[-2:] == [v1, v2]
    changes = [e.detail for e in store.audit.iter_entries() if e.object_type == "agency_policy" and e.outcome == "ok" and e.action == "change"]
    assert [c.get("change") for c in changes] == ["set", "unchanged", "set", "reset"]
