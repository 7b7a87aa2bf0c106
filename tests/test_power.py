"""Purchasing power: point-in-time inputs (no leakage), SpendForecaster, SpendTier, metrics, save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buyerscore.artifacts import data_hash, load_model, save_model
from buyerscore.exceptions import ModelInputError, NotFittedError
from buyerscore.models.purchasing_power import (
    SpendForecaster,
    SpendTier,
    daily_sequences,
    power_features,
    rfm_summary,
    spend_labels,
)
from buyerscore.models.purchasing_power.metrics import (
    decile_calibration_error,
    normalized_gini,
    spend_report,
    top_decile_capture,
)

AS_OF = "2024-03-01"


def _events(n_users: int = 300, seed: int = 0) -> pd.DataFrame:
    """Synthetic shop: each user buys at a personal rate and value, Jan..Jun 2024."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        rate, value = rng.gamma(1.0, 0.05), rng.gamma(2.0, 20.0)
        t = pd.Timestamp("2024-01-01") + pd.Timedelta(days=float(rng.uniform(0, 50)))
        rows.append((f"u{u}", t, "view", None))
        while t < pd.Timestamp("2024-06-30"):
            rows.append((f"u{u}", t, "purchase", round(float(rng.gamma(4.0, value / 4)), 2)))
            t += pd.Timedelta(days=float(rng.exponential(1 / max(rate, 1e-3))))
    df = pd.DataFrame(rows, columns=["user_id", "ts", "event_type", "amount"])
    df["platform"] = "shop"
    return df


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    from buyerscore.events.store import EventStore

    s = EventStore(tmp_path_factory.mktemp("power") / "shop.duckdb")
    s.ingest_frame(_events(), source="synthetic")
    yield s
    s.close()


@pytest.fixture(scope="module")
def frame(shop):
    F = power_features(shop.con, as_of=AS_OF)
    y = spend_labels(shop.con, as_of=AS_OF, horizon_days=60, users=F)["future_spend"].to_numpy()
    return F, y


# -- leakage ----------------------------------------------------------------------------------------
def test_inputs_ignore_events_after_as_of(shop):
    """Adding events after the cut-off changes no input; labels see only (as_of, as_of + horizon]."""
    from buyerscore.events.store import EventStore

    before = power_features(shop.con, as_of=AS_OF)
    seq = daily_sequences(shop.con, as_of=AS_OF)
    s2 = EventStore(":memory:")
    ev = _events()
    s2.ingest_frame(ev, source="a")
    late = pd.DataFrame({"user_id": ["u1", "new"], "ts": ["2024-03-01 00:00:01", "2024-04-01"],
                         "event_type": ["purchase", "purchase"], "amount": [1e6, 5.0], "platform": "shop"})
    s2.ingest_frame(late, source="late")
    after = power_features(s2.con, as_of=AS_OF)
    pd.testing.assert_frame_equal(before.reset_index(drop=True), after.reset_index(drop=True))
    assert seq["day"].max() <= pd.Timestamp(AS_OF)
    lab = spend_labels(s2.con, as_of=AS_OF, horizon_days=1, users=after).set_index("user_id")
    assert lab.loc["u1", "future_spend"] >= 1e6  # the event one second after the cut-off is a label
    assert "new" not in lab.index  # users first seen after the cut-off are not scored
    s2.close()


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=0, max_value=120))
def test_labels_strictly_after_cut_off(days):
    """Property: an event exactly at as_of is a feature, never a label; one just after is a label."""
    from buyerscore.events.store import EventStore

    cut = pd.Timestamp("2024-01-01") + pd.Timedelta(days=days)
    ev = pd.DataFrame({"user_id": ["a", "a", "a"], "ts": [cut - pd.Timedelta(days=3), cut, cut + pd.Timedelta(seconds=1)],
                       "event_type": "purchase", "amount": [1.0, 10.0, 100.0], "platform": "p"})
    with EventStore(":memory:") as s:
        s.ingest_frame(ev, source="x")
        f = power_features(s.con, as_of=cut)
        lab = spend_labels(s.con, as_of=cut, horizon_days=1)
    assert f["net_spend"].tolist() == [11.0]
    assert lab["future_spend"].tolist() == [100.0]


