"""Purchasing-power models on awkward inputs: no spend in the label window, few buyers, bad labels,
empty frames, non-finite and missing features, duplicated users."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from test_power import _events  # the same synthetic shop (tests/ is on sys.path under pytest)

from buyerscore.exceptions import ModelInputError
from buyerscore.models.purchasing_power import SpendForecaster, SpendTier, power_features, spend_labels

AS_OF = "2024-03-01"
LOGGER = "buyerscore.models.purchasing_power.forecaster"


@pytest.fixture(scope="module")
def frame():
    from buyerscore.events.store import EventStore

    with EventStore(":memory:") as s:
        s.ingest_frame(_events(200), source="synthetic")
        F = power_features(s.con, as_of=AS_OF)
        y = spend_labels(s.con, as_of=AS_OF, horizon_days=60, users=F)["future_spend"].to_numpy()
    return F, y


@pytest.fixture(scope="module")
def fitted(frame):
    F, y = frame
    return {m: SpendForecaster(horizon_days=60, n_estimators=20, method=m).fit(F, y) for m in ("tweedie", "rate")}


# -- labels -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["auto", "tweedie"])
def test_all_zero_labels_name_the_empty_label_window(frame, method):
    F, _ = frame
    with pytest.raises(ModelInputError, match=r"no spend in the label window.*as_of"):
        SpendForecaster(n_estimators=5, method=method).fit(F, np.zeros(len(F)))


@pytest.mark.parametrize("random_state", [0, 3, 7])
def test_few_buyers_keep_buyers_in_the_training_part(frame, random_state):
    """2 buyers in 102 rows, placed where the old (unstratified) split held both out for validation."""
    F, _ = frame
    X = F.iloc[:102].reset_index(drop=True)
    old_val = np.random.default_rng(random_state).random(len(X)) < 0.25
    y = np.zeros(len(X))
    y[np.flatnonzero(old_val)[:2]] = [10.0, 20.0]
    m = SpendForecaster(n_estimators=10, random_state=random_state).fit(X, y)
    assert m.method_ in m.validation_scores_
    p = m.predict(X)
    assert np.isfinite(p).all() and (p >= 0).all()
    val = m._validation_rows(y, None)
    assert (y[~val] > 0).any() and (y[~val] == 0).any()


def test_validation_split_keeps_buyers_for_training(frame):
    """The usual split is the plain random draw (the benchmark's method choices rest on it); only when
    it would leave the training part without buyers are buyers and non-buyers drawn separately."""
    _, y = frame
    m = SpendForecaster(validation_fraction=0.25, random_state=1)
    val = m._validation_rows(y, None)
    want = np.random.default_rng(1).random(len(y)) < 0.25
    np.testing.assert_array_equal(val, want)
    h = np.where(np.arange(len(y)) % 2 == 0, 60.0, 30.0)  # only the longest label window is held out
    assert not m._validation_rows(y, h)[h < 60].any()
    # two buyers that the plain draw would both hold out
    y2 = np.zeros(102)
    for seed in range(200):
        d = np.random.default_rng(seed).random(102) < 0.25
        if d[:2].all():
            break
    y2[:2] = 5.0
    m2 = SpendForecaster(validation_fraction=0.25, random_state=seed)
    v2 = m2._validation_rows(y2, None)
    assert (~v2 & (y2 > 0)).any() and (~v2 & (y2 == 0)).any()
    assert v2[y2 == 0].sum() == round(0.25 * 100)


def test_a_candidate_that_cannot_be_fitted_is_skipped(frame, monkeypatch, caplog):
    from lightgbm.basic import LightGBMError

    F, y = frame
    real = SpendForecaster._fit_candidate

    def flaky(self, method, X, yy, off):
        if method == "tweedie":
            raise LightGBMError("[tweedie]: sum of labels is zero")
        return real(self, method, X, yy, off)

    monkeypatch.setattr(SpendForecaster, "_fit_candidate", flaky)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        m = SpendForecaster(n_estimators=10).fit(F, y)
    assert "tweedie" not in m.validation_scores_ and m.method_ in ("two_part", "rate")
    assert "candidate 'tweedie' could not be fitted" in caplog.text


@pytest.mark.parametrize("kind,thresholds", [("amount", (1.0, 100.0)), ("quantile", (0.5, 0.9))])
def test_tier_rejects_missing_labels_naming_rows_and_values(frame, kind, thresholds):
    F, y = frame
    bad = y.copy()
    bad[[3, 7]] = np.nan
    with pytest.raises(ModelInputError, match=r"SpendTier: y must be finite and >= 0.*rows \[3, 7\].*nan"):
        SpendTier(kind=kind, thresholds=thresholds, n_estimators=5).fit(F, bad)
    bad[[3, 7]] = [np.inf, -1.0]
    with pytest.raises(ModelInputError, match=r"\[inf, -1.0\]"):
        SpendTier(kind=kind, thresholds=thresholds, n_estimators=5).fit(F, bad)


# -- empty frames -----------------------------------------------------------------------------------
def test_empty_frames_give_empty_outputs(frame, fitted):
    F, y = frame
    tier = SpendTier(n_estimators=10).fit(F, y)
    assert tier.predict_proba(F.iloc[:0]).shape == (0, 3)
    assert tier.predict(F.iloc[:0]).shape == (0,)
    for m in [*fitted.values(), SpendForecaster(n_estimators=10, method="two_part").fit(F, y)]:
        assert m.predict(F.iloc[:0]).shape == (0,)
        assert m.contributions(F.iloc[:0]).shape == (0, len(m.feature_names_))
        assert m.reason_codes(F.iloc[:0]) == []
    with pytest.raises(ModelInputError, match=r"at least 2 rows .*n_samples=0"):
        SpendForecaster().fit(F.iloc[:0], y[:0])


# -- non-finite and missing features ----------------------------------------------------------------
@pytest.mark.parametrize("method", ["tweedie", "rate"])
def test_infinite_spend_is_never_forecast_as_zero(fitted, frame, method, caplog):
    F, _ = frame
    X = pd.concat([F.head(1)] * 4, ignore_index=True)
    X["net_spend"] = [1e3, 1e300, np.inf, 1e308]
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        p = fitted[method].predict(X)
    assert np.isfinite(p).all() and (p > 0).all()
    assert p[0] < p[1] <= p[2] and p[3] <= p[2] == np.finfo(float).max  # monotone; overflow saturates
    assert "overflowed" in caplog.text and "rows [2]" in caplog.text


def test_missing_rfm_at_predict_sets_only_that_rows_clv_features(fitted, frame, caplog):
    F, _ = frame
    m = fitted["tweedie"]
    assert m.clv_ is not None
    X = F.head(5).copy()
    clean = m.predict(X)
    X.loc[X.index[2], "frequency"] = np.nan
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        p = m.predict(X)
    assert "clv_* features set to NaN" in caplog.text and "rows [2]" in caplog.text
    np.testing.assert_array_equal(np.delete(p, 2), np.delete(clean, 2))  # the batch is not failed
    assert np.isfinite(p[2]) and p[2] >= 0
    _, Xa = m._prepare(X)
    clv = [c for c in Xa.columns if c.startswith("clv_")]
    assert Xa.iloc[2][clv].isna().all() and Xa.drop(index=X.index[2])[clv].notna().all().all()
    caplog.clear()  # reason codes check the input once: one warning, not one per internal step
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        m.reason_codes(X, k=2)
    assert caplog.text.count("clv_* features set to NaN") == 1


def test_missing_rfm_at_fit_keeps_the_stacked_clv(frame, caplog):
    F, y = frame
    G = F.copy()
    G.loc[5, "frequency"] = np.nan
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        m = SpendForecaster(n_estimators=10, method="tweedie").fit(G, y)
    assert m.clv_ is not None and "clv_expected_purchases" in m.feature_names_
    assert "rows [5]" in caplog.text and "user_id" in caplog.text


def test_clv_switched_off_is_a_warning(frame, caplog):
    F, y = frame
    G = F.assign(frequency=0.0, recency=0.0, monetary_value=0.0)  # no repeat buyer: no Gamma-Gamma fit
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        m = SpendForecaster(n_estimators=10, method="tweedie").fit(G, y)
    assert m.clv_ is None
    assert any(r.levelno == logging.WARNING and "switched off" in r.getMessage() for r in caplog.records)


# -- SequenceSpendModel ------------------------------------------------------------------------------
def _sequences(n: int) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    from buyerscore.models.purchasing_power.sequence import STEP_COLS

    rng = np.random.default_rng(0)
    seq = pd.DataFrame({"platform": "s", "user_id": [f"u{i // 2}" for i in range(2 * n)],
                        "day": pd.Timestamp("2024-06-01") - pd.to_timedelta(np.arange(2 * n) % 2 * 10, unit="D")})
    for c in STEP_COLS:
        seq[c] = rng.gamma(1.0, 5.0, len(seq))
    X = pd.DataFrame({"platform": "s", "user_id": [f"u{i}" for i in range(n)]})
    return X, seq.sort_values(["user_id", "day"]), rng.gamma(1.0, 10.0, n) * (rng.random(n) < 0.5)


def test_sequence_model_names_duplicated_users_and_refuses_empty_fits():
    pytest.importorskip("torch")
    from buyerscore.models.purchasing_power.sequence import SequenceSpendModel

    X, seq, y = _sequences(20)
    dup = pd.concat([X, X.iloc[[3]]], ignore_index=True)
    with pytest.raises(ModelInputError, match=r"more than once.*\('s', 'u3'\)"):
        SequenceSpendModel(epochs=1, hidden_size=4).fit(dup, np.r_[y, y[3]], sequences=seq)
    m = SequenceSpendModel(epochs=1, hidden_size=4).fit(X, y, sequences=seq)
    with pytest.raises(ModelInputError, match=r"more than once.*\('s', 'u3'\)"):
        m.predict(dup, sequences=seq)
    assert m.predict(X.iloc[:0], sequences=seq).shape == (0,)
    with pytest.raises(ModelInputError, match="at least one user"):
        SequenceSpendModel(epochs=1).fit(X.iloc[:0], y[:0], sequences=seq)
    with pytest.raises(ModelInputError, match="None of the 20 users"):
        SequenceSpendModel(epochs=1).fit(X, y, sequences=seq.iloc[:0])
    with pytest.raises(ModelInputError, match=r"rows \[1\] with y = \[nan\]"):
        SequenceSpendModel(epochs=1).fit(X, np.r_[y[:1], np.nan, y[2:]], sequences=seq)


def test_contributions_in_threads_equal_one_thread(frame, fitted):
    """From 256 rows the SHAP contributions run in n_jobs threads (the slow part of 'power score --reasons');
    the numbers are the one-thread ones, also after set_params on a fitted model."""
    F, _ = frame
    X = pd.concat([F] * (300 // len(F) + 1), ignore_index=True)  # >= 256 rows
    assert len(X) >= 256
    m = fitted["tweedie"]
    one = m.set_params(n_jobs=1).contributions(X)
    two = m.set_params(n_jobs=2).contributions(X)
    m.set_params(n_jobs=1)
    pd.testing.assert_frame_equal(one, two, check_exact=False, rtol=1e-12, atol=1e-12)
    assert one.abs().to_numpy().sum() > 0


def test_power_features_are_rounded_like_the_behaviour_features(frame):
    """power_features rounds to 12 significant digits as build_features does: DuckDB's parallel sums add in
    a varying order, and on CDNOW 254 of the 966,370 values differed in the last bits between two runs."""
    from buyerscore.features.build import round_features

    F, _ = frame
    assert round_features(F.copy()).equals(F)  # already rounded (unrounded sums such as 25.400000000000002 fail)
