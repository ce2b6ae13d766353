"""Key rotation: everything reads with only the new key afterwards, linking is unchanged, and an interrupted run resumes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from crypto_fixtures import ACCOUNT, OTHER_ACCOUNT, RID, TOTP, fill
from typer.testing import CliRunner

from tiptriage import pipeline
from tiptriage.cli_keys import keys_app
from tiptriage.store import Store
from tiptriage.store.crypto import KEY_ENV, KEY_FILE_ENV, DataKeyError, Keyring, generate_key, write_key_file
from tiptriage.store.rotation import rekey_in_progress, rotate, usage
from tiptriage.store.users import UserRepository


def snapshot(store: Store, report_ids: list[str], digests: list[str]) -> dict[str, Any]:
    """Everything a user can read back, in clear, and how accounts are grouped into subjects."""
    accounts = {a for r in store.get_reports(report_ids) for a in _accounts(r.id, store)}
    groups: dict[str, list[str]] = {}
    for a in sorted(accounts):
        groups.setdefault(store.links.subject_of(a) or "-", []).append(a)
    user = UserRepository(store.engine).by_username("zq-user")
    return {
        "reports": {r.id: r.model_dump(mode="json") for r in store.get_reports(report_ids)},
        "originals": {d: store.original_documents(d) for d in digests},
        "totp": user.totp_secret if user else None,
        "subjects": groups,
        "subject": store.links.subject(store.links.subject_of(ACCOUNT) or ""),
        "decisions": [{k: v for k, v in d.items() if k != "decided_at"} for d in store.links.decisions()],
        "route": store.work.route_of(RID),
        "case": store.work.case(RID),
        "location": store.links.location_of(RID),
        "assessment": store.assessments.get(RID),
        "records": store.assessments.records_for({"email:zebulon.quackenbush@example.org"}),
    }


def _accounts(report_id: str, store: Store) -> list[str]:
    from tiptriage.link.records import account_key

    r = store.get_report(report_id)
    return [account_key(r, i) for i in range(len(r.reported_people))] if r else []


def _partition(groups: dict[str, list[str]]) -> set[tuple[str, ...]]:
    return {tuple(v) for v in groups.values()}


def test_rotation_leaves_everything_readable_with_only_the_new_key(store: Store, tmp_path: Path) -> None:
    filled = fill(store, tmp_path)
    before = snapshot(store, filled.report_ids, filled.submissions)
    assert tuple(sorted([ACCOUNT, OTHER_ACCOUNT])) in _partition(before["subjects"])
    old = store.cipher.keyring
    with store.engine.connect() as conn:
        old_hash = conn.execute(sa.text("SELECT account_key FROM report_accounts WHERE report_id = :r"), {"r": RID}).scalar_one()
    new = Keyring.of(generate_key())
    result = rotate(store.engine, old.with_current(new.current), rekey_index=True, batch=7, by="tester")  # small batches: many pages
    assert result.complete and result.index_rekeyed and result.rewritten > 0 and result.conflicts == 0, result.as_json()
    assert all(set(c) == {new.current.id} for c in usage(store.engine).values())
    store.dispose()
    with pytest.raises(DataKeyError, match="not the configured key"):
        Store(store.url, keyring=old)
    rotated = Store(store.url, keyring=new)
    try:
        after = snapshot(rotated, filled.report_ids, filled.submissions)
        assert after == before  # same reports, originals, secrets, subjects (ids too), links and their evidence, decisions
        with rotated.engine.connect() as conn:
            hashed = conn.execute(sa.text("SELECT account_key FROM report_accounts WHERE report_id = :r"), {"r": RID}).scalar_one()
        assert hashed == rotated.cipher.index(ACCOUNT) != old_hash  # a new index key: every keyed hash was recomputed
        # linking again from scratch with the new keys groups the accounts exactly as before
        pipeline.link(rotated)
        assert _partition(snapshot(rotated, filled.report_ids, filled.submissions)["subjects"]) == _partition(before["subjects"])
        entries = [e for e in rotated.audit.iter_entries() if e.object_type == "data_key"]
        assert entries and entries[-1].object_id == new.current.id and entries[-1].user == "tester"
        assert entries[-1].detail["complete"] is True and entries[-1].detail["previous_key_ids"] == [old.current.id]
    finally:
        rotated.dispose()


class Stop(Exception):
    pass


def test_an_interrupted_rotation_resumes_and_mixed_keys_read_meanwhile(store: Store, tmp_path: Path) -> None:
    filled = fill(store, tmp_path, n_synthetic=20)
    before = snapshot(store, filled.report_ids, filled.submissions)
    old = store.cipher.keyring
    ring = old.with_current(Keyring.of(generate_key()).current)

    def stop_in_reports(table: str, done: int, total: int) -> None:
        if table == "reports" and done >= 10:
            raise Stop

    with pytest.raises(Stop):
        rotate(store.engine, ring, rekey_index=True, progress=stop_in_reports, batch=5)
    mixed = usage(store.engine)["reports.data"]
    assert set(mixed) == {old.current.id, ring.current.id}  # half done, values name their keys
    assert rekey_in_progress(store.engine)
    store.dispose()
    with pytest.raises(DataKeyError, match="interrupted"):
        Store(store.url, keyring=ring)  # keyed hashes are half changed: nothing opens until the re-keying is finished
    failed = [e for e in _audit_entries(store.url, ring) if e["object_type"] == "data_key"]
    assert failed and failed[-1]["outcome"] == "failed"
    result = rotate(store.engine, ring, batch=5)  # resumed, re-keying included, though not asked again
    assert result.complete and result.index_rekeyed
    s = Store(store.url, keyring=Keyring.of(ring.current.key))
    try:
        assert snapshot(s, filled.report_ids, filled.submissions) == before
    finally:
        s.dispose()


def _audit_entries(url: str, ring: Keyring) -> list[dict[str, Any]]:
    from tiptriage.store.audit import AuditRepository
    from tiptriage.store.db import make_engine

    engine = make_engine(url)
    try:
        return [{"object_type": e.object_type, "outcome": e.outcome} for e in AuditRepository(engine).iter_entries()]
    finally:
        engine.dispose()


def test_data_key_rotation_alone_keeps_every_keyed_hash(store: Store, tmp_path: Path) -> None:
    fill(store, tmp_path, n_synthetic=5)
    with store.engine.connect() as conn:
        hashes = sorted(conn.execute(sa.text("SELECT account_key FROM report_accounts")).scalars())
    ring = store.cipher.keyring.with_current(Keyring.of(generate_key()).current)
    result = rotate(store.engine, ring)
    assert result.complete and not result.index_rekeyed
    with store.engine.connect() as conn:
        assert sorted(conn.execute(sa.text("SELECT account_key FROM report_accounts")).scalars()) == hashes
    again = rotate(store.engine, ring)  # nothing left to do
    assert again.rewritten == 0 and again.complete


def test_keys_command_generates_and_rotates(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fill(store, tmp_path, n_synthetic=5)
    url = store.url
    store.dispose()
    monkeypatch.setenv("TIPTRIAGE_DATABASE_URL", url)
    runner = CliRunner()
    new_file = tmp_path / "new.key"
    made = runner.invoke(keys_app, ["generate", "--out", str(new_file)])
    assert made.exit_code == 0, made.output
    assert new_file.stat().st_mode & 0o777 == 0o600 and "wrote data key" in made.output
    assert runner.invoke(keys_app, ["generate", "--out", str(new_file)]).exit_code == 2  # never overwritten
    rotated = runner.invoke(keys_app, ["rotate", "--new-key-file", str(new_file), "--json"])
    assert rotated.exit_code == 0, rotated.output
    doc = json.loads(rotated.stdout)
    assert doc["complete"] is True and doc["key_id"] == Keyring.from_file(new_file).current.id and doc["rewritten"] > 0
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv(KEY_FILE_ENV, str(new_file))
    status = runner.invoke(keys_app, ["status", "--json"])
    assert status.exit_code == 0 and all(set(c) == {doc["key_id"]} for c in json.loads(status.stdout).values())
    s = Store(url)  # only the new key is configured now
    try:
        assert UserRepository(s.engine).by_username("zq-user").totp_secret == TOTP  # type: ignore[union-attr]
    finally:
        s.dispose()
    loose = tmp_path / "loose.key"
    write_key_file(loose, [generate_key()])
    loose.chmod(0o644)
    refused = runner.invoke(keys_app, ["rotate", "--new-key-file", str(loose)])
    assert refused.exit_code == 2 and "group or others" in refused.output


def test_a_value_changed_during_rotation_is_left_as_written(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rotation runs beside the service: a row the service rewrites between the rotation's read and write is not overwritten
    with the older value."""
    from tiptriage.store import rotation
    from tiptriage.store.crypto import Cipher, aad
    from tiptriage.store.work import case_id

    fill(store, tmp_path, n_synthetic=5)
    ring = store.cipher.keyring.with_current(Keyring.of(generate_key()).current)
    cid = case_id(RID)
    service = Cipher(ring, store.engine)  # the service, already given the new key first in its ring
    written = []

    class Racing(Cipher):
        def seal_text(self, text: str, context: bytes) -> str:
            if context == aad("cases", "outcome_reason", cid) and not written:
                written.append(service.seal_text("rewritten meanwhile", context))
                with store.engine.begin() as conn:
                    conn.execute(sa.text("UPDATE cases SET outcome_reason = :v WHERE id = :i"), {"v": written[0], "i": cid})
            return super().seal_text(text, context)

    monkeypatch.setattr(rotation, "Cipher", Racing)
    result = rotate(store.engine, ring)
    assert written and result.tables["cases"].conflicts == 1 and result.complete
    store.dispose()
    rotated = Store(store.url, keyring=ring)
    try:
        case = rotated.work.case(cid)
        assert case is not None and case["outcome_reason"] == "rewritten meanwhile"
    finally:
        rotated.dispose()
