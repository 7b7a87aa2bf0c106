"""Known-answer tests of buyerscore.models.metrics (hand-computed values and sklearn as an oracle)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from buyerscore.models import metrics as m


def test_hand_computed_values() -> None:
    y = [0, 0, 1, 1]
    p = [0.1, 0.4, 0.35, 0.8]
    assert m.auc(y, p) == 0.75
    assert m.ks(y, p) == 0.5
    assert m.gini(y, p) == 0.5
    assert m.brier(y, p) == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    assert m.log_loss([1, 0], [0.5, 0.5]) == pytest.approx(np.log(2))
    assert m.misclassification_cost([1, 0, 0, 1], [0, 1, 0, 1]) == 1.5


def test_ties_count_half() -> None:
    assert m.auc([0, 1], [0.5, 0.5]) == 0.5
    assert m.ks([0, 1], [0.5, 0.5]) == 0.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 20)), min_size=4, max_size=200))
def test_agree_with_sklearn(rows: list[tuple[int, int]]) -> None:
    y = np.array([r[0] for r in rows])
    p = np.array([r[1] for r in rows]) / 20.0
    if y.min() == y.max():
        return
    assert m.auc(y, p) == pytest.approx(skm.roc_auc_score(y, p))
    fpr, tpr, _ = skm.roc_curve(y, p)
    assert m.ks(y, p) == pytest.approx(np.max(np.abs(tpr - fpr)))
    assert m.brier(y, p) == pytest.approx(skm.brier_score_loss(y, p))
    assert m.log_loss(y, p) == pytest.approx(skm.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15)))


def test_ece_known_answers() -> None:
    assert m.expected_calibration_error([0, 0], [0.2, 0.2]) == pytest.approx(0.2)
    # perfectly calibrated bins
    assert m.expected_calibration_error([0, 1, 0, 1], [0.0, 1.0, 0.5, 0.5], n_bins=2) == 0.0
    # two bins: |0.1-0| * 2/4 + |0.9-0.5| * 2/4
    assert m.expected_calibration_error([0, 0, 1, 0], [0.1, 0.1, 0.9, 0.9], n_bins=2) == pytest.approx(0.25)
    assert m.expected_calibration_error([0, 0, 1, 0], [0.1, 0.1, 0.9, 0.9], strategy="quantile") >= 0


def test_lift_table() -> None:
    y = [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    p = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    t = m.lift_table(y, p, n_bins=5)
    assert t["n"].tolist() == [2] * 5
    assert t["bads"].tolist() == [2, 0, 0, 0, 0]
    assert t["gain"].tolist() == [1.0] * 5
    assert t["lift"].iloc[0] == 5.0
    assert t["cum_lift"].iloc[-1] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    yy = rng.integers(0, 2, 1000)
    tt = m.lift_table(yy, rng.random(1000))
    assert len(tt) == 10 and tt["n"].sum() == 1000 and tt["cum_bads"].iloc[-1] == yy.sum()


def test_psi() -> None:
    assert m.psi([1, 2, 3, 4], [1, 2, 3, 4], bins=2) == 0.0
    expected = 0.25 * np.log(0.75 / 0.5) - 0.25 * np.log(0.25 / 0.5)
    assert m.psi([0, 0, 1, 1], [0, 1, 1, 1], bins=[0.5]) == pytest.approx(expected)
    rng = np.random.default_rng(1)
    a = rng.normal(size=5000)
    assert m.psi(a, rng.normal(size=5000)) < 0.02
    assert m.psi(a, rng.normal(1.0, 1.0, size=5000)) > 0.25
    # missing values are their own bin
    assert m.psi([1.0, 2.0, np.nan, np.nan], [1.0, 2.0, 3.0, 4.0], bins=2) > 1


@pytest.mark.parametrize(
    ("func", "args", "match"),
    [
        (m.auc, ([0, 0], [0.1, 0.2]), "only class 0"),
        (m.auc, ([0, 2], [0.1, 0.2]), "only 0 \\(good\\) and 1 \\(bad\\)"),
        (m.auc, ([0, 1], [0.1]), "same length"),
        (m.auc, ([0, 1], [0.1, np.nan]), "NaN"),
        (m.brier, ([0, 1], [0.1, 3.0]), "must lie in \\[0, 1\\]"),
        (m.expected_calibration_error, ([0, 1], [0.1, 0.2], 0), "n_bins"),
        (m.psi, ([], [1.0]), "non-empty"),
        (m.misclassification_cost, ([0, 1], [0.2, 0.7]), "hard 0/1"),
    ],
)
def test_invalid_inputs(func, args, match) -> None:  # type: ignore[no-untyped-def]
    if func is m.expected_calibration_error:
        with pytest.raises(ValueError, match=match):
            func(*args[:2], n_bins=args[2])
    else:
        with pytest.raises(ValueError, match=match):
            func(*args)
