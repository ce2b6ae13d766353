"""The Spark backend runs the same Splink model as DuckDB, for national scale: same people on planted truth."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from tiptriage.link.frame import LINKS_SCHEMA, Observations, Resolution
from tiptriage.link.resolve import load_settings, splink_pairs
from tiptriage.synth.columnar import generate_columns


def _java_problem() -> str | None:
    java = shutil.which("java")
    if java is None:
        return "no Java runtime (java) on PATH; a local SparkSession needs one (Java 17 or later for Spark 4)"
    try:
        out = subprocess.run([java, "-version"], capture_output=True, check=True, timeout=30, text=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"the Java runtime at {java} does not start ({exc}); a local SparkSession needs one"
    found = re.search(r'version "(\d+)', out.stderr + out.stdout)
    spark_major = int(importlib.metadata.version("pyspark").split(".")[0])
    # Spark 4 runs on Java 17 or later; "1.8.0_x" (Java 8) reads as 1 here, which Spark 3.5 still accepts
    if found and spark_major >= 4 and int(found.group(1)) < 17:
        return f"Java {found.group(1)} at {java} is too old for pyspark {spark_major}: it needs Java 17 or later"
    return None


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    if importlib.util.find_spec("pyspark") is None:
        pytest.skip("pyspark is not installed: pip install 'tiptriage[spark]' (kept out of the test extra for its size)")
    if problem := _java_problem():
        pytest.skip(problem)
    from tiptriage.link.resolve import local_spark_session

    # a few thousand rows: compiling code for each of Splink's many small queries costs more than running
    # them, so whole-stage code generation and the JIT's second tier are off for this session only
    session = local_spark_session(cores=2, memory="1g", conf={
        "spark.sql.codegen.wholeStage": "false",
        "spark.sql.codegen.factoryMode": "NO_CODEGEN",
        "spark.sql.adaptive.enabled": "false",
        "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    })
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _resolve(obs: Observations, backend: str, spark: Any = None) -> tuple[Resolution, pa.Table]:
    det = obs.deterministic_links()
    pairs, notes = splink_pairs(obs.splink_table(), backend=backend, spark=spark)
    assert not notes, notes
    prob = pairs.append_column("kind", pa.array(["probabilistic"] * pairs.num_rows, pa.string())).select(LINKS_SCHEMA.names)
    return obs.cluster(pa.concat_tables([det, prob.cast(LINKS_SCHEMA)])), pairs


def _pairs(*labels: np.ndarray) -> int:
    _, counts = np.unique(np.stack(labels), axis=1, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def test_settings_are_rewritten_for_spark_sql() -> None:
    # DuckDB's "name" is a string literal in Spark SQL: left as written, every comparison would agree
    settings = load_settings("spark", "jaro_winkler")
    conditions = [lv["sql_condition"] for c in settings["comparisons"] for lv in c["comparison_levels"]]
    conditions += [r["blocking_rule"] for r in settings["blocking_rules_to_generate_predictions"]]
    assert not any('"' in c for c in conditions)
    assert any("jaro_winkler(`email_local_l`, `email_local_r`) >= 0.95" in c.lower() for c in conditions)
    assert not any("jaro_winkler_similarity" in c.lower() for c in conditions)
    assert all(r["sql_dialect"] == "spark" for r in settings["blocking_rules_to_generate_predictions"])
    assert load_settings() == load_settings("duckdb", "jaro_winkler_similarity")


def test_spark_backend_finds_the_same_people_as_duckdb(spark: Any) -> None:
    data = generate_columns(2500, seed=17, people=1000)
    obs = Observations(treat_documentation_as_public=True)
    person_parts = []
    for batch in data.batches():
        acc = obs.add_columns(batch)
        person_parts.append((acc, batch.column("truth_person").to_numpy()))
    person = np.full(obs.n_accounts, -1, dtype=np.int64)
    for acc, p in person_parts:
        person[acc] = p

    duck, duck_pairs = _resolve(obs, "duckdb")
    on_spark, spark_pairs = _resolve(obs, "spark", spark)

    true = _pairs(person)
    assert true >= 20  # enough people behind several accounts to measure
    for res in (duck, on_spark):
        got, tp = _pairs(res.anchor_index), _pairs(res.anchor_index, person)
        assert tp / max(1, got) >= 0.99 and tp / true >= 0.95, (got, tp, true)
    # the same people: both engines train on the same rows with the same seed, and the links they keep agree
    assert on_spark.as_dict() == duck.as_dict()
    same = set(zip(spark_pairs.column("a").to_pylist(), spark_pairs.column("b").to_pylist(), strict=True))
    assert same == set(zip(duck_pairs.column("a").to_pylist(), duck_pairs.column("b").to_pylist(), strict=True))
    assert all(ev for ev in spark_pairs.column("evidence").to_pylist())
