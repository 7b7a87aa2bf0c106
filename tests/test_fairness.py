"""Fairness audit: hand-computed metrics, credit conversion, derived attributes, mitigation, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from buyerscore.exceptions import ModelInputError
from buyerscore.explain.fairness import (
    age_band,
    audit_credit,
    derive_sensitive,
    fairness_audit,
    mitigate_thresholds,
)


def test_known_answer_by_hand() -> None:
    # group f: deserving [1,1,0,0], given [1,1,1,0]; group m: deserving [1,1,0,0], given [1,0,0,0]
    y_true = [1, 1, 0, 0, 1, 1, 0, 0]
    y_pred = [1, 1, 1, 0, 1, 0, 0, 0]
    score = [0.9, 0.8, 0.7, 0.1, 0.9, 0.2, 0.3, 0.1]
    rep = fairness_audit(y_true, y_pred, pd.Series(list("ffffmmmm"), name="sex"), y_score=score)
    g = rep.by_group.set_index("group")
    assert g.loc["f", "selection_rate"] == 0.75 and g.loc["m", "selection_rate"] == 0.25
    assert g.loc["f", "tpr"] == 1.0 and g.loc["m", "tpr"] == 0.5
    assert g.loc["f", "fpr"] == 0.5 and g.loc["m", "fpr"] == 0.0
    assert g.loc["f", "auc"] == 1.0 and g.loc["m", "auc"] == 0.75
    s = rep.summary["sex"]
    assert s["disparate_impact_ratio"] == pytest.approx(1 / 3)
    assert s["di_flag"] and rep.flagged == ["sex"]
    assert s["equal_opportunity_difference"] == 0.5
    assert s["equalized_odds_difference"] == 0.5
    assert s["auc_gap"] == 0.25
    assert s["lowest_selection_group"] == "m"
    assert g.loc["m", "di_ratio"] == pytest.approx(1 / 3) and bool(g.loc["m", "flag"])
    json.dumps(rep.to_dict())  # JSON-ready


def test_equal_treatment_is_not_flagged_and_missing_is_a_group() -> None:
    rep = fairness_audit([1, 0, 1, 0], [1, 0, 1, 0], pd.DataFrame({"age_band": ["<25", "<25", None, None]}))
    assert rep.summary["age_band"]["disparate_impact_ratio"] == 1.0 and not rep.flagged
    assert set(rep.by_group["group"]) == {"<25", "missing"}


def test_ratio_of_exactly_four_fifths_is_not_flagged() -> None:
    # selection rates 36/55 and 27/33: the ratio is exactly 0.8 (0.7999999999999999 in floating point)
    y_pred = [1] * 36 + [0] * 19 + [1] * 27 + [0] * 6
    rep = fairness_audit([1] * 88, y_pred, pd.Series(["a"] * 55 + ["b"] * 33, name="g"))
    assert rep.summary["g"]["disparate_impact_ratio"] == pytest.approx(0.8)
    assert not rep.summary["g"]["di_flag"] and not rep.by_group["flag"].any()


def test_audit_credit_converts_default_probability() -> None:
    y_bad = np.array([0, 0, 1, 1])
    pd_ = np.array([0.1, 0.7, 0.2, 0.9])
    rep = audit_credit(y_bad, pd_, pd.Series(["a", "a", "b", "b"], name="g"), threshold=0.5)
    g = rep.by_group.set_index("group")
    # approved = pd < 0.5 -> [1, 0, 1, 0]; deserving = good payers -> [1, 1, 0, 0]
    assert g.loc["a", "selection_rate"] == 0.5 and g.loc["a", "tpr"] == 0.5 and g.loc["b", "fpr"] == 0.5


def test_age_band_and_derived_attributes() -> None:
    assert age_band([18, 24.9, 25, 34, 35, 49, 50, None]).tolist() == \
        ["<25", "<25", "25-34", "25-34", "35-49", "35-49", "50+", pd.NA]
    german = pd.DataFrame({"age_in_years": [30], "personal_status_and_sex": ["female : divorced/separated/married"]})
    assert derive_sensitive(german).iloc[0].tolist() == ["25-34", "female"]


def test_input_errors() -> None:
    with pytest.raises(ModelInputError, match="same length"):
        fairness_audit([1, 0], [1], pd.Series(["a", "b"]))
    with pytest.raises(ModelInputError, match="0/1"):
        fairness_audit([1, 2], [1, 0], pd.Series(["a", "b"]))
    with pytest.raises(ModelInputError, match="3 rows"):
        fairness_audit([1, 0], [1, 0], pd.Series(["a", "b", "c"]))


def test_threshold_optimizer_narrows_the_gap() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    grp = rng.choice(["a", "b"], n)
    y = rng.integers(0, 2, n)
    # a biased score: group b gets systematically lower scores for the same truth
    score = y * 0.5 + rng.normal(0, 0.3, n) - np.where(grp == "b", 0.35, 0.0)
    pred = (score > 0.25).astype(int)
    before = fairness_audit(y, pred, pd.Series(grp, name="g")).summary["g"]
    mit = mitigate_thresholds(y, score, pd.Series(grp), y_pred=pred, constraint="equalized_odds")
    t = mit.tradeoff.set_index("stage")
    assert t.loc["before", "equalized_odds_difference"] == pytest.approx(before["equalized_odds_difference"])
    assert t.loc["after", "equalized_odds_difference"] < 0.5 * t.loc["before", "equalized_odds_difference"]
    assert 0.5 < t.loc["after", "accuracy"] <= 1.0


def test_cli_audit_fairness_on_german_credit(data_dir, tmp_path) -> None:
    from buyerscore.cli import app
    from buyerscore.datasets import read_applicants
    from buyerscore.models.credit import CreditScorecard, split_applicants

    app_df = read_applicants("german_credit", data_dir)
    X, y = split_applicants(app_df)
    model = CreditScorecard().fit(X, y)
    model.save(tmp_path / "m")
    data = tmp_path / "german.parquet"
    app_df.to_parquet(data, index=False)
    res = CliRunner().invoke(app, ["audit", "fairness", "--model", str(tmp_path / "m"), "--data", str(data),
                                   "--sensitive", "age_band,sex", "--json", "--mitigate"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out["summary"]) == {"age_band", "sex"}
    assert {r["group"] for r in out["by_group"] if r["attribute"] == "sex"} == {"male", "female"}
    assert sum(r["n"] for r in out["by_group"] if r["attribute"] == "age_band") == 1000
    assert [r["stage"] for r in out["mitigation"]["tradeoff"]] == ["before", "single threshold", "after"]
    # sensitive columns are never model inputs
    assert not {"personal_status_and_sex", "age_in_years", "foreign_worker"} & set(model.features_)