def test_as_of_is_required(shop):
    with pytest.raises(TypeError):
        power_features(shop.con)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        rfm_summary(shop.con, as_of=None)


# -- forecaster -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(frame):
    F, y = frame
    return SpendForecaster(horizon_days=60, n_estimators=60, learning_rate=0.05).fit(F, y)


def test_forecaster_non_negative_and_ranks(frame, fitted):
    F, y = frame
    p = fitted.predict(F)
    assert (p >= 0).all() and np.isfinite(p).all()
    assert fitted.method_ in ("tweedie", "two_part", "blend", "rate")
    assert set(fitted.validation_scores_) >= {"tweedie", "two_part", "blend"}
    assert normalized_gini(y, p) > 0.5  # past rate is a strong signal in this shop
    assert "clv_expected_purchases" in fitted.feature_names_


@settings(max_examples=10, deadline=None)
@given(st.floats(min_value=-1e6, max_value=1e9), st.floats(min_value=0, max_value=1e6))
def test_forecaster_never_negative_on_extreme_inputs(fitted, frame, spend, days):
    F, _ = frame
    X = F.head(3).copy()
    X["net_spend"] = spend
    X["days_since_first"] = days
    assert (fitted.predict(X) >= 0).all()


def test_reason_codes_are_spend_lowering(frame, fitted):
    F, _ = frame
    reasons = fitted.reason_codes(F.head(5), k=3)
    contrib = fitted.contributions(F.head(5))
    assert len(reasons) == 5
    for i, row in enumerate(reasons):
        for r in row:
            assert r.contribution > 0 and contrib.iloc[i][r.feature] == pytest.approx(-r.contribution)
            assert r.text.endswith("lowers the expected spend")  # not the credit phrase "lowers the score"
    assert fitted.reason_codes(F.head(1), k=1, lang="zh")[0][0].text.endswith("降低了预期消费")


def test_save_load_round_trip(tmp_path, frame, fitted):
    F, _ = frame
    save_model(fitted, tmp_path / "m", kind="spend_forecaster", features=list(fitted.feature_names_in_),
               training_data_hash=data_hash(F), params=fitted.get_params(), metrics={}, as_of=AS_OF)
    m2, meta = load_model(tmp_path / "m")
    np.testing.assert_array_equal(m2.predict(F), fitted.predict(F))
    assert meta.as_of == AS_OF and meta.kind == "spend_forecaster"


def test_forecaster_errors(frame):
    F, y = frame
    with pytest.raises(NotFittedError):
        SpendForecaster().predict(F)
    with pytest.raises(ModelInputError, match=">= 0"):
        SpendForecaster(n_estimators=5).fit(F, -np.ones(len(F)))
    m = SpendForecaster(n_estimators=5, method="tweedie").fit(F, y)
    with pytest.raises(ModelInputError, match="lacks column"):
        m.predict(F.drop(columns=["net_spend"]))


@pytest.mark.parametrize("params,match", [
    ({"horizon_days": 0}, "'horizon_days' parameter of SpendForecaster"),
    ({"method": "magic"}, "'method' parameter"),
    ({"validation_fraction": 1.0}, "'validation_fraction' parameter"),
    ({"n_estimators": 0}, "'n_estimators' parameter"),
    ({"offset_base": "mean"}, "'offset_base' parameter"),
])
def test_forecaster_invalid_parameters(frame, params, match):
    F, y = frame
    with pytest.raises(ValueError, match=match):
        SpendForecaster(**params).fit(F, y)


