"""Entity resolution: accounts → people (Subjects), with the evidence and probability of every link.

Two kinds of link, both kept with their evidence:
- deterministic: the same normalised e-mail address or phone number on two accounts (the same ESP
  account across reports is one account already);
- probabilistic: Splink (Fellegi–Sunter; settings in ``data/splink_settings.json``, m and u trained by
  EM on the data at hand) on the DuckDB engine by default, Spark for national scale.
A probabilistic link is kept only when the pair clears ``threshold`` on its evidence other than network
data: an IP address or a country adds to a link's evidence but never makes a link (addresses are shared
by households, carriers' NAT and VPNs), even beside a weak agreement such as a common handle stem.
Analysts' decisions come last: a confirmed pair is joined, a split account is cut from everyone it was
not confirmed with, on every rebuild.

The Spark path. ``probabilistic_links(..., backend="spark")`` (and ``splink_pairs``, its columnar form)
runs the same model on Splink's Spark backend:
- install ``tiptriage[spark]`` (pyspark 3.5 or later) and a Java runtime (Java 17 or later for Spark 4);
- pass ``spark=`` a SparkSession, or none for ``local_spark_session()`` (local[cores], Splink's similarity
  UDF jar on ``spark.jars``, few shuffle partitions). A cluster session must put the jar from
  ``splink.backends.spark.similarity_jar_location()`` on ``spark.jars`` too, or Jaro-Winkler is missing;
- the settings file is written in DuckDB SQL; ``load_settings`` rewrites its conditions and blocking rules
  for Spark (quoted names, the UDF's name), since Splink runs raw SQL conditions as written;
- Splink's intermediate tables are persisted in executor memory (``break_lineage_method="persist"``);
- the account rows go to Spark as one Arrow-backed DataFrame, and the kept pairs come back as an Arrow
  table, so the driver holds only the accounts and the links, never the candidate pairs.
At national scale, feed it from ``link.frame.Observations`` (columns, batch by batch) rather than from
``records.build_records``. ``tests/link/test_spark.py`` checks that Spark and DuckDB find the same people.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]

from tiptriage.link.records import AccountRecord, splink_rows

NON_NETWORK = ("email_local", "phone", "username", "display_name")
NETWORK = ("ip", "country")


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


SETTINGS_DIALECT = "duckdb"  # the SQL dialect ``data/splink_settings.json`` is written in


def load_settings(dialect: str = SETTINGS_DIALECT, jaro_winkler: str = "jaro_winkler_similarity") -> dict[str, Any]:
    """The Splink settings from the data file, with their SQL rewritten for ``dialect`` when it is another.

    The file holds raw SQL conditions, which Splink runs as written: in Spark SQL a double-quoted name is a
    string literal, and the Jaro-Winkler function has another name, so the DuckDB text would compare two
    constants there and match every pair. ``jaro_winkler`` is the target backend's name for that function.
    """
    data: dict[str, Any] = json.loads(resources.files("tiptriage.data").joinpath("splink_settings.json").read_text("utf-8"))
    if dialect == SETTINGS_DIALECT:
        return data
    for comparison in data["comparisons"]:
        for level in comparison["comparison_levels"]:
            level["sql_condition"] = _transpile(level["sql_condition"], dialect, jaro_winkler)
    for rule in data["blocking_rules_to_generate_predictions"]:
        rule["blocking_rule"] = _transpile(rule["blocking_rule"], dialect, jaro_winkler)
        rule["sql_dialect"] = dialect
    return data


def _transpile(sql: str, dialect: str, jaro_winkler: str) -> str:
    if sql.strip().upper() == "ELSE":
        return sql
    import sqlglot
    from sqlglot import exp

    def rename(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.JarowinklerSimilarity) or (isinstance(node, exp.Anonymous) and node.name.lower() == "jaro_winkler_similarity"):
            args = [node.this, node.expression] if isinstance(node, exp.JarowinklerSimilarity) else list(node.expressions)
            return exp.Anonymous(this=jaro_winkler, expressions=args)
        return node

    return sqlglot.parse_one(sql, read=SETTINGS_DIALECT).transform(rename).sql(dialect=dialect)


SPLINK_COLUMNS = ("unique_id", "email_local", "phone", "username", "display_name", "ip", "country")
SPLINK_SCHEMA = pa.schema([(c, pa.string()) for c in SPLINK_COLUMNS])


def local_spark_session(cores: int = 2, memory: str = "2g", conf: dict[str, str] | None = None) -> Any:
    """A local SparkSession set up for Splink: its similarity functions' jar and few shuffle partitions.

    ``conf`` adds to or overrides those settings. On a cluster, build the session the cluster's way instead,
    with ``spark.jars`` naming ``splink.backends.spark.similarity_jar_location()``, and pass it as ``spark=``.
    """
    from pyspark.sql import SparkSession  # type: ignore[import-not-found, unused-ignore]
    from splink.backends.spark import similarity_jar_location

    settings = {
        "spark.jars": similarity_jar_location(),
        "spark.driver.memory": memory,
        # the default 200 partitions turn each small Splink step into 200 tasks on one machine
        "spark.sql.shuffle.partitions": str(max(2, cores * 2)),
        "spark.default.parallelism": str(max(2, cores * 2)),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        **(conf or {}),
    }
    builder = SparkSession.builder.master(f"local[{cores}]").appName("tiptriage-link")
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def probabilistic_links(records: dict[str, AccountRecord], threshold: float = 0.99, backend: str = "duckdb",
                        spark: Any = None) -> tuple[list[Link], list[str]]:
    """Splink pairs that clear ``threshold`` without the weight of network data; also notes on training."""
    table = pa.Table.from_pylist(splink_rows(records), schema=SPLINK_SCHEMA)
    return splink_links(table, threshold=threshold, backend=backend, spark=spark)


def splink_links(table: pa.Table, threshold: float = 0.99, backend: str = "duckdb", spark: Any = None) -> tuple[list[Link], list[str]]:
    """Splink on one row per account (``SPLINK_SCHEMA``): the links kept (see ``_kept_pairs``) with their evidence, and notes.

    ``backend`` is "duckdb" (in-process, the default) or "spark": ``spark`` is then the SparkSession to run
    on, or None for a local one (``local_spark_session``).
    """
    pairs, notes = splink_pairs(table, threshold=threshold, backend=backend, spark=spark)
    links = [Link(a, b, "probabilistic", p, tuple(ev)) for a, b, p, ev in zip(
        pairs.column("a").to_pylist(), pairs.column("b").to_pylist(), pairs.column("probability").to_pylist(),
        pairs.column("evidence").to_pylist(), strict=True)]
    return links, notes


PAIRS_SCHEMA = pa.schema([("a", pa.string()), ("b", pa.string()), ("probability", pa.float64()), ("evidence", pa.list_(pa.string()))])


def splink_pairs(table: pa.Table, threshold: float = 0.99, backend: str = "duckdb", spark: Any = None) -> tuple[pa.Table, list[str]]:
    """As ``splink_links``, as an Arrow table (``PAIRS_SCHEMA``; a < b) so that a national-scale result stays in columns."""
    notes: list[str] = []
    if table.num_rows < 20:
        return PAIRS_SCHEMA.empty_table(), ["too few accounts to train a probabilistic model; deterministic links only"]
    from splink import Linker, block_on

    if backend == "spark":
        from splink.backends.spark import SparkAPI

        session = spark if spark is not None else local_spark_session()
        # persist keeps Splink's intermediate tables in the executors' memory; Splink's default writes
        # parquet under the checkpoint directory, which a cluster wants but a local run does not need
        db_api: Any = SparkAPI(spark_session=session, break_lineage_method="persist")  # type: ignore[no-untyped-call, unused-ignore]
        schema = ", ".join(f"{c} string" for c in SPLINK_COLUMNS)  # explicit: a column may be all null in a small set
        # Spark 4 takes an Arrow table as it is; Spark 3.5 only through pandas
        rows: Any = table if int(session.version.split(".")[0]) >= 4 else table.to_pandas()
        source: Any = session.createDataFrame(rows, schema=schema)
    elif backend == "duckdb":
        from splink.backends.duckdb import DuckDBAPI

        db_api = DuckDBAPI()
        source = table
    else:
        raise ValueError(f"unknown Splink backend {backend!r}; use duckdb or spark")
    dialect = db_api.sql_dialect
    settings = load_settings(dialect.sql_dialect_str, dialect.jaro_winkler_function_name)
    settings["retain_intermediate_calculation_columns"] = True  # each comparison's weight: see _kept_pairs
    linker = Linker(db_api.register(source), settings, log_level=logging.ERROR)
    try:
        linker.training.estimate_probability_two_random_records_match([block_on("email_local"), block_on("phone")], recall=0.8)
    except (ValueError, ZeroDivisionError) as exc:
        # no pair agrees on the deterministic keys, so there is nothing to learn the prior from: keep Splink's default
        notes.append(f"prior not estimated ({exc}); Splink's default prior used")
    # a fixed seed: the same data gives the same model, and so the same links, on every rebuild. One chunk:
    # chunks bound the memory of samples far above 2M pairs, and on Spark each one is another round of jobs
    linker.training.estimate_u_using_random_sampling(max_pairs=min(2_000_000, table.num_rows * 50), seed=1, num_chunks=1)
    for rule in (block_on("email_local"), block_on("username")):
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(rule)
        except Exception as exc:  # EM needs enough pairs in the block; without them the defaults stand
            notes.append(f"EM on {rule.get_blocking_rule(dialect.sql_dialect_str).blocking_rule_sql}: {str(exc).splitlines()[0]}")
    try:
        result = linker.inference.predict(threshold_match_probability=threshold)
    except ValueError as exc:  # a degenerate model (e.g. a prior of zero on data with no linked pair): nothing to add
        return PAIRS_SCHEMA.empty_table(), [*notes, f"probabilistic linkage skipped: the trained model could not score pairs ({exc})"]
    predictions: Any = result
    return _kept_pairs(predictions.as_pyarrow_table(), threshold), notes


def _kept_pairs(predictions: pa.Table, threshold: float) -> pa.Table:
    """The predicted pairs that clear ``threshold`` on their non-network evidence, with evidence naming what agreed.

    An address agreement carries a large weight wherever addresses are rarely shared in the data at hand,
    enough to lift a pair that agrees on nothing but a common handle stem over the threshold; the positive
    weights of IP and country are therefore left out of the test (they stay in the probability shown).
    """
    import duckdb

    # Splink leaves out the columns of a comparison it could not use on this data (a small batch may have no value
    # for one of them): a missing gamma is no agreement, a missing weight is none
    have = set(predictions.column_names)

    def agrees(c: str) -> str:
        # gamma counts levels from 0 (else) upward, -1 is a null: any positive level is an agreement of some strength
        return f"coalesce(gamma_{c}, 0) > 0" if f"gamma_{c}" in have else "false"

    def side(c: str, s: str) -> str:
        return f"{c}_{s}" if f"{c}_{s}" in have else "NULL"

    agreed = " OR ".join(agrees(c) for c in NON_NETWORK)
    without_network = "match_weight" + "".join(f" - greatest(coalesce(mw_{c}, 0), 0)" for c in NETWORK if f"mw_{c}" in have)
    min_weight = math.inf if threshold >= 1 else -math.inf if threshold <= 0 else math.log2(threshold / (1 - threshold))
    parts = [f"CASE WHEN {agrees(c)} THEN '{c}: ' || coalesce({side(c, 'l')}, 'None') || ' ~ ' || coalesce({side(c, 'r')}, 'None') END"
             for c in NON_NETWORK]
    parts += [f"CASE WHEN gamma_{c} = 1 THEN '{c}: ' || coalesce({side(c, 'l')}, 'None') END" for c in NETWORK if f"gamma_{c}" in have]
    con = duckdb.connect()
    try:
        con.register("predictions", predictions)
        out = con.sql(f"""
            SELECT least(unique_id_l, unique_id_r) AS a, greatest(unique_id_l, unique_id_r) AS b,
                   match_probability::DOUBLE AS probability,
                   list_filter([{", ".join(parts)}], lambda x: x IS NOT NULL) AS evidence
            FROM predictions WHERE ({agreed}) AND {without_network} >= '{min_weight}'::DOUBLE
            ORDER BY a, b""").to_arrow_table()
    finally:
        con.close()
    return out.cast(PAIRS_SCHEMA)


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
