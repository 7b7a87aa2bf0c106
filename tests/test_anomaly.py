"""AnomalyDetector: known answers against PyOD, planted outliers, calibration, reasons, persistence."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from buyerscore.artifacts import load_model, save_model
from buyerscore.exceptions import ModelInputError
from buyerscore.models.anomaly import AnomalyDetector
from buyerscore.models.anomaly.detector import _Marginals
from buyerscore.models.anomaly.features import CHANGE_FEATURES, behaviour_change_features


def _frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "platform": "shop", "user_id": [f"u{i}" for i in range(n)],
        "n_orders": rng.poisson(5, n).astype(float), "monetary_mean": rng.lognormal(3, 0.5, n),
        "refund_rate": rng.beta(1, 20, n), "events_7d": rng.poisson(3, n).astype(float),
    })


@pytest.mark.parametrize("method", ["ecod", "copod"])
def test_ecod_copod_equal_pyod_on_training_data(method: str) -> None:
    pyod = pytest.importorskip("pyod")
    from pyod.models.copod import COPOD
    from pyod.models.ecod import ECOD

    assert pyod
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.lognormal(size=300), rng.normal(size=300), rng.integers(0, 5, 300).astype(float)])
    ref = (ECOD() if method == "ecod" else COPOD()).fit(X).decision_scores_
    mine = _Marginals(X).outlyingness(X, method).sum(axis=1)  # type: ignore[arg-type]
    np.testing.assert_allclose(mine, ref, rtol=1e-10, atol=1e-10)


def test_planted_outlier_is_top_and_explained() -> None:
    det = AnomalyDetector(contamination=0.01).fit(_frame())
    F = _frame(seed=1)                     # new users, scored against the training population
    F.loc[7, "refund_rate"] = 0.9          # serial refunder
    F.loc[11, "events_7d"] = 400.0          # bot-like burst
    s = det.anomaly_score(F)
    assert set(np.argsort(-s)[:2]) == {7, 11}
    assert det.predict(F)[[7, 11]].tolist() == [1, 1]
    reasons = det.reason_codes(F.iloc[[7, 11]], k=2)
    assert reasons[0][0].feature == "refund_rate" and reasons[1][0].feature == "events_7d"
    assert "typical" in reasons[0][0].text and reasons[0][0].text.endswith("is unusual")
    zh = det.reason_codes(F.iloc[[7]], k=1, lang="zh")[0][0].text
    assert "典型值" in zh and zh.endswith("明显异常")


def test_in_sample_planted_outlier_is_flagged() -> None:
    F = _frame()
    F.loc[7, "refund_rate"] = 0.9
    det = AnomalyDetector(contamination=0.01).fit(F)
    assert det.predict(F)[7] == 1
    assert det.detector_scores(F)["iforest"].idxmax() == 7


def test_scores_calibrated_and_flag_share_matches_contamination() -> None:
    F = _frame(1000)
    det = AnomalyDetector(contamination=0.05).fit(F)
    s = det.anomaly_score(F)
    assert s.min() > 0 and s.max() < 1
    # calibrated on the training set: about uniform
    assert abs(np.mean(s) - 0.5) < 0.02
    assert abs(det.predict(F).mean() - 0.05) <= 0.01
    # the per-detector scores are calibrated too, and monotone more extreme -> higher score
    far = F.iloc[[0]].copy()
    far2 = far.copy()
    far["monetary_mean"] = 1e4
    far2["monetary_mean"] = 1e6
    assert det.anomaly_score(far2)[0] >= det.anomaly_score(far)[0] > 0.9


def test_pipeline_contract_score_and_flag() -> None:
    F = _frame()
    det = AnomalyDetector(contamination=0.02).fit(F)
    np.testing.assert_array_equal(det.score(F), det.anomaly_score(F))
    assert det.flag(F).dtype == bool and det.flag(F).sum() == det.predict(F).sum()
    sf = det.score_frame(F.head(5))
    assert list(sf.columns) == ["platform", "user_id", "anomaly_score", "flagged", "reason_features", "reasons"]


def test_missing_values_constant_columns_and_single_detector() -> None:
    F = _frame()
    F["const"] = 1.0
    F.loc[:50, "monetary_mean"] = np.nan
    det = AnomalyDetector(detectors=["ecod"]).fit(F)
    assert "const" not in det.features_
    s = det.anomaly_score(F)
    assert np.isfinite(s).all()
    # the same rows with the columns reordered and an extra text column
    G = F[F.columns[::-1]].assign(note="free text")
    np.testing.assert_array_equal(det.anomaly_score(G), s)
    # infinities are not missing values: they score as the most extreme value, not as the median
    F.loc[:50, "monetary_mean"] = np.inf
    assert (det.anomaly_score(F)[:51] >= s.max()).all()


def test_change_features_known_answer_and_used() -> None:
    F = pd.DataFrame({"n_events": [10, 0], "active_days": [2, 0], "n_orders": [6, 0], "n_purchase_days": [2, 0],
                      "n_purchases": [8, 0], "events_7d": [5, 0], "purchases_7d": [4, 0], "spend_7d": [4.0, 0.0],
                      "monetary_sum": [40.0, 0.0], "refund_count": [3, 0]})
    c = behaviour_change_features(F)
    assert c.iloc[0].tolist() == pytest.approx([5.0, 3.0, 0.5, 0.1, 0.2, 0.5])
    assert c.iloc[1].isna().all()  # undefined ratios are NaN, never a fake zero
    det = AnomalyDetector(change_features=True).fit(_frame().assign(n_events=5, active_days=2))
    assert set(CHANGE_FEATURES) & set(det.features_)


def test_round_trip_and_no_training_rows_in_file(tmp_path) -> None:
    F = _frame()
    det = AnomalyDetector().fit(F)
    save_model(det, tmp_path / "m", kind="anomaly.AnomalyDetector", features=det.features_, training_data_hash="x")
    back, _meta = load_model(tmp_path / "m")
    np.testing.assert_array_equal(back.anomaly_score(F), det.anomaly_score(F))
    blob = pickle.dumps(det)
    row = F[det.features_].iloc[3].to_numpy(dtype=float).tobytes()
    assert row not in blob  # per-feature sketches only, never whole training rows


@pytest.mark.parametrize(("params", "match"), [
    ({"contamination": 0.7}, "'contamination' parameter of AnomalyDetector must be a float in"),
    ({"detectors": ["lof"]}, "'detectors' parameter"),
    ({"detectors": []}, "'detectors' parameter"),
    ({"combine": "median"}, "'combine' parameter"),
    ({"n_estimators": 0}, "'n_estimators' parameter"),
    ({"max_grid": 2}, "'max_grid' parameter"),
    ({"change_features": "yes"}, "'change_features' parameter"),
])
def test_invalid_parameters(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AnomalyDetector(**params).fit(_frame())


def test_input_errors_name_the_columns() -> None:
    F = _frame()
    with pytest.raises(ModelInputError, match="'segment'"):
        AnomalyDetector().fit(F.assign(segment="a"))
    det = AnomalyDetector().fit(F)
    with pytest.raises(ModelInputError, match="refund_rate"):
        det.anomaly_score(F.drop(columns=["refund_rate"]))
    with pytest.raises(ModelInputError, match="sparse input is not supported"):
        AnomalyDetector().fit(scipy.sparse.csr_matrix(F.drop(columns=["platform", "user_id"]).to_numpy()))


@settings(max_examples=25, deadline=None)
@given(arrays(np.float64, (40, 3), elements=st.floats(-1e6, 1e6, allow_nan=False)),
       arrays(np.float64, (5, 3), elements=st.floats(-1e9, 1e9, allow_nan=False)))
def test_scores_always_in_unit_interval(train: np.ndarray, new: np.ndarray) -> None:
    cols = ["a", "b", "c"]
    Xt = pd.DataFrame(train, columns=cols)
    if (Xt.nunique() <= 1).all():
        return
    det = AnomalyDetector(n_estimators=10).fit(Xt)
    s = det.anomaly_score(pd.DataFrame(new, columns=cols))
    assert np.all((s >= 0) & (s <= 1))
    c = det.contributions(pd.DataFrame(new, columns=cols))
    assert (c.to_numpy() >= 0).all()
