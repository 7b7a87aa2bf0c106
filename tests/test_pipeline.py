"""ScoringPipeline.score_frame: known answers, reason codes, missing features, chunking invariance."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression, LogisticRegression

from buyerscore.exceptions import ModelInputError
from buyerscore.explain.reason_codes import top_reasons
from buyerscore.pipeline import ScoringPipeline, top_k_adverse
from buyerscore.serving._testing import IsolationAnomaly


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame({"platform": "p", "user_id": [f"u{i}" for i in range(n)],
                      "a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.exponential(size=n)})
    X.loc[::17, "b"] = np.nan
    return X


@pytest.fixture(scope="module")
def pipe(frame: pd.DataFrame) -> ScoringPipeline:
    Xf = frame[["a", "b", "c"]]
    spend = np.clip(3 * frame["a"].fillna(0) + frame["c"] + 2, 0, None)
    tier = np.where(spend > spend.quantile(0.9), "high", np.where(spend > spend.median(), "mid", "low"))
    bad = (frame["c"] > 1).astype(int)
    p = {"n_estimators": 20, "num_leaves": 7, "min_child_samples": 5, "verbose": -1, "n_jobs": 1}
    models = {"power_spend": lgb.LGBMRegressor(**p).fit(Xf, spend),
              "power_tier": lgb.LGBMClassifier(**p).fit(Xf, tier),
              "credit": LogisticRegression().fit(frame[["a", "c"]], bad),
              "anomaly": IsolationAnomaly().fit(Xf)}
    feats = {"power_spend": ["a", "b", "c"], "power_tier": ["a", "b", "c"], "credit": ["a", "c"],
             "anomaly": ["a", "b", "c"]}
    return ScoringPipeline(models, features=feats, version="v7", reason_k=2)


def test_known_answer_linear_and_pdo_points() -> None:
    X = pd.DataFrame({"user_id": ["a", "b"], "x": [1.0, 3.0]})
    lin = LinearRegression().fit(X[["x"]], [10.0, 30.0])
    logit = LogisticRegression().fit(pd.DataFrame({"x": [0.0, 0, 1, 1]}), [0, 1, 0, 1])  # PD = 0.5 everywhere
    p = ScoringPipeline({"power_spend": lin, "credit": logit}, features={"power_spend": ["x"], "credit": ["x"]},
                        version="v1", credit_scaling=(20.0, 600.0, 50.0))
    out = p.score_frame(X)
    np.testing.assert_allclose(out["power_expected_spend"], [10.0, 30.0])
    np.testing.assert_allclose(out["credit_pd"], 0.5, atol=1e-6)
    # odds 1:1 are 50x worse than the 50:1 base: 600 - 20 * log2(50)
    np.testing.assert_allclose(out["credit_score"], 600 - 20 * np.log2(50), atol=1e-3)
    assert "power_reason_1" not in out  # no contributions from a plain linear model: no reasons


def test_all_sections_and_types(pipe: ScoringPipeline, frame: pd.DataFrame) -> None:
    out = pipe.score_frame(frame)
    assert list(out.index) == list(frame.index) and (out["model_version"] == "v7").all()
    np.testing.assert_allclose(out[["power_p_high", "power_p_mid", "power_p_low"]].sum(axis=1), 1.0)
    assert set(out["power_tier"]) <= {"high", "mid", "low"}
    assert out["credit_pd"].between(0, 1).all() and out["anomaly_score"].between(0, 1).all()
    assert out["anomaly_flag"].dtype == bool
    for sec in ("power",):
        c1, c2 = out[f"{sec}_reason_1_contribution"], out[f"{sec}_reason_2_contribution"]
        assert ((c1 > 0) | c1.isna()).all() and ((c1 >= c2) | c2.isna()).all()


def test_reasons_agree_with_contract_top_reasons(pipe: ScoringPipeline, frame: pd.DataFrame) -> None:
    out = pipe.score_frame(frame)
    c = pd.DataFrame(pipe.models["power_spend"].predict(frame[["a", "b", "c"]], pred_contrib=True)[:, :3] * -1,
                     columns=["a", "b", "c"])
    ref = top_reasons(c, k=2)
    for i in range(len(frame)):
        got = [f for f in out[["power_reason_1", "power_reason_2"]].iloc[i] if isinstance(f, str)]
        assert got == [r.feature for r in ref[i]]


def test_missing_features_skip_or_raise(pipe: ScoringPipeline, frame: pd.DataFrame) -> None:
    only_credit = frame[["user_id", "a", "c"]]
    out = pipe.score_frame(only_credit)
    assert "credit_pd" in out and "power_expected_spend" not in out and "anomaly_score" not in out
    assert pipe.missing_features(only_credit.columns)["power_spend"] == ["b"]
    with pytest.raises(ModelInputError, match="lacks 1 feature"):
        pipe.score_frame(only_credit, strict=True)
    with pytest.raises(ModelInputError, match="not in bundle"):
        pipe.score_frame(frame, kinds=["nope"])


def test_non_numeric_feature_is_named(pipe: ScoringPipeline, frame: pd.DataFrame) -> None:
    bad = frame.assign(a=["x"] * len(frame))
    with pytest.raises(ModelInputError, match=r"\['a'\]"):
        pipe.score_frame(bad)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(0, 399), min_size=1, max_size=30))
def test_row_results_do_not_depend_on_batch(pipe: ScoringPipeline, frame: pd.DataFrame, rows: list[int]) -> None:
    full = pipe.score_frame(frame)
    part = pipe.score_frame(frame.iloc[rows])
    pd.testing.assert_frame_equal(part, full.iloc[rows], check_exact=False, rtol=1e-9)


@pytest.mark.parametrize("kwargs, match", [
    ({"reason_k": -1}, "reason_k"),
    ({"features": {}}, "No feature list"),
])
def test_invalid_parameters(kwargs: dict, match: str) -> None:
    args = {"features": {"power_spend": ["x"]}, **kwargs}
    with pytest.raises(ValueError, match=match):
        ScoringPipeline({"power_spend": LinearRegression()}, **args)


def test_unknown_kind() -> None:
    with pytest.raises(ModelInputError, match="Unknown model kind"):
        ScoringPipeline({"magic": LinearRegression()}, features={"magic": ["x"]})


def test_top_k_adverse_known_answer() -> None:
    idx, val = top_k_adverse(np.array([[1.0, 1.0, 5.0, -2.0], [np.nan, -1.0, 0.0, 0.1]]), 3)
    assert idx.tolist() == [[2, 0, 1], [3, -1, -1]]
    np.testing.assert_allclose(val, [[5.0, 1.0, 1.0], [0.1, np.nan, np.nan]])


def test_batch_threads_give_the_same_file(pipe: ScoringPipeline, frame: pd.DataFrame, tmp_path) -> None:
    from buyerscore.serving.batch import score_file

    src = tmp_path / "f.parquet"
    frame.to_parquet(src, index=False)
    one = score_file(pipe, src, tmp_path / "one.parquet", chunk_rows=37, n_jobs=1)
    two = score_file(pipe, src, tmp_path / "two.parquet", chunk_rows=37, n_jobs=2)
    assert (one.rows, one.chunks) == (two.rows, two.chunks) == (400, 11)
    a, b = pd.read_parquet(tmp_path / "one.parquet"), pd.read_parquet(tmp_path / "two.parquet")
    pd.testing.assert_frame_equal(a, b)
    # a file smaller than n_jobs x chunk_rows is split so that every thread has a share
    small = score_file(pipe, src, tmp_path / "small.parquet", chunk_rows=10_000, n_jobs=2)
    assert (small.rows, small.chunks) == (400, 2)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "small.parquet"), a)
    assert a["user_id"].tolist() == frame["user_id"].tolist()  # input order kept
    direct = pipe.score_frame(frame, reasons=False).select_dtypes(["number", "bool"])
    pd.testing.assert_frame_equal(a[direct.columns], direct, check_exact=False, rtol=1e-12)
    with pytest.raises(ValueError, match="n_jobs"):
        score_file(pipe, src, tmp_path / "x.parquet", n_jobs=0)


def test_buyerscore_models_one_user_equals_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API's one-row path gives the batch scores: AnomalyDetector's isolation-forest paths (compiled,
    and the numpy flat arrays used without numba) equal scikit-learn's score_samples exactly, and SpendTier
    evaluates one booster per row."""
    from buyerscore.models.anomaly import AnomalyDetector
    from buyerscore.models.purchasing_power import SpendTier

    rng = np.random.default_rng(1)
    n = 1500
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.exponential(size=n), "c": rng.integers(0, 5, n) * 1.0})
    X.loc[::13, "b"] = np.nan
    det = AnomalyDetector(n_estimators=50).fit(X)
    M = det._matrix(X)
    np.testing.assert_array_equal(det._iforest_raw(M), -det.iforest_.score_samples(M))  # compiled kernel
    with monkeypatch.context() as mp:
        mp.setenv("BUYERSCORE_COMPILED_TREES", "0")
        np.testing.assert_array_equal(det._iforest_raw(M[:300]), -det.iforest_.score_samples(M[:300]))
    assert "_flat_forest" in det.__dict__ and "_flat_forest" not in det.__getstate__()
    tier = SpendTier(n_estimators=20).fit(X, (X["b"].fillna(0) * 10 + X["a"]).clip(lower=0))  # spend is >= 0
    assert len(tier.model_.calibrated_classifiers_) == 1
    p = ScoringPipeline({"anomaly": det, "power_tier": tier}, features={"anomaly": ["a", "b", "c"],
                                                                       "power_tier": ["a", "b", "c"]})
    batch = p.score_frame(X, reasons=False)  # > 1024 rows: scikit-learn's traversal
    rows = pd.concat([p.score_frame(X.iloc[[i]], reasons=False) for i in range(0, n, 97)])
    pd.testing.assert_frame_equal(rows, batch.loc[rows.index], check_exact=False, rtol=1e-12, atol=1e-12)
    # the tier is SpendTier.predict's (probabilities weighted by class_weights_), not the plain argmax
    tier.class_weights_ = np.array([1.0, 3.0, 1.0])  # a decision rule that moves tiers
    moved = p.score_frame(X, reasons=False)["power_tier"].to_numpy()
    np.testing.assert_array_equal(moved, tier.predict(X))
    assert (moved != batch["power_tier"].to_numpy()).any()


