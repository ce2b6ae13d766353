"""The Spark backend runs the same Splink model as DuckDB, for national scale."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

from tiptriage import synth
from tiptriage.link.records import build_records
from tiptriage.link.resolve import probabilistic_links


def test_spark_backend_gives_the_same_links_as_duckdb() -> None:
    if importlib.util.find_spec("pyspark") is None:
        pytest.skip("pyspark is not installed (pip install pyspark; it is not part of the test extra because of its size)")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime on this machine; a local SparkSession needs one")
    data = synth.generate(1500, seed=17)
    records, _ = build_records(data.reports, treat_documentation_as_public=True)
    duck, _ = probabilistic_links(records, backend="duckdb")
    spark, _ = probabilistic_links(records, backend="spark")
    assert {(lk.a, lk.b) for lk in spark} == {(lk.a, lk.b) for lk in duck}