# -- earlier cut-offs (rolling windows) -------------------------------------------------------------
def test_training_windows_use_no_label_after_as_of(shop):
    """Rows from earlier cut-offs are identical whether or not the store holds events after as_of, and
    every label window ends at or before as_of."""
    from buyerscore.events.store import EventStore
    from buyerscore.models.purchasing_power.inputs import training_windows

    X, y, h = training_windows(shop.con, as_of=AS_OF, horizon_days=60, n_windows=3, step_days=14)
    cut = pd.Timestamp(AS_OF)
    assert sorted(X["cutoff"].unique()) == [cut - pd.Timedelta(days=d) for d in (42, 28, 14)]
    assert ((X["cutoff"] + pd.to_timedelta(h, unit="D")) <= cut).all()
    assert set(h) == {14.0, 28.0, 42.0} and len(X) == len(y) == len(h)
    ev = _events()
    with EventStore(":memory:") as s2:
        s2.ingest_frame(ev[pd.to_datetime(ev["ts"]) <= cut], source="past")
        X2, y2, h2 = training_windows(s2.con, as_of=AS_OF, horizon_days=60, n_windows=3, step_days=14)
    pd.testing.assert_frame_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(h, h2)
    # a window's label is the spend_labels of its cut-off over its own (shorter) horizon
    first = X["cutoff"] == cut - pd.Timedelta(days=14)
    lab = spend_labels(shop.con, as_of=cut - pd.Timedelta(days=14), horizon_days=14, users=X[first])
    np.testing.assert_allclose(y[first.to_numpy()], lab["future_spend"].to_numpy())


def test_training_windows_errors(shop):
    from buyerscore.models.purchasing_power.inputs import training_windows

    with pytest.raises(ValueError, match="step_days must be an int >= 1"):
        training_windows(shop.con, as_of=AS_OF, horizon_days=60, step_days=0)
    with pytest.raises(ValueError, match="no training window fits"):
        training_windows(shop.con, as_of="2024-01-10", horizon_days=60, n_windows=2, step_days=30)


def test_fit_windows_predicts_at_the_real_cut_off(shop, frame):
    """fit_windows trains on earlier cut-offs only and still ranks the real cut-off's future spend."""
    F, y = frame
    m = SpendForecaster(horizon_days=60, n_estimators=60, learning_rate=0.05)
    m.fit_windows(shop.con, as_of=AS_OF, n_windows=3, step_days=14, behaviour=False)
    assert len(m.training_cutoffs_) == 3 and "label_horizon_days" in m.feature_names_
    p = m.predict(F)
    assert (p >= 0).all() and normalized_gini(y, p) > 0.5
    with pytest.raises(ModelInputError, match="label_horizon must be > 0"):
        SpendForecaster(n_estimators=5).fit(F, y, label_horizon=np.zeros(len(F)))


def test_blend_is_mean_of_its_parts(frame):
    F, y = frame
    kw = {"horizon_days": 60, "n_estimators": 30, "learning_rate": 0.05}
    b = SpendForecaster(method="blend", **kw).fit(F, y)
    t = SpendForecaster(method="tweedie", **kw).fit(F, y)
    tp = SpendForecaster(method="two_part", **kw).fit(F, y)
    # each model has its own balance scale: the blend is the scaled mean of its unscaled parts
    parts = 0.5 * (t.predict(F) / t.balance_scale_ + tp.predict(F) / tp.balance_scale_)
    np.testing.assert_allclose(b.predict(F), b.balance_scale_ * parts, rtol=1e-9)
    assert b.contributions(F.head(3)).shape == (3, len(b.feature_names_))


@pytest.mark.parametrize("method", ["tweedie", "two_part", "blend", "rate"])
def test_balance_property(frame, method):
    """Forecasts sum to the training spend; the correction is one scalar, so the ranking is unchanged."""
    F, y = frame
    kw = {"horizon_days": 60, "n_estimators": 30, "learning_rate": 0.05, "method": method}
    on = SpendForecaster(**kw).fit(F, y)
    off = SpendForecaster(**kw, balance=False).fit(F, y)
    assert off.balance_scale_ == 1.0 and on.balance_scale_ != 1.0
    np.testing.assert_allclose(on.predict(F).sum(), y.sum(), rtol=1e-9)
    np.testing.assert_allclose(on.predict(F), on.balance_scale_ * off.predict(F), rtol=1e-12)
    with pytest.raises(ValueError, match="'balance' parameter of SpendForecaster must be True or False"):
        SpendForecaster(balance="yes").fit(F, y)


