"""The compiled tree kernels (buyerscore.models.trees) give LightGBM's and scikit-learn's own numbers."""

from __future__ import annotations

import math
import pickle
import threading

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import IsolationForest

from buyerscore.models import trees

pytestmark = pytest.mark.skipif(not trees.enabled(), reason="numba not installed: the compiled path is off")


def _data(n: int = 800, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    X[::7, 1] = np.nan                                   # missing in training -> missing_type NaN
    X[:, 2] = rng.integers(-2, 3, n)                     # many exact zeros, negatives: splits at -+1e-35
    X[::11, 3] = 0.0
    y = X[:, 0] + np.nan_to_num(X[:, 1]) + 0.5 * X[:, 2] + rng.normal(size=n)
    return X, y


def _thresholds(model: lgb.LGBMModel) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}

    def walk(node: dict) -> None:
        if "split_feature" in node:
            out.setdefault(node["split_feature"], []).append(node["threshold"])
            walk(node["left_child"])
            walk(node["right_child"])

    for t in model.booster_.dump_model()["tree_info"]:
        walk(t["tree_structure"])
    return out


def _awkward(X: np.ndarray, model: lgb.LGBMModel | None = None) -> np.ndarray:
    """Inputs that exercise LightGBM's reading rules: NaN where training had none, -0.0, tiny values,
    values exactly at the split thresholds (``<=`` goes left) and at +-1e-35f (read as 0)."""
    kz = float(np.float32(1e-35))
    Z = X.copy()
    if model is not None:  # every third row of each split feature sits exactly on one of its thresholds
        for f, thr in _thresholds(model).items():
            Z[::3, f] = np.resize(thr, len(Z[::3]))
    Z[7::9, 2] = -kz
    Z[8::9, 2] = kz
    Z[::5, 0] = np.nan          # feature 0 never missing in training: NaN counts as 0
    Z[1::9, 3] = -0.0
    Z[2::9, 3] = 1e-36          # |x| <= 1e-35 is read as 0
    Z[3::9, 3] = -1e-36
    Z[4::9, 4] = np.inf
    Z[5::9, 4] = -np.inf
    return Z


@pytest.mark.parametrize("objective", ["regression", "gamma", "tweedie", "poisson"])
def test_regressor_raw_scores_are_lightgbm_exactly(objective: str) -> None:
    X, y = _data()
    y = np.abs(y) + 0.1 if objective != "regression" else y
    m = lgb.LGBMRegressor(objective=objective, n_estimators=40, num_leaves=15, verbose=-1).fit(X, y)
    Z = _awkward(X, m)
    np.testing.assert_array_equal(trees.raw_score(m, Z), m.predict(Z, raw_score=True))
    np.testing.assert_allclose(trees.predict(m, Z), m.predict(Z), rtol=1e-14, atol=0)


def test_classifiers_binary_and_multiclass() -> None:
    X, y = _data(seed=1)
    yb = (y > 0).astype(int)
    b = lgb.LGBMClassifier(n_estimators=30, num_leaves=31, verbose=-1).fit(X, yb)
    Z = _awkward(X)
    np.testing.assert_array_equal(trees.raw_score(b, Z), b.predict(Z, raw_score=True))
    np.testing.assert_allclose(trees.predict(b, Z), b.predict_proba(Z)[:, 1], rtol=1e-14, atol=0)
    yc = np.digitize(y, [-0.5, 0.8])
    mc = lgb.LGBMClassifier(n_estimators=25, num_leaves=7, verbose=-1).fit(X, yc)
    raw = trees.raw_score(mc, Z)
    assert raw.shape == (len(Z), 3)
    np.testing.assert_array_equal(raw, mc.predict(Z, raw_score=True))
    with pytest.raises(ValueError, match="3 class probabilities"):
        trees.predict(mc, Z)


