"""The ``tiptriage`` command. It parses arguments, calls ``pipeline``/``store``, and prints.

``--json`` output is exactly one JSON document on stdout; progress and logs go to stderr.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from tiptriage import pipeline, synth
from tiptriage.cli_keys import keys_app
from tiptriage.hashes.matcher import MAX_RADIUS
from tiptriage.intake import Limits
from tiptriage.intake.discover import FORMATS
from tiptriage.model import Report
from tiptriage.store import Store
from tiptriage.work import cases

if TYPE_CHECKING:
    from tiptriage.assess.policy import Policy

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Triage CyberTipline-style reports: explainable, offline.")
quarantine_app = typer.Typer(no_args_is_help=True, help="Submissions that could not be read, with their original bytes.")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(keys_app, name="keys")
hashset_app = typer.Typer(no_args_is_help=True, help="Known-hash sets (banks): import and list.")
app.add_typer(hashset_app, name="hashset")
subject_app = typer.Typer(no_args_is_help=True, help="People behind accounts: show, confirm a link, split an account off.")
app.add_typer(subject_app, name="subject")
policy_app = typer.Typer(no_args_is_help=True, help="Priority policies (YAML): check, compare, and one per agency if it wishes.")
app.add_typer(policy_app, name="policy")
records_app = typer.Typer(no_args_is_help=True, help="Agency records of known persons.")
app.add_typer(records_app, name="records")

out = Console(soft_wrap=True)
err = Console(stderr=True)


def _store() -> Store:
    from tiptriage.store.crypto import CryptoError

    try:
        return Store()
    except CryptoError as exc:  # no key, a wrong key, a readable key file: the reason, not a traceback
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None


def _user() -> str:
    return os.environ.get("TIPTRIAGE_USER") or os.environ.get("USER") or "unknown"


def _audit(store: Store, action: str, object_type: str | None = None, object_id: str | None = None,
           outcome: str = "ok", **detail: object) -> None:
    """Every read of case data and every change leaves a hash-chained audit entry."""
    store.audit.append(_user()[:128], action, outcome, object_type=object_type, object_id=(object_id or "")[:256] or None,
                       agency=os.environ.get("TIPTRIAGE_AGENCY"), source_address="cli", detail={k: v for k, v in detail.items() if v is not None})


def _emit_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _ingest(store: Store, paths: list[Path], fmt: str, limits: Limits, quiet: bool, workers: int) -> pipeline.IngestResult:
    progress = Progress(SpinnerColumn(), TextColumn("[bold]ingest"), TextColumn("{task.completed} submissions"),
                        TextColumn("{task.fields[rate]}/s"), TimeElapsedColumn(), console=err, disable=quiet or not err.is_terminal)
    start = time.perf_counter()
    with progress:
        task = progress.add_task("ingest", total=None, rate="0")

        def tick(seen: int, _bytes: int) -> None:
            rate = seen / max(time.perf_counter() - start, 1e-9)
            progress.update(task, completed=seen, rate=f"{rate:,.0f}")

        return pipeline.ingest(store, paths, fmt, limits, progress=tick, workers=workers)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files, folders or zips to read; folders are walked.")],
    fmt: Annotated[str, typer.Option("--format", help="auto | cybertip-xml | cybertip-json | csv")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object with the counts and errors.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Exit with status 1 if anything was quarantined.")] = False,
    max_bytes: Annotated[int, typer.Option(help="Refuse documents larger than this many bytes.")] = Limits().max_document_bytes,
    workers: Annotated[int, typer.Option(help="Parsing processes (default: one per core, at most 4).")] = pipeline.default_workers(),
) -> None:
    """Read provider reports into the store; what cannot be read goes to quarantine, the batch goes on."""
    if fmt not in FORMATS:
        err.print(f"[red]unknown --format {fmt!r}[/]; use one of {', '.join(FORMATS)}")
        raise typer.Exit(2)
    store = _store()
    start = time.perf_counter()
    result = _ingest(store, paths, fmt, Limits(max_document_bytes=max_bytes), quiet=as_json, workers=workers)
    elapsed = time.perf_counter() - start
    _audit(store, "ingest", "submissions", ",".join(str(p) for p in paths), accepted=result.accepted,
           duplicates=result.duplicates, quarantined=result.quarantined)
    if as_json:
        _emit_json(result.as_json())
    else:
        out.print(f"accepted {result.accepted}, duplicates {result.duplicates}, quarantined {result.quarantined} in {elapsed:.1f}s")
        for e in result.errors[:50]:
            out.print(f"  [yellow]quarantined[/] {e['path']}: {e['reason']}", markup=True, highlight=False)
        if len(result.errors) > 50:
            out.print(f"  ... and {len(result.errors) - 50} more: tiptriage quarantine list")
    if strict and result.quarantined:
        raise typer.Exit(1)


@app.command()
def show(
    report_id: Annotated[str, typer.Argument(help="The report id.")],
    as_json: Annotated[bool, typer.Option("--json", help="The canonical model as JSON.")] = False,
) -> None:
    """Print a stored report as the canonical model (and, as text, its hash matches)."""
    store = _store()
    report = store.get_report(report_id)
    _audit(store, "read", "report", report_id, "ok" if report is not None else "failed")
    if report is None:
        err.print(f"[red]no report {report_id!r}[/] in {os.environ.get('TIPTRIAGE_DATABASE_URL', 'sqlite:///tiptriage.db')}")
        raise typer.Exit(1)
    if as_json:
        sys.stdout.write(report.model_dump_json(indent=2) + "\n")
        return
    _print_report(report)
    _print_location(store, report_id)
    _print_matches(store, report_id)


def _print_report(r: Report) -> None:
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    rows: list[tuple[str, str | None]] = [
        ("report", r.id), ("provider", r.provider), ("received", r.received_at.isoformat()),
        ("incident type", r.incident_type.value), ("incident time", r.incident_datetime.isoformat()),
        ("platform", r.platform), ("escalation", r.escalate_to_high_priority),
        ("annotations", ", ".join(a.value for a in r.report_annotations) or None),
        ("batched", r.batched_report_reason.value if r.batched_report_reason else None),
        ("additional info", r.additional_info),
    ]
    for k, v in rows:
        if v:
            t.add_row(k, v)
    for a in r.reported_people:
        ident = " ".join(x for x in (a.esp_service, a.esp_identifier, a.screen_name) if x)
        t.add_row("reported account", ident)
        if a.person:
            for e in a.person.emails:
                t.add_row("  email", e.address + (" (verified)" if e.verified else ""))
            for p in a.person.phones:
                t.add_row("  phone", p.number + (" (verified)" if p.verified else ""))
        for ev in a.ip_events:
            t.add_row("  ip event", f"{ev.ip_address} {ev.event_name.value if ev.event_name else ''} {ev.date_time.isoformat() if ev.date_time else ''}")
        if a.estimated_location:
            loc = a.estimated_location
            t.add_row("  est. location", ", ".join(x for x in (loc.city, loc.region, loc.country_code) if x))
    for victim in r.victims:
        if victim.person and victim.person.age is not None:
            t.add_row("victim age", str(victim.person.age))
    for f in r.files:
        hashes = ", ".join(f"{h.hash_type.value}:{h.value[:16]}…" for h in f.hashes)
        flags = ", ".join(a.value for a in f.annotations)
        viewed = {True: "viewed by provider", False: "NOT viewed by provider", None: "viewing unknown"}[f.viewed_by_esp]
        t.add_row("file", f"{f.file_id} · {viewed}" + (f" · {f.industry_classification.value}" if f.industry_classification else "") + (f" · {flags}" if flags else ""))
        if hashes:
            t.add_row("", hashes)
    if r.source:
        t.add_row("source", f"{r.source.format.value} {r.source.path} sha256:{r.source.sha256[:16]}…")
    if r.unmapped:
        t.add_row("unmapped", ", ".join(r.unmapped))
    out.print(t)


def _print_location(store: Store, report_id: str) -> None:
    loc = store.links.location_of(report_id)
    if loc is None:
        return
    place = ", ".join(x for x in (loc["city"], loc["region"], loc["country_code"]) if x) or "unknown"
    out.print(f"estimated location: {place} (confidence {loc['confidence']:.2f}{', needs review' if loc['needs_review'] else ''})")
    for ev in loc["estimate"].get("evidence", []):
        out.print(f"  {ev['source']}: {ev['value']} (weight {ev['weight']:.2f}) {ev['detail']}", highlight=False)


def _print_matches(store: Store, report_id: str) -> None:
    summary = store.hashsets.summary_of(report_id)
    if summary is None:
        out.print("hash matching: not run yet (tiptriage triage)")
        return
    out.print(f"hash matching: {summary['known_files']} known, {summary['novel_files']} novel (no match in any bank), "
              f"{summary['unhashed_files']} without hashes, {summary['viral_files']} viral"
              + ("; matches a series whose victim is not identified" if summary["unidentified_victim_series"] else ""))
    for m in store.hashsets.matches_of(report_id):
        how = "exact" if m["match_type"] == "exact" else f"perceptual, distance {m['distance']}"
        extra = ", ".join(x for x in (f"category {m['category']}" if m["category"] else "", f"series {m['series']}" if m["series"] else "",
                                      {True: "victim identified", False: "victim not identified", None: ""}[m["victim_identified"]]) if x)
        sup = f" [suppressed: known false positive in {m['suppressed_by']}]" if m["suppressed_by"] else ""
        out.print(f"  {m['file_id']}: {m['hash_type']} {how} in bank {m['bank']}" + (f" ({extra})" if extra else "") + sup, highlight=False)


@quarantine_app.command("list")
def quarantine_list(
    show_all: Annotated[bool, typer.Option("--all", help="Include resolved entries.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List quarantined submissions with the reason each was refused."""
    entries = _store().quarantine_entries(None if show_all else "open")
    if as_json:
        _emit_json([{"id": e.id, "path": e.path, "place": e.place, "rule": e.rule, "reason": e.reason, "status": e.status,
                     "created_at": e.created_at.isoformat(), "resolved_report_id": e.resolved_report_id} for e in entries])
        return
    if not entries:
        out.print("quarantine is empty")
        return
    t = Table("id", "status", "path", "place", "rule", "reason")
    for e in entries:
        t.add_row(str(e.id), e.status, e.path, e.place, e.rule, e.reason)
    out.print(t)