def test_batch_reads_arrow_columns_of_any_numeric_type(pipe: ScoringPipeline, frame: pd.DataFrame,
                                                       tmp_path) -> None:
    """batch_frame (Arrow batch -> one float64 block) scores like pandas' own conversion: nullable ints,
    float32, bools, and a text column that is no feature (then the batch goes through to_pandas)."""
    from buyerscore.serving.batch import batch_frame, score_file

    mixed = frame.copy()
    mixed["a"] = (mixed["a"] * 10).round().astype("int64")
    mixed["b"] = (mixed["b"] * 10).round().astype("Int64")  # frame's NaN -> nulls
    mixed["c"] = mixed["c"].astype("float32")
    mixed["flag"] = mixed["c"] > 1
    for extra in ({}, {"note": "free text"}):
        src = tmp_path / "mixed.parquet"
        mixed.assign(**extra).to_parquet(src, index=False)
        score_file(pipe, src, tmp_path / "s.parquet", chunk_rows=64, n_jobs=2)
        got = pd.read_parquet(tmp_path / "s.parquet")
        want = pipe.score_frame(pd.read_parquet(src), reasons=True)
        cols = want.select_dtypes(["number", "bool"]).columns
        pd.testing.assert_frame_equal(got[cols], want[cols], check_exact=False, rtol=1e-12)
    import pyarrow as pa

    X = batch_frame(pa.RecordBatch.from_pandas(mixed, preserve_index=False))
    assert X["b"].dtype == np.float64 and X["b"].isna().sum() == mixed["b"].isna().sum() > 0
    assert X["flag"].tolist() == mixed["flag"].astype(float).tolist()
    assert X["user_id"].tolist() == mixed["user_id"].tolist()