@pytest.mark.filterwarnings("ignore:The argument 'eval_set' is deprecated")
def test_best_iteration_single_leaf_trees_and_odd_row_counts() -> None:
    X, y = _data(n=600, seed=2)
    m = lgb.LGBMRegressor(n_estimators=300, learning_rate=0.3, verbose=-1)
    m.fit(X[:400], y[:400], eval_set=[(X[400:], y[400:])], callbacks=[lgb.early_stopping(5, verbose=False)])
    assert 0 < m.booster_.best_iteration < 300
    flat = trees.flat_trees(m)
    assert isinstance(flat, trees.BoostedTrees) and flat.n_trees == m.booster_.best_iteration
    for n in (1, 63, 64, 65, 129):  # the kernel works in blocks of 64 rows
        np.testing.assert_array_equal(trees.raw_score(m, X[:n]), m.predict(X[:n], raw_score=True))
    const = lgb.LGBMRegressor(n_estimators=5, min_child_samples=10_000, verbose=-1).fit(X, y)  # no split at all
    np.testing.assert_array_equal(trees.raw_score(const, X), const.predict(X, raw_score=True))
    assert trees.raw_score(m, X[:0]).shape == (0,)


@pytest.mark.parametrize("leaves", [7, 33])
def test_few_rows_take_the_scalar_walk_and_give_the_same_numbers(leaves: int) -> None:
    """Up to ``_SCALAR_ROWS`` rows are tested one by one (one API call); beyond, in 64-lane blocks."""
    X, y = _data(seed=3)
    m = lgb.LGBMRegressor(n_estimators=40, num_leaves=leaves, verbose=-1).fit(X, y)
    Z = _awkward(X, m)[:60]  # NaN, -0.0, tiny values and values on the thresholds
    want = m.predict(Z, raw_score=True)
    for i in range(len(Z)):
        np.testing.assert_array_equal(trees.raw_score(m, Z[i:i + 1]), want[i:i + 1])
    for n in range(1, trees._SCALAR_ROWS + 2):  # both sides of the switch
        np.testing.assert_array_equal(trees.raw_score(m, Z[:n]), want[:n])
    yc = np.digitize(y, [-0.5, 0.8])
    mc = lgb.LGBMClassifier(n_estimators=10, num_leaves=leaves, verbose=-1).fit(X, yc)
    np.testing.assert_array_equal(trees.raw_score(mc, Z[:3]), mc.predict(Z[:3], raw_score=True))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), leaves=st.sampled_from([2, 5, 31, 32, 33, 64]), nan_share=st.floats(0, 0.5))
def test_random_boosters_match(seed: int, leaves: int, nan_share: float) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 4)).round(rng.integers(0, 3))  # rounding: ties at the thresholds
    X[rng.random(X.shape) < nan_share] = np.nan
    y = np.nan_to_num(X[:, 0]) * 2 + rng.normal(size=300)
    m = lgb.LGBMRegressor(n_estimators=8, num_leaves=leaves, min_child_samples=2, verbose=-1).fit(X, y)
    Z = np.vstack([X, rng.normal(size=(50, 4))])
    np.testing.assert_array_equal(trees.raw_score(m, Z), m.predict(Z, raw_score=True))


@pytest.mark.parametrize(("leaves", "width"), [(7, np.uint32), (32, np.uint32), (33, np.uint64), (64, np.uint64)])
def test_mask_width_follows_the_largest_tree(leaves: int, width: type) -> None:
    """Trees of <= 32 leaves run on 32-bit masks, larger ones on 64-bit masks; both are exact."""
    rng = np.random.default_rng(leaves)
    X = rng.normal(size=(2_000, 5))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = np.nan_to_num(X[:, 0] * X[:, 1]) + np.nan_to_num(X[:, 2]) + rng.normal(size=2_000)
    m = lgb.LGBMRegressor(n_estimators=6, num_leaves=leaves, min_child_samples=2, verbose=-1).fit(X, y)
    flat = trees.flat_trees(m)
    assert isinstance(flat, trees.BoostedTrees)
    assert max(np.diff([*flat.leaf_start, len(flat.leaf_value)])) == leaves  # the largest tree is full
    mask, full = flat.kernel_mask
    assert mask.dtype == width and full.dtype == width and int(full[0]) == np.iinfo(width).max
    np.testing.assert_array_equal(trees.raw_score(m, X), m.predict(X, raw_score=True))


