"""Synthetic data: deterministic, the planted truth is consistent, the wording is neutral only."""

from __future__ import annotations

import ipaddress
from collections import Counter

from tiptriage.model import HashType
from tiptriage.synth import CLASS_MIX, LIVE_VICTIM_CLASSES, generate
from tiptriage.synth.generator import NEUTRAL

DOC_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b, c = generate(300, seed=4), generate(300, seed=4), generate(300, seed=5)
    assert [r.model_dump() for r in a.reports] == [r.model_dump() for r in b.reports]
    assert a.truth == b.truth
    assert [r.model_dump() for r in a.reports] != [r.model_dump() for r in c.reports]


def test_mix_has_every_class_and_mostly_known_or_viral() -> None:
    data = generate(3000, seed=1)
    counts = Counter(t["class"] for t in data.truth["reports"].values())
    assert set(counts) == set(CLASS_MIX)
    assert (counts["known_possession"] + counts["viral_reshare"]) / 3000 > 0.7
    assert 0.05 < sum(counts[c] for c in LIVE_VICTIM_CLASSES) / 3000 < 0.15


def test_truth_matches_the_reports() -> None:
    data = generate(2000, seed=2)
    by_id = {r.id: r for r in data.reports}
    viral_md5 = {i["md5"] for i in data.truth["viral_items"]}
    for rid, t in data.truth["reports"].items():
        r = by_id[rid]
        acc = r.reported_people[0]
        assert t["account"] == f"{acc.esp_service}:{acc.esp_identifier}"
        assert t["account"] in data.truth["persons"][t["person"]]
        if t["class"] == "viral_reshare":
            assert {f.hash_of(HashType.MD5) for f in r.files} <= viral_md5
        if t["class"] == "imminent_danger":
            assert r.escalate_to_high_priority
        if t["class"] == "sextortion":
            assert [a.value for a in r.report_annotations] == ["sextortion"]
    multi = [p for p, accs in data.truth["persons"].items() if len(accs) > 1]
    assert len(multi) > 10  # people behind several accounts on several services
    for p in multi:
        services = [a.split(":")[0] for a in data.truth["persons"][p]]
        assert len(set(services)) == len(services)


def test_only_neutral_wording_and_reserved_identifiers() -> None:
    data = generate(2000, seed=3)
    allowed = set(NEUTRAL.values())
    for r in data.reports:
        for text in (r.escalate_to_high_priority, r.additional_info, r.incident_datetime_description):
            assert text is None or text in allowed
        for acc in r.reported_people:
            for ev in acc.ip_events:
                assert any(ipaddress.ip_address(ev.ip_address) in n for n in DOC_NETS)
            for e in acc.person.emails if acc.person else []:
                assert e.address.lower().rsplit("@", 1)[1] in {"example.com", "example.net", "example.org"}
            for p in acc.person.phones if acc.person else []:
                digits = "".join(ch for ch in p.number if ch.isdigit())
                assert digits[-7:-2] == "55501"  # NANP 555-01XX, reserved for fiction