def test_balance_uses_the_real_horizon_rows(frame):
    """With rows from several cut-offs, the forecasts at the real horizon sum to those rows' spend."""
    F, y = frame
    short = 0.3 * y  # the same customers over a 30-day window
    m = SpendForecaster(horizon_days=60, n_estimators=30, learning_rate=0.05, method="tweedie").fit(
        pd.concat([F, F], ignore_index=True), np.concatenate([y, short]),
        label_horizon=np.r_[np.full(len(F), 60.0), np.full(len(F), 30.0)])
    np.testing.assert_allclose(m.predict(F).sum(), y.sum(), rtol=1e-9)


# -- tiers ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,thresholds", [("quantile", (0.5, 0.9)), ("amount", (10.0, 200.0))])
def test_tier_probabilities_sum_to_one(frame, kind, thresholds):
    F, y = frame
    t = SpendTier(kind=kind, thresholds=thresholds, n_estimators=30).fit(F, y)
    p = t.predict_proba(F)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    assert (p >= 0).all()
    assert set(t.predict(F)) <= {"low", "mid", "high"}
    if kind == "amount":
        assert t.cut_points_ == thresholds
    assert list(t.tiers_of([0, 1e9])) == ["low", "high"]


def test_tier_rejects_empty_tier(frame):
    F, y = frame
    with pytest.raises(ModelInputError, match="every tier needs"):
        SpendTier(kind="amount", thresholds=(1e9, 2e9)).fit(F, y)


def test_tier_decision_changes_predict_not_probabilities(frame):
    F, y = frame
    a = SpendTier(n_estimators=30, decision="argmax").fit(F, y)
    b = SpendTier(n_estimators=30).fit(F, y)  # decision="macro_f1"
    np.testing.assert_allclose(a.predict_proba(F), b.predict_proba(F), atol=1e-12)
    assert (a.class_weights_ == 1.0).all() and b.class_weights_[0] == 1.0
    assert (a.predict(F) == a.classes_[a.predict_proba(F).argmax(axis=1)]).all()
    assert (b.predict(F) == b.classes_[(b.predict_proba(F) * b.class_weights_).argmax(axis=1)]).all()
    with pytest.raises(ValueError, match="decision"):
        SpendTier(decision="f1").fit(F, y)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(20, 300))
def test_macro_f1_weights_never_lose_to_argmax(seed, n):
    """The chosen weights' macro-F1 (checked with scikit-learn's f1_score) is at least argmax's."""
    from sklearn.metrics import f1_score

    from buyerscore.models.purchasing_power.forecaster import macro_f1_weights

    rng = np.random.default_rng(seed)
    classes = np.array(["high", "low", "mid"])
    P = rng.dirichlet(np.ones(3), n)
    labels = rng.choice(classes, n, p=[0.1, 0.5, 0.4])
    w = macro_f1_weights(P, labels, classes)
    f_w = f1_score(labels, classes[(P * w).argmax(axis=1)], average="macro", labels=classes, zero_division=0)
    f_0 = f1_score(labels, classes[P.argmax(axis=1)], average="macro", labels=classes, zero_division=0)
    assert f_w >= f_0 - 1e-12 and w[0] == 1.0


def test_macro_f1_weights_name_the_small_tier():
    """A top tier that is never the most probable (P(high) 0.4 against 0.6) is named once weighted."""
    from buyerscore.models.purchasing_power.forecaster import macro_f1_weights

    classes = np.array(["high", "low"])
    P = np.array([[0.4, 0.6]] * 10 + [[0.1, 0.9]] * 90)
    labels = np.array(["high"] * 10 + ["low"] * 90)
    w = macro_f1_weights(P, labels, classes)
    assert (classes[(P * w).argmax(axis=1)] == labels).all()  # macro-F1 1.0; argmax gave 0.47


# -- metrics ----------------------------------------------------------------------------------------
def test_metrics_known_answers():
    y = np.array([0, 0, 0, 0, 0, 0, 0, 0, 10, 90.0])
    assert normalized_gini(y, y) == pytest.approx(1.0)
    assert top_decile_capture(y, y) == pytest.approx(0.9)
    # a constant prediction keeps the input order: Gini of that order
    assert normalized_gini(y, np.ones(10)) == pytest.approx(normalized_gini(y, np.arange(10)[::-1]))
    assert decile_calibration_error(y, y) == 0.0
    r = spend_report(y, y)
    assert r["ngini"] == 1.0 and r["mae"] == 0.0 and r["tier_macro_f1"] == 1.0


