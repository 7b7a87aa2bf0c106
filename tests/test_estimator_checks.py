"""scikit-learn's estimator checks (``parametrize_with_checks``) on every buyerscore estimator.

The checks feed numpy arrays, memmaps, lists, sparse matrices, one-row / one-column / empty data,
NaN and column vectors, and check fit/predict/clone/pickle behaviour.  A check an estimator is not
meant to pass is listed below with the reason; every other check must pass.  The 7 skipped items are
scikit-learn's ``check_array_api_input``, which scikit-learn itself skips unless ``SCIPY_ARRAY_API=1`` is set
before SciPy is imported; buyerscore does not claim array-API support (it computes with numpy).
ProbabilisticCLV (an RFM summary, not a feature matrix) and SequenceSpendModel (event sequences) take inputs
the checks cannot generate and are tested in their own files.
"""

from __future__ import annotations

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from buyerscore.models.anomaly import AnomalyDetector
from buyerscore.models.credit import CreditEnsemble, CreditForest, CreditGBM, CreditScorecard
from buyerscore.models.purchasing_power import SpendForecaster, SpendTier

_BINARY_01 = ("a PD model takes y as 0 (good) / 1 (bad): other codings (1/2, 'one'/'two') are refused, not "
              "mapped by sort order, because which label is the bad one must not be guessed")
_NUMERIC_ONLY = ("a column with a non-number is a ModelInputError (a ValueError) naming the column, rows and "
                 "values, not numpy's TypeError")
_CALIBRATED = ("class weights only shape the trees: the PD is calibrated on unweighted held-out rows, so "
               "extreme weights do not move predictions as the check expects")
_NO_FEATURE = "a scorecard on pure-noise check data has no feature with a binning split and says so"
_SPEND_Y = ("y is future spend and the tiers are cut from it at the amounts 0.5 / 1.5; the check's labels "
            "leave one tier with fewer than cv=3 rows (or are strings), which fit refuses")

_TIER_NAMES = ("predict returns tier names ('low' / 'mid' / 'high'), which the check compares as numbers; "
               "test_spend_tier_predictions_ignore_row_order checks the same property")

_EXPECTED: dict[str, dict[str, str]] = {
    "CreditScorecard": {
        "check_estimators_dtypes": _BINARY_01, "check_classifier_data_not_an_array": _BINARY_01,
        "check_classifiers_classes": _BINARY_01, "check_pipeline_consistency": _NO_FEATURE,
        "check_fit2d_1feature": _NO_FEATURE,
    },
    "CreditGBM": {
        "check_estimators_dtypes": _BINARY_01, "check_classifier_data_not_an_array": _BINARY_01,
        "check_classifiers_classes": _BINARY_01, "check_class_weight_classifiers": _CALIBRATED,
    },
    "CreditForest": {
        "check_estimators_dtypes": _BINARY_01, "check_classifier_data_not_an_array": _BINARY_01,
        "check_classifiers_classes": _BINARY_01, "check_class_weight_classifiers": _CALIBRATED,
    },
    "CreditEnsemble": {
        "check_estimators_dtypes": _BINARY_01, "check_classifier_data_not_an_array": _BINARY_01,
        "check_classifiers_classes": _BINARY_01,
    },
    "SpendForecaster": {"check_dtype_object": _NUMERIC_ONLY},
    "SpendTier": {
        "check_dtype_object": _NUMERIC_ONLY,
        **{c: _SPEND_Y for c in (
            "check_estimators_dtypes", "check_pipeline_consistency", "check_estimators_pickle",
            "check_classifier_data_not_an_array", "check_classifiers_one_label", "check_classifiers_classes",
            "check_classifiers_train", "check_classifiers_regression_target", "check_fit2d_1feature",
            "check_fit_idempotent", "check_fit_check_is_fitted", "check_n_features_in")},
        **{c: _TIER_NAMES for c in ("check_supervised_y_2d", "check_methods_sample_order_invariance",
                                    "check_methods_subset_invariance")},
    },
    "AnomalyDetector": {"check_dtype_object": _NUMERIC_ONLY},
}

ESTIMATORS = [
    CreditScorecard(min_iv=0.0),
    CreditGBM(n_estimators=50, early_stopping_rounds=20),
    CreditForest(n_estimators=20),
    CreditEnsemble(members=[("gbm", CreditGBM(n_estimators=50, early_stopping_rounds=20)),
                            ("forest", CreditForest(n_estimators=20))]),
    SpendForecaster(),
    SpendTier(kind="amount", thresholds=(0.5, 1.5), n_estimators=30),
    AnomalyDetector(n_estimators=20),
]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda est: _EXPECTED.get(type(est).__name__, {}),
                         xfail_strict=True)  # a listed check that starts passing must be taken off the list
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize("name", sorted(_EXPECTED))
def test_every_expected_failure_names_a_real_check(name):
    """The allow-list cannot hide a typo: each entry is a check scikit-learn runs on that estimator."""
    from sklearn.utils.estimator_checks import _yield_all_checks

    est = next(e for e in ESTIMATORS if type(e).__name__ == name)
    run = {getattr(c, "func", c).__name__ for c in _yield_all_checks(est, legacy=True)}
    assert set(_EXPECTED[name]) <= run


def test_spend_tier_predictions_ignore_row_order():
    """What the three numeric checks left out test for SpendTier: the same row gets the same tier and
    probabilities whatever the order or subset of the rows scored with it, and a column-vector y fits the
    same model as a 1-d y (with scikit-learn's DataConversionWarning)."""
    import numpy as np
    from sklearn.exceptions import DataConversionWarning

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = np.exp(X[:, 0] + rng.normal(scale=0.5, size=300))
    tier = SpendTier(n_estimators=30).fit(X, y)
    order = rng.permutation(300)
    np.testing.assert_array_equal(tier.predict(X)[order], tier.predict(X[order]))
    np.testing.assert_allclose(tier.predict_proba(X)[order], tier.predict_proba(X[order]))
    np.testing.assert_array_equal(tier.predict(X)[:7], tier.predict(X[:7]))
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        tier2 = SpendTier(n_estimators=30).fit(X, y[:, None])
    np.testing.assert_array_equal(tier.predict(X), tier2.predict(X))
    assert 0.0 <= tier.score(X, y) <= 1.0
    assert tier.score(X, y) == np.mean(tier.predict(X) == tier.tiers_of(y))
