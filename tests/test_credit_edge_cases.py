"""Credit models on awkward inputs: infinite and huge values, all-missing columns, numpy integer
parameters, unusable frames; and isotonic calibration that never says 0 or 1."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import GridSearchCV, train_test_split

from buyerscore.datasets import read_applicants
from buyerscore.exceptions import ModelInputError
from buyerscore.models import metrics as mt
from buyerscore.models import trees
from buyerscore.models.base import CreditModelBase
from buyerscore.models.credit import (
    CreditEnsemble,
    CreditForest,
    CreditGBM,
    CreditScorecard,
    split_applicants,
)
from buyerscore.models.credit.gbm import _Calibrator, _shrunk_blocks


def _data(n: int = 1500, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    util = rng.random(n) * 1.2
    late = rng.poisson(0.3, n).astype(float)
    income = rng.lognormal(8, 0.5, n)
    region = rng.choice(["north", "south", "east"], n)
    # a bureau score that says little, but its absence is risky: LightGBM splits it as "bureau <= inf"
    # (NaN apart from every value), which dump_model prints as 1e300
    no_bureau = rng.random(n) < 0.2
    logit = (-2.5 + 2.5 * util + 0.8 * np.minimum(late, 5) - 0.4 * (np.log(income) - 8) + (region == "south") * 0.5
             + 3.0 * no_bureau)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    income[rng.random(n) < 0.15] = np.nan
    bureau = np.where(no_bureau, np.nan, rng.normal(size=n))
    return pd.DataFrame({"util": util, "late": late, "income": income, "region": region, "bureau": bureau}), y


FACTORIES = {
    "scorecard": lambda: CreditScorecard(),
    "scorecard_exact": lambda: CreditScorecard(fast_binning=False),
    "gbm": lambda: CreditGBM(n_estimators=200, learning_rate=0.1, early_stopping_rounds=20, n_folds=2),
    "forest": lambda: CreditForest(n_estimators=30, min_samples_leaf=5),
    "ensemble": lambda: CreditEnsemble(members=[
        ("gbm", CreditGBM(n_estimators=100, learning_rate=0.1, early_stopping_rounds=20)),
        ("forest", CreditForest(n_estimators=30, min_samples_leaf=5)), ("card", CreditScorecard())]),
}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    return _data()


@pytest.fixture(scope="module")
def fitted(data: tuple[pd.DataFrame, np.ndarray]) -> dict[str, CreditModelBase]:
    X, y = data
    return {k: f().fit(X, y) for k, f in FACTORIES.items() if k != "scorecard_exact"}


# ---------------------------------------------------------------- infinite and huge values
@pytest.mark.parametrize("which", [k for k in FACTORIES])
def test_infinity_in_training_data_is_refused_naming_column_rows_and_fix(which: str, data) -> None:  # type: ignore[no-untyped-def]
    X, y = data
    Xi = X.copy()
    Xi.loc[Xi.index[[3, 7]], "util"] = [np.inf, -np.inf]
    with pytest.raises(ModelInputError, match=r"column 'util' holds 2 infinite value\(s\), e\.g\. inf, -inf at "
                                              r"row\(s\) 4, 8 \(1 = the first row\)\. Replace them with NaN"):
        FACTORIES[which]().fit(Xi, y)


@pytest.mark.parametrize("which", ["scorecard", "gbm", "forest", "ensemble"])
@pytest.mark.parametrize("n", [1, 5, 40])  # the forest walks <= 32 rows itself and hands more to scikit-learn
def test_infinity_when_scoring_counts_as_beyond_every_training_value(which: str, n: int, fitted, data) -> None:  # type: ignore[no-untyped-def]
    X, _ = data
    model = fitted[which]
    Z = X.iloc[:n].copy()
    pds = {}
    for v in (np.inf, 1e300, 5e300, 1e39, -np.inf, -1e300, -1e39):
        Z.iloc[0, Z.columns.get_loc("income")] = v
        p = model.predict_proba(Z)[:, 1]
        assert np.isfinite(p).all()
        assert model.score_record(Z.iloc[0].to_dict())["pd"] == pytest.approx(p[0], rel=1e-12, abs=0)
        pds[v] = p[0]
    assert pds[np.inf] == pds[1e300] == pds[5e300] == pds[1e39]
    assert pds[-np.inf] == pds[-1e300] == pds[-1e39]


@pytest.mark.parametrize("which", ["scorecard", "scorecard_exact", "gbm", "forest"])
def test_huge_finite_training_values_are_accepted(which: str, data) -> None:  # type: ignore[no-untyped-def]
    """Beyond float32's 3.4e38 (optbinning's and scikit-learn's trees work in float32) and beyond 1e300."""
    X, y = data
    Xh = X.copy()
    Xh.loc[Xh.index[[3, 7, 9]], "income"] = [1e39, 1e305, -1e300]
    model = FACTORIES[which]().fit(Xh, y)
    p = model.predict_proba(Xh.iloc[:40])[:, 1]
    assert np.isfinite(p).all()
    for i in (3, 7, 9):
        assert model.score_record(Xh.iloc[i].to_dict())["pd"] == pytest.approx(p[i], rel=1e-12, abs=0)