def test_sequence_module_imports_without_torch():
    import subprocess
    import sys

    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'torch' or name.startswith('torch.'):\n"
            "            raise ImportError('no torch here')\n"
            "sys.meta_path.insert(0, Block())\n"
            "import pandas as pd\n"
            "from buyerscore.models.purchasing_power import SequenceSpendModel\n"
            "try:\n"
            "    SequenceSpendModel().fit(pd.DataFrame({'platform': ['p'], 'user_id': ['u']}), [1.0],\n"
            "                             sequences=pd.DataFrame())\n"
            "except ImportError as e:\n"
            "    print('OK', e)\n")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert "OK" in out.stdout and "buyerscore[deep]" in out.stdout, out.stderr[-500:]


def test_cli_train_and_score(tmp_path):
    from typer.testing import CliRunner

    from buyerscore.cli import app
    from buyerscore.events.store import EventStore

    db = str(tmp_path / "cli.duckdb")
    with EventStore(db) as s:
        s.ingest_frame(_events(200, seed=5), source="synthetic")
    runner = CliRunner()
    r = runner.invoke(app, ["power", "train", "--db", db, "--cutoff", AS_OF, "--horizon", "60",
                            "--out", str(tmp_path / "m"), "--json"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["power", "score", "--model", str(tmp_path / "m"), "--db", db, "--cutoff", "2024-04-01",
                            "--out", str(tmp_path / "s.parquet")])
    assert r.exit_code == 0, r.output
    s = pd.read_parquet(tmp_path / "s.parquet")
    assert (s["expected_spend"] >= 0).all()
    np.testing.assert_allclose(s[["p_low", "p_mid", "p_high"]].sum(axis=1), 1.0)
    r = runner.invoke(app, ["power", "score", "--model", str(tmp_path / "m"), "--db", db,
                            "--out", str(tmp_path / "x.parquet")])
    assert r.exit_code == 2 and "--cutoff is required" in r.output
    # the same scores from the table of 'power features'; the generic feature table is refused, naming columns
    r = runner.invoke(app, ["power", "features", "--db", db, "--cutoff", "2024-04-01", "--out", str(tmp_path / "pf.parquet")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["power", "score", "--model", str(tmp_path / "m"), "--features", str(tmp_path / "pf.parquet"),
                            "--out", str(tmp_path / "s2.parquet")])
    assert r.exit_code == 0, r.output
    s2 = pd.read_parquet(tmp_path / "s2.parquet")
    np.testing.assert_allclose(s2["expected_spend"], s["expected_spend"], rtol=1e-12)
    r = runner.invoke(app, ["features", "--db", db, "--cutoff", "2024-04-01", "--out", str(tmp_path / "gf.parquet")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["power", "score", "--model", str(tmp_path / "m"), "--features", str(tmp_path / "gf.parquet"),
                            "--out", str(tmp_path / "s3.parquet")])
    assert r.exit_code == 2 and "buyerscore power features" in " ".join(r.output.split())


def test_compiled_trees_give_the_librarys_predictions(frame, monkeypatch):
    """SpendForecaster (each method) and SpendTier predict through buyerscore.models.trees; switched off
    (BUYERSCORE_COMPILED_TREES=0) they use LightGBM / scikit-learn: the same numbers."""
    from buyerscore.models import trees

    if not trees.enabled():
        pytest.skip("numba not installed")
    F, y = frame
    kw = {"horizon_days": 60, "n_estimators": 30, "learning_rate": 0.05}
    models = [SpendForecaster(method=m, **kw).fit(F, y) for m in ("tweedie", "two_part", "blend")]
    tier = SpendTier(n_estimators=30).fit(F, y)
    fast = [m.predict(F) for m in models] + [tier.predict_proba(F)]
    monkeypatch.setenv("BUYERSCORE_COMPILED_TREES", "0")
    slow = [m.predict(F) for m in models] + [tier.predict_proba(F)]
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(fast[-1], slow[-1])  # tier: raw scores exact, same calibrators