def test_uncovered_models_fall_back_to_lightgbm() -> None:
    X, y = _data(seed=3)
    df = pd.DataFrame(X, columns=list("abcde")).assign(cat=pd.Categorical(np.arange(len(X)) % 4))
    m = lgb.LGBMRegressor(n_estimators=10, min_data_per_group=5, cat_smooth=1, verbose=-1).fit(df, y + (df["cat"].cat.codes == 2) * 3)
    assert any(t.get("num_cat", 0) for t in m.booster_.dump_model()["tree_info"])
    assert trees.flat_trees(m) is None  # categorical splits: not compiled
    np.testing.assert_array_equal(trees.raw_score(m, df), m.predict(df, raw_score=True))
    big = lgb.LGBMRegressor(n_estimators=3, num_leaves=100, min_child_samples=2, verbose=-1).fit(X, y)
    assert trees.flat_trees(big) is None  # > 64 leaves
    np.testing.assert_array_equal(trees.raw_score(big, X), big.predict(X, raw_score=True))


def test_dataframe_columns_must_match_the_booster() -> None:
    X, y = _data(seed=4)
    df = pd.DataFrame(X, columns=list("abcde"))
    m = lgb.LGBMRegressor(n_estimators=10, verbose=-1).fit(df, y)
    np.testing.assert_array_equal(trees.raw_score(m, df), m.predict(df, raw_score=True))
    shuffled = df[list("edcba")]  # other order: LightGBM's own predict decides (here: by position, as LightGBM does)
    np.testing.assert_array_equal(trees.raw_score(m, shuffled), m.predict(shuffled, raw_score=True))