def test_credit_ensemble_in_the_pipeline(data_dir) -> None:  # type: ignore[no-untyped-def]
    """A CreditEnsemble (categorical inputs, two members) scores through the pipeline like any credit model."""
    from buyerscore.datasets import read_applicants
    from buyerscore.models.base import split_applicants
    from buyerscore.models.credit import CreditEnsemble, CreditForest, CreditGBM

    app = read_applicants("german_credit", data_dir)
    X, y = split_applicants(app)
    ens = CreditEnsemble(members=[("gbm", CreditGBM(n_estimators=100, learning_rate=0.05)),
                                  ("forest", CreditForest(n_estimators=60))]).fit(X.iloc[:800], y[:800])
    p = ScoringPipeline({"credit": ens}, features={"credit": list(ens.features_)}, version="v1", reason_k=2)
    rows = app.iloc[800:830].reset_index(drop=True)
    out = p.score_frame(rows)
    np.testing.assert_allclose(out["credit_pd"], ens.predict_proba(rows[ens.features_])[:, 1])
    np.testing.assert_allclose(out["credit_score"], ens.score(rows[ens.features_]))
    assert out["credit_grade"].isin(list("ABCDE")).all()
    reasons = [c for c in out.columns if c.startswith("credit_reason")]
    assert reasons and out[reasons[0]].notna().any()
