"""The columnar generator: deterministic, batch by batch, its truth consistent, reserved identifiers only."""

from __future__ import annotations

import ipaddress
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tiptriage.synth import CLASS_MIX, LIVE_VICTIM_CLASSES
from tiptriage.synth.columnar import REPORT_SCHEMA, generate_columns

DOC_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]


def _all(data_batches: list[pa.RecordBatch]) -> pa.Table:
    return pa.Table.from_batches(data_batches, schema=REPORT_SCHEMA)


def test_same_seed_same_batches_other_seed_other_data() -> None:
    a = _all(list(generate_columns(3000, seed=4, batch_size=700).batches()))
    b = _all(list(generate_columns(3000, seed=4, batch_size=700).batches()))
    c = _all(list(generate_columns(3000, seed=5, batch_size=700).batches()))
    assert a.equals(b)
    assert not a.equals(c)
    assert a.num_rows == 3000 and [len(x) for x in generate_columns(3000, seed=4, batch_size=700).batches()] == [700] * 4 + [200]
    assert len(set(a.column("report_id").to_pylist())) == 3000


def test_a_batch_can_be_rebuilt_alone() -> None:
    data = generate_columns(2500, seed=9, batch_size=1000)
    batches = list(data.batches())
    assert data.batch(1, 1000, 1000).equals(batches[1])


def test_truth_is_consistent_and_people_own_accounts_on_distinct_services() -> None:
    data = generate_columns(20_000, seed=2)
    assert data.people == 6000  # 0.3 people per report unless told
    acc = data.accounts
    keys = list(zip(acc.column("esp_service").to_pylist(), acc.column("esp_identifier").to_pylist(), strict=True))
    assert len(set(keys)) == len(keys)  # no two accounts share an id on one service
    owners = acc.column("person").to_numpy()
    by_person: dict[int, list[str]] = {}
    for (svc, _), p in zip(keys, owners, strict=True):
        by_person.setdefault(int(p), []).append(svc)
    assert all(len(set(s)) == len(s) for s in by_person.values())
    multi = sum(1 for s in by_person.values() if len(s) > 1)
    assert 0.02 < multi / data.people < 0.06
    owner_of = {k: int(p) for k, p in zip(keys, owners, strict=True)}
    reports = _all(list(data.batches()))
    for svc, ident, person in zip(*(reports.column(c).to_pylist() for c in ("esp_service", "esp_identifier", "truth_person")), strict=True):
        assert owner_of[(svc, ident)] == person
    # one person's accounts share the local part of their address and their display name: the planted signal
    first = data.first_account
    for p in [p for p, s in by_person.items() if len(s) > 1][:50]:
        rows = acc.slice(int(first[p]), len(by_person[p]))
        locals_ = {e.lower().split("@")[0].split("+")[0] for e in rows.column("email").to_pylist()}
        assert len(locals_) == 1 and len(set(rows.column("display_name").to_pylist())) == 1


def test_class_mix_and_reserved_identifiers_only() -> None:
    reports = _all(list(generate_columns(20_000, seed=3).batches()))
    counts = Counter(reports.column("truth_class").to_pylist())
    assert set(counts) == set(CLASS_MIX)
    assert (counts["known_possession"] + counts["viral_reshare"]) / 20_000 > 0.7
    assert 0.05 < sum(counts[c] for c in LIVE_VICTIM_CLASSES) / 20_000 < 0.15
    for ip in set(reports.column("ip").to_pylist()):
        assert any(ipaddress.ip_address(ip) in n for n in DOC_NETS)
    for email in set(reports.column("email").to_pylist()):
        assert email.lower().rsplit("@", 1)[1] in {"example.com", "example.net", "example.org"}
    phones = [p for p in set(reports.column("phone").to_pylist()) if p]
    assert phones
    for p in phones:
        digits = "".join(ch for ch in p if ch.isdigit())
        assert digits[-7:-2] == "55501"  # NANP 555-01XX, reserved for fiction
    # US residents only, as generate() has it
    with_phone = reports.filter(pc.is_valid(reports.column("phone")))
    assert set(with_phone.column("country").to_pylist()) == {"US"}
    times = reports.column("incident_at").to_numpy()
    assert (reports.column("received_at").to_numpy() > times).all()
    assert np.datetime64("2026-08-01") <= times.min().astype("datetime64[D]")


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        generate_columns(0)
