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
    # sub-second times (clickstreams have them): Spark's unix_timestamp() dropped the microseconds DuckDB keeps
    ev["ts"] = ev["ts"] + pd.to_timedelta(np.random.default_rng(3).integers(0, 10**6, len(ev)), unit="us")
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


def _features_equal(got: pd.DataFrame, want: pd.DataFrame, what: str) -> None:
    assert list(got.columns) == list(want.columns), what
    key = ["platform", "user_id"]
    got = got.sort_values(key).reset_index(drop=True)
    want = want.sort_values(key).reset_index(drop=True)
    assert got[key].astype(str).equals(want[key].astype(str)), what
    for c in want.columns[2:]:
        np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-9, atol=1e-9,
                                   equal_nan=True, err_msg=f"{what}: {c}")


def test_spark_features_equal_duckdb_on_real_data(spark, data_dir: Path, tmp_path: Path) -> None:
    """Real shops through `buyerscore export`: CDNOW's sample, a slice of Online Retail (refunds) and Taobao's
    view/favorite/cart/purchase log (purchases without amount), every feature equal to DuckDB's at two cut-offs."""
    from buyerscore.datasets import load_dataset, read_dataset
    from buyerscore.spark import build_features_spark

    with EventStore(tmp_path / "real.duckdb") as store:
        load_dataset("cdnow_sample", store, data_dir)
        load_dataset("taobao", store, data_dir)
        retail = read_dataset("online_retail", data_dir).events
        store.ingest_frame(retail[retail["user_id"].isin(retail["user_id"].dropna().unique()[:300])],
                           source="online_retail slice")
        path = store.export_parquet(tmp_path / "export", ("events",))["events"][0]
        types = set(store.con.execute("SELECT DISTINCT event_type FROM events").df()["event_type"])
        assert {"view", "favorite", "cart", "purchase", "refund"} <= types
        for as_of in ("2011-06-30 18:30:00", "2017-11-29 08:00:00"):
            want = build_features(store.con, as_of=as_of)
            got = build_features_spark(spark, path, as_of=as_of).toPandas()
            assert len(want) > 1000
            _features_equal(got, want, f"real data as of {as_of}")
            # both engines round to 12 significant digits (round_features): the numbers the models get are
            # the same, not just close (sums in another order differed in the last place and flipped tree
            # splits: 950 of CDNOW's 23,570 expected spends differed, by up to 4.7 %, before the rounding)
            key = ["platform", "user_id"]
            g = got.sort_values(key).reset_index(drop=True).iloc[:, 2:].to_numpy(float)
            w = want.sort_values(key).reset_index(drop=True).iloc[:, 2:].to_numpy(float)
            same = (g == w) | (np.isnan(g) & np.isnan(w))
            assert same.mean() > 0.9999, f"{int((~same).sum())} of {same.size} feature values differ"


