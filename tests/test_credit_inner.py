"""The inner-fold harness of benchmarks/credit_inner.py: candidates are compared on folds that never
touch the outer test fold of benchmarks/credit.py."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from buyerscore.datasets import read_applicants
from buyerscore.models.credit import split_applicants

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def inner():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("credit_inner", ROOT / "benchmarks" / "credit_inner.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


@pytest.mark.parametrize("dataset,n_inner", [("german_credit", 15), ("taiwan_default", 3)])
def test_inner_folds_stay_inside_the_first_outer_training_fold(inner, data_dir: Path, dataset: str,
                                                               n_inner: int) -> None:
    X, y = split_applicants(read_applicants(dataset, data_dir))
    outer_train, outer_test = inner.bench.folds(dataset, X, y, quick=False)[0]
    rows, folds = inner.inner_folds(dataset, X, y)
    assert np.array_equal(rows, outer_train) and not set(rows) & set(outer_test)
    assert len(folds) == n_inner
    for a, b in folds:  # positions within the outer training rows
        assert not set(a) & set(b) and len(a) + len(b) == len(rows)
    # each repeat's test parts cover every outer-training row once
    for r in range(n_inner // 3):
        tests = np.concatenate([b for _, b in folds[3 * r: 3 * r + 3]])
        assert np.array_equal(np.sort(tests), np.arange(len(rows)))


def test_markdown_lists_every_candidate_with_the_statlog_cost_on_german(inner) -> None:
    res = {"command": "python benchmarks/credit_inner.py", "started": "2026-11-25 00:00:00", "datasets": {
        "german_credit": {"rows_in_outer_fold": 800, "inner_folds": 15, "candidates": {
            "ensemble_scorecard": {"auc": 0.7949, "auc_std": 0.0284, "statlog_cost": 0.5363, "fit_s_median_fold": 1.8}}},
        "taiwan_default": {"rows_in_outer_fold": 24000, "inner_folds": 3, "candidates": {
            "gbm": {"auc": 0.7875, "auc_std": 0.002}, "gbm_unconstrained+mlp@0.1": {"auc": 0.788, "auc_std": 0.002}}}}}
    md = inner.to_markdown(res)
    assert "| ensemble_scorecard | 0.7949 ± 0.0284 | 0.5363 | 1.8 |" in md
    assert "| gbm | 0.7875 ± 0.0020 | - |" in md and "| gbm_unconstrained+mlp@0.1 | 0.7880 ± 0.0020 | - |" in md
    assert md.index("## german_credit") < md.index("## taiwan_default")
