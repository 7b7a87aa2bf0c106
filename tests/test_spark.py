"""Spark: the same features as DuckDB (every column, every user) and the same scores as the pipeline."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from buyerscore.events.store import EventStore
from buyerscore.features import build_features
from buyerscore.testing.synthetic import generate_events

AS_OF = "2024-09-30"
pytestmark = pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")  # pyspark 3.5 on pandas 3


def _need(ok: bool, what: str) -> None:
    if not ok:
        if os.environ.get("CI") == "true":  # the dev extra installs pyspark; the CI machine has Java
            pytest.fail(f"{what} is missing: CI runs the Spark tests")
        pytest.skip(f"{what} is not available")


@pytest.fixture(scope="module")
def spark():
    try:
        import pyspark  # noqa: F401
    except ImportError:
        _need(False, "pyspark (pip install 'buyerscore[spark]')")
    _need(shutil.which("java") is not None or bool(os.environ.get("JAVA_HOME")), "Java (Spark runs on the JVM)")
    from buyerscore.spark import spark_session

    s = spark_session("local[2]", "buyerscore-tests", **{"spark.sql.shuffle.partitions": "4"})
    yield s
    s.stop()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame, EventStore]:
    """Synthetic events with every event type (reviews with text too) in a store, exported to Parquet."""
    tmp = tmp_path_factory.mktemp("spark")
    data = generate_events(300, seed=3)
    ev = data.events.astype({"platform": str})
    ev.loc[ev.index[:40], "platform"] = "other"  # a second platform
    db = tmp / "s.duckdb"
    with EventStore(db) as store:
        store.ingest_frame(ev, source="synthetic")
        written = store.export_parquet(tmp / "export", ("events",))
    return written["events"][0], ev, db


@pytest.mark.parametrize(("as_of", "platforms"), [(AS_OF, None), ("2024-05-15 12:00:00", ["synthetic"])])
def test_spark_features_equal_duckdb(spark, shop, as_of, platforms) -> None:
    from buyerscore.spark import build_features_spark

    path, _, db = shop
    with EventStore(db, read_only=True) as store:
        want = build_features(store.con, as_of=as_of, platforms=platforms)
    got = build_features_spark(spark, path, as_of=as_of, platforms=platforms).toPandas()
    assert list(got.columns) == list(want.columns)
    key = ["platform", "user_id"]
    got = got.sort_values(key).reset_index(drop=True)
    want = want.sort_values(key).reset_index(drop=True)
    assert got[key].astype(str).equals(want[key].astype(str)) and len(want) > 100
    assert want["review_sentiment_mean"].notna().any()  # the text path is exercised
    for c in want.columns[2:]:
        np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-9, atol=1e-9,
                                   equal_nan=True, err_msg=c)


def test_spark_events_need_the_canonical_columns(spark, shop) -> None:
    from buyerscore.exceptions import SchemaError
    from buyerscore.spark import build_features_spark

    path, _, _ = shop
    with pytest.raises(SchemaError, match=r"lack column\(s\) \['amount'\]"):
        build_features_spark(spark, spark.read.parquet(str(path)).drop("amount"), as_of=AS_OF)
    with pytest.raises(FileNotFoundError, match="buyerscore export"):
        build_features_spark(spark, path.parent / "nope.parquet", as_of=AS_OF)


def test_spark_scores_equal_the_pipeline(spark, shop, tmp_path: Path) -> None:
    from buyerscore.models.anomaly import AnomalyDetector
    from buyerscore.pipeline import ScoringPipeline
    from buyerscore.registry import ModelEntry, ModelRegistry
    from buyerscore.spark import build_features_spark, score_spark

    path, _, db = shop
    with EventStore(db, read_only=True) as store:
        X = build_features(store.con, as_of=AS_OF)
    feats = [c for c in X.columns if c not in ("platform", "user_id")]
    det = AnomalyDetector(n_estimators=50).fit(X[feats])
    reg = ModelRegistry(tmp_path / "registry")
    v = reg.create({"anomaly": ModelEntry(det, list(det.feature_names_in_))}, as_of=AS_OF, training_data_hash="0" * 64)
    reg.promote(v)
    F = build_features_spark(spark, path, as_of=AS_OF)
    got = score_spark(F, tmp_path / "registry").toPandas()
    # the same feature rows scored in one process (Spark's features equal DuckDB's to 1e-9, tested above,
    # but the ECOD/COPOD tails count exact ties with training values, so a last-bit difference can move a
    # score by one step: the comparison is on the rows Spark computed)
    want = ScoringPipeline.from_registry(tmp_path / "registry").score_frame(F.toPandas(), reasons=False)
    assert list(got.columns) == list(want.columns) and len(got) == len(want)
    key = ["platform", "user_id"]
    got = want[key].astype(str).merge(got.astype({k: str for k in key}), on=key, how="left")
    np.testing.assert_allclose(got["anomaly_score"], want["anomaly_score"], rtol=1e-9)
    assert (got["anomaly_flag"].astype(bool) == want["anomaly_flag"].astype(bool)).all()
    assert (got["model_version"] == v).all()


def test_spark_cli_features_and_score(spark, shop, tmp_path: Path) -> None:
    """`buyerscore spark features` then `spark score`: the files hold the DuckDB features' users and the
    pipeline's scores (the CLI reuses the running session)."""
    from typer.testing import CliRunner

    from buyerscore.cli import app
    from buyerscore.models.anomaly import AnomalyDetector
    from buyerscore.pipeline import ScoringPipeline
    from buyerscore.registry import ModelEntry, ModelRegistry

    path, _, db = shop
    runner = CliRunner()
    r = runner.invoke(app, ["spark", "features", "--events", str(path), "--cutoff", AS_OF, "--out",
                            str(tmp_path / "features"), "--master", "local[2]"])
    assert r.exit_code == 0, r.output
    F = pd.read_parquet(tmp_path / "features")
    with EventStore(db, read_only=True) as store:
        X = build_features(store.con, as_of=AS_OF)
    assert sorted(F["user_id"].astype(str)) == sorted(X["user_id"].astype(str)) and list(F.columns) == list(X.columns)
    feats = [c for c in X.columns if c not in ("platform", "user_id")]
    reg = ModelRegistry(tmp_path / "registry")
    reg.promote(reg.create({"anomaly": ModelEntry(AnomalyDetector(n_estimators=30).fit(X[feats]), feats)},
                           as_of=AS_OF, training_data_hash="0" * 64))
    r = runner.invoke(app, ["spark", "score", "--registry", str(tmp_path / "registry"), "--input",
                            str(tmp_path / "features"), "--out", str(tmp_path / "scores"), "--master", "local[2]"])
    assert r.exit_code == 0, r.output
    S = pd.read_parquet(tmp_path / "scores")
    want = ScoringPipeline.from_registry(tmp_path / "registry").score_frame(F, reasons=False)
    key = ["platform", "user_id"]
    m = want[[*key, "anomaly_score"]].merge(S[[*key, "anomaly_score"]], on=key, suffixes=("", "_spark"))
    assert len(m) == len(F)
    np.testing.assert_allclose(m["anomaly_score_spark"], m["anomaly_score"], rtol=1e-9)
    r = runner.invoke(app, ["spark", "features", "--events", str(tmp_path / "nope"), "--cutoff", AS_OF, "--out",
                            str(tmp_path / "x"), "--master", "local[2]"])
    assert r.exit_code == 2 and "buyerscore export" in " ".join(r.output.split())