def test_switch_off_and_threads_and_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = _data(n=5000, seed=5)
    m = lgb.LGBMRegressor(n_estimators=50, verbose=-1).fit(X, y)
    ref = m.predict(X, raw_score=True)
    monkeypatch.setenv("BUYERSCORE_COMPILED_TREES", "0")
    assert not trees.enabled() and trees.flat_trees(m) is None
    monkeypatch.delenv("BUYERSCORE_COMPILED_TREES")
    assert trees.flat_trees(m) is trees.flat_trees(m)  # cached per booster
    results: list[np.ndarray] = []
    ths = [threading.Thread(target=lambda: results.append(trees.raw_score(m, X))) for _ in range(4)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    assert len(results) == 4 and all(np.array_equal(r, ref) for r in results)
    m2 = pickle.loads(pickle.dumps(m))  # the cache is not part of the model
    np.testing.assert_array_equal(trees.raw_score(m2, X), ref)


@pytest.mark.parametrize("n,max_samples", [(1, 256), (64, 256), (1000, 256), (3001, 256), (500, 120), (700, 2000)])
def test_isolation_forest_path_lengths_are_sklearns(n: int, max_samples: int) -> None:
    """Both kernels: trees with <= 64 leaves (bit vectors) and larger ones (walked), mixed in one forest."""
    rng = np.random.default_rng(n)
    X = rng.normal(size=(2000, 6)) * rng.uniform(0.1, 100, 6)
    f = IsolationForest(n_estimators=60, random_state=0, max_samples=max_samples).fit(X)
    Z = rng.normal(size=(n, 6)) * 50
    # values a hair above a split threshold in float64 that round to float32 at or below it: sklearn
    # compares float32 inputs, so these go left
    t0 = f.estimators_[0].tree_
    for i in range(min(n, 40)):
        node = i % t0.node_count
        if t0.children_left[node] >= 0:
            Z[i, t0.feature[node]] = np.nextafter(t0.threshold[node], np.inf)
    flat = trees.flat_trees(f)
    assert isinstance(flat, trees.IsolationTrees) and flat.n_trees == 60
    kinds = set(flat.kind.tolist())
    if max_samples >= 2000:
        assert kinds == {1}          # every tree has more than 64 leaves: walked
    elif max_samples == 256:
        assert kinds == {0, 1}       # both kernels in one forest
    else:
        assert 0 in kinds
    from sklearn.ensemble._iforest import _average_path_length
    den = 60 * _average_path_length([f._max_samples])
    np.testing.assert_array_equal(-(2 ** (-flat.predict(Z) / den)), f.score_samples(Z))
    with pytest.raises(ValueError, match="6 columns"):
        flat.predict(Z[:, :5])


def test_ecod_copod_compiled_pass_matches_numpy() -> None:
    """The one-pass ECOD/COPOD kernel gives the numpy path's row sums (to the last bit or two: libm's
    log/exp vs numpy's), including values on the sketch's grid points and beyond its range."""
    from buyerscore.models.anomaly.detector import _Marginals

    rng = np.random.default_rng(7)
    train = np.column_stack([rng.normal(size=5000), rng.exponential(size=5000), rng.integers(0, 6, 5000) * 1.0,
                             -rng.exponential(size=5000)])
    mg = _Marginals(train, max_grid=256)
    X = np.column_stack([rng.normal(size=3000) * 3, rng.exponential(size=3000) * 2, rng.integers(-2, 9, 3000) * 1.0,
                         -rng.exponential(size=3000)])
    X[:200, 0] = mg.grids[0][:200]            # exactly on grid points
    X[200:210, 1] = mg.grids[1][-1] + 50      # far right of the sketch
    X[210:220, 3] = mg.grids[3][0] - 50       # far left
    got = mg.row_scores(X)
    assert got is not None
    nlt = mg.neg_log_tails(X)
    for method in ("ecod", "copod"):
        want = mg.outlyingness(X, method, nlt).sum(axis=1)  # type: ignore[arg-type]
        np.testing.assert_allclose(got[method], want, rtol=1e-13, atol=0)
    assert "_flat" in mg.__dict__ and "_flat" not in mg.__getstate__()


def test_anomaly_detector_compiled_and_library_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """AnomalyDetector fitted and scored with the kernels, and with them switched off, gives the same
    scores (to rounding of libm's vs numpy's log) and the same flags."""
    from buyerscore.models.anomaly import AnomalyDetector

    rng = np.random.default_rng(3)
    X = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.exponential(size=3000), "c": rng.integers(0, 5, 3000) * 1.0})
    X.loc[::17, "b"] = np.nan
    X.loc[[0, 2], "a"] = [12.0, 15.0]
    on = AnomalyDetector(n_estimators=40).fit(X)
    s_on = on.anomaly_score(X)
    monkeypatch.setenv("BUYERSCORE_COMPILED_TREES", "0")
    off = AnomalyDetector(n_estimators=40).fit(X)
    np.testing.assert_allclose(off.anomaly_score(X), s_on, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(on.anomaly_score(X), s_on, rtol=1e-12, atol=1e-12)  # fitted on, scored off
    np.testing.assert_array_equal(off.flag(X), on.flag(X))
    assert on.flag(X)[[0, 2]].all()  # the two far outliers


def test_inputs_and_objectives_the_fast_path_must_not_misread() -> None:
    """reg_sqrt squares LightGBM's output, pandas categoricals need LightGBM's own code mapping and
    nullable floats carry pd.NA: each gives what LightGBM gives."""
    rng = np.random.default_rng(11)
    X = pd.DataFrame(rng.normal(size=(400, 3)), columns=list("abc"))
    y = X["a"] * 2 + rng.normal(size=400)
    sq = lgb.LGBMRegressor(n_estimators=10, reg_sqrt=True, verbose=-1).fit(X, y)
    np.testing.assert_allclose(trees.predict(sq, X), sq.predict(X), rtol=1e-14)
    Xc = X.assign(c=pd.Categorical(rng.integers(0, 3, 400)))
    cat = lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(Xc, y)
    np.testing.assert_array_equal(trees.raw_score(cat, Xc), cat.predict(Xc, raw_score=True))
    plain = lgb.LGBMRegressor(n_estimators=5, verbose=-1).fit(X, y)
    Xn = X.astype("Float64")
    Xn.iloc[0, 0] = pd.NA
    np.testing.assert_array_equal(trees.raw_score(plain, Xn), plain.predict(Xn.astype(float), raw_score=True))


@pytest.mark.parametrize("leaves", [8, 40])
def test_infinite_and_huge_values_against_thresholds_beyond_1e300(leaves: int) -> None:
    """``dump_model`` prints thresholds through LightGBM's ``AvoidInf`` (|t| >= 1e300 as +-1e300): the
    split of NaN from every value ("x <= inf") and splits between huge training values (3e300).  The
    kernel uses the booster's own thresholds, so +-inf, huge, NaN and tiny inputs go where LightGBM
    sends them (inf and 5e300 go left at "x <= inf"; 2e300 goes left at "x <= 3e300")."""
    rng = np.random.default_rng(0)
    n = 3000
    X = rng.normal(size=(n, 3))
    X[:, 0] = np.where(rng.random(n) < 0.5, rng.choice([2e300, 4e300, 1e305, -3e300, -1e302], n), X[:, 0])
    X[rng.random(n) < 0.2, 1] = np.nan
    y = ((X[:, 0] > 3e300) * 2.0 + (X[:, 0] < -2e300) + np.where(np.isnan(X[:, 1]), 5.0, np.nan_to_num(X[:, 1]))
         + X[:, 2] + rng.normal(size=n) * 0.1)
    m = lgb.LGBMRegressor(n_estimators=12, num_leaves=leaves, min_child_samples=5, verbose=-1).fit(X, y)
    true = [float(v) for line in m.booster_.model_to_string().splitlines() if line.startswith("threshold=")
            for v in line.split("=", 1)[1].split()]
    assert math.inf in true and any(1e300 < abs(t) < math.inf for t in true)  # the cases this test is about
    assert max(abs(t) for ts in _thresholds(m).values() for t in ts) == 1e300  # what dump_model shows
    big = np.finfo(np.float64).max
    vals = [np.inf, -np.inf, np.nan, big, -big, 1e308, 5e300, 3.0000000000000008e300, 2e300, 1e300, -1e300, -2e300,
            -5e300, 0.0, -0.0, 1e-36, -1e-36, 1e-35, 0.5, -0.5]
    Z = np.array([[a, b, c] for a in vals for b in vals for c in (0.0, np.inf)])
    want = m.predict(Z, raw_score=True)
    np.testing.assert_array_equal(trees.raw_score(m, Z), want)
    for i in range(0, len(Z), 7):  # the few-row walk
        np.testing.assert_array_equal(trees.raw_score(m, Z[i:i + 1]), want[i:i + 1])


def test_lowest_set_bit_fallback_without_numbas_trailing_zeros() -> None:
    """The de Bruijn lookup used when numba lacks ``trailing_zeros`` finds the lowest set bit of any mask."""
    rng = np.random.default_rng(3)
    with np.errstate(over="ignore"):  # the multiplication wraps around on purpose (as compiled)
        for i in range(64):
            high = int(rng.integers(0, 2**63, dtype=np.uint64)) << 1 if i < 63 else 0
            mm = np.uint64(((high >> (i + 1)) << (i + 1) | (1 << i)) & 0xFFFFFFFFFFFFFFFF)
            assert trees._first_leaf_debruijn(mm) == i
        assert trees._first_leaf_debruijn(np.uint32(0b1000)) == 3  # 32-bit masks of <= 32-leaf trees


@settings(max_examples=200, deadline=None)
@given(t=st.floats(allow_nan=False, allow_infinity=False, width=64),
       d=st.integers(-3, 3))
def test_float32_threshold_floor_keeps_every_comparison(t: float, d: int) -> None:
    """For float32 x, ``x <= t`` (float64 t) equals ``x <= _floor32(t)``, near t and on both sides."""
    f = trees._floor32(np.array([t]))[0]
    assert f.dtype == np.float32 and float(f) <= t
    with np.errstate(over="ignore"):
        x = np.float32(t) if abs(t) <= np.finfo(np.float32).max else np.float32(np.sign(t) * np.inf)
        for _ in range(abs(d)):
            x = np.nextafter(x, np.float32(np.inf if d > 0 else -np.inf))
        for v in (x, f, np.nextafter(f, np.float32(np.inf)), np.nextafter(f, np.float32(-np.inf))):
            assert (float(v) <= t) == bool(v <= f), (v, t, f)
