"""``tiptriage keys``: make a data key, rotate to a new one, see which keys seal what.

Registered on the main command by ``app.add_typer(keys_app, name="keys")`` in ``tiptriage.cli``.

Rotation, offline (simplest): stop the service, run ``tiptriage keys rotate --new-key-file NEW`` with the current key still
configured, then point ``TIPTRIAGE_DATA_KEY_FILE`` at NEW and start the service. Online: first give the service a key file
holding NEW on its first line and the current key on the second (it seals with NEW and still opens the rest), run the rotation,
then drop the second line. ``--rekey-index`` also replaces the index key of the keyed hashes (after a suspected compromise of
the database and a key together); it must run with the service stopped, and the store refuses to open until it has finished.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from tiptriage.store.crypto import KEY_ENV, KEY_FILE_ENV, CryptoError, DataKey, Keyring, generate_key, write_key_file
from tiptriage.store.db import database_url, make_engine, migrate
from tiptriage.store.rotation import RotationResult, rotate, usage

keys_app = typer.Typer(no_args_is_help=True, help="Data keys for encryption at rest: generate, rotate, status.")

out = Console(soft_wrap=True)
err = Console(stderr=True)


def _user() -> str:
    return os.environ.get("TIPTRIAGE_USER") or os.environ.get("USER") or "unknown"


@keys_app.command("generate")
def keys_generate(
    out_file: Annotated[Path, typer.Option("--out", help="The new key file (created with mode 0600; never overwritten).")],
) -> None:
    """Write a new random 256-bit data key, base64, to a file only its owner can read."""
    if out_file.exists():
        err.print(f"[red]{out_file} exists[/]; a key file is never overwritten (it may be the only copy of a key)")
        raise typer.Exit(2)
    try:
        write_key_file(out_file, [generate_key()])
    except OSError as e:
        err.print(f"[red]cannot write {out_file}: {e.strerror}[/]")
        raise typer.Exit(2) from None
    kid = Keyring.from_file(out_file).current.id
    out.print(f"wrote data key {kid} to {out_file} (mode 0600). Keep a copy apart from the database: without it nothing can be read.")
    out.print(f"  export {KEY_FILE_ENV}={out_file.resolve()}", highlight=False)


def _new_key(path: Path) -> DataKey:
    return Keyring.from_file(path).current


@keys_app.command("rotate")
def keys_rotate(
    new_key_file: Annotated[Path, typer.Option("--new-key-file", help="File holding the new key (its first key); mode 0600.")],
    rekey_index: Annotated[bool, typer.Option("--rekey-index", help="Also replace the index key and recompute every keyed hash "
                                                                    "(service stopped).")] = False,
    batch: Annotated[int | None, typer.Option(help="Rows per transaction (default: per table, smaller for original bytes).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object with the counts.")] = False,
) -> None:
    """Re-encrypt every protected value with the new key, in batches; run it again to resume after an interruption. The keys
    configured now (TIPTRIAGE_DATA_KEY_FILE or TIPTRIAGE_DATA_KEY) open what is not yet rotated."""
    try:
        current = Keyring.from_env()
        ring = current.with_current(_new_key(new_key_file))
    except CryptoError as e:
        err.print(f"[red]{e}[/]")
        raise typer.Exit(2) from None
    engine = make_engine(database_url())
    try:
        migrate(engine)
        progress = Progress(TextColumn("[bold]{task.description:<20}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=err, disable=as_json or not err.is_terminal)
        tasks: dict[str, TaskID] = {}

        def tick(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = progress.add_task(table, total=total)
            progress.update(tasks[table], completed=done, total=total)

        with progress:
            try:
                result = rotate(engine, ring, rekey_index=rekey_index, progress=tick, batch=batch, by=_user(), source="cli")
            except CryptoError as e:
                err.print(f"[red]rotation stopped: {e}[/] (what was done is kept; fix the cause and run the command again)")
                raise typer.Exit(1) from None
    finally:
        engine.dispose()
    if as_json:
        sys.stdout.write(json.dumps(result.as_json(), indent=2) + "\n")
    else:
        _print_result(result, new_key_file)
    if not result.complete:
        raise typer.Exit(1)


def _print_result(result: RotationResult, new_key_file: Path) -> None:
    out.print(f"re-encrypted {result.rewritten:,} rows with data key {result.key_id}"
              + (" and recomputed every keyed hash with a new index key" if result.index_rekeyed else ""))
    if result.conflicts:
        out.print(f"  {result.conflicts} rows changed while rotating were left as written", highlight=False)
    if result.complete:
        out.print(f"nothing is sealed with an older key any more. Configure only the new key now: export {KEY_FILE_ENV}={new_key_file.resolve()}"
                  f" (and unset {KEY_ENV}).", highlight=False)
    else:
        out.print("[yellow]still sealed with other keys (written during the rotation?): run the command again[/]")
        for col, counts in result.left_under_other_keys.items():
            out.print(f"  {col}: " + ", ".join(f"{k} {v}" for k, v in counts.items()), highlight=False)


@keys_app.command("status")
def keys_status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """How many values each data key seals, per protected column (``clear``: not encrypted). Reads no value."""
    engine = make_engine(database_url())
    try:
        migrate(engine)
        counts = usage(engine)
    finally:
        engine.dispose()
    if as_json:
        sys.stdout.write(json.dumps(counts, indent=2) + "\n")
        return
    t = Table("column", "values by key id")
    for col, c in counts.items():
        t.add_row(col, ", ".join(f"{k} {v:,}" for k, v in sorted(c.items())))
    out.print(t)
