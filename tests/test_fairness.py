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


# ------------------------------------------------------------------------------------------- edge cases
def test_metrics_match_fairlearn_on_german_credit(data_dir) -> None:
    """Known answer: per-group rates, DI and equalised odds equal fairlearn's on real data (every group has
    both outcomes, so the two definitions agree)."""
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_ratio,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    from buyerscore.datasets import read_applicants

    app = read_applicants("german_credit", data_dir)
    good = 1 - app["label"].to_numpy(int)
    approve = (app["duration_in_month"] <= 24).to_numpy(int)  # a transparent stand-in decision rule
    sens = derive_sensitive(app)[["age_band", "sex"]]
    rep = fairness_audit(good, approve, sens)
    for attr in ("age_band", "sex"):
        mf = MetricFrame(metrics={"selection_rate": selection_rate, "tpr": true_positive_rate,
                                  "fpr": false_positive_rate}, y_true=good, y_pred=approve,
                         sensitive_features=sens[attr].astype(str))
        ours = rep.by_group[rep.by_group["attribute"] == attr].set_index("group")
        for col in ("selection_rate", "tpr", "fpr"):
            np.testing.assert_allclose(ours.loc[mf.by_group.index, col], mf.by_group[col])
        s = rep.summary[attr]
        assert s["disparate_impact_ratio"] == pytest.approx(
            demographic_parity_ratio(good, approve, sensitive_features=sens[attr].astype(str)))
        assert s["equalized_odds_difference"] == pytest.approx(
            equalized_odds_difference(good, approve, sensitive_features=sens[attr].astype(str)))
    assert ours.loc["female", "n"] + ours.loc["male", "n"] == 1000


def test_a_rate_a_group_cannot_have_is_empty_not_zero() -> None:
    # group b: nobody deserves (all bad payers), so its TPR is undefined (fairlearn says 0, a fake gap of 0.5)
    rep = fairness_audit([1, 1, 0, 0, 0, 0], [1, 0, 1, 0, 1, 0], pd.Series(list("aaaabb"), name="g"))
    g = rep.by_group.set_index("group")
    assert np.isnan(g.loc["b", "tpr"]) and g.loc["b", "fpr"] == 0.5
    s = rep.summary["g"]
    assert np.isnan(s["equal_opportunity_difference"])  # one defined TPR: no gap to measure
    assert s["equalized_odds_difference"] == 0.0  # the FPRs (0.5 and 0.5) are equal
    assert any("'b'" in n and "TPR is undefined" in n for n in rep.notes)
    # group b: everybody deserves, so its FPR is undefined
    rep = fairness_audit([1, 1, 0, 0, 1, 1], [1, 0, 0, 0, 1, 0], pd.Series(list("aaaabb"), name="g"))
    assert np.isnan(rep.by_group.set_index("group").loc["b", "fpr"])
    assert rep.summary["g"]["equalized_odds_difference"] == 0.0  # TPRs 0.5 and 0.5; FPR gap undefined


def test_small_groups_are_left_out_everywhere() -> None:
    y_true, y_pred = [1, 0, 1, 0, 1], [1, 0, 1, 1, 0]
    g = pd.Series(list("aaaab"), name="g")
    rep = fairness_audit(y_true, y_pred, g, min_group_size=2)
    t = rep.by_group.set_index("group")
    # the one-person group b (selection rate 0) decides nothing, in the summary or in the per-group table
    assert rep.summary["g"]["disparate_impact_ratio"] == 1.0 and not rep.flagged
    assert rep.summary["g"]["groups_left_out"] == ["b"]
    assert not t.loc["b", "in_ratios"] and np.isnan(t.loc["b", "di_ratio"]) and not t.loc["b", "flag"]
    assert t.loc["a", "di_ratio"] == 1.0 and t.loc["b", "n"] == 1  # still listed
    # every group too small: nothing is compared (was: silently all groups)
    rep = fairness_audit(y_true, y_pred, g, min_group_size=10)
    assert np.isnan(rep.summary["g"]["disparate_impact_ratio"]) and rep.summary["g"]["lowest_selection_group"] is None
    # nobody selected: the DI ratio is undefined and no group is called "lowest" or "highest"
    rep = fairness_audit([1, 0, 1, 0], [0, 0, 0, 0], pd.Series(list("aabb"), name="g"))
    assert rep.summary["g"]["highest_selection_group"] is None
    assert any("no group got the favourable outcome" in n for n in rep.notes)