def test_forest_scores_inf_the_same_in_both_paths(fitted, data) -> None:  # type: ignore[no-untyped-def]
    """Up to 32 rows the forest walks its trees itself; beyond, scikit-learn (which rejects inf) scores."""
    X, _ = data
    forest = fitted["forest"]
    Z = X.iloc[:40].copy()
    Z.iloc[[0, 1, 2], Z.columns.get_loc("util")] = [np.inf, -np.inf, 1e39]
    np.testing.assert_allclose(forest.predict_proba(Z)[:, 1][:3], forest.predict_proba(Z.iloc[:3])[:, 1], rtol=1e-12)


@pytest.mark.skipif(not trees.enabled(), reason="numba not installed: the compiled path is off")
def test_gbm_compiled_scorer_routes_extreme_values_as_lightgbm(fitted, data, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The boosters split NaN from every bureau value ("bureau <= inf", dumped as 1e300): +-inf and
    5e300 must go with the values there, as in LightGBM's own predict."""
    X, _ = data
    gbm = fitted["gbm"]
    assert any("inf" in line for b in gbm.boosters_ for line in b.model_to_string().splitlines()
               if line.startswith("threshold="))
    vals = [np.inf, -np.inf, 5e300, 1e300, -5e300, np.nan, 1e-40, 1.7976931348623157e308]
    Z = pd.concat([X.iloc[:8]] * 3, ignore_index=True)
    for k, col in enumerate(["bureau", "income", "util"]):
        Z.loc[8 * k: 8 * k + 7, col] = vals
    one = [gbm.predict_proba(Z.iloc[[i]])[0, 1] for i in range(len(Z))]  # the few-row walk
    block = gbm.predict_proba(Z)[:, 1]                                     # 64-row blocks
    monkeypatch.setenv("BUYERSCORE_COMPILED_TREES", "0")
    lib = gbm.predict_proba(Z)[:, 1]
    np.testing.assert_array_equal(block, lib)
    np.testing.assert_array_equal(one, lib)


# ---------------------------------------------------------------- isotonic calibration
def test_shrunk_isotonic_blocks_stay_inside_0_1_and_strictly_increasing() -> None:
    rng = np.random.default_rng(1)
    m = np.sort(rng.normal(size=400))
    y = (rng.random(400) < 1 / (1 + np.exp(-3 * m))).astype(int)
    y[:30], y[-30:] = 0, 1  # pure tails: plain isotonic regression gives blocks at exactly 0 and 1
    cal = _Calibrator.fit("isotonic", m, y)
    assert 0 < cal.ys.min() and cal.ys.max() < 1
    assert (np.diff(cal.ys) > 0).all() and (np.diff(cal.xs) > 0).all()
    q = cal(m)
    # between the outer knots the map is strictly increasing: ranking kept
    inside = (m > cal.xs[0]) & (m < cal.xs[-1])
    assert (np.diff(q[inside]) > 0).all()


def test_shrinking_that_reverses_two_blocks_pools_them() -> None:
    # a small pure-good block (2 rows) shrinks up past its larger neighbour at 5 %: they are pooled
    xs, ys = _shrunk_blocks(np.array([2, 100, 50]), np.array([-4.0, 0.0, 50.0]), np.array([0.0, 5.0, 30.0]))
    p0 = 35 / 152
    assert len(xs) == 2 and xs[0] == pytest.approx(-4.0 / 102)
    assert ys[0] == pytest.approx((5 + 2 * p0) / (102 + 2)) and ys[1] == pytest.approx((30 + p0) / 51)


@pytest.mark.parametrize("cls", [CreditGBM, CreditForest])
def test_isotonic_pds_of_new_applicants_are_never_0_or_1(cls, data_dir) -> None:  # type: ignore[no-untyped-def]
    """German credit 70/30: plain isotonic gave 16 of 300 held-out GBM PDs of exactly 0 (clipped to 1e-9)."""
    X, y = split_applicants(read_applicants("german_credit", data_dir))
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    kw = {"n_estimators": 200} if cls is CreditForest else {}
    m = cls(calibration="isotonic", **kw).fit(Xtr, ytr)
    p = m.predict_proba(Xte)[:, 1]
    assert p.min() > 1e-3 and p.max() < 1 - 1e-3
    assert np.nanmin(m.oof_proba_) > 0 and np.nanmax(m.oof_proba_) < 1
    assert mt.auc(yte, p) > 0.75


# ---------------------------------------------------------------- all-missing columns
@pytest.mark.parametrize("which", ["scorecard", "scorecard_exact", "gbm", "forest"])
@pytest.mark.parametrize("column", [pd.Series([None] * 1500, dtype=object), pd.Series([np.nan] * 1500)],
                         ids=["object_none", "float_nan"])
def test_an_all_missing_column_is_fitted_like_a_constant_one(which: str, column: pd.Series, data) -> None:  # type: ignore[no-untyped-def]
    X, y = data
    Xn = X.assign(note=column.set_axis(X.index))
    model = FACTORIES[which]().fit(Xn, y)
    assert np.isfinite(model.predict_proba(Xn.iloc[:40])[:, 1]).all()
    if isinstance(model, CreditScorecard):
        row = model.selection_.set_index("feature").loc["note"]
        assert not row["selected"] and row["reason"] == "no value: every row is missing"
        assert model.features_ == FACTORIES[which]().fit(X, y).features_


# ---------------------------------------------------------------- parameters
def test_numpy_integer_parameters_are_accepted(data) -> None:  # type: ignore[no-untyped-def]
    X, y = data
    grid = GridSearchCV(CreditGBM(n_estimators=40, learning_rate=0.1), {"num_leaves": np.array([4, 8])}, cv=2,
                        scoring="roc_auc").fit(X, y)
    assert grid.best_params_["num_leaves"] in (4, 8)
    CreditScorecard(max_n_prebins=np.int64(5), max_features=np.int32(2), max_hist_bins=np.int64(64)).fit(X, y)
    CreditForest(n_estimators=np.int64(10), min_samples_leaf=np.int64(3), max_features=np.int64(2),
                 n_jobs=np.int64(1)).fit(X, y)
    CreditGBM(n_estimators=np.int64(30), early_stopping_rounds=np.int64(5), n_folds=np.int64(2),
              min_child_samples=np.int64(20)).fit(X, y)


@pytest.mark.parametrize(("est", "match"), [
    (CreditGBM(num_leaves=True), "The 'num_leaves' parameter of CreditGBM must be an int >= 2. Got True instead."),
    (CreditGBM(n_estimators=10.0), "'n_estimators' parameter of CreditGBM must be an int >= 1. Got 10.0"),
    (CreditForest(min_samples_leaf=True), "'min_samples_leaf' parameter of CreditForest must be an int >= 1"),
    (CreditScorecard(max_n_prebins=np.float64(5)), "'max_n_prebins' parameter of CreditScorecard must be an int"),
])
def test_bools_and_floats_are_not_integer_parameters(est, match, data) -> None:  # type: ignore[no-untyped-def]
    X, y = data
    with pytest.raises(ValueError, match=re.escape(match)):
        est.fit(X, y)


# ---------------------------------------------------------------- unusable frames
@pytest.mark.parametrize(("mutate", "match"), [
    (lambda X, y: (X.iloc[:0], y[:0]), r"0 sample\(s\) \(shape=\(0, 5\)\) while a minimum of 1 is required"),
    (lambda X, y: (X, y[:0]), "y is empty"),
    (lambda X, y: (X.set_axis(range(5), axis=1), y),
     r"column names must be strings; 5 are not, e\.g\. 0, 1, 2 \(and 2 more\) \(int\)\. Name the columns"),
    (lambda X, y: (X[["util", "late", "util"]], y),
     r"column name\(s\) 'util' appear more than once \(at positions 0, 2\); give every column a unique name"),
])
@pytest.mark.parametrize("which", ["scorecard", "gbm", "forest", "ensemble"])
def test_unusable_training_frames_are_named(which: str, mutate, match, data) -> None:  # type: ignore[no-untyped-def]
    X, y = data
    with pytest.raises(ValueError, match=match):
        FACTORIES[which]().fit(*mutate(X, y))


@pytest.mark.parametrize("which", ["scorecard", "gbm", "forest", "ensemble"])
def test_unusable_scoring_frames_are_named(which: str, fitted, data) -> None:  # type: ignore[no-untyped-def]
    X, _ = data
    model = fitted[which]
    with pytest.raises(ModelInputError, match="column names must be strings"):
        model.predict_proba(X.iloc[:5].set_axis(range(5), axis=1))
    with pytest.raises(ModelInputError, match=r"'util' appear more than once"):
        model.predict_proba(pd.concat([X.iloc[:5], X.iloc[:5][["util"]]], axis=1))


def test_gbm_with_one_class_held_out_falls_back_to_uncalibrated_pds(caplog) -> None:
    """Two bads in 40 rows: the 20 % validation draw can hold goods only. Platt scaling on one class used to
    stop fit with scikit-learn's "needs samples of at least 2 classes"; now fit says what happened and
    returns LightGBM's own probabilities."""
    from buyerscore.models.credit import CreditGBM

    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})
    y = np.zeros(40, dtype=int)
    y[[3, 17]] = 1
    with caplog.at_level("WARNING", logger="buyerscore.models.credit.gbm"):
        m = CreditGBM(n_estimators=20, early_stopping_rounds=5, validation_fraction=0.05).fit(X, y)
    assert m.calibration_ == "none"
    assert "held-out row(s) are all goods" in caplog.text and "uncalibrated" in caplog.text
    p = m.predict_proba(X)[:, 1]
    assert np.all((p > 0) & (p < 1))