def test_spark_reads_timestamps_as_text_epoch_or_aware(spark, shop, tmp_path: Path) -> None:
    """A user's own Parquet: ts as ISO 8601 text (with 'T' and an offset), Unix seconds or milliseconds, or an
    aware timestamp gives the canonical events' features (text gave NULL times, numbers an AnalysisException);
    an aware cut-off is converted to UTC."""
    from buyerscore.spark import build_features_spark

    _, ev, _ = shop
    ev = ev[ev["platform"] == "synthetic"].reset_index(drop=True)
    ev["ts"] = ev["ts"].dt.floor("s")  # whole seconds, so that every form below is the same instant
    want = build_features_spark(spark, spark.createDataFrame(ev), as_of=AS_OF).toPandas()
    secs = (ev["ts"] - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    forms = {
        "iso": ev.assign(ts=(ev["ts"] + pd.Timedelta(hours=2)).dt.strftime("%Y-%m-%dT%H:%M:%S+02:00")),
        "seconds": ev.assign(ts=secs.astype("int64")),
        "millis": ev.assign(ts=secs.astype("int64") * 1000),
        "aware": ev.assign(ts=ev["ts"].dt.tz_localize("UTC").dt.tz_convert("Asia/Shanghai")),
    }
    for name, frame in forms.items():
        frame.to_parquet(tmp_path / f"{name}.parquet")
        got = build_features_spark(spark, tmp_path / f"{name}.parquet", as_of="2024-09-30T08:00:00+08:00").toPandas()
        _features_equal(got, want, name)


def test_spark_validates_events_like_ingest(spark, shop, tmp_path: Path) -> None:
    """Bad rows in a user's own Parquet fail with the column, a row and the fix (they became a user with a
    NULL id, NULL times or uncounted events before); NaN amounts from pandas are missing values, as at ingest;
    an unknown --platform names the known ones (it gave 0 users)."""
    from buyerscore.exceptions import SchemaError
    from buyerscore.spark import build_features_spark

    _, ev, _ = shop
    ev = ev.head(400).reset_index(drop=True)
    bad = {
        "user_id": (ev.assign(user_id=[None] + list(ev["user_id"][1:])), r"user_id is null or empty in 1 row"),
        "empty": (ev.assign(user_id=[" "] + list(ev["user_id"][1:])), r"user_id is null or empty .*user_id= "),
        "event_type": (ev.assign(event_type=["pv"] + list(ev["event_type"][1:])),
                       r"event_type is not a canonical event type .*event_type=pv.*'pv' -> 'view'"),
        "ts": (ev.assign(ts=["yesterday"] + list(ev["ts"].astype(str)[1:])), r"ts is null or not a timestamp .*ts=yes"),
        "amount": (ev.assign(amount=[-5.0] + list(ev["amount"][1:])), r"amount is negative .*amount=-5.0"),
    }
    for name, (frame, msg) in bad.items():
        frame.to_parquet(tmp_path / f"{name}.parquet")
        with pytest.raises(SchemaError, match=msg) as err:
            build_features_spark(spark, tmp_path / f"{name}.parquet", as_of=AS_OF)
        assert "Fix: " in str(err.value) and "buyerscore ingest" in str(err.value), name
    # the check reads only the rows the features read: a bad row after the cut-off is not an error
    late = ev.assign(event_type=["pv"] + list(ev["event_type"][1:]), ts=[pd.Timestamp("2030-01-01")] + list(ev["ts"][1:]))
    assert len(build_features_spark(spark, spark.createDataFrame(late), as_of=AS_OF).toPandas()) > 0
    # pandas' NaN amounts (views) are missing, not an error, and give the canonical features
    nan = spark.createDataFrame(ev).selectExpr("*", "coalesce(amount, double('NaN')) AS a").drop("amount") \
        .withColumnRenamed("a", "amount")  # NaN where pandas had a missing value (Spark without Arrow does that)
    assert nan.filter("isnan(amount)").count() > 0
    got = build_features_spark(spark, nan, as_of=AS_OF).toPandas()
    with EventStore(tmp_path / "v.duckdb") as store:
        store.ingest_frame(ev, source="t")
        _features_equal(got, build_features(store.con, as_of=AS_OF), "NaN amounts")
    with pytest.raises(SchemaError, match=r"--platform nope: no event has this platform.*\['other', 'synthetic'\]"):
        build_features_spark(spark, nan, as_of=AS_OF, platforms=["synthetic", "nope"])
    assert build_features_spark(spark, nan, as_of="2000-01-01").count() == 0  # no event before the cut-off
    (tmp_path / "notes.parquet").write_text("not parquet")
    with pytest.raises(SchemaError, match=r"cannot read events .*notes.parquet as Parquet .*buyerscore export"):
        build_features_spark(spark, tmp_path / "notes.parquet", as_of=AS_OF)


def test_spark_cli_refuses_to_delete_an_existing_folder(spark, shop, tmp_path: Path) -> None:
    """`--out` was written with Spark's overwrite mode: an existing folder (a home, the events' folder) was
    deleted without a word.  Now a non-empty --out needs --overwrite, and the input's folder is never replaced."""
    from typer.testing import CliRunner

    from buyerscore.cli import app

    path, _, _ = shop
    runner = CliRunner()
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "thesis.txt").write_text("precious")
    args = ["spark", "features", "--events", str(path), "--cutoff", AS_OF, "--master", "local[2]"]
    r = runner.invoke(app, [*args, "--out", str(keep)])
    assert r.exit_code == 2 and "pass --overwrite" in " ".join(r.output.split()) and (keep / "thesis.txt").exists()
    r = runner.invoke(app, [*args, "--out", str(path.parent), "--overwrite"])
    assert r.exit_code == 2 and "would delete the input" in " ".join(r.output.split()) and path.exists()
    r = runner.invoke(app, [*args, "--out", str(keep), "--overwrite"])
    assert r.exit_code == 0, r.output
    assert not (keep / "thesis.txt").exists() and len(pd.read_parquet(keep)) > 100
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "f2"), "--cutoff", "2000-01-01"])
    assert r.exit_code == 0 and "no user has an event" in r.output


