"""Credit models: points scaling, monotonicity, calibration, reason codes, persistence, input errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import train_test_split

from buyerscore.exceptions import ModelInputError, NotFittedError
from buyerscore.models import metrics as mt
from buyerscore.models.base import pd_from_score, scaling, score_from_pd, split_applicants
from buyerscore.models.credit import CreditEnsemble, CreditForest, CreditGBM, CreditScorecard, fit_feature


def synthetic(n: int = 4000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Utilisation and late payments raise risk, income lowers it; 96/98 codes and missing income."""
    rng = np.random.default_rng(seed)
    util = rng.random(n) * 1.2
    late = rng.poisson(0.3, n).astype(float)
    income = rng.lognormal(8, 0.5, n)
    region = rng.choice(["north", "south", "east"], n)
    logit = -3 + 2.5 * util + 0.8 * np.minimum(late, 5) - 0.4 * (np.log(income) - 8) + (region == "south") * 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    late[rng.random(n) < 0.01] = 98.0
    income[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({"util": util, "late": late, "income": income, "region": region}), y


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    return synthetic()


@pytest.fixture(scope="module")
def scorecard(data: tuple[pd.DataFrame, np.ndarray]) -> CreditScorecard:
    X, y = data
    return CreditScorecard(special_codes={"late": [96, 98]}).fit(X, y)


@pytest.fixture(scope="module")
def gbm(data: tuple[pd.DataFrame, np.ndarray]) -> CreditGBM:
    X, y = data
    return CreditGBM(n_estimators=300, learning_rate=0.05, early_stopping_rounds=30).fit(X, y)


@pytest.fixture(scope="module")
def forest(data: tuple[pd.DataFrame, np.ndarray]) -> CreditForest:
    X, y = data
    return CreditForest(n_estimators=100, min_samples_leaf=3).fit(X, y)


@pytest.fixture(scope="module")
def ensemble(data: tuple[pd.DataFrame, np.ndarray]) -> CreditEnsemble:
    X, y = data
    return CreditEnsemble(members=[
        ("gbm", CreditGBM(n_estimators=300, learning_rate=0.05, early_stopping_rounds=30)),
        ("forest", CreditForest(n_estimators=100, min_samples_leaf=3)),
        ("card", CreditScorecard(special_codes={"late": [96, 98]}))], weights=[2, 1, 1]).fit(X, y)


def _models(request: pytest.FixtureRequest, which: str) -> CreditScorecard | CreditGBM | CreditForest | CreditEnsemble:
    return request.getfixturevalue(which)


# ---------------------------------------------------------------- points scaling (known answers)
def test_points_scaling_known_answers() -> None:
    offset, factor = scaling(600, 50, 20)
    assert factor == pytest.approx(20 / math.log(2))
    assert offset == pytest.approx(600 - 20 / math.log(2) * math.log(50))
    # 50:1 good:bad -> PD 1/51 -> 600; doubling the odds adds 20, halving removes 20
    assert score_from_pd(1 / 51) == pytest.approx(600.0)
    assert score_from_pd(1 / 101) == pytest.approx(620.0)
    assert score_from_pd(1 / 26) == pytest.approx(580.0)
    assert score_from_pd(0.5) == pytest.approx(600 - 20 * math.log2(50))
    assert score_from_pd(1 / 11, base_score=500, base_odds=10, pdo=40) == pytest.approx(500.0)
    assert pd_from_score(620.0) == pytest.approx(1 / 101)


def test_scorecard_points_add_up(scorecard: CreditScorecard, data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = data
    pts = scorecard.points_of(X)
    s = scorecard.score(X)
    np.testing.assert_allclose(s, scorecard.base_points_ + pts.sum(axis=1).to_numpy())
    p = scorecard.predict_proba(X)[:, 1]
    np.testing.assert_allclose(s, score_from_pd(p), rtol=1e-9)


def test_scorecard_custom_scale_shifts_points(data: tuple[pd.DataFrame, np.ndarray],
                                              scorecard: CreditScorecard) -> None:
    X, y = data
    other = CreditScorecard(base_score=500, base_odds=10, pdo=40, special_codes={"late": [96, 98]}).fit(X, y)
    lg = np.log((1 - scorecard.predict_proba(X)[:, 1]) / scorecard.predict_proba(X)[:, 1])
    np.testing.assert_allclose(other.score(X), 500 + 40 / math.log(2) * (lg - math.log(10)), rtol=1e-9)


def test_grades_follow_bands(scorecard: CreditScorecard, data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = data
    s, g = scorecard.score(X), scorecard.grade(X)
    bands = scorecard.grade_bands_
    assert bands == sorted(bands, reverse=True)
    assert bands[0] == pytest.approx(float(score_from_pd(0.02)))
    for grade, lo, hi in zip("ABCDE", [*bands, -np.inf], [np.inf, *bands], strict=True):
        sel = g == grade
        assert np.all((s[sel] >= lo) & (s[sel] < hi))
    assert set(g) <= set("ABCDE") and len(set(g)) >= 3
    # a missing score has no grade (it was graded A: NaN sorted above every band), in both paths
    got = scorecard._grade_of(np.array([np.nan, bands[0] + 1, bands[-1] - 1]))
    assert got.tolist() == [None, "A", "E"]
    assert scorecard._record_result(float("nan"))["grade"] is None
    assert scorecard._record_result(-50.0)["grade"] == "A" and scorecard._record_result(50.0)["grade"] == "E"


# ---------------------------------------------------------------- binning
def test_special_and_missing_get_own_bins(scorecard: CreditScorecard) -> None:
    late = scorecard.bins_["late"]
    assert "special 96: [96.0]" in late.labels and "special 98: [98.0]" in late.labels
    assert late.bin_index_one(98) == late.labels.index("special 98: [98.0]")
    inc = scorecard.bins_["income"]
    assert inc.labels[-1] == "Missing" and inc.event[-1] + inc.nonevent[-1] > 0
    assert inc.bin_index_one(None) == inc.missing_index == inc.bin_index_one(float("nan"))
    assert scorecard.bins_["util"].trend == "ascending" and inc.trend == "descending"


def test_fast_binning_matches_exact_solver() -> None:
    rng = np.random.default_rng(3)
    x = rng.lognormal(0, 1, 200_000)
    y = (rng.random(x.size) < 1 / (1 + np.exp(-(np.log(x) - 1)))).astype(int)
    fast = fit_feature("x", x, y, fast=True)
    exact = fit_feature("x", x, y, fast=False)
    assert fast.iv >= 0.98 * exact.iv
    # the fitted table is the true partition of the training rows
    idx = fast.bin_index(x)
    np.testing.assert_array_equal(np.bincount(idx, minlength=fast.n_bins), fast.event + fast.nonevent)
    np.testing.assert_array_equal(np.bincount(idx, weights=y, minlength=fast.n_bins), fast.event)


def test_fast_binning_counts_with_special_codes_and_missing() -> None:
    rng = np.random.default_rng(4)
    x = rng.poisson(1.5, 50_000).astype(float)
    x[rng.random(x.size) < 0.05] = np.nan
    x[rng.random(x.size) < 0.01] = 96.0
    x[rng.random(x.size) < 0.01] = 98.0
    y = (rng.random(x.size) < np.where(np.isnan(x), 0.3, 0.05 + 0.04 * np.nan_to_num(np.minimum(x, 5)))).astype(int)
    b = fit_feature("late", x, y, special_codes={"96": [96], "98": [98]}, fast=True)
    assert b.labels[-3:] == ["special 96: [96.0]", "special 98: [98.0]", "Missing"]
    idx = b.bin_index(x)
    np.testing.assert_array_equal(np.bincount(idx, minlength=b.n_bins), b.event + b.nonevent)
    np.testing.assert_array_equal(np.bincount(idx, weights=y, minlength=b.n_bins), b.event)
    assert b.event[-1] == y[np.isnan(x)].sum() and b.event[-2] == y[x == 98].sum()
    exact = fit_feature("late", x, y, special_codes={"96": [96], "98": [98]}, fast=False)
    np.testing.assert_allclose(b.iv, exact.iv, rtol=0.02)


def test_fast_binning_of_a_feature_without_ordinary_values() -> None:
    # e.g. income inside a segment where it is always missing: no split to search, no crash
    x = np.r_[np.full(300, np.nan), np.full(100, 98.0)]
    y = np.r_[np.zeros(240), np.ones(60), np.zeros(50), np.ones(50)].astype(int)
    b, idx = fit_feature("income", x, y, special_codes=[98], return_index=True)
    assert b.n_regular == 1 and b.event[0] + b.nonevent[0] == 0
    np.testing.assert_array_equal(b.event[1:], [50, 60])
    np.testing.assert_array_equal(idx, b.bin_index(x))


def test_dummy_coding_fits_better_and_keeps_the_scorecard_contract(data: tuple[pd.DataFrame, np.ndarray],
                                                                     tmp_path) -> None:  # type: ignore[no-untyped-def]
    X, y = data
    woe = CreditScorecard(special_codes={"late": [96, 98]}, C=1e6).fit(X, y)
    dummy = CreditScorecard(special_codes={"late": [96, 98]}, C=1e6, coding="dummy").fit(X, y)
    assert dummy.features_ == woe.features_  # selection is the WOE model's
    # dummy contains the WOE model (bin coefficient = b * woe), so its training log loss is no worse
    assert mt.log_loss(y, dummy.predict_proba(X)[:, 1]) <= mt.log_loss(y, woe.predict_proba(X)[:, 1]) + 1e-6
    assert not np.allclose(dummy.bin_logit_["util"], woe.bin_logit_["util"])
    # points add up, the one-record path agrees, reason codes sum to points lost, round trip
    pts = dummy.points_of(X.head(50))
    np.testing.assert_allclose(dummy.score(X.head(50)), dummy.base_points_ + pts.sum(axis=1), atol=1e-9)
    rec = X.iloc[3].to_dict()
    assert dummy.score_record(rec)["score"] == pytest.approx(dummy.score(X.iloc[[3]])[0], abs=1e-9)
    np.testing.assert_allclose(dummy.contributions(X.head(50)).sum(axis=1),
                               dummy.max_score_ - dummy.score(X.head(50)), atol=1e-9)
    t = dummy.scorecard_table()
    np.testing.assert_allclose(t.loc[t.feature == "util", "points"], dummy.points_["util"])
    dummy.save(tmp_path / "m", training_data_hash="h")
    np.testing.assert_array_equal(CreditScorecard.load(tmp_path / "m").score(X), dummy.score(X))
    # a bin never seen in training is neutral: late = 96 never occurs in the data
    assert dummy.bin_logit_["late"][dummy.bins_["late"].bin_index_one(96.0)] == 0.0


def test_monotone_coding_keeps_woe_steps_and_sits_between_woe_and_dummy(tmp_path) -> None:  # type: ignore[no-untyped-def]
    X, y = synthetic(n=3000, seed=0)
    X["util2"] = X["util"] + np.random.default_rng(10).normal(0, 0.3, len(X))  # a noisy copy: no effect given util
    kw = {"special_codes": {"late": [96, 98]}, "C": 1e6, "max_n_prebins": 20, "min_prebin_size": 0.02}
    fits = {c: CreditScorecard(coding=c, **kw).fit(X, y) for c in ("woe", "monotone", "dummy")}
    mono, dummy = fits["monotone"], fits["dummy"]
    assert mono.features_ == dummy.features_ == fits["woe"].features_ and "util2" in mono.features_

    def wrong_steps(m: CreditScorecard) -> list[str]:  # features whose points rise where the WOE (risk) rises
        out = []
        for f in m.features_:
            b = m.bins_[f]
            step = np.diff(m.points_[f][:b.n_regular])
            if b.dtype == "numerical" and ((step * np.diff(b.woe[:b.n_regular]) > 1e-9).any()
                                           or (b.trend == "ascending" and (step > 1e-9).any())
                                           or (b.trend == "descending" and (step < -1e-9).any())):
                out.append(f)
        return out

    assert wrong_steps(mono) == [] and wrong_steps(fits["woe"]) == []
    assert "util2" in wrong_steps(dummy)  # the unconstrained per-bin fit breaks the order: the constraint binds
    # monotone nests the WOE model and is nested by dummy: training log loss in that order
    ll = {c: mt.log_loss(y, m.predict_proba(X)[:, 1]) for c, m in fits.items()}
    assert ll["dummy"] - 1e-6 <= ll["monotone"] <= ll["woe"] + 1e-6 and ll["monotone"] < ll["woe"] - 1e-4
    # the scorecard contract: points add up, the one-record path agrees, reason codes, round trip
    np.testing.assert_allclose(mono.score(X.head(50)), mono.base_points_ + mono.points_of(X.head(50)).sum(axis=1),
                               atol=1e-9)
    assert mono.score_record(X.iloc[3].to_dict())["score"] == pytest.approx(mono.score(X.iloc[[3]])[0], abs=1e-9)
    np.testing.assert_allclose(mono.contributions(X.head(50)).sum(axis=1), mono.max_score_ - mono.score(X.head(50)),
                               atol=1e-9)
    mono.save(tmp_path / "m", training_data_hash="h")
    np.testing.assert_array_equal(CreditScorecard.load(tmp_path / "m").score(X), mono.score(X))


def test_monotone_coding_sparse_design_gives_the_dense_result(data: tuple[pd.DataFrame, np.ndarray],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from buyerscore.models.credit import scorecard as sc_mod

    X, y = data
    dense = CreditScorecard(coding="monotone", special_codes={"late": [96, 98]}).fit(X, y)
    monkeypatch.setattr(sc_mod, "_DENSE_DESIGN_CELLS", 0)  # what a table with many bins and rows takes
    sparse = CreditScorecard(coding="monotone", special_codes={"late": [96, 98]}).fit(X, y)
    for f in dense.features_:
        np.testing.assert_allclose(sparse.bin_logit_[f], dense.bin_logit_[f], atol=1e-8)


def test_monotone_coding_equals_dummy_when_no_bound_is_active(data: tuple[pd.DataFrame, np.ndarray]) -> None:
    # on this data the unconstrained per-bin fit is already monotone: the bounded solver must find the same optimum
    X, y = data
    kw = {"special_codes": {"late": [96, 98]}, "C": 1e6, "max_n_prebins": 20}
    mono = CreditScorecard(coding="monotone", **kw).fit(X, y)
    dummy = CreditScorecard(coding="dummy", **kw).fit(X, y)
    for f in mono.features_:
        seen = (mono.bins_[f].event + mono.bins_[f].nonevent) > 0
        np.testing.assert_allclose(mono.bin_logit_[f][seen], dummy.bin_logit_[f][seen], atol=2e-4)
    assert mono.intercept_ == pytest.approx(dummy.intercept_, abs=2e-4)


def test_scorecard_saved_before_bin_logit_still_scores(scorecard: CreditScorecard,
                                                       data: tuple[pd.DataFrame, np.ndarray]) -> None:
    import pickle

    X, _ = data
    state = scorecard.__getstate__()
    state.pop("bin_logit_")  # what a pickle from the previous version holds
    old = CreditScorecard.__new__(CreditScorecard)
    old.__setstate__(state)
    np.testing.assert_allclose(old.score(X), scorecard.score(X), rtol=0, atol=1e-9)
    assert pickle.loads(pickle.dumps(old)).score_record(X.iloc[0].to_dict()) == scorecard.score_record(X.iloc[0].to_dict())


# ---------------------------------------------------------------- monotonicity (property tests)
@settings(max_examples=60, deadline=None)
@given(a=st.floats(0, 1.2), b=st.floats(0, 1.2), late=st.sampled_from([0.0, 1.0, 3.0, 98.0, None]),
       income=st.one_of(st.none(), st.floats(500, 50_000)), region=st.sampled_from(["north", "south", "x"]))
def test_scorecard_points_monotone(scorecard: CreditScorecard, a: float, b: float, late: float | None,
                                   income: float | None, region: str) -> None:
    lo, hi = min(a, b), max(a, b)
    r = {"late": late, "income": income, "region": region}
    # utilisation raises risk: more of it never adds points
    assert scorecard.score_record({**r, "util": hi})["score"] <= scorecard.score_record({**r, "util": lo})["score"] + 1e-9


@settings(max_examples=60, deadline=None)
@given(a=st.floats(0, 1.2), b=st.floats(0, 1.2), late=st.sampled_from([0.0, 1.0, 3.0, None]),
       i1=st.floats(500, 50_000), i2=st.floats(500, 50_000))
def test_gbm_monotone_in_constrained_features(gbm: CreditGBM, a: float, b: float, late: float | None,
                                              i1: float, i2: float) -> None:
    assert gbm.monotone_constraints_["util"] == 1 and gbm.monotone_constraints_["income"] == -1
    r = {"late": late, "income": i1, "region": "north"}
    lo, hi = min(a, b), max(a, b)
    assert gbm.score_record({**r, "util": hi})["pd"] >= gbm.score_record({**r, "util": lo})["pd"] - 1e-12
    r = {"late": late, "util": a, "region": "south"}
    lo, hi = min(i1, i2), max(i1, i2)
    assert gbm.score_record({**r, "income": hi})["pd"] <= gbm.score_record({**r, "income": lo})["pd"] + 1e-12


def test_user_monotone_override(data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = data
    m = CreditGBM(n_estimators=50, monotone={"income": 0}).fit(X, y)
    assert m.monotone_constraints_["income"] == 0 and m.monotone_constraints_["util"] == 1
    assert CreditGBM(n_estimators=20, monotone=None).fit(X, y).monotone_constraints_["util"] == 0


# ---------------------------------------------------------------- calibration
def test_calibration_improves_brier_on_held_out_fold() -> None:
    X, y = synthetic(8000, seed=5)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    kw = {"n_estimators": 300, "learning_rate": 0.05, "early_stopping_rounds": 30, "class_weight": "balanced"}
    raw = CreditGBM(calibration="none", **kw).fit(Xtr, ytr)
    cal = CreditGBM(calibration="auto", **kw).fit(Xtr, ytr)
    b_raw = mt.brier(yte, raw.predict_proba(Xte)[:, 1])
    b_cal = mt.brier(yte, cal.predict_proba(Xte)[:, 1])
    assert cal.calibration_ in ("isotonic", "sigmoid")
    assert b_cal < b_raw
    # the imbalance weighting is undone: mean PD close to the bad rate
    assert abs(cal.predict_proba(Xte)[:, 1].mean() - yte.mean()) < 0.02
    assert mt.auc(yte, cal.predict_proba(Xte)[:, 1]) > 0.75


# ---------------------------------------------------------------- reason codes
def test_scorecard_reason_codes_sum_to_points_lost(scorecard: CreditScorecard,
                                                   data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = data
    Xs = X.iloc[:50]
    lost = scorecard.contributions(Xs)
    assert (lost.to_numpy() >= -1e-9).all()
    np.testing.assert_allclose(lost.sum(axis=1), scorecard.max_score_ - scorecard.score(Xs), atol=1e-8)
    rc = scorecard.reason_codes(Xs, k=len(scorecard.features_))
    for i, row in enumerate(rc):
        assert sum(r.contribution for r in row) == pytest.approx(scorecard.max_score_ - scorecard.score(Xs)[i])
        assert [r.contribution for r in row] == sorted((r.contribution for r in row), reverse=True)
    top = scorecard.reason_codes(Xs, k=2, lang="zh")
    assert all(len(r) <= 2 for r in top)


def test_gbm_reason_codes_are_shap(gbm: CreditGBM, data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = data
    Xs = X.iloc[:30]
    c = gbm.contributions(Xs)
    M = gbm._matrix(gbm._check_X(Xs))
    bias = np.mean([b.predict(M, pred_contrib=True, num_iteration=it)[:, -1]
                    for b, it in zip(gbm.boosters_, gbm.best_iterations_, strict=True)], axis=0)
    np.testing.assert_allclose(c.sum(axis=1).to_numpy() + bias, gbm._margin(M), atol=1e-6)
    rc = gbm.reason_codes(Xs, k=3)
    for i, row in enumerate(rc):
        assert all(r.contribution > 0 for r in row)
        if row:
            assert row[0].contribution == pytest.approx(c.iloc[i].max())


# ---------------------------------------------------------------- random forest and ensemble
def test_forest_is_calibrated_despite_class_weights(data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = data
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    cal = CreditForest(n_estimators=150, min_samples_leaf=25).fit(Xtr, ytr)
    raw = CreditForest(n_estimators=150, min_samples_leaf=25, calibration="none").fit(Xtr, ytr)
    p, q = cal.predict_proba(Xte)[:, 1], raw.predict_proba(Xte)[:, 1]
    assert cal.calibration_ in ("sigmoid", "isotonic") and set(cal.calibration_scores_) == {"sigmoid", "isotonic"}
    # balanced_subsample pushes the raw votes towards 1/2; the out-of-bag calibration undoes it
    assert q.mean() > yte.mean() + 0.1
    assert abs(p.mean() - yte.mean()) < 0.03
    assert mt.brier(yte, p) < mt.brier(yte, q) - 0.02
    assert mt.auc(yte, p) > 0.69  # a boosted model reaches 0.716 on this noisy synthetic set


def test_forest_categoricals_missing_and_unseen(forest: CreditForest, data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = data
    assert forest.categories_ == {"region": ["east", "north", "south"]}
    assert forest.columns_[:4] == ["util", "late", "income", "region=east"] and forest.columns_[-1] == "region=<missing>"
    rows = X.iloc[:3].copy()
    rows["region"] = [None, "west", "south"]  # missing, unseen, seen
    M = forest._matrix(forest._check_X(rows))
    np.testing.assert_array_equal(M[:, 3:], [[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 1, 0]])
    s = forest.score(rows)
    for i, rec in enumerate(rows.to_dict("records")):
        assert forest.score_record(rec)["score"] == pytest.approx(s[i], abs=1e-6)


def test_forest_flat_walk_equals_scikit_learn(data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = data
    X = X.copy()
    X.loc[X.index[::9], "util"] = np.nan  # missing values seen in training
    f = CreditForest(n_estimators=60).fit(X, y)
    rows = X.iloc[:200].copy()
    rows.loc[rows.index[::5], "late"] = np.nan  # and where training had none
    M = f._matrix(f._check_X(rows))
    flat = f._flat_trees()
    np.testing.assert_allclose([flat.predict_one(r) for r in M], f.forest_.predict_proba(M)[:, 1], atol=1e-12, rtol=0)
    # small frames take the flat path, large ones scikit-learn: a row scores the same either way
    np.testing.assert_allclose(f.score(rows.iloc[:10]), f.score(rows)[:10], atol=1e-9, rtol=0)


def test_forest_contributions_explain_differences(forest: CreditForest, data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = data
    Xs = X.iloc[:40]
    c = forest.contributions(Xs)
    assert list(c.columns) == forest.features_  # region's indicators are summed into one column
    p = forest.predict_proba(Xs)[:, 1]
    lg = np.log(p / (1 - p))
    # each row's contributions sum to its calibrated log-odds minus one common baseline
    np.testing.assert_allclose(c.sum(axis=1).to_numpy() - lg, np.full(len(lg), (c.sum(axis=1).to_numpy() - lg)[0]),
                               atol=1e-6)
    hi, lo = X["util"].iloc[:40].idxmax(), X["util"].iloc[:40].idxmin()
    assert c.loc[hi, "util"] > 0 > c.loc[lo, "util"]  # high utilisation is adverse
    rc = forest.reason_codes(Xs.loc[[hi]], k=2)
    assert rc[0] and all(r.contribution > 0 for r in rc[0])
    # Saabas attributions: the same additivity and direction, other values
    fast = forest.set_params(explainer="saabas").contributions(Xs)
    forest.set_params(explainer="tree_shap")
    d = fast.sum(axis=1).to_numpy() - lg
    np.testing.assert_allclose(d, np.full(len(d), d[0]), atol=1e-6)
    np.testing.assert_allclose(d[0], (c.sum(axis=1).to_numpy() - lg)[0], atol=1e-6)  # same baseline
    assert not np.allclose(fast.to_numpy(), c.to_numpy())
    assert np.corrcoef(fast.to_numpy().ravel(), c.to_numpy().ravel())[0, 1] > 0.8
    assert pd.Series(fast["util"].to_numpy()).corr(pd.Series(Xs["util"].to_numpy()), method="spearman") > 0.5


def test_ensemble_is_the_weighted_mean_of_member_log_odds(ensemble: CreditEnsemble,
                                                          data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = data
    Xs = X.iloc[:50]
    assert ensemble.weights_ == {"gbm": 0.5, "forest": 0.25, "card": 0.25}
    mp = ensemble.member_proba(Xs)
    lg = np.log(mp / (1 - mp))
    expect = 0.5 * lg["gbm"] + 0.25 * lg["forest"] + 0.25 * lg["card"]
    np.testing.assert_allclose(np.log(ensemble.predict_proba(Xs)[:, 1] / ensemble.predict_proba(Xs)[:, 0]),
                               expect.to_numpy(), atol=1e-9)
    for name, m in ensemble.members_.items():
        np.testing.assert_allclose(mp[name], m.predict_proba(Xs)[:, 1])
    c = ensemble.contributions(Xs)
    card = ensemble.members_["card"]
    parts = (0.5 * ensemble.members_["gbm"].contributions(Xs) + 0.25 * ensemble.members_["forest"].contributions(Xs)
             + 0.25 * card.contributions(Xs).reindex(columns=c.columns, fill_value=0.0) / card.factor_)
    np.testing.assert_allclose(c.to_numpy(), parts[c.columns].to_numpy(), atol=1e-9)


def test_out_of_sample_training_pds(data: tuple[pd.DataFrame, np.ndarray], forest: CreditForest,
                                    ensemble: CreditEnsemble) -> None:
    X, y = data
    # a grown forest scores its own training rows almost perfectly; its out-of-bag PDs do not
    assert mt.auc(y, forest.predict_proba(X)[:, 1]) > 0.95
    oob = forest.oof_proba_
    assert np.isfinite(oob).all() and 0.65 < mt.auc(y, oob) < 0.8
    one = CreditGBM(n_estimators=60, validation_fraction=0.25).fit(X, y)
    assert np.isfinite(one.oof_proba_).sum() == 1000  # the validation rows only
    three = CreditGBM(n_estimators=60, n_folds=3).fit(X, y)
    assert np.isfinite(three.oof_proba_).all()
    assert ensemble.oof_proba_ is None  # its scorecard member keeps no held-out PDs
    pair = CreditEnsemble(members=[("gbm", CreditGBM(n_estimators=60, n_folds=3)),
                                   ("forest", CreditForest(n_estimators=60, min_samples_leaf=3))]).fit(X, y)
    oofs = [m.oof_proba_ for m in pair.members_.values()]
    assert all(((0 < o) & (o < 1)).all() for o in oofs)  # isotonic too: its blocks are shrunk off 0 and 1
    lg = [np.log(o / (1 - o)) for o in oofs]
    np.testing.assert_allclose(np.log(pair.oof_proba_ / (1 - pair.oof_proba_)), 0.5 * lg[0] + 0.5 * lg[1], atol=1e-9)


def test_ensemble_passes_the_sensitive_switch_to_members(data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = data
    kw = {"members": [("gbm", CreditGBM(n_estimators=30)), ("forest", CreditForest(n_estimators=20))],
          "sensitive_features": ["region"]}
    off = CreditEnsemble(**kw).fit(X.iloc[:1500], y[:1500])
    assert "region" not in off.features_ and off.excluded_features_ == ["region"]
    assert all("region" not in m.features_ and m.excluded_features_ == ["region"] for m in off.members_.values())
    on = CreditEnsemble(**kw, include_sensitive=True).fit(X.iloc[:1500], y[:1500])
    assert "region" in on.features_ and all("region" in m.features_ for m in on.members_.values())
    assert kw["members"][0][1].get_params()["include_sensitive"] is False  # the given estimators are not touched



def test_ensemble_member_names_are_presets(data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = data
    ens = CreditEnsemble(members=["gbm", "scorecard", ("forest", CreditForest(n_estimators=20))], random_state=3)
    ens.fit(X.iloc[:1500], y[:1500])
    assert list(ens.members_) == ["gbm", "scorecard", "forest"]
    gbm, card = ens.members_["gbm"], ens.members_["scorecard"]
    assert isinstance(gbm, CreditGBM) and gbm.n_folds == 5 and gbm.random_state == 3
    assert isinstance(card, CreditScorecard) and card.monotonic_trend == "auto_heuristic"
    assert ens.members == ["gbm", "scorecard", ("forest", ens.members[2][1])]  # the parameter is kept as given
    assert list(CreditEnsemble().fit(X.iloc[:1500], y[:1500]).members_) == ["gbm", "forest"]  # the default pair
    with pytest.raises(ModelInputError, match="unknown member name 'svm'.*'gbm', 'forest', 'scorecard'"):
        CreditEnsemble(members=["gbm", "svm"]).fit(X.iloc[:1500], y[:1500])


# ---------------------------------------------------------------- persistence and single records
@pytest.mark.parametrize("which", ["scorecard", "gbm", "forest", "ensemble"])
def test_save_load_round_trip(which: str, request, tmp_path,  # type: ignore[no-untyped-def]
                              data: tuple[pd.DataFrame, np.ndarray]) -> None:
    from buyerscore.artifacts import data_hash, load_model

    X, _ = data
    model = _models(request, which)
    model.save(tmp_path / "m", training_data_hash=data_hash(X), metrics={"auc": 0.8})
    loaded, meta = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.score(X), model.score(X))
    assert meta.features == list(model.features_) and meta.training_data_hash == data_hash(X)
    assert meta.metrics == {"auc": 0.8} and meta.params["base_score"] == 600.0
    assert type(model).load(tmp_path / "m").score(X.iloc[:5]).tolist() == model.score(X.iloc[:5]).tolist()


@pytest.mark.parametrize("which", ["scorecard", "gbm", "forest", "ensemble"])
def test_score_record_matches_frame(which: str, request: pytest.FixtureRequest,
                                    data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = data
    model = _models(request, which)
    s = model.score(X.iloc[:20])
    g = model.grade(X.iloc[:20])
    for i, rec in enumerate(X.iloc[:20].to_dict("records")):
        r = model.score_record({k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in rec.items()})
        assert r["score"] == pytest.approx(s[i], abs=1e-6) and r["grade"] == g[i]


# ---------------------------------------------------------------- input errors
@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda X: X.drop(columns=["util"]), r"missing column\(s\) \['util'\]"),
        (lambda X: X.assign(bogus=1), r"unknown column\(s\) \['bogus'\]"),
        (lambda X: X.assign(income=["abc"] + X["income"].tolist()[1:]), r"column 'income' must be numeric.*'abc'"),
        (lambda X: X.assign(income=X["income"].tolist()[:1] + ["1,200"] + X["income"].tolist()[2:]),
         r"'1,200' at row\(s\) 2 \(1 = the first row\)\. Write plain numbers"),
        (lambda X: X.to_numpy()[:, :-1], r"X has \d+ features, but \w+ is expecting \d+ features as input"),
    ],
)
@pytest.mark.parametrize("which", ["scorecard", "gbm", "forest", "ensemble"])
def test_bad_scoring_input_names_the_problem(which, mutate, match, request, data) -> None:  # type: ignore[no-untyped-def]
    X, _ = data
    model = _models(request, which)
    with pytest.raises(ModelInputError, match=match):
        model.predict_proba(mutate(X.iloc[:5].copy()))


@pytest.mark.parametrize("which", ["scorecard", "gbm", "forest", "ensemble"])
def test_array_input_is_read_by_position(which, request, data) -> None:  # type: ignore[no-untyped-def]
    """An array scores as the frame whose columns it holds in feature_names_in_ order (scikit-learn's
    rule), with scikit-learn's warning that the names are not checked."""
    X, _ = data
    model = _models(request, which)
    rows = X.iloc[:5][list(model.feature_names_in_)]
    with pytest.warns(UserWarning, match="X does not have valid feature names.*read by position"):
        p = model.predict_proba(rows.to_numpy())
    np.testing.assert_allclose(p, model.predict_proba(rows))


def test_numeric_strings_are_accepted(scorecard: CreditScorecard, data: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = data
    Xs = X.iloc[:5].copy()
    np.testing.assert_allclose(scorecard.score(Xs.astype({"util": str})), scorecard.score(Xs))


def test_not_fitted() -> None:
    with pytest.raises(NotFittedError):
        CreditScorecard().score(pd.DataFrame({"a": [1.0]}))
    with pytest.raises(NotFittedError):
        CreditGBM().score_record({"a": 1.0})


@pytest.mark.parametrize(
    ("est", "match"),
    [
        (CreditScorecard(pdo=-5), r"The 'pdo' parameter of CreditScorecard must be a float > 0. Got -5 instead."),
        (CreditScorecard(base_odds=0), r"'base_odds' parameter of CreditScorecard must be a float > 0"),
        (CreditScorecard(base_score=float("nan")), r"'base_score' .* a finite float"),
        (CreditScorecard(grade_bands=[600, 610, 580, 560]), r"'grade_bands' .* strictly decreasing"),
        (CreditScorecard(min_iv=-1), r"'min_iv'"),
        (CreditScorecard(max_corr=0), r"'max_corr' .* \(0, 1\]"),
        (CreditScorecard(max_features=0), r"'max_features'"),
        (CreditScorecard(monotonic_trend="up"), r"'monotonic_trend'"),
        (CreditScorecard(C=0), r"'C' parameter"),
        (CreditScorecard(special_codes=[96]), r"'special_codes'"),
        (CreditScorecard(include_sensitive="yes"), r"'include_sensitive' .* a bool"),
        (CreditGBM(calibration="platt"), r"'calibration' parameter of CreditGBM"),
        (CreditGBM(monotone={"util": 2}), r"'monotone' parameter of CreditGBM"),
        (CreditGBM(n_folds=0), r"'n_folds'"),
        (CreditGBM(learning_rate=2), r"'learning_rate'"),
        (CreditGBM(class_weight="auto"), r"'class_weight'"),
        (CreditGBM(validation_fraction=0.9), r"'validation_fraction'"),
        (CreditGBM(min_child_samples=0), r"'min_child_samples' parameter of CreditGBM must be 'auto' or an int"),
        (CreditForest(n_estimators=5), r"'n_estimators' parameter of CreditForest must be an int >= 10"),
        (CreditForest(max_features="all"), r"'max_features' parameter of CreditForest"),
        (CreditForest(class_weight="auto"), r"'class_weight' parameter of CreditForest"),
        (CreditForest(calibration="platt"), r"'calibration' parameter of CreditForest"),
        (CreditForest(explainer="kernel"), r"'explainer' parameter of CreditForest must be 'tree_shap' or 'saabas'"),
        (CreditEnsemble(members=[]), r"'members' parameter of CreditEnsemble must be a non-empty list"),
        (CreditEnsemble(members=[("a", "CreditGBM")]), r"'members' parameter of CreditEnsemble"),
        (CreditEnsemble(members=[("a", CreditGBM()), ("a", CreditForest())]), r"member names must be unique"),
        (CreditEnsemble(weights=[1.0]), r"'weights' parameter of CreditEnsemble must be 2 non-negative numbers"),
        (CreditEnsemble(weights=[1.0, -1.0]), r"'weights' parameter of CreditEnsemble"),
    ],
)
def test_invalid_parameters(est, match, data) -> None:  # type: ignore[no-untyped-def]
    X, y = data
    with pytest.raises(ValueError, match=match):
        est.fit(X.iloc[:200], y[:200])


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (pd.DataFrame({"a": [1.0, 2.0]}), [0, 0], r"only one class \(0\)"),
        (pd.DataFrame({"a": [1.0, 2.0]}), [0, 2], r"0 \(good\) and 1 \(bad\)"),
        (pd.DataFrame({"label": [1.0, 2.0]}), [0, 1], "identifiers or the label"),
        (pd.DataFrame({"a": [1.0, 2.0, 3.0]}), [0, 1], "3 rows but y has 2"),
    ],
)
def test_bad_training_data(X, y, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        CreditScorecard().fit(X, y)


def test_export_table_formats(scorecard: CreditScorecard, tmp_path) -> None:  # type: ignore[no-untyped-def]
    csv = pd.read_csv(scorecard.export_table(tmp_path / "card.csv"))
    assert csv["feature"].iloc[0] == "(base points)"
    assert set(csv["feature"].iloc[1:]) == set(scorecard.features_)
    assert csv["points"].sum() == pytest.approx(scorecard.base_points_ + sum(p.sum() for p in scorecard.points_.values()))
    md = (tmp_path / "card.md")
    scorecard.export_table(md)
    assert md.read_text().startswith("| feature | bin | label |") and "special 98" in md.read_text()
    assert "| -0 |" not in md.read_text()  # neutral bins (missing: never seen) show 0 points, not "-0"
    assert any((p == 0).any() for p in scorecard.points_.values())
    js = json.loads(scorecard.export_table(tmp_path / "card.json").read_text())
    assert js["scaling"]["pdo"] == 20 and len(js["bins"]) == len(csv)
    with pytest.raises(ValueError, match="export format"):
        scorecard.export_table(tmp_path / "card.xlsx")


# ---------------------------------------------------------------- German credit (real data, CI)
def test_german_credit_sensitive_columns_and_quality(data_dir) -> None:  # type: ignore[no-untyped-def]
    from buyerscore.datasets import DATASETS, read_applicants

    X, y = split_applicants(read_applicants("german_credit", data_dir))
    sens = set(DATASETS["german_credit"].sensitive)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=1, stratify=y)
    sc = CreditScorecard().fit(Xtr, ytr)
    assert set(sc.excluded_features_) == sens and not sens & set(sc.features_)
    assert mt.auc(yte, sc.predict_proba(Xte)[:, 1]) > 0.72
    opt_in = CreditScorecard(include_sensitive=True, min_iv=0.0, max_corr=1.0, drop_negative_coef=False).fit(Xtr, ytr)
    assert opt_in.excluded_features_ == [] and "age_in_years" in opt_in.bins_
    g = CreditGBM(n_estimators=300, learning_rate=0.05, early_stopping_rounds=30).fit(Xtr, ytr)
    assert not sens & set(g.features_)
    assert mt.auc(yte, g.predict_proba(Xte)[:, 1]) > 0.72
    rc = g.reason_codes(Xte.iloc[:3], k=2)
    assert all(r.text for row in rc for r in row)
    ens = CreditEnsemble(members=[("gbm", CreditGBM(n_estimators=300, learning_rate=0.05, early_stopping_rounds=30)),
                                  ("forest", CreditForest(n_estimators=200))]).fit(Xtr, ytr)
    assert not sens & set(ens.features_)
    assert mt.auc(yte, ens.predict_proba(Xte)[:, 1]) > 0.74
    assert all(r.text for row in ens.reason_codes(Xte.iloc[:3], k=2) for r in row)


@pytest.mark.parametrize("cls", [CreditScorecard, CreditGBM, CreditForest, CreditEnsemble])
def test_sklearn_contract(cls, data) -> None:  # type: ignore[no-untyped-def]
    from sklearn.base import clone, is_classifier

    est = cls(pdo=-5)  # __init__ only stores; validation happens in fit
    assert est.get_params()["pdo"] == -5
    est.set_params(pdo=25)
    c = clone(est)
    assert c.get_params()["pdo"] == 25 and is_classifier(c)
    X, y = data
    kw = ({"n_estimators": 30} if cls in (CreditGBM, CreditForest)
          else {"members": [("gbm", CreditGBM(n_estimators=30)), ("forest", CreditForest(n_estimators=30))]}
          if cls is CreditEnsemble else {})
    fitted = c.set_params(**kw).fit(X.iloc[:1500], y[:1500])
    assert fitted is c and list(c.classes_) == [0, 1]
    assert c.predict(X.iloc[:10]).tolist() == (c.predict_proba(X.iloc[:10])[:, 1] > 0.5).astype(int).tolist()


# ---------------------------------------------------------------- ratio features
def test_ratio_features_known_answers_and_idempotent() -> None:
    from buyerscore.models.credit import add_ratio_features

    X = pd.DataFrame({"DebtRatio": [0.5, 800.0, 0.2], "MonthlyIncome": [2000.0, np.nan, 0.0],
                      "NumberOfDependents": [1, np.nan, 2], "NumberOfOpenCreditLinesAndLoans": [4, 0, 3],
                      "NumberRealEstateLoansOrLines": [1, 0, 3], "NumberOfTime30-59DaysPastDueNotWorse": [1, 98, 0],
                      "NumberOfTime60-89DaysPastDueNotWorse": [0, 98, 0], "NumberOfTimes90DaysLate": [2, 98, 1],
                      "RevolvingUtilizationOfUnsecuredLines": [0.5, 0.1, 50708.0]})
    once = add_ratio_features(X)
    assert once["UtilisedLines"].tolist() == [2.0, 0.0, 6.0]  # utilisation capped at 2 (the third is a data error)
    assert once["TotalPastDue"].tolist() == [3.0, 96.0, 1.0]
    assert once["MonthlyDebt"].tolist() == [1000.0, 800.0, 0.0]  # raw debt kept where income is missing
    assert np.isnan(once["DebtRatio"].iloc[1]) and once["DebtRatio"].iloc[0] == 0.5
    assert once["RevolvingLinesShare"].tolist()[::2] == [0.75, 0.0] and np.isnan(once["RevolvingLinesShare"].iloc[1])
    assert X["DebtRatio"].iloc[1] == 800.0 and "TotalPastDue" not in X  # the input is not modified
    pd.testing.assert_frame_equal(add_ratio_features(once), once)


def test_ratio_features_drop_redundant_taiwan_bills() -> None:
    from buyerscore.models.credit import add_ratio_features

    row: dict[str, list[float]] = {"LIMIT_BAL": [1000.0, 2000.0]}
    row.update({p: [0.0, 2.0] for p in ("PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6")})
    row.update({f"BILL_AMT{i}": [100.0 * i, 0.0] for i in range(1, 7)})
    row.update({f"PAY_AMT{i}": [50.0, 0.0] for i in range(1, 7)})
    full, lean = add_ratio_features(pd.DataFrame(row)), add_ratio_features(pd.DataFrame(row), drop_redundant=True)
    assert sorted(set(full.columns) - set(lean.columns)) == [f"BILL_AMT{i}" for i in range(2, 7)]
    pd.testing.assert_frame_equal(full[lean.columns], lean)
    assert lean["PAYR_1"].tolist()[0] == 0.25 and np.isnan(lean["PAYR_1"].iloc[1])  # 50 / BILL_AMT2; no bill -> NaN
    assert lean["UTIL_MEAN"].tolist() == [0.35, 0.0] and lean["N_DELAY"].tolist() == [0, 6]
    pd.testing.assert_frame_equal(add_ratio_features(lean, drop_redundant=True), lean)


def test_gbm_compiled_trees_give_lightgbms_numbers(gbm: CreditGBM, data: tuple[pd.DataFrame, np.ndarray],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """CreditGBM's margins come from buyerscore.models.trees (early-stopped iteration, categorical WOE
    columns, NaN incomes): the same PDs and single-record results as with LightGBM's own predict."""
    from buyerscore.models import trees

    X, _ = data
    if not trees.enabled():
        pytest.skip("numba not installed")
    assert all(trees.flat_trees(b, it) is not None for b, it in zip(gbm.boosters_, gbm.best_iterations_))
    fast = gbm.predict_proba(X)[:, 1]
    rec = X.iloc[3].to_dict()
    one = gbm.score_record(rec)
    monkeypatch.setenv("BUYERSCORE_COMPILED_TREES", "0")
    np.testing.assert_array_equal(gbm.predict_proba(X)[:, 1], fast)
    assert gbm.score_record(rec) == one