def test_raw_numeric_age_is_refused_with_the_fix() -> None:
    ages = pd.Series(np.arange(19, 19 + 60) % 53 + 19, name="age_in_years")
    with pytest.raises(ModelInputError, match=r"'age_in_years' is numeric with 53 distinct values.*age_band"):
        fairness_audit([1, 0] * 30, [1, 1] * 30, ages)
    # numeric codes with few values (SEX 1/2) are fine
    rep = fairness_audit([1, 0, 1, 0], [1, 0, 0, 0], pd.Series([1, 1, 2, 2], name="SEX"))
    assert set(rep.by_group["group"]) == {"1", "2"}


def test_scores_or_missing_labels_are_not_truncated_to_zero() -> None:
    # probabilities passed as decisions used to become 0 (astype(int)) without a word
    with pytest.raises(ModelInputError, match=r"y_pred must hold 0/1.*0\.9, 0\.2.*row\(s\) \[0, 1"):
        fairness_audit([1, 0, 1, 0], [0.9, 0.2, 0.7, 0.4], pd.Series(list("aabb")))
    with pytest.raises(ModelInputError, match=r"y_bad must hold 0/1.*nan at row\(s\) \[2\]"):
        audit_credit([0, 1, np.nan, 0], [0.1, 0.2, 0.3, 0.4], pd.Series(list("aabb")))


def test_mitigation_names_a_group_with_one_outcome() -> None:
    with pytest.raises(ModelInputError, match=r"group 'b' of sex has only y_true = 1 \(2 rows\).*Merge it"):
        mitigate_thresholds([1, 0, 1, 0, 1, 1], [.9, .2, .7, .4, .8, .6], pd.Series(list("aaaabb"), name="sex"),
                            y_pred=[1, 0, 1, 0, 1, 1])


def test_cli_audit_errors_name_the_column_rows_and_fix(data_dir, tmp_path) -> None:
    from buyerscore.cli import app
    from buyerscore.datasets import read_applicants
    from buyerscore.models.credit import CreditScorecard, split_applicants

    app_df = read_applicants("german_credit", data_dir)
    X, y = split_applicants(app_df)
    CreditScorecard().fit(X, y).save(tmp_path / "m")
    runner = CliRunner()

    def run(df: pd.DataFrame, *extra: str) -> object:
        df.to_parquet(tmp_path / "d.parquet", index=False)
        return runner.invoke(app, ["audit", "fairness", "--model", str(tmp_path / "m"), "--data",
                                   str(tmp_path / "d.parquet"), *extra])

    bad = app_df.assign(label=app_df["label"].astype(float))
    bad.loc[[3, 10], "label"] = np.nan
    res = run(bad)
    msg = " ".join(res.output.split())
    assert res.exit_code == 2 and "label column 'label'" in msg and "row(s) [3, 10]" in msg and "drop rows" in msg
    res = run(app_df.assign(label=app_df["label"].map({0: "good", 1: "bad"})))
    assert res.exit_code == 2 and "'good', 'bad'" in res.output and "good -> 0" in " ".join(res.output.split())
    res = run(app_df, "--sensitive", "age_in_years")
    assert res.exit_code == 2 and "53 distinct values" in " ".join(res.output.split())
    # the derived bands are said, and a group below --min-group-size is left out
    res = run(app_df, "--sensitive", "age_band,job", "--min-group-size", "30", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["notes"][0].startswith("age_band derived from age_in_years: bands <25, 25-34, 35-49, 50+")
    small = [r for r in out["by_group"] if r["attribute"] == "job" and r["n"] < 30]
    assert small and all(not r["in_ratios"] and r["di_ratio"] is None for r in small)
    assert out["summary"]["job"]["groups_left_out"] == [r["group"] for r in small]
