"""Entity resolution: accounts → people (Subjects), with the evidence and probability of every link.

Two kinds of link, both kept with their evidence:
- deterministic: the same normalised e-mail address or phone number on two accounts (the same ESP
  account across reports is one account already);
- probabilistic: Splink (Fellegi–Sunter; settings in ``data/splink_settings.json``, m and u trained by
  EM on the data at hand) on the DuckDB engine by default, Spark for national scale.
A probabilistic link is kept only above ``threshold`` AND when the pair agrees on something other than
network data: an IP address or a country never links two accounts on its own (addresses are shared
by households, carriers' NAT and VPNs). Analysts' decisions come last: a confirmed pair is joined, a
split account is cut from everyone it was not confirmed with, on every rebuild.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from tiptriage.link.records import AccountRecord, splink_rows

NON_NETWORK = ("email_local", "phone", "username", "display_name")


@dataclass(frozen=True)
class Link:
    a: str
    b: str
    kind: str  # deterministic | probabilistic | confirmed
    probability: float
    evidence: tuple[str, ...]


@dataclass
class Decisions:
    confirmed: set[tuple[str, str]] = field(default_factory=set)
    split: set[str] = field(default_factory=set)  # accounts cut from links nobody confirmed


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def deterministic_links(records: dict[str, AccountRecord]) -> list[Link]:
    by_key: dict[str, list[str]] = {}
    for rec in records.values():
        for e in rec.emails:
            by_key.setdefault(f"email:{e}", []).append(rec.key)
        for p in rec.phones:
            by_key.setdefault(f"phone:{p}", []).append(rec.key)
    evidence: dict[tuple[str, str], list[str]] = {}
    for key, accounts in by_key.items():
        if len(accounts) < 2:
            continue
        anchor = min(accounts)  # a star per key is enough for connectivity, and stays linear in its size
        for other in accounts:
            if other != anchor:
                evidence.setdefault(_pair(anchor, other), []).append(f"same {key}")
    return [Link(a, b, "deterministic", 1.0, tuple(sorted(ev))) for (a, b), ev in sorted(evidence.items())]


def load_settings() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(resources.files("tiptriage.data").joinpath("splink_settings.json").read_text("utf-8"))
    return data


def probabilistic_links(records: dict[str, AccountRecord], threshold: float = 0.99, backend: str = "duckdb") -> tuple[list[Link], list[str]]:
    """Splink pairs above ``threshold`` that agree on something besides network data; also notes on training."""
    rows = splink_rows(records)
    notes: list[str] = []
    if len(rows) < 20:
        return [], ["too few accounts to train a probabilistic model; deterministic links only"]
    import pyarrow as pa  # type: ignore[import-untyped]
    from splink import Linker, block_on

    if backend == "spark":
        from pyspark.sql import SparkSession  # type: ignore[import-not-found, unused-ignore]
        from splink.backends.spark import SparkAPI

        spark = SparkSession.builder.getOrCreate()
        db_api: Any = SparkAPI(spark_session=spark)  # type: ignore[no-untyped-call, unused-ignore]
        table: Any = spark.createDataFrame(rows)
    else:
        from splink.backends.duckdb import DuckDBAPI

        db_api = DuckDBAPI()
        table = pa.Table.from_pylist(rows)
    linker = Linker(db_api.register(table), load_settings(), log_level=logging.ERROR)
    try:
        linker.training.estimate_probability_two_random_records_match([block_on("email_local"), block_on("phone")], recall=0.8)
    except (ValueError, ZeroDivisionError) as exc:
        # no pair agrees on the deterministic keys, so there is nothing to learn the prior from: keep Splink's default
        notes.append(f"prior not estimated ({exc}); Splink's default prior used")
    linker.training.estimate_u_using_random_sampling(max_pairs=min(2_000_000, len(rows) * 50))
    for rule in (block_on("email_local"), block_on("username")):
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(rule)
        except Exception as exc:  # EM needs enough pairs in the block; without them the defaults stand
            notes.append(f"EM on {rule.get_blocking_rule('duckdb').blocking_rule_sql}: {str(exc).splitlines()[0]}")
    try:
        result = linker.inference.predict(threshold_match_probability=threshold)
    except ValueError as exc:  # a degenerate model (e.g. a prior of zero on data with no linked pair): nothing to add
        return [], [*notes, f"probabilistic linkage skipped: the trained model could not score pairs ({exc})"]
    links = []
    for r in result.as_record_list():
        agreed = [c for c in NON_NETWORK if r.get(f"gamma_{c}", 0) not in (0, -1, None) and _is_top_level(r, c)]
        if not agreed:
            continue
        evidence = tuple(f"{c}: {r.get(c + '_l')!s} ~ {r.get(c + '_r')!s}" for c in agreed)
        extra = tuple(f"{c}: {r.get(c + '_l')!s}" for c in ("ip", "country") if r.get(f"gamma_{c}") == 1)
        links.append(Link(*_pair(str(r["unique_id_l"]), str(r["unique_id_r"])), "probabilistic", float(r["match_probability"]), evidence + extra))
    return links, notes


def _is_top_level(r: dict[str, Any], column: str) -> bool:
    # gamma counts levels from 0 (else) upward; any non-zero level is an agreement of some strength
    return int(r.get(f"gamma_{column}", 0) or 0) > 0


class _UnionFind:
    def __init__(self, items: Iterable[str]) -> None:
        self.parent = {i: i for i in items}

    def find(self, x: str) -> str:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def cluster(accounts: Iterable[str], links: list[Link], decisions: Decisions) -> tuple[dict[str, str], list[Link]]:
    """account → cluster anchor (its smallest account key), and the links that were used."""
    accounts = list(accounts)
    uf = _UnionFind(accounts)
    used = []
    for link in links:
        pair = _pair(link.a, link.b)
        if (link.a in decisions.split or link.b in decisions.split) and pair not in decisions.confirmed:
            continue
        if link.a in uf.parent and link.b in uf.parent:
            uf.union(link.a, link.b)
            used.append(link)
    for a, b in sorted(decisions.confirmed):
        if a in uf.parent and b in uf.parent:
            uf.union(a, b)
            used.append(Link(a, b, "confirmed", 1.0, ("confirmed by an analyst",)))
    return {a: uf.find(a) for a in accounts}, used
