"""Encryption at rest: what the database holds is unreadable without the key, tampering is caught, keys are handled safely."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from crypto_fixtures import ACCOUNT, ESCALATION, OTHER_ACCOUNT, RID, SECRETS, TOTP, Filled, fill, raw_values

from tiptriage import pipeline
from tiptriage.store import Store
from tiptriage.store.crypto import (
    KEY_ENV,
    KEY_FILE_ENV,
    Cipher,
    DataKeyError,
    DecryptionError,
    Keyring,
    aad,
    encode_key,
    generate_key,
    key_id,
    write_key_file,
)
from tiptriage.store.rotation import PROTECTED, usage
from tiptriage.store.users import UserRepository


@pytest.fixture
def filled(store: Store, tmp_path: Path) -> Iterator[Filled]:
    yield fill(store, tmp_path)


def test_no_column_holds_personal_data_in_clear(filled: Filled) -> None:
    store = filled.store
    # the data is there and reads back through the store...
    report = store.get_report(RID)
    assert report is not None and report.escalate_to_high_priority == ESCALATION
    assert report.reported_people[0].person is not None and report.reported_people[0].person.last_name == "Quackenbush"
    assert store.links.subject_of(ACCOUNT) is not None
    assert UserRepository(store.engine).by_username("zq-user").totp_secret == TOTP  # type: ignore[union-attr]
    route = store.work.route_of(RID)
    assert route is not None and "555" in route["reason"] and route["events"][-1]["reason"] == "Quackenbush declined to comment"
    assert [(d["a"], d["b"], d["reason"]) for d in store.links.decisions()] == [(ACCOUNT, OTHER_ACCOUNT, "Warrant return names both accounts")]
    subject = store.links.subject(store.links.subject_of(ACCOUNT) or "")
    assert subject is not None and subject["account_keys"] == sorted([ACCOUNT, OTHER_ACCOUNT])
    assert any("same email:zebulon.quackenbush@example.org" in ev for lk in subject["links"] for ev in lk["evidence"])
    # ...but no table, read with plain SQL, holds any of it in clear
    leaks = []
    seen_tables = set()
    for table, column, value in raw_values(store.engine):
        seen_tables.add(table)
        text = bytes(value).decode("latin-1") if isinstance(value, bytes | memoryview) else str(value)
        leaks += [(table, column, s) for s in SECRETS if s.lower() in text.lower()]
    assert not leaks, f"personal data in clear: {sorted(set(leaks))}"
    assert {"reports", "blobs", "users", "report_accounts", "agency_records", "account_links", "report_routes", "cases"} <= seen_tables


def test_every_protected_value_is_sealed_with_the_key(filled: Filled) -> None:
    kid = filled.store.cipher.keyring.current.id
    counts = usage(filled.store.engine)
    assert all(set(c) == {kid} for c in counts.values()), counts
    for col in ("reports.data", "blobs.data", "users.totp_secret", "report_locations.estimate", "report_accounts.account_enc",
                "subject_accounts.account_enc", "agency_records.key_enc", "link_decisions.reason", "cases.outcome_reason",
                "case_events.note", "report_routes.reason", "route_events.reason", "report_file_hashes.account_enc"):
        assert counts.get(col, {}).get(kid), f"{col}: nothing sealed"


def test_keyed_hashes_still_join_and_agency_records_still_match(filled: Filled) -> None:
    store = filled.store
    with store.engine.connect() as conn:
        hashed = conn.execute(sa.text("SELECT account_key FROM report_accounts WHERE report_id = :r"), {"r": RID}).scalar_one()
    assert hashed == store.cipher.index(ACCOUNT) and hashed.startswith("servicez:") and "zq" not in hashed
    subject = store.links.subject(store.links.subject_of(ACCOUNT) or "")
    assert subject is not None and ACCOUNT in subject["account_keys"]
    assert {"report_id": RID, "account": ACCOUNT} in subject["report_accounts"]
    a = store.assessments.get(RID)
    assert a is not None and a["indicators"]["access_to_children"]["value"] is True
    assert any("REC-ZQ (email)" in ev for ev in a["indicators"]["access_to_children"]["evidence"])


def test_the_store_does_not_open_without_a_key(filled: Filled, monkeypatch: pytest.MonkeyPatch) -> None:
    url = filled.store.url
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(DataKeyError, match=f"{KEY_FILE_ENV}.*{KEY_ENV}"):
        Store(url)


def test_a_wrong_key_is_refused_at_open_and_fails_authentication_on_a_value(filled: Filled) -> None:
    url = filled.store.url
    wrong = generate_key()
    with pytest.raises(DataKeyError, match="not the configured key"):
        Store(url, keyring=Keyring.of(wrong))
    # a value that claims the wrong key's id (so that key is tried) does not authenticate
    with filled.store.engine.connect() as conn:
        sealed = conn.execute(sa.text("SELECT data FROM reports WHERE id = :r"), {"r": RID}).scalar_one()
    kid = filled.store.cipher.keyring.current.id
    forged = sealed.replace(f".{kid}.", f".{key_id(wrong)}.", 1)
    with pytest.raises(DecryptionError, match="authentication failed"):
        Cipher(Keyring.of(wrong)).open_text(forged, aad("reports", "data", RID))
    # one flipped bit in a stored value, read with the right key
    body = sealed[-8:]
    flipped = sealed[:-8] + ("A" if body[0] != "A" else "B") + body[1:]
    with pytest.raises(DecryptionError, match="authentication failed"):
        filled.store.cipher.open_text(flipped, aad("reports", "data", RID))


def _swap(engine: sa.Engine, table: str, column: str, key: str, a: object, b: object) -> None:
    with engine.begin() as conn:
        va = conn.execute(sa.text(f"SELECT {column} FROM {table} WHERE {key} = :k"), {"k": a}).scalar_one()
        vb = conn.execute(sa.text(f"SELECT {column} FROM {table} WHERE {key} = :k"), {"k": b}).scalar_one()
        conn.execute(sa.text(f"UPDATE {table} SET {column} = :v WHERE {key} = :k"), {"v": vb, "k": a})
        conn.execute(sa.text(f"UPDATE {table} SET {column} = :v WHERE {key} = :k"), {"v": va, "k": b})


def test_a_ciphertext_moved_to_another_row_fails(filled: Filled) -> None:
    store = filled.store
    other = next(r for r in filled.report_ids if r != RID)
    _swap(store.engine, "reports", "data", "id", RID, other)
    for rid in (RID, other):
        with pytest.raises(DecryptionError, match=r"reports\.data, row"):
            store.get_report(rid)
    _swap(store.engine, "users", "totp_secret", "username", "zq-user", "other-user")
    with pytest.raises(DecryptionError):
        UserRepository(store.engine).by_username("zq-user")
    with store.engine.connect() as conn:
        shas = sorted(conn.execute(sa.text("SELECT sha256 FROM blobs")).scalars())[:2]
        digest = conn.execute(sa.text("SELECT digest FROM submission_documents WHERE sha256 = :s"), {"s": shas[0]}).scalar_one()
    _swap(store.engine, "blobs", "data", "sha256", shas[0], shas[1])
    with pytest.raises(DecryptionError):
        store.original_documents(digest)
    # and a value moved to another column of the same row
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE report_locations SET estimate = (SELECT data FROM reports WHERE id = :o) WHERE report_id = :o"), {"o": other})
    with pytest.raises(DecryptionError):
        store.links.location_of(other)


def test_a_group_readable_key_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    if os.name != "posix":
        pytest.skip("file modes are POSIX")
    path = tmp_path / "data.key"
    write_key_file(path, [generate_key()])
    assert path.stat().st_mode & 0o777 == 0o600
    ring = Keyring.from_file(path)
    path.chmod(0o640)
    with pytest.raises(DataKeyError, match=r"mode 0640.*chmod 600"):
        Keyring.from_file(path)
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv(KEY_FILE_ENV, str(path))
    with pytest.raises(DataKeyError, match="group or others"):
        Store(db_url)
    path.chmod(0o604)
    with pytest.raises(DataKeyError, match="group or others"):
        Keyring.from_file(path)
    path.chmod(0o600)
    s = Store(db_url)  # the same file, private again: accepted, and it is the key the ring was read with
    assert s.cipher.keyring.current.id == ring.current.id
    s.dispose()


def test_key_configuration_errors_are_clear(tmp_path: Path) -> None:
    k = encode_key(generate_key())
    with pytest.raises(DataKeyError, match="not both"):
        Keyring.from_env({KEY_ENV: k, KEY_FILE_ENV: str(tmp_path / "x")})
    with pytest.raises(DataKeyError, match="not base64"):
        Keyring.from_env({KEY_ENV: "not a key!"})
    with pytest.raises(DataKeyError, match="16 bytes"):
        Keyring.from_env({KEY_ENV: encode_key(b"0" * 16)})
    with pytest.raises(DataKeyError, match="cannot read"):
        Keyring.from_env({KEY_FILE_ENV: str(tmp_path / "missing.key")})
    two = Keyring.from_env({KEY_ENV: f"{k}, {encode_key(generate_key())}"})
    assert len(two.all) == 2 and two.current.id == key_id(base64.b64decode(k))
    assert k not in repr(two) and k not in repr(Cipher(two))  # keys never show in a repr (nor, so, in a traceback's locals)


def test_values_sealed_before_a_rotation_still_open_with_the_previous_key_in_the_ring(filled: Filled) -> None:
    old = filled.store.cipher.keyring
    newer = old.with_current(Keyring.of(generate_key()).current)
    s = Store(filled.store.url, keyring=newer)
    try:
        assert s.get_report(RID) is not None
        s.links.decide("confirm", ACCOUNT, ACCOUNT, "sealed with the newer key", "analyst-2")
        assert [d["reason"] for d in s.links.decisions()][-1] == "sealed with the newer key"
        assert set(usage(s.engine)["link_decisions.reason"]) == {old.current.id, newer.current.id}
    finally:
        s.dispose()


def test_a_database_from_before_encryption_is_sealed_when_first_opened(db_url: str, tmp_path: Path) -> None:
    s = Store(db_url)
    filled = fill(s, tmp_path, n_synthetic=10)
    before = {r: json.loads(s.get_report(r).model_dump_json()) for r in filled.report_ids}  # type: ignore[union-attr]
    members = s.links.subject(s.links.subject_of(ACCOUNT) or "")
    # put every protected value back in clear, as a database written before migration 0008 held it
    cipher = s.cipher
    with s.engine.begin() as conn:
        for p in PROTECTED:
            cols = list(dict.fromkeys(p.order + p.bind + p.sealed + tuple(c for pair in p.indexed for c in pair)))
            for row in conn.execute(sa.select(*[p.table.c[c] for c in cols])).mappings().all():
                values: dict[str, object] = {}
                for c in p.sealed:
                    if row[c] is not None:
                        values[c] = (cipher.open(row[c], p.context(c, dict(row))) if p.binary
                                     else cipher.open_text(row[c], p.context(c, dict(row))))
                for h, e in p.indexed:
                    if row[e] is not None:
                        values[h] = cipher.open_text(row[e], p.context(e, dict(row)))
                        values[e] = None
                if values:
                    conn.execute(p.table.update().where(*[p.table.c[c] == row[c] for c in p.order]).values(**values))
        conn.execute(sa.text("DELETE FROM store_meta WHERE key = 'encrypted_at_rest'"))
    assert "clear" in usage(s.engine)["reports.data"]
    s.dispose()
    again = Store(db_url)  # first open with a key: everything is sealed
    try:
        assert all(set(c) == {again.cipher.keyring.current.id} for c in usage(again.engine).values())
        assert {r: json.loads(again.get_report(r).model_dump_json()) for r in filled.report_ids} == before  # type: ignore[union-attr]
        assert again.links.subject(again.links.subject_of(ACCOUNT) or "") == members
        assert pipeline.link(again).subjects > 0
        assert any(e.object_type == "data_key" and e.detail.get("operation") == "encrypt-existing" for e in again.audit.iter_entries())
    finally:
        again.dispose()