def test_spark_score_errors_name_the_model_and_fix(spark, shop, tmp_path: Path) -> None:
    """`spark score`: no promoted bundle, features a model lacks (named with its columns, as `buyerscore score`
    does; a model left out is reported), and empty features (typed score columns, 0 rows)."""
    from typer.testing import CliRunner

    from buyerscore.cli import app
    from buyerscore.exceptions import SchemaError
    from buyerscore.models.anomaly import AnomalyDetector
    from buyerscore.registry import ModelEntry, ModelRegistry
    from buyerscore.spark import score_spark

    _, _, db = shop
    with EventStore(db, read_only=True) as store:
        X = build_features(store.con, as_of=AS_OF)
    feats = [c for c in X.columns if c not in ("platform", "user_id")]
    reg = ModelRegistry(tmp_path / "registry")
    v = reg.create({"anomaly": ModelEntry(AnomalyDetector(n_estimators=20).fit(X[feats]), feats)}, as_of=AS_OF,
                   training_data_hash="0" * 64)
    X.drop(columns=feats[:1]).to_parquet(tmp_path / "lacking.parquet")
    X.to_parquet(tmp_path / "features.parquet")
    runner = CliRunner()
    base = ["spark", "score", "--registry", str(tmp_path / "registry"), "--master", "local[2]"]
    r = runner.invoke(app, [*base, "--input", str(tmp_path / "features.parquet"), "--out", str(tmp_path / "s")])
    assert r.exit_code == 2 and "buyerscore models promote" in " ".join(r.output.split()), r.output
    reg.promote(v)
    r = runner.invoke(app, [*base, "--input", str(tmp_path / "lacking.parquet"), "--out", str(tmp_path / "s")])
    out = " ".join(r.output.split())
    assert r.exit_code == 2 and "anomaly lacks 1 of" in out and "buyerscore spark features" in out, r.output
    with pytest.raises(SchemaError, match="anomaly lacks 1 of"):
        score_spark(spark.read.parquet(str(tmp_path / "lacking.parquet")), tmp_path / "registry")
    S = score_spark(spark.read.parquet(str(tmp_path / "features.parquet")).limit(0), tmp_path / "registry")
    assert S.count() == 0 and dict(S.dtypes)["anomaly_score"] == "double"


def test_parquet_parts_that_disagree_on_a_column_type_are_named(spark, tmp_path: Path) -> None:
    """A folder whose files hold user_id as integers in one and text in another failed deep inside a Spark
    job ("Parquet column cannot be converted", a Java stack trace); the footers are compared first."""
    from buyerscore.exceptions import SchemaError
    from buyerscore.spark import build_features_spark

    a = pd.DataFrame({"event_id": ["e1", "e2"], "user_id": [1, 2], "ts": pd.to_datetime(["2024-01-01", "2024-01-02"]),
                      "event_type": ["view", "purchase"], "platform": ["p", "p"], "amount": [None, 5.0]})
    (tmp_path / "ev").mkdir()
    a.to_parquet(tmp_path / "ev" / "part-0.parquet")
    a.assign(user_id=["u3", "u4"], event_id=["e3", "e4"]).to_parquet(tmp_path / "ev" / "part-1.parquet")
    with pytest.raises(SchemaError, match=r"column 'user_id' is number in part-0.parquet but text in "
                                          r"part-1.parquet.*one type per column"):
        build_features_spark(spark, str(tmp_path / "ev"), as_of="2024-02-01")
    (tmp_path / "ev" / "part-1.parquet").unlink()  # the files that agree are read as before
    a.assign(event_id=["e3", "e4"]).to_parquet(tmp_path / "ev" / "part-1.parquet")
    assert len(build_features_spark(spark, str(tmp_path / "ev"), as_of="2024-02-01").toPandas()) == 2


def test_parquet_parts_that_disagree_behind_a_uri_are_named_when_the_job_meets_them(spark, tmp_path: Path) -> None:
    """Behind a URI (s3a://, hdfs://; here file://) the footers are not read beforehand: the mismatch shows
    when a task reads the file, as a Java error, which is now a SchemaError naming the column, file and types."""
    from buyerscore.exceptions import SchemaError
    from buyerscore.spark import build_features_spark, readable_job_errors

    a = pd.DataFrame({"event_id": ["e1", "e2"], "user_id": ["u1", "u2"], "ts": pd.to_datetime(["2024-01-01", "2024-01-02"]),
                      "event_type": ["view", "purchase"], "platform": ["p", "p"], "amount": [None, 5.0]})
    (tmp_path / "ev").mkdir()
    a.to_parquet(tmp_path / "ev" / "part-0.parquet")
    a.assign(user_id=[3, 4], event_id=["e3", "e4"]).to_parquet(tmp_path / "ev" / "part-1.parquet")
    uri = (tmp_path / "ev").as_uri()
    match = r"events file://\S+: column 'user_id' is INT64 in \S+part-1.parquet but string in the schema.*one type"
    with pytest.raises(SchemaError, match=match), readable_job_errors("events", uri):
        build_features_spark(spark, uri, as_of="2024-02-01").toPandas()
    with pytest.raises(ZeroDivisionError), readable_job_errors("events", uri):  # other errors pass through
        1 / 0  # noqa: B018
