"""AnomalyDetector on awkward inputs: infinities, numpy arrays with change features, text values,
empty frames, and models saved before ``feature_names_in_`` held the input columns only."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pandas as pd
import pytest

from buyerscore.exceptions import ModelInputError
from buyerscore.models.anomaly import AnomalyDetector
from buyerscore.models.anomaly.features import CHANGE_FEATURES


def _frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "platform": "shop", "user_id": [f"u{i}" for i in range(n)],
        "n_orders": rng.poisson(5, n).astype(float), "monetary_mean": rng.lognormal(3, 0.5, n),
        "refund_rate": rng.beta(1, 20, n), "events_7d": rng.poisson(3, n).astype(float),
        "n_events": rng.poisson(20, n).astype(float) + 1, "active_days": rng.poisson(4, n).astype(float) + 1,
    })


@pytest.fixture(scope="module")
def det() -> AnomalyDetector:
    return AnomalyDetector(n_estimators=50).fit(_frame())


@pytest.mark.parametrize("compiled", ["1", "0"])
def test_infinity_scores_as_the_most_extreme_value(det, monkeypatch, compiled) -> None:
    monkeypatch.setenv("BUYERSCORE_COMPILED_TREES", compiled)
    F = _frame()
    X = pd.concat([F.head(3)] * 400, ignore_index=True)  # > 1024 rows: scikit-learn's forest path too
    X.loc[0, "monetary_mean"] = 1e12
    X.loc[1, "monetary_mean"] = np.inf
    X.loc[2, "monetary_mean"] = -np.inf
    X.loc[3, "monetary_mean"] = np.nan  # missing: imputed with the median, typical
    s = det.anomaly_score(X)
    assert np.isfinite(s).all()
    assert s[1] >= s[0] > 0.99 and s[2] > 0.99
    assert s[3] < 0.99
    assert det.reason_codes(X.iloc[[1]], k=1)[0][0].feature == "monetary_mean"


def test_infinity_in_training_is_extreme_and_logged(caplog) -> None:
    F = _frame()
    F.loc[7, "monetary_mean"] = np.inf
    with caplog.at_level(logging.WARNING, logger="buyerscore.models.anomaly.detector"):
        d = AnomalyDetector(n_estimators=50).fit(F)
    assert "infinite value(s) in column(s) 'monetary_mean'" in caplog.text and "rows 7" in caplog.text
    s = d.anomaly_score(F)
    assert np.isfinite(s).all() and s[7] == s.max()
    assert np.isfinite(d.medians_["monetary_mean"])


def test_numpy_input_with_change_features() -> None:
    F = _frame()
    d = AnomalyDetector(n_estimators=50, change_features=True).fit(F)
    inputs = [c for c in F.columns if c not in ("platform", "user_id")]
    assert list(d.feature_names_in_) == inputs and d.n_features_in_ == len(inputs)
    assert set(CHANGE_FEATURES) & set(d.features_)
    A = F[inputs].head(5).to_numpy()
    with pytest.warns(UserWarning, match="read by position"):
        np.testing.assert_array_equal(d.anomaly_score(A), d.anomaly_score(F.head(5)))
    with pytest.raises(ModelInputError, match="Expected 2D array, got 1D array.*X.reshape\\(1, -1\\)"):
        d.anomaly_score(A[0])  # one row must be 2-d, as in scikit-learn
    with pytest.raises(ModelInputError, match=r"X has 5 features, but AnomalyDetector is expecting 6 features"):
        d.anomaly_score(A[:, :5])


def test_models_saved_with_derived_input_names_still_load_and_score_arrays() -> None:
    F = _frame()
    d = AnomalyDetector(n_estimators=50, change_features=True).fit(F)
    old = d.__getstate__()  # the state as saved before: derived columns in feature_names_in_, no n_features_in_
    old["feature_names_in_"] = np.asarray([*d.feature_names_in_, *CHANGE_FEATURES], dtype=object)
    del old["n_features_in_"]
    back = pickle.loads(pickle.dumps(d))
    back.__setstate__(old)
    assert list(back.feature_names_in_) == list(d.feature_names_in_) and back.n_features_in_ == 6
    A = F.drop(columns=["platform", "user_id"]).head(5).to_numpy()
    np.testing.assert_array_equal(back.anomaly_score(A), d.anomaly_score(F.head(5)))
    # without change features an old state keeps its names
    plain = AnomalyDetector(n_estimators=20).fit(F)
    st = plain.__getstate__()
    del st["n_features_in_"]
    again = pickle.loads(pickle.dumps(plain))
    again.__setstate__(st)
    assert list(again.feature_names_in_) == list(plain.feature_names_in_)


def test_text_values_name_column_rows_and_value(det) -> None:
    F = _frame().head(5)
    X = F.assign(refund_rate=F["refund_rate"].astype(object))
    X.loc[2, "refund_rate"] = "abc"
    for call in (det.anomaly_score, det.reason_codes, det.score_frame, det.contributions):
        with pytest.raises(ModelInputError, match=r"column 'refund_rate' has 1 value\(s\) that are not numbers, "
                                                  r"e\.g\. rows \[2\] \(user_id \['u2'\]\): 'abc'"):
            call(X)
    with pytest.raises(ModelInputError, match=r"'refund_rate'.*'abc'"):
        AnomalyDetector().fit(pd.concat([_frame(), X], ignore_index=True))
    A = X.drop(columns=["platform", "user_id"]).to_numpy()
    with pytest.raises(ModelInputError, match=r"'refund_rate'.*rows \[2\].*'abc'"):
        det.anomaly_score(A)
    # numbers held as text are read as numbers; unused text columns are ignored
    Y = F.assign(refund_rate=F["refund_rate"].astype(str), note="free text")
    np.testing.assert_allclose(det.anomaly_score(Y), det.anomaly_score(F))


def test_empty_frames_give_empty_outputs(det) -> None:
    E = _frame().iloc[:0]
    assert det.anomaly_score(E).shape == (0,)
    assert det.predict(E).shape == (0,)
    assert det.contributions(E).shape == (0, len(det.features_))
    assert det.reason_codes(E) == []
    assert len(det.score_frame(E)) == 0
    assert det.anomaly_score(np.empty((0, 6))).shape == (0,)