@quarantine_app.command("show")
def quarantine_show(
    entry_id: Annotated[int, typer.Argument(help="The quarantine entry id.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    save: Annotated[Path | None, typer.Option(help="Write the original bytes into this folder.")] = None,
) -> None:
    """One quarantined submission: why, where, and its original documents (SHA-256, size)."""
    store = _store()
    e = store.quarantine_entry(entry_id)
    _audit(store, "export" if save is not None else "read", "quarantine", str(entry_id), "ok" if e is not None else "failed",
           saved_to=str(save) if save is not None else None)
    if e is None:
        err.print(f"[red]no quarantine entry {entry_id}[/]")
        raise typer.Exit(1)
    sizes = store.original_sizes(e.digest)
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
        for name, data in store.original_documents(e.digest):
            (save / Path(name).name).write_bytes(data)
    if as_json:
        _emit_json({"id": e.id, "path": e.path, "place": e.place, "rule": e.rule, "reason": e.reason, "status": e.status,
                    "digest": e.digest, "format": e.format, "documents": [{"name": n, "size": s} for n, s in sizes]})
        return
    out.print(f"[bold]entry {e.id}[/] ({e.status}) {e.format}\n  path:   {e.path}\n  place:  {e.place}\n  rule:   {e.rule}\n  reason: {e.reason}\n  digest: {e.digest}")
    for n, s in sizes:
        out.print(f"  original document {n}: {s} bytes")


@quarantine_app.command("retry")
def quarantine_retry(
    entry_ids: Annotated[list[int] | None, typer.Argument(help="Entry ids; all open entries when none are given.")] = None,
    max_bytes: Annotated[int, typer.Option(help="Refuse documents larger than this many bytes.")] = Limits().max_document_bytes,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Read quarantined submissions again from their original bytes (e.g. after an alias was added)."""
    res = pipeline.retry_quarantine(_store(), entry_ids or None, Limits(max_document_bytes=max_bytes))
    if as_json:
        _emit_json({"resolved": [{"id": i, "report_id": r} for i, r in res.resolved],
                    "failing": [{"id": i, "reason": str(e)} for i, e in res.failing]})
        return
    for i, rid in res.resolved:
        out.print(f"entry {i}: stored as report {rid}")
    for i, e in res.failing:
        out.print(f"entry {i}: still refused: {e}", highlight=False)


@app.command()
def generate(
    reports: Annotated[int, typer.Option("--reports", help="How many reports.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same data.")] = 0,
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("synthetic"),
    fmt: Annotated[str, typer.Option("--format", help="xml | json | csv")] = "xml",
) -> None:
    """Write synthetic submissions with planted ground truth (truth.json). Neutral placeholders only."""
    if fmt not in synth.FORMATS:
        err.print(f"[red]unknown --format {fmt!r}[/]; use one of {', '.join(synth.FORMATS)}")
        raise typer.Exit(2)
    with err.status(f"generating {reports} reports"):
        data = synth.generate(reports, seed)
        subs = synth.write(data, out_dir, fmt)
    out.print(f"wrote {len(data.reports)} reports to {subs} and ground truth to {out_dir / 'truth.json'}")


HOSTILE_DEMO = {
    "entity-expansion.xml": b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><report>&b;</report>',
    "unknown-incident-type.xml": b'<?xml version="1.0" encoding="UTF-8"?><report><incidentSummary><incidentType>Something Else</incidentType>'
    b"<incidentDateTime>2026-10-01T08:00:00Z</incidentDateTime></incidentSummary></report>",
    "truncated.xml": b'<?xml version="1.0" encoding="UTF-8"?><report><incidentSummary><incidentType>Child Sex Tourism</incident',
}


@app.command()
def demo(
    reports: Annotated[int, typer.Option("--reports", help="How many synthetic reports.")] = 2000,
    out_dir: Annotated[Path, typer.Option("--out", help="Demo folder; it gets its own database.")] = Path("demo"),
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """Generate synthetic data, run everything built so far on it, and show what happened."""
    if out_dir.exists() and any(out_dir.iterdir()):
        # only ever replace an earlier demo, never a folder that holds anything else
        if not ((out_dir / "truth.json").is_file() and (out_dir / "submissions").is_dir()):
            err.print(f"[red]{out_dir} is not empty and is not an earlier demo folder; choose another --out[/]")
            raise typer.Exit(2)
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{out_dir / 'tiptriage.db'}"
    from tiptriage.store.crypto import KEY_ENV, KEY_FILE_ENV, Keyring, generate_key, write_key_file

    # the demo database is encrypted at rest like any other: its own key, beside it only because it is a demo
    key_file = out_dir / "tiptriage.key"
    write_key_file(key_file, [generate_key()], "demo key")
    out.rule("[bold]tiptriage demo")
    with err.status(f"generating {reports} synthetic reports"):
        data = synth.generate(reports, seed)
        subs = synth.write(data, out_dir, "xml")
        hostile = subs / "_hostile"
        hostile.mkdir()
        for name, content in HOSTILE_DEMO.items():
            (hostile / name).write_bytes(content)
    out.print(f"1. generated {len(data.reports)} synthetic submissions (ESP XML) in {subs}, plus {len(HOSTILE_DEMO)} broken or hostile ones")
    classes = ", ".join(f"{k} {v}" for k, v in sorted(data.truth["classes"].items(), key=lambda kv: -kv[1]))
    out.print(f"   planted classes: {classes}")
    store = Store(db_url, keyring=Keyring.from_file(key_file))
    start = time.perf_counter()
    result = _ingest(store, [subs], "auto", Limits(), quiet=False, workers=pipeline.default_workers())
    secs = time.perf_counter() - start
    out.print(f"2. ingested into {db_url}: accepted {result.accepted}, duplicates {result.duplicates}, "
              f"quarantined {result.quarantined} in {secs:.1f}s ({result.accepted / max(secs, 1e-9):,.0f} reports/s)")
    for e in result.errors:
        out.print(f"   quarantined {e['path']}: {e['reason']}", highlight=False)
    again = pipeline.ingest(store, [subs], "auto", Limits())
    out.print(f"3. ingested the same folder again: accepted {again.accepted}, duplicates {again.duplicates} (nothing stored twice)")
    hs = pipeline.import_hashset(store, out_dir / "hashsets" / "known.csv", "known-demo")
    out.print(f"4. imported the synthetic known-content hash set as bank 'known-demo': {hs.added} entries, {hs.refused} refused")
    from tiptriage.hashes.flood import FloodRule

    demo_flood = FloodRule(accounts=5, days=7)
    tri = pipeline.triage(store, demo_flood)
    out.print(f"5. triage: matched {tri.reports_matched} reports: {tri.files_known} files known, {tri.files_novel} novel "
              f"(no match in any bank); {tri.viral_hashes} hashes marked viral (more than {demo_flood.accounts} accounts in {demo_flood.days} days, a demo-sized rule)")
    out.print(f"6. linked accounts into {tri.subjects} subjects and grouped viral reports into {tri.bundles} bundles (tiptriage link --json for details)")
    summary_rows = store.work.agency_summary()
    out.print(f"7. routed every report by its estimated location and opened cases: {len(summary_rows)} queues "
              f"({tri.deconfliction_notices} deconfliction notices)")
    qt = Table("agency queue", "open", "tier 1", "tier 2", "tier 3", "tier 4", title="queues per agency (low-confidence places go to review)")
    for r in summary_rows[:12]:
        qt.add_row(r["agency_id"], str(r["open"]), *[str(r["by_tier"].get(str(i), 0)) for i in (1, 2, 3, 4)])
    out.print(qt)
    counts = store.incident_type_counts()
    t = Table("incident type", "reports", title="stored reports by incident type")
    for k, v in sorted(counts.items(), key=lambda kv: -kv[1]):
        t.add_row(k, str(v))
    out.print(t)
    top = store.assessments.queue(limit=10)
    out.print("8. the top of the queue, with the reasons of the rules that set each tier and score (tiptriage explain REPORT_ID for the evidence):")
    tq = Table("#", "report", "tier", "score", "reasons")
    for i, r in enumerate(top, start=1):
        tq.add_row(str(i), r["report_id"], str(r["tier"]), str(r["score"]), "; ".join(r["reasons"][:3]) + (" …" if len(r["reasons"]) > 3 else ""))
    out.print(tq)
    out.print("9. how the queue ranks the planted classes (tiptriage evaluate --truth):")
    _print_evaluation(pipeline.evaluate_truth(store, data.truth))

    def first_of(klass: str) -> str:
        return next((rid for rid, tr in data.truth["reports"].items() if tr["class"] == klass), data.reports[0].id)

    example = first_of("imminent_danger")
    production = first_of("suspected_production")
    known_example = first_of("known_possession")
    out.rule("next")
    out.print("Try these on the demo database:", highlight=False)
    out.print(f"  export TIPTRIAGE_DATABASE_URL={db_url}", highlight=False)
    if os.environ.get(KEY_ENV):
        out.print(f"  unset {KEY_ENV}", highlight=False)
    out.print(f"  export {KEY_FILE_ENV}={key_file}", highlight=False)
    out.print("  tiptriage queue --limit 15", highlight=False)
    out.print(f"  tiptriage explain {example}", highlight=False)
    out.print("  tiptriage queue --summary", highlight=False)
    out.print(f"  tiptriage show {example}", highlight=False)
    out.print(f"  tiptriage show {example} --json", highlight=False)
    out.print(f"  tiptriage show {production}        # files unknown to every bank", highlight=False)
    out.print(f"  tiptriage show {known_example}        # files matched in the known bank", highlight=False)
    out.print("  tiptriage hashset list", highlight=False)
    used: dict[str, set[str]] = {}
    for tr in data.truth["reports"].values():
        used.setdefault(tr["person"], set()).add(tr["account"])
    multi = next((sorted(accs)[0] for accs in used.values() if len(accs) > 1), None)
    if multi:
        out.print(f"  tiptriage subject show {multi.lower()}   # one person behind several accounts", highlight=False)
    out.print("  tiptriage quarantine list", highlight=False)
    out.print("  tiptriage quarantine show 1", highlight=False)
    out.print(f"  tiptriage ingest {subs} --json", highlight=False)
    busiest = max(store.work.agency_summary(), key=lambda a: int(a["open"]), default=None)
    out.print("\n[bold]Open it in a browser[/] (with the two exports above):", highlight=False)
    out.print(f"  tiptriage user add sup.demo --agency {busiest['agency_id'] if busiest else 'review'} --role supervisor"
              "   # asks for a password; add the TOTP secret it prints to an authenticator app", highlight=False)
    out.print("  tiptriage serve --port 8000   # then open http://127.0.0.1:8000/ and log in", highlight=False)
    store.dispose()


@hashset_app.command("import")
def hashset_import(
    file: Annotated[Path, typer.Argument(help="The hash-set file (VICS JSON, NCMEC hash-sharing XML, or CSV).")],
    name: Annotated[str, typer.Option("--name", help="The bank to import into (created if new).")],
    fmt: Annotated[str, typer.Option("--format", help="auto | vics | ncmec | csv")] = "auto",
    negative: Annotated[bool, typer.Option("--negative", help="A bank of known false positives: its matches suppress others.")] = False,
    max_distance: Annotated[int | None, typer.Option(help="PDQ match threshold for this bank (default 31).")] = None,
    min_quality: Annotated[int | None, typer.Option(help="Ignore PDQ queries below this quality, where known (default 50).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Import or update a bank; corrupt entries are refused with a reason, the rest goes in; tombstones remove entries."""
    if not file.is_file():
        err.print(f"[red]no such file:[/] {file}")
        raise typer.Exit(2)
    if max_distance is not None and not 0 <= max_distance <= MAX_RADIUS:
        err.print("[red]--max-distance must be between 0 and 63[/]")
        raise typer.Exit(2)
    store = _store()
    with err.status(f"importing {file}"):
        try:
            res = pipeline.import_hashset(store, file, name, fmt, negative, max_distance, min_quality)
        except ValueError as exc:
            err.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None
    _audit(store, "change", "hashset", name, path=str(file), added=res.added, updated=res.updated, removed=res.removed, refused=res.refused)
    if as_json:
        _emit_json(res.as_json())
        return
    out.print(f"bank {name}: added {res.added}, updated {res.updated}, removed {res.removed}, refused {res.refused}")
    for r in res.refusals[:20]:
        out.print(f"  refused {r['path']}: {r['place']}: {r['reason']}", highlight=False)


@hashset_app.command("list")
def hashset_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Banks with their entry counts by hash type and last update."""
    from tiptriage.hashes.overview import bank_overview

    rows = bank_overview(_store())
    if as_json:
        _emit_json(rows)
        return
    if not rows:
        out.print("no hash sets yet: tiptriage hashset import FILE --name NAME")
        return
    t = Table("bank", "kind", "entries by type", "PDQ threshold", "min quality", "updated")
    for r in rows:
        entries = r["entries"]
        assert isinstance(entries, dict)
        t.add_row(str(r["name"]), "negative" if r["negative"] else "positive", ", ".join(f"{k} {v:,}" for k, v in entries.items()) or "-",
                  str(r["max_distance"]), str(r["min_quality"]), str(r["updated_at"]))
    out.print(t)


@app.command("hash")
def hash_files(
    files: Annotated[list[Path], typer.Argument(help="The operator's own files.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON list of {path, md5, sha1, sha256, pdq, quality}.")] = False,
    dihedral: Annotated[bool, typer.Option("--dihedral", help="Add the PDQ of the 8 rotations and flips.")] = False,
    video: Annotated[bool, typer.Option("--video", help="Add the vPDQ of files that are not images (needs tiptriage[video]).")] = False,
) -> None:
    """MD5, SHA1, SHA256 and PDQ (with quality) of files you hold; never used on a report's behalf."""
    from tiptriage.hashes import filehash
    from tiptriage.hashes import video as video_hashing

    if video and not video_hashing.vpdq_available():
        err.print("[red]video hashing is unavailable: install the optional extra tiptriage[video] (vpdq, built against FFmpeg)[/]")
        raise typer.Exit(2)

    records: list[dict[str, object]] = []
    failed = False
    for path in files:
        try:
            fh = filehash.hash_file(path, dihedral=dihedral)
        except OSError as exc:
            err.print(f"[red]{path}: {exc.strerror or exc}[/]")
            failed = True
            continue
        if fh.warning:
            err.print(f"[yellow]{fh.warning}[/]", highlight=False)
        record = filehash.as_json_record(fh, dihedral)
        if video and fh.pdq is None:
            try:
                record["vpdq"] = video_hashing.hash_video(path)
            except Exception as exc:  # vpdq raises plain errors for files FFmpeg cannot decode
                err.print(f"[yellow]{path}: no vPDQ: {exc}[/]")
        records.append(record)
    if as_json:
        _emit_json(records)
    else:
        t = Table("path", "sha256", "pdq", "quality")
        for r in records:
            t.add_row(str(r["path"]), str(r["sha256"]), str(r["pdq"] or "-"), str(r["quality"] if r["quality"] is not None else "-"))
        out.print(t)
    if failed:
        raise typer.Exit(1)


@app.command()
def triage(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    flood_accounts: Annotated[int, typer.Option(help="A hash is viral when more than this many accounts report it...")] = 50,
    flood_days: Annotated[int, typer.Option(help="...within this many days.")] = 7,
) -> None:
    """Run the stages after intake on what is new: file hashes, flood protection, hash matching."""
    from tiptriage.hashes.flood import FloodRule

    store = _store()
    with err.status("triage"):
        res = pipeline.triage(store, FloodRule(flood_accounts, flood_days))
    _audit(store, "assess", "reports", "all", matched=res.reports_matched, assessed=res.assessed)
    if as_json:
        _emit_json(res.as_json())
        return
    out.print(f"matched {res.reports_matched} reports against hash sets (import #{res.hashset_seq}): "
              f"{res.files_known} known files, {res.files_novel} novel files; {res.viral_hashes} viral hashes; "
              f"assessed {res.assessed}: " + ", ".join(f"tier {k}: {v}" for k, v in res.by_tier.items()))


@app.command("link")
def link_command(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild subjects and bundles from every stored report (the only mode today).")] = True,
    backend: Annotated[str, typer.Option(help="duckdb (default) or spark (needs pyspark and Java).")] = "duckdb",
    threshold: Annotated[float, typer.Option(help="Match probability a probabilistic link needs.")] = 0.99,
    synthetic_addresses: Annotated[bool, typer.Option(help="Treat documentation-range IPs as public (synthetic data only).")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Resolve accounts into people (deterministic keys + Splink) and group viral reports into bundles."""
    if backend not in ("duckdb", "spark"):
        err.print("[red]--backend must be duckdb or spark[/]")
        raise typer.Exit(2)
    store = _store()
    with err.status("linking"):
        res = pipeline.link(store, backend=backend, threshold=threshold, synthetic_addresses=synthetic_addresses)
    if as_json:
        _emit_json(res.as_json())
        return
    out.print(f"{res.accounts} accounts → {res.subjects} subjects ({res.multi_account_subjects} with several accounts): "
              f"{res.deterministic_links} deterministic, {res.probabilistic_links} probabilistic, {res.confirmed_links} confirmed links; "
              f"{res.bundles} bundles holding {res.bundled_reports} reports")
    for note in res.notes:
        out.print(f"  note: {note}", highlight=False)
    for b in store.links.bundle_list(5):
        out.print(f"  bundle {b['id']}: {b['reports']} reports from {b['accounts']} accounts, representative {b['representative_report_id']} ({b['key_kind']})")


def _resolve_subject(store: Store, ref: str) -> str:
    sid = ref if ref.startswith("S-") else store.links.subject_of(ref)
    if sid is None or store.links.subject(sid) is None:
        err.print(f"[red]no subject or account {ref!r}[/] (run tiptriage link first)")
        raise typer.Exit(1)
    return sid


@subject_app.command("show")
def subject_show(
    ref: Annotated[str, typer.Argument(help="A subject id (S-...) or an account key (service:id).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A subject: its accounts, their reports, and every link with its kind, probability and evidence."""
    store = _store()
    subj = store.links.subject(_resolve_subject(store, ref))
    assert subj is not None
    _audit(store, "read", "subject", subj["id"])
    if as_json:
        _emit_json(subj)
        return
    out.print(f"[bold]subject {subj['id']}[/]: {subj['accounts']} accounts, {subj['reports']} reports")
    for a in subj["account_keys"]:
        reps = [r["report_id"] for r in subj["report_accounts"] if r["account"] == a]
        out.print(f"  account {a}: reports {', '.join(reps)}", highlight=False)
    for lk in subj["links"]:
        out.print(f"  link {lk['a']} — {lk['b']}: {lk['kind']} p={lk['probability']:.4f}; " + "; ".join(lk["evidence"]), highlight=False)


@subject_app.command("link")
def subject_link(
    account_a: Annotated[str, typer.Argument(help="An account key (service:id).")],
    account_b: Annotated[str, typer.Argument(help="Another account key.")],
    reason: Annotated[str, typer.Option(help="Why the analyst confirms these are one person.")],
    user: Annotated[str, typer.Option(help="Who decides.")] = os.environ.get("USER", "analyst"),
) -> None:
    """Confirm two accounts are one person; the decision persists through every later rebuild."""
    store = _store()
    for a in (account_a, account_b):
        if not store.links.known_account(a):
            err.print(f"[red]unknown account {a!r}[/]")
            raise typer.Exit(1)
    _, reassessed = pipeline.decide_link(store, "confirm", account_a, account_b, reason, user)
    # the audit log is kept in clear (it is hash-chained as written): accounts appear there as their keyed hashes, the
    # analyst's reason by its length only; the decision itself, with the reason, is sealed in the link tables
    _audit(store, "decide", "link", f"{store.cipher.index(account_a)}|{store.cipher.index(account_b)}", decision="confirm",
           reason_chars=len(reason))
    out.print(f"confirmed: {account_a} and {account_b} are subject {store.links.subject_of(account_a)}; "
              f"{reassessed.assessed} reports assessed again, {reassessed.changed} changed")


@subject_app.command("split")
def subject_split(
    account: Annotated[str, typer.Argument(help="The account to cut off its subject.")],
    reason: Annotated[str, typer.Option(help="Why the link is wrong.")],
    user: Annotated[str, typer.Option(help="Who decides.")] = os.environ.get("USER", "analyst"),
) -> None:
    """Cut an account from the links nobody confirmed; the decision persists through every later rebuild."""
    store = _store()
    if not store.links.known_account(account):
        err.print(f"[red]unknown account {account!r}[/]")
        raise typer.Exit(1)
    _, reassessed = pipeline.decide_link(store, "split", account, None, reason, user)
    _audit(store, "decide", "link", store.cipher.index(account), decision="split", reason_chars=len(reason))
    out.print(f"split: {account} is now subject {store.links.subject_of(account)}; "
              f"{reassessed.assessed} reports assessed again, {reassessed.changed} changed")


@app.command()
def explain(
    report_id: Annotated[str, typer.Argument(help="The report id.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Why a report has its tier and score: every rule that fired, its points, reason, source and evidence; the policy
    (the default, or the agency's own) and version that produced it; and its earlier assessments with what changed."""
    from tiptriage.store.indicators import IndicatorRepository
    from tiptriage.store.policies import PolicyRepository

    store = _store()
    a = store.assessments.get(report_id)
    _audit(store, "read", "assessment", report_id, "ok" if a is not None else "failed")
    if a is None:
        err.print(f"[red]no assessment for {report_id!r}[/] (is the report stored? run tiptriage triage)")
        raise typer.Exit(1)
    agency = a.get("policy_agency")
    set_row = PolicyRepository(store.engine).find(agency, a["policy_version"]) if agency else None
    policy = {"name": a["policy_name"], "version": a["policy_version"], "agency_id": agency, "source": "agency" if agency else "default",
              "set_by": set_row.set_by if set_row else None, "set_at": set_row.set_at.isoformat() if set_row else None}
    history = IndicatorRepository(store.engine).history(report_id)
    changes = pipeline.tier_changes(store, a)
    if as_json:
        _emit_json({**a, "policy": policy, "history": history, "tier_changes": changes})
        return
    whose = f"agency {agency}'s own policy" + (f", set by {set_row.set_by} at {set_row.set_at:%Y-%m-%d %H:%M}" if set_row else "") \
        if agency else "the default policy"
    out.print(f"[bold]{report_id}: tier {a['tier']}, score {a['score']}[/] under policy {a['policy_name']} {a['policy_version']} "
              f"({whose}; assessed {a['assessed_at']})", highlight=False)
    for f in a["fired"]:
        effect = ", ".join(x for x in (f"tier at least {f['tier_floor']}" if f.get("tier_floor") else "",
                                       f"tier at most {f['tier_cap']}" if f.get("tier_cap") else "",
                                       f"{f['points']:+d} points" if f.get("points") else "") if x)
        out.print(f"  [bold]{f['rule_id']}[/] ({effect}): {f['reason']}", highlight=False)
        out.print(f"      source: {f['source']}", highlight=False)
        for ev in f["evidence"][:8]:
            out.print(f"      evidence: {ev}", highlight=False)
    if not a["fired"]:
        out.print("  no rule fired: the policy's default tier applies")
    if a.get("own_tier") is not None and a["own_tier"] != a["tier"]:
        out.print(f"  on its own indicators tier {a['own_tier']}; a linked report's tier lifts it (subject-has-tier1-report)")
    if changes is None:
        out.print("  what would change the tier: the policy that produced this assessment is no longer in force; assess again to see")
    else:
        by = ", ".join(changes["set_by"]) or "the policy's default tier"
        out.print(f"  [bold]what would change the tier[/]: tier {changes['tier']} is set by {by}"
                  + (f"; without it, tier {changes['without']}" if changes["set_by"] and changes["without"] != changes["tier"] else ""),
                  highlight=False)
        for e in changes["more_urgent"][:6]:
            out.print(f"      tier {e['tier']} if {e['rule_id']} fired: {e['when']}", highlight=False)
        for e in changes["less_urgent"][:3]:
            out.print(f"      tier {e['tier']} if {e['rule_id']} fired: {e['when']}", highlight=False)
    for h in history[:10]:
        c = h["change"]
        parts = [f"tier {c['tier'][0]} -> {c['tier'][1]}" if c["tier"][0] != c["tier"][1] else f"tier {c['tier'][0]}",
                 f"score {c['score'][0]} -> {c['score'][1]}"]
        if c.get("policy"):
            parts.append(f"policy {c['policy']['from']['version']} -> {c['policy']['to']['version']}")
        for key, label in (("rules_added", "now fires"), ("rules_removed", "no longer fires"), ("effect_changed", "weighs differently"),
                           ("evidence_changed", "new evidence")):
            if c.get(key):
                parts.append(f"{label}: {', '.join(c[key])}")
        out.print(f"  earlier, until {h['replaced_at']:%Y-%m-%d %H:%M} ({h['trigger']}): " + "; ".join(parts), highlight=False)
    if len(history) > 10:
        out.print(f"  ... and {len(history) - 10} earlier assessments (--json lists them all)")


@app.command()
def queue(
    agency: Annotated[str | None, typer.Option(help="One agency's queue (an id from data/agencies.json, or 'review').")] = None,
    limit: Annotated[int, typer.Option(help="How many cases.")] = 25,
    fmt: Annotated[str, typer.Option("--format", help="table | json | csv")] = "table",
    summary: Annotated[bool, typer.Option("--summary", help="The supervisor's overview: open, overdue and by tier, per agency.")] = False,
) -> None:
    """Open cases, most urgent first (tier, then score, then oldest), with the SLA clock and the reasons."""
    from datetime import UTC, datetime

    from tiptriage.work.states import aging

    store = _store()
    if summary:
        rows_s = store.work.agency_summary()
        _audit(store, "read", "queue", "summary", rows=len(rows_s))
        if fmt == "json":
            _emit_json(rows_s)
            return
        t = Table("agency", "open", "overdue", "tier 1", "tier 2", "tier 3", "tier 4", "closed")
        for r in rows_s:
            t.add_row(r["agency_id"], str(r["open"]), str(r["overdue"]), *[str(r["by_tier"].get(str(i), 0)) for i in (1, 2, 3, 4)], str(r["closed"]))
        out.print(t)
        return
    now = datetime.now(UTC)
    rows = store.work.agency_queue(agency, limit)
    _audit(store, "read", "queue", agency or "all", rows=len(rows), format=fmt)
    groups = store.links.groups_of([r["report_id"] for r in rows])
    records = [{"report_id": r["report_id"], "tier": r["tier"], "score": r["score"], "reasons": r["reasons"],
                "subject_id": groups[r["report_id"]][0], "bundle_id": groups[r["report_id"]][1], "agency_id": r["agency_id"],
                "case_id": r["id"], "state": r["state"], "assignee": r["assignee"], "incident_type": r["incident_type"],
                "received_at": r["received_at"], "due_at": r["due_at"], "sla": aging(r["due_at"], now)} for r in rows]
    if fmt == "json":
        _emit_json({"total": store.work.open_count(agency), "items": records})
    elif fmt == "csv":
        import csv as csv_module

        w = csv_module.writer(sys.stdout)
        cols = ["case_id", "report_id", "agency_id", "tier", "score", "state", "assignee", "incident_type", "received_at", "due_at", "sla"]
        w.writerow([*cols, "reasons"])
        for rec in records:
            w.writerow([rec[c] for c in cols] + [" | ".join(rec["reasons"])])
    elif fmt == "table":
        t = Table("case", "report", "agency", "tier", "score", "state", "SLA", "first reason")
        for rec in records:
            why = rec["reasons"][0] if rec["reasons"] else "-"
            t.add_row(rec["case_id"], rec["report_id"], rec["agency_id"], str(rec["tier"]), str(rec["score"]), rec["state"], rec["sla"], why)
        out.print(t)
    else:
        err.print("[red]--format must be table, json or csv[/]")
        raise typer.Exit(2)


def _case_action(do: Callable[[Store, cases.Actor], dict[str, Any]]) -> dict[str, Any]:
    """Run one case move; a refused move or an unknown case ends the command with the reason."""
    store = _store()
    try:
        return do(store, cases.Actor(_user(), os.environ.get("TIPTRIAGE_AGENCY"), "cli"))
    except (cases.CaseNotFound, cases.TransitionError) as exc:
        err.print(f"[red]{exc.args[0]}[/] (a case is named by its id C-... or its report id)")
        raise typer.Exit(1) from None


@app.command()
def assign(
    case_ref: Annotated[str, typer.Argument(help="A case id (C-...) or its report id.")],
    to: Annotated[str, typer.Option("--to", help="The investigator.")],
) -> None:
    """Assign a new case to an investigator (new → assigned), or reassign an assigned one."""
    from tiptriage.work.states import capacity_per_investigator

    case = _case_action(lambda store, actor: cases.assign(store, case_ref, to, actor))
    out.print(f"case {case['id']} assigned to {to}")
    carrying = sum(1 for c in _store().work.agency_queue(str(case["agency_id"])) if c["assignee"] == to)
    if carrying > capacity_per_investigator():
        err.print(f"[yellow]{to} now carries {carrying} open cases, more than the {capacity_per_investigator()} planned per investigator[/]")


@app.command()
def transition(
    case_ref: Annotated[str, typer.Argument(help="A case id (C-...) or its report id.")],
    state: Annotated[str, typer.Argument(help="in_progress | legal_process | new | assigned")],
    note: Annotated[str | None, typer.Option(help="Why.")] = None,
) -> None:
    """Move a case to another state; moves the workflow does not allow are refused with the allowed ones named."""
    before: list[str] = []

    def do(store: Store, actor: cases.Actor) -> dict[str, Any]:
        before.append(str(cases.find(store, case_ref)["state"]))
        return cases.move(store, case_ref, state, actor, note)

    case = _case_action(do)
    out.print(f"case {case['id']}: {before[0]} → {state}")


@app.command()
def outcome(
    case_ref: Annotated[str, typer.Argument(help="A case id (C-...) or its report id.")],
    result: Annotated[str, typer.Argument(help="arrest | child_safeguarded | unfounded | referred_elsewhere | no_action")],
    reason: Annotated[str | None, typer.Option(help="Required for no_action and referred_elsewhere.")] = None,
) -> None:
    """Close a case with its outcome; outcomes feed the evaluation and the statistics."""
    case = _case_action(lambda store, actor: cases.close(store, case_ref, result, reason, actor))
    out.print(f"case {case['id']} closed: {result}")


preserve_app = typer.Typer(no_args_is_help=True, help="§ 2703(f) preservation requests sent to providers: record, renew, list.")
app.add_typer(preserve_app, name="preserve")


def _when(text: str | None) -> datetime:
    """An ISO 8601 time with its zone (a date alone is midnight UTC); now when not given."""
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text if "T" in text or " " in text else text + "T00:00:00+00:00")
    except ValueError:
        err.print(f"[red]{text!r} is not an ISO 8601 time[/] (e.g. 2026-11-25 or 2026-11-25T14:00:00-05:00)")
        raise typer.Exit(2) from None
    if value.tzinfo is None:
        err.print(f"[red]{text!r} has no time zone[/]: add one (Z, +00:00, -05:00) so the 90 days count from the right moment")
        raise typer.Exit(2)
    return value


def _print_preservation(store: Store, report_id: str) -> None:
    from tiptriage.packages import deadlines as dl

    report = store.get_report(report_id)
    assert report is not None
    for d in dl.report_deadlines(report, pipeline.preservation_requests(store, report_id), datetime.now(UTC)):
        out.print(f"  {d.label} ({d.provider or '-'}): until {d.expires_at:%Y-%m-%d %H:%M %Z} — {d.warning.text}", highlight=False)


@preserve_app.command("record")
def preserve_record(
    report_id: Annotated[str, typer.Argument(help="The report the request is about.")],
    provider: Annotated[str, typer.Option(help="The provider the request went to.")],
    sent: Annotated[str | None, typer.Option(help="When it was sent (ISO 8601 with zone; default now).")] = None,
    reference: Annotated[str | None, typer.Option(help="The agency's or the provider's reference number.")] = None,
) -> None:
    """Record a § 2703(f) request the agency sent: its 90-day clock shows in queues' packages with warnings before it lapses."""
    store = _store()
    sent_at = _when(sent)
    try:
        store.preservation.record(report_id, provider, sent_at, reference, _user(), datetime.now(UTC))
    except LookupError as exc:
        err.print(f"[red]{exc.args[0]}[/]")
        raise typer.Exit(1) from None
    except sa.exc.IntegrityError:
        err.print(f"[red]a request to {provider!r} sent at {sent_at.isoformat()} is already recorded for {report_id!r}[/]")
        raise typer.Exit(1) from None
    _audit(store, "change", "preservation", report_id, provider=provider, sent_at=sent_at.isoformat(), reference=reference)
    out.print(f"recorded the preservation request to {provider} for {report_id}")
    _print_preservation(store, report_id)


@preserve_app.command("renew")
def preserve_renew(
    report_id: Annotated[str, typer.Argument(help="The report the request is about.")],
    provider: Annotated[str, typer.Option(help="The provider the request went to.")],
    at: Annotated[str | None, typer.Option(help="When the renewal was sent (ISO 8601 with zone; default now).")] = None,
) -> None:
    """Record the one renewal the statute allows, made while the first 90 days run (refused afterwards, with the date)."""
    from tiptriage.packages import deadlines as dl

    store = _store()
    renewed_at = _when(at)
    pending = [p for p in store.preservation.of(report_id) if p["provider"] == provider and p["renewed_at"] is None]
    if not pending:
        err.print(f"[red]no unrenewed preservation request to {provider!r} is recorded for {report_id!r}[/]")
        raise typer.Exit(1)
    try:
        until = dl.renewed_request_expiry(pending[-1]["sent_at"], renewed_at)
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    store.preservation.renew(report_id, provider, renewed_at)
    _audit(store, "change", "preservation", report_id, provider=provider, renewed_at=renewed_at.isoformat())
    out.print(f"renewed: the request to {provider} now lapses {until:%Y-%m-%d %H:%M %Z} (no further renewal)")


@preserve_app.command("list")
def preserve_list(report_id: Annotated[str, typer.Argument(help="The report.")]) -> None:
    """The report's preservation clocks: the provider's one year, and each request's 90 (+90) days, with warnings."""
    store = _store()
    if store.get_report(report_id) is None:
        err.print(f"[red]no report {report_id!r}[/]")
        raise typer.Exit(1)
    _audit(store, "read", "preservation", report_id)
    _print_preservation(store, report_id)


route_app = typer.Typer(no_args_is_help=True, help="An agency accepts, declines or transfers a routed report.")
app.add_typer(route_app, name="route")


def _route_action(action: str, report_id: str, reason: str, to_agency: str | None) -> None:
    from datetime import UTC, datetime

    from tiptriage.route.jurisdictions import agencies
    from tiptriage.work.states import due_at

    store = _store()
    current = store.work.route_of(report_id)
    if current is None:
        err.print(f"[red]report {report_id!r} is not routed[/]")
        raise typer.Exit(1)
    if to_agency is not None and to_agency not in {a.id for a in agencies()}:
        err.print(f"[red]unknown agency {to_agency!r}[/]")
        raise typer.Exit(1)
    a = store.assessments.get(report_id)
    due = due_at(int(a["tier"]), datetime.now(UTC)) if a else None
    store.work.route_action(report_id, action, _user(), reason, to_agency, due)
    _audit(store, "change", "route", report_id, route_action=action, to_agency=to_agency, reason=reason[:500])
    now_at = store.work.route_of(report_id)
    assert now_at is not None
    out.print(f"{report_id}: {action} → now with {now_at['agency_id']} ({now_at['status']})")


@route_app.command("accept")
def route_accept(report_id: str, reason: Annotated[str, typer.Option()] = "accepted") -> None:
    """The agency takes the report."""
    _route_action("accept", report_id, reason, None)


@route_app.command("decline")
def route_decline(report_id: str, reason: Annotated[str, typer.Option(help="Why the agency declines.")]) -> None:
    """The agency declines; the report returns to the clearinghouse's review queue."""
    _route_action("decline", report_id, reason, None)


@route_app.command("transfer")
def route_transfer(report_id: str, to: Annotated[str, typer.Option("--to", help="The receiving agency id.")],
                   reason: Annotated[str, typer.Option(help="Why.")]) -> None:
    """Transfer to another agency; every move is recorded."""
    _route_action("transfer", report_id, reason, to)


def _policy_errors(file: Path, text: str, errors: list[str]) -> None:
    from tiptriage.assess.policy import error_line

    for e in errors:
        line = error_line(text, e)
        err.print(f"[red]{file}{f':{line}' if line else ''}: {e}[/]", highlight=False)


def _read_text(file: Path) -> str:
    try:
        return file.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        err.print(f"[red]{file}: cannot read: {e}[/]", highlight=False)
        raise typer.Exit(1) from None


@policy_app.command("check")
def policy_check(file: Annotated[Path, typer.Argument(help="A policy YAML file.")]) -> None:
    """Validate a policy: every error names its place in the file (line and YAML path)."""
    from tiptriage.assess.indicators import vocabulary_errors
    from tiptriage.assess.policy import check_policy, error_line, load_policy

    errors = check_policy(file)
    if errors:
        _policy_errors(file, _read_text(file) if file.is_file() else "", errors)
        raise typer.Exit(1)
    text = _read_text(file)
    policy, version = load_policy(text)
    out.print(f"{file}: valid policy {policy.name!r} version {policy.version} ({version}), {len(policy.rules)} rules")
    for w in vocabulary_errors(policy):
        line = error_line(text, w)
        err.print(f"[yellow]{file}{f':{line}' if line else ''}: warning: {w} (`policy set` refuses this)[/]", highlight=False)


def _load_or_exit(file: Path) -> Policy:
    from tiptriage.assess.policy import PolicyError, load_policy

    text = _read_text(file)
    try:
        return load_policy(text)[0]
    except PolicyError as e:
        _policy_errors(file, text, e.errors)
        raise typer.Exit(1) from None


@policy_app.command("diff")
def policy_diff(
    files: Annotated[list[Path], typer.Argument(help="A B: the current and the proposed policy; with --agency, only the proposed one.")],
    agency: Annotated[str | None, typer.Option(help="Compare this agency's policy now (its own, or the default) with FILE, over its reports.")] = None,
    top: Annotated[int, typer.Option(help="How many of the largest moves to list.")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """How the ranking of the stored reports would change from policy A to policy B (or, with --agency, from that
    agency's current policy to FILE, over the reports routed to it)."""
    if len(files) != (1 if agency else 2):
        err.print("[red]give two policies, A B, or --agency ID and one policy[/]")
        raise typer.Exit(2)
    loaded = [_load_or_exit(f) for f in files]
    store = _store()
    if agency is not None and agency not in pipeline.known_agencies():
        err.print(f"[red]unknown agency {agency!r}[/] (`tiptriage policy list --agencies` names them)")
        raise typer.Exit(1)
    current = None if agency else loaded[0]
    result = pipeline.diff_agency_policy(store, loaded[-1], agency, current=current, top=top)
    _audit(store, "read", "policy_diff", agency or "all", reports=result["reports"])
    if as_json:
        _emit_json(result)
        return
    out.print_json(json.dumps(result, default=str))


@policy_app.command("set")
def policy_set(
    file: Annotated[Path, typer.Argument(help="The agency's policy (YAML, as `policy check` validates it).")],
    agency: Annotated[str, typer.Option(help="The agency (an id from data/agencies.json).")],
    note: Annotated[str | None, typer.Option(help="Why, for the policy history.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Put a policy into service for one agency: validated first (refused, with the place of every error, if it is not
    valid or reads an indicator tiptriage does not derive), kept in the policy history with who set it and when, and
    the agency's reports re-assessed under it (their previous assessments are kept)."""
    from tiptriage.assess.policy import PolicyError

    text = _read_text(file)
    store = _store()
    if agency not in pipeline.known_agencies():
        _audit(store, "change", "agency_policy", agency, "failed", file=str(file)[:500], errors=1, first_error="unknown agency")
        err.print(f"[red]unknown agency {agency!r}[/] (`tiptriage policy list --agencies` names them)")
        raise typer.Exit(1)
    try:
        change = pipeline.set_agency_policy(store, agency, text, _user()[:128], note=note)
    except PolicyError as e:
        _audit(store, "change", "agency_policy", agency, "failed", file=str(file)[:500], errors=len(e.errors), first_error=e.errors[0][:500])
        _policy_errors(file, text, e.errors)
        err.print(f"[red]refused: agency {agency}'s policy is unchanged[/]")
        raise typer.Exit(1) from None
    _audit(store, "change", "agency_policy", agency, change=change.action, version=change.version, previous=change.previous_version,
           reassessed=change.reassessed.assessed if change.reassessed else 0, changed=change.reassessed.changed if change.reassessed else 0)
    _report_policy_change(change, as_json)


@policy_app.command("reset")
def policy_reset(
    agency: Annotated[str, typer.Option(help="The agency.")],
    note: Annotated[str | None, typer.Option(help="Why, for the policy history.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """An agency goes back to the default policy (kept in the history); its reports are re-assessed."""
    from tiptriage.assess.policy import PolicyError

    store = _store()
    try:
        change = pipeline.set_agency_policy(store, agency, None, _user()[:128], note=note)
    except PolicyError as e:
        err.print(f"[red]{e.errors[0]}[/]", highlight=False)
        raise typer.Exit(1) from None
    _audit(store, "change", "agency_policy", agency, change=change.action, previous=change.previous_version,
           reassessed=change.reassessed.assessed if change.reassessed else 0)
    _report_policy_change(change, as_json)


def _report_policy_change(change: pipeline.AgencyPolicyChange, as_json: bool) -> None:
    if as_json:
        _emit_json(change.as_json())
        return
    if change.action == "unchanged":
        out.print(f"agency {change.agency_id} already runs {change.version or 'the default policy'}: nothing changed")
        return
    now_runs = f"policy {change.policy_name!r} {change.version}" if change.version else f"the default policy {change.policy_name!r}"
    out.print(f"agency {change.agency_id} now runs {now_runs} (was {change.previous_version or 'the default'})", highlight=False)
    r = change.reassessed
    if r is not None:
        out.print(f"re-assessed {r.assessed} reports routed to it: {r.changed} assessments changed, {r.history} kept in history; "
                  + ", ".join(f"tier {k}: {v}" for k, v in sorted(r.by_tier.items())), highlight=False)


@policy_app.command("show")
def policy_show(
    agency: Annotated[str | None, typer.Option(help="This agency's policy now (its own, or the default); none: the default.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The policy in force (YAML on stdout, as it was set; where it came from on stderr)."""
    from tiptriage.assess.policy import load_policy
    from tiptriage.store.policies import PolicyRepository

    store = _store()
    if agency is not None and agency not in pipeline.known_agencies():
        err.print(f"[red]unknown agency {agency!r}[/] (`tiptriage policy list --agencies` names them)")
        raise typer.Exit(1)
    row = PolicyRepository(store.engine).current_of(agency) if agency else None
    text = row.text or "" if row is not None else pipeline.policy_text()
    policy, version = load_policy(text)
    _audit(store, "read", "agency_policy", agency or "default", version=version)
    info = {"agency_id": agency, "source": "agency" if row else "default", "name": policy.name, "policy_number": policy.version, "version": version,
            "set_by": row.set_by if row else None, "set_at": row.set_at.isoformat() if row else None, "note": row.note if row else None, "text": text}
    if as_json:
        _emit_json(info)
        return
    where = f"agency {agency}'s own policy, set by {row.set_by} at {row.set_at:%Y-%m-%d %H:%M}" if row else \
        ("the default policy" + (f" (agency {agency} has none of its own)" if agency else ""))
    err.print(f"{policy.name} version {policy.version} ({version}): {where}", highlight=False)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


@policy_app.command("list")
def policy_list(
    history: Annotated[bool, typer.Option("--history", help="Every change, oldest first, resets included.")] = False,
    agency_ids: Annotated[bool, typer.Option("--agencies", help="Every agency id a policy can be set for.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The agencies that run their own policy (with version, who set it, when, and how many reports they hold)."""
    from tiptriage.assess.policy import load_policy
    from tiptriage.store.policies import PolicyRepository

    if agency_ids:
        names = pipeline.known_agencies()
        if as_json:
            _emit_json(names)
            return
        for k, v in names.items():
            out.print(f"{k}\t{v}", highlight=False)
        return
    store = _store()
    repo = PolicyRepository(store.engine)
    _audit(store, "read", "agency_policy", "all", history=history)
    rows = repo.history() if history else list(repo.current().values())
    default, version = load_policy(pipeline.policy_text())
    counts = repo.routed_counts()
    if as_json:
        _emit_json({"default": {"name": default.name, "policy_number": default.version, "version": version},
                    "policies": [{**r.as_json(), "reports": counts.get(r.agency_id, 0)} for r in rows]})
        return
    out.print(f"default: {default.name} version {default.version} ({version}), for every agency without its own", highlight=False)
    t = Table("agency", "action" if history else "policy", "version", "set by", "set at", "note", "reports now")
    for r in rows:
        t.add_row(r.agency_id, r.action if history and r.action != "set" else f"{r.policy_name} v{r.policy_number}", r.version or "(default)",
                  r.set_by, f"{r.set_at:%Y-%m-%d %H:%M}", r.note or "", str(counts.get(r.agency_id, 0)))
    out.print(t)


@records_app.command("import")
def records_import(file: Annotated[Path, typer.Argument(help="CSV of known persons.")]) -> None:
    """Import agency records (access to children, prior contact offences) matched by normalised identifiers."""
    store = _store()
    n, refusals = pipeline.import_records(store, file)
    _audit(store, "change", "agency_records", str(file), stored=n, refused=len(refusals))
    out.print(f"stored {n} record keys; refused {len(refusals)}")
    for r in refusals[:20]:
        out.print(f"  {r}", highlight=False)


@app.command()
def evaluate(
    truth: Annotated[Path | None, typer.Option("--truth", help="truth.json written by tiptriage generate.")] = None,
    outcomes: Annotated[bool, typer.Option("--outcomes", help="Use the outcomes recorded on closed cases instead.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """How well the assessments put first what mattered: against planted truth, or against recorded outcomes."""
    if (truth is None) == (not outcomes):
        err.print("[red]give exactly one of --truth FILE or --outcomes[/]")
        raise typer.Exit(2)
    store = _store()
    if outcomes:
        res = pipeline.evaluate_outcomes(store)
        _audit(store, "read", "outcomes", "all", closed=res["closed"])
        if as_json:
            _emit_json(res)
            return
        t = Table("tier", "closed cases", "child safeguarded or arrest", "unfounded", "median hours to close")
        for tier, v in res["by_tier"].items():
            t.add_row(tier, str(v["closed"]), f"{v['action_share']:.0%}", f"{v['unfounded_share']:.0%}",
                      f"{v['median_hours_to_close']:.1f}" if v["median_hours_to_close"] is not None else "-")
        out.print(t)
        return
    assert truth is not None
    result = pipeline.evaluate_truth(store, json.loads(truth.read_text("utf-8")))
    if as_json:
        _emit_json(result)
        return
    _print_evaluation(result)


def _print_evaluation(result: dict[str, Any]) -> None:
    t = Table("class", "reports", "tier 1", "tier 2", "tier 3", "tier 4", "first", "last", "median position", "FIFO median",
              title="the queue against the planted truth (positions: 1 = first in the queue)")
    for k, v in result["classes"].items():
        t.add_row(k, str(v["reports"]), *[f"{v['tier_share'].get(str(i), 0):.0%}" for i in (1, 2, 3, 4)], str(v["first_position"]),
                  str(v["last_position"]), f"{v['median_position']:.0%}", f"{v['fifo_median_position']:.0%}")
    out.print(t)
    out.print(f"live-victim classes in tiers 1–2: recall {result['live_victim_recall_tier12']:.3f}, precision {result['live_victim_precision_tier12']:.3f}; "
              f"NDCG {result['ndcg']:.3f} (first 100: {result['ndcg_at_100']:.3f}; arrival order: {result['fifo_ndcg']:.3f})", highlight=False)


@app.command()
def package(
    report_id: Annotated[str, typer.Argument(help="The report id.")],
    fmt: Annotated[str, typer.Option("--format", help="json | html | pdf | case (CASE/UCO JSON-LD)")] = "html",
    out_file: Annotated[Path, typer.Option("--out", help="Where to write it.")] = Path("package.html"),
) -> None:
    """A lead package: summary, tier and reasons, subject and linked reports, identifiers, IP events with places,
    hash matches (never imagery), deadlines, file-access status, a legal-process checklist and draft 2703(f) letters."""
    from tiptriage.packages import case_uco, render

    if fmt not in ("json", "html", "pdf", "case"):
        err.print("[red]--format must be json, html, pdf or case[/]")
        raise typer.Exit(2)
    store = _store()
    try:
        data = pipeline.build_package(store, report_id, _user())
    except KeyError:
        err.print(f"[red]no assessed report {report_id!r}[/] (run tiptriage triage first)")
        raise typer.Exit(1) from None
    if fmt == "json":
        out_file.write_text(json.dumps(render.to_json(data), indent=2, default=str), encoding="utf-8")
    elif fmt == "html":
        out_file.write_text(render.to_html(data), encoding="utf-8")
    elif fmt == "pdf":
        try:
            out_file.write_bytes(render.to_pdf(data))
        except RuntimeError as exc:
            err.print(f"[red]{exc}[/]")
            raise typer.Exit(1) from None
    else:
        case_uco.write_case_jsonld(data, out_file)
    _audit(store, "export", "package", report_id, format=fmt, path=str(out_file))
    out.print(f"wrote the {fmt} lead package of {report_id} to {out_file}")


@app.command()
def simulate(
    policy: Annotated[str, typer.Option(help="fifo | offence-type | default | PATH.yaml")] = "default",
    compare: Annotated[str | None, typer.Option(help="Several policies on identical arrivals, e.g. fifo,offence-type,default.")] = None,
    days: Annotated[int, typer.Option(help="Simulated days.")] = 365,
    investigators: Annotated[int | None, typer.Option(help="Investigators per task force (default: the calibration's).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same arrivals.")] = 0,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Write result.json, measures.csv, backlog.csv and charts here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document, one result object per policy keyed by its name.")] = False,
) -> None:
    """Which policy, with the staff a unit has, reaches the children at risk soonest (never touches the store)."""
    from tiptriage import simulate as sim
    from tiptriage.simulate import report as sim_report

    names = [p.strip() for p in compare.split(",")] if compare else [policy]
    with err.status(f"simulating {days} days under {', '.join(names)}"):
        try:
            result = sim.compare(names, days=days, investigators=investigators, seed=seed)
        except (ValueError, FileNotFoundError) as exc:
            err.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None
    if out_dir is not None:
        files = sim_report.write_report(result, out_dir)
        err.print(f"wrote {', '.join(str(f) for f in files.values())}")
    if as_json:
        sys.stdout.write(sim_report.to_json(result) + "\n")
        return
    t = Table("policy", "class", "median days to first action", "90th percentile days", "within 1 day", "within 7 days", "within 30 days")
    for r in sim_report.rows(result):

        def days_of(v: object) -> str:
            return f"{v:.1f}" if isinstance(v, float) else "not reached"

        def share(v: object) -> str:
            return f"{v:.0%}" if isinstance(v, float) else "-"

        t.add_row(str(r["policy"]), str(r["group"]), days_of(r.get("median_days")), days_of(r.get("p90_days")),
                  share(r.get("within_1d")), share(r.get("within_7d")), share(r.get("within_30d")))
    out.print(t)


user_app = typer.Typer(no_args_is_help=True, help="Accounts of the service: each with a password and a TOTP second factor.")
app.add_typer(user_app, name="user")


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="The login name.")],
    agency: Annotated[str, typer.Option(help="The agency id the account belongs to (data/agencies.json, or 'review').")],
    role: Annotated[str, typer.Option(help="analyst | investigator | supervisor | agency_admin | auditor | system_admin")],
) -> None:
    """Create an account; the password is asked for (never an argument), the TOTP secret is shown once."""
    from tiptriage.server.auth import Authenticator, PasswordPolicyError
    from tiptriage.store.users import Role

    try:
        role_value = Role(role)
    except ValueError:
        err.print(f"[red]unknown role {role!r}[/]; roles: {', '.join(r.value for r in Role)}")
        raise typer.Exit(2) from None
    password = typer.prompt("password (12 characters or more)", hide_input=True, confirmation_prompt=True)
    try:
        enrolled = Authenticator(_store()).enroll(username, agency, role_value, password, by=_user())
    except PasswordPolicyError as exc:
        err.print(f"[red]password refused:[/] {'; '.join(exc.problems)}")
        raise typer.Exit(1) from None
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    out.print(f"created {username} ({role_value.value}, agency {agency}). Add this to an authenticator app now; it is not shown again:")
    out.print(f"  {enrolled.totp_uri}", highlight=False)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (put TLS in front: cookies are Secure).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """The multi-agency service: web pages and the JSON API (login with password + TOTP, agency-scoped, audited).
    With TIPTRIAGE_APP_DATABASE_URL (PostgreSQL) case data is read as the row-level-security application role."""
    import uvicorn

    from tiptriage.server.app import service_app

    err.print(f"tiptriage: open http://{host}:{port}/ (put TLS in front for anything but this machine)")
    uvicorn.run(service_app(os.environ.get("TIPTRIAGE_DATABASE_URL"), os.environ.get("TIPTRIAGE_APP_DATABASE_URL")), host=host, port=port)


db_app = typer.Typer(no_args_is_help=True, help="Database administration.")
app.add_typer(db_app, name="db")


@db_app.command("secure")
def db_secure(app_role: Annotated[str, typer.Option(help="The non-owner role the service connects as.")] = "tiptriage_app") -> None:
    """PostgreSQL: create the application role (no BYPASSRLS) and FORCE row-level security on every case table;
    the audit log becomes append-only for that role. Run as the owner."""
    from tiptriage.store import rls

    store = _store()
    try:
        n = rls.apply(store.engine, app_role)
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    _audit(store, "change", "database", "row-level-security", app_role=app_role, statements=n)
    out.print(f"row-level security applied for role {app_role} ({n} statements)")


audit_app = typer.Typer(no_args_is_help=True, help="The append-only, hash-chained audit log.")
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Check the whole chain: any edit, deletion, insertion or reordering is found and the first bad entry named."""
    result = _store().audit.verify()
    if as_json:
        _emit_json({"ok": result.ok, "checked": result.checked, "first_bad_seq": result.first_bad_seq, "problem": result.problem})
    elif result.ok:
        out.print(f"audit log intact: {result.checked} entries verified")
    else:
        out.print(f"[red]audit log broken at entry {result.first_bad_seq}: {result.problem}[/] ({result.checked} entries verified before it)")
    if not result.ok:
        raise typer.Exit(1)


def main() -> None:  # pragma: no cover - console entry point
    app()
