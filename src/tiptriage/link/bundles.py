"""Bundles: many reports about the same viral item(s), grouped so they are handled once.

A report joins the bundle of an item when one of its files carries a hash that flood protection marked
viral, or when the provider itself batched it (``batchedReport``) or annotated a file ``potentialMeme``
or ``viral``. The representative is the earliest report; counts and the time span come with it.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from tiptriage.model import FileAnnotation, HashType, Report

_HASH_ORDER = {t.value: i for i, t in enumerate(HashType)}


@dataclass(frozen=True)
class ReportFacts:
    report_id: str
    received_at: datetime
    accounts: tuple[str, ...]
    provider_keys: tuple[str, ...]  # item keys from the provider's own batching / meme annotations


def provider_keys(report: Report) -> tuple[str, ...]:
    keys = []
    for f in report.files:
        flagged = {FileAnnotation.POTENTIAL_MEME, FileAnnotation.VIRAL} & set(f.annotations)
        if flagged or report.batched_report_reason is not None:
            h = f.hash_of(HashType.MD5) or f.hash_of(HashType.SHA1) or f.hash_of(HashType.PDQ)
            if h:
                keys.append(h)
    return tuple(sorted(set(keys)))


def build_bundles(facts: dict[str, ReportFacts], viral: list[tuple[str, str, str]]) -> tuple[list[dict[str, object]], list[dict[str, str]]]:
    """Bundle rows and (bundle, report) rows. Each report goes to one bundle: its smallest item key."""
    by_report: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for rid, hash_type, value in viral:
        by_report[rid].add(("viral-hash", f"{hash_type}:{value}"))
    for rid, f in facts.items():
        for k in f.provider_keys:
            by_report[rid].add(("provider-batched", k))
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for rid, keys in by_report.items():
        if rid in facts:
            # flood-protection keys first: they are what makes an item viral across providers
            groups[min(keys, key=lambda k: (k[0] != "viral-hash", k[1]))].append(rid)
    bundle_rows: list[dict[str, object]] = []
    members: list[dict[str, str]] = []
    for (kind, value), rids in sorted(groups.items()):
        rids.sort(key=lambda r: (facts[r].received_at, r))
        bid = "B-" + hashlib.sha1(f"{kind}:{value}".encode()).hexdigest()[:12]
        accounts = {a for r in rids for a in facts[r].accounts}
        bundle_rows.append({
            "id": bid, "key_kind": kind, "key_value": value, "representative_report_id": rids[0], "reports": len(rids),
            "accounts": len(accounts), "first_seen": facts[rids[0]].received_at, "last_seen": facts[rids[-1]].received_at,
        })
        members.extend({"bundle_id": bid, "report_id": r} for r in rids)
    return bundle_rows, members
