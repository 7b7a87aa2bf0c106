"""``buyerscore credit train|score`` end to end on German credit."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from buyerscore.cli import app


def test_train_and_score(data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from buyerscore.datasets import read_applicants

    runner = CliRunner()
    model = tmp_path / "model"
    r = runner.invoke(app, ["credit", "train", "--dataset", "german_credit", "--data-dir", str(data_dir),
                            "--out", str(model), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["metrics"]["auc"] > 0.7 and "age_in_years" in summary["excluded_sensitive"]
    meta = json.loads((model / "metadata.json").read_text())
    assert meta["features"] == summary["features"] and len(meta["training_data_hash"]) == 64
    assert (model / "scorecard.md").exists() and (model / "scorecard.csv").exists()

    inp = tmp_path / "in.csv"
    read_applicants("german_credit", data_dir).head(25).to_csv(inp, index=False)
    out = tmp_path / "scores.csv"
    r = runner.invoke(app, ["credit", "score", "--model", str(model), "--input", str(inp), "--out", str(out)])
    assert r.exit_code == 0, r.output
    s = pd.read_csv(out)
    assert len(s) == 25 and {"user_id", "pd", "score", "grade", "reasons"} <= set(s.columns)
    assert s["grade"].isin(list("ABCDE")).all()
    assert json.loads(s["reasons"].iloc[0])[0]["text"]

    # values never seen in training are scored but reported
    odd = pd.read_csv(inp)
    odd.loc[2, "purpose"] = "spaceship"
    odd.loc[4, "duration_in_month"] = -5
    odd.to_csv(tmp_path / "odd.csv", index=False)
    r = runner.invoke(app, ["credit", "score", "--model", str(model), "--input", str(tmp_path / "odd.csv"),
                            "--out", str(tmp_path / "odd_scores.csv")])
    msg = " ".join(r.output.split())
    assert r.exit_code == 0 and "never saw in training" in msg, msg
    feats = summary["features"]
    for col, row in (("purpose", 3), ("duration_in_month", 5)):
        if col in feats:
            assert f"{col}: 1 row(s)" in msg and f"at data row(s) {row}" in msg
    assert len(pd.read_csv(tmp_path / "odd_scores.csv")) == 25

    # a missing predictor column is named, with exit code 2
    bad = pd.read_csv(inp).drop(columns=["duration_in_month"])
    bad.to_csv(tmp_path / "bad.csv", index=False)
    r = runner.invoke(app, ["credit", "score", "--model", str(model), "--input", str(tmp_path / "bad.csv"),
                            "--out", str(tmp_path / "x.csv")])
    assert r.exit_code == 2 and "duration_in_month" in r.output


def test_train_table_with_a_few_non_numbers_in_a_number_column_fails(data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A typo in a number column would make it a text category silently: training stops and names it."""
    from buyerscore.datasets import read_applicants

    frame = read_applicants("german_credit", data_dir).astype({"credit_amount": object})
    frame.loc[3, "credit_amount"] = "abc"
    frame.loc[10, "credit_amount"] = "1,200"
    frame.to_csv(tmp_path / "t.csv", index=False)
    r = CliRunner().invoke(app, ["credit", "train", "--table", str(tmp_path / "t.csv"), "--out", str(tmp_path / "m")])
    msg = " ".join(r.output.split())
    assert r.exit_code == 2 and "'credit_amount'" in msg and "'abc'" in msg and "'1,200'" in msg, msg
    assert "data row(s) 4, 11" in msg and not (tmp_path / "m").exists()
    # columns of codes (A11, A12, ...) are categories, not typos: the clean table trains
    frame.loc[[3, 10], "credit_amount"] = None
    frame.to_csv(tmp_path / "t.csv", index=False)
    r = CliRunner().invoke(app, ["credit", "train", "--table", str(tmp_path / "t.csv"), "--out", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output


def test_score_with_a_model_of_another_kind_fails_clearly(data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from buyerscore.artifacts import save_model
    from buyerscore.models.anomaly import AnomalyDetector

    save_model(AnomalyDetector(), tmp_path / "m", kind="AnomalyDetector", features=["x"], training_data_hash="0" * 64)
    pd.DataFrame({"x": [1.0]}).to_csv(tmp_path / "in.csv", index=False)
    r = CliRunner().invoke(app, ["credit", "score", "--model", str(tmp_path / "m"), "--input", str(tmp_path / "in.csv"),
                                 "--out", str(tmp_path / "o.csv")])
    assert r.exit_code == 2 and "not a credit model" in " ".join(r.output.split())
    r = CliRunner().invoke(app, ["power", "score", "--model", str(tmp_path / "m"), "--features",
                                 str(tmp_path / "in.csv"), "--out", str(tmp_path / "o.parquet")])
    assert r.exit_code == 2 and "not a spend forecaster" in " ".join(r.output.split())


def test_train_needs_one_source(tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = CliRunner().invoke(app, ["credit", "train", "--out", str(tmp_path / "m")])
    assert r.exit_code == 2 and "exactly one of --dataset" in r.output


def test_train_dummy_coded_peak_valley_scorecard(data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from buyerscore.models.credit import CreditScorecard

    r = CliRunner().invoke(app, ["credit", "train", "--dataset", "german_credit", "--data-dir", str(data_dir),
                                 "--out", str(tmp_path / "m"), "--coding", "dummy", "--trend", "auto_heuristic"])
    assert r.exit_code == 0, r.output
    m = CreditScorecard.load(tmp_path / "m")
    assert m.coding == "dummy" and m.monotonic_trend == "auto_heuristic"
    bad = CliRunner().invoke(app, ["credit", "train", "--dataset", "german_credit", "--data-dir", str(data_dir),
                                   "--out", str(tmp_path / "x"), "--coding", "onehot"])
    assert bad.exit_code == 2 and "coding" in bad.output and "'woe', 'dummy' or 'monotone'" in " ".join(bad.output.split())


def test_derived_columns_are_added_at_training_and_again_at_scoring(data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from buyerscore.artifacts import load_model
    from buyerscore.datasets import read_applicants
    from buyerscore.models.base import split_applicants
    from buyerscore.models.credit import add_ratio_features

    raw = read_applicants("give_me_some_credit", data_dir).head(6000)
    raw.to_csv(tmp_path / "gmsc.csv", index=False)
    r = CliRunner().invoke(app, ["credit", "train", "--table", str(tmp_path / "gmsc.csv"), "--out",
                                 str(tmp_path / "m"), "--include-sensitive", "--json"])
    assert r.exit_code == 0, r.output
    model, meta = load_model(tmp_path / "m")
    assert meta.extra["derived_columns"] == {"drop_redundant": False}
    assert "TotalPastDue" in model.bins_  # a derived column was binned (selected or not)
    # scoring the raw file (no derived columns in it) works and equals scoring the derived table
    r = CliRunner().invoke(app, ["credit", "score", "--model", str(tmp_path / "m"), "--input", str(tmp_path / "gmsc.csv"),
                                 "--out", str(tmp_path / "s.csv"), "--reasons", "0"])
    assert r.exit_code == 0, r.output
    X, _ = split_applicants(raw)
    want = model.predict_proba(add_ratio_features(X))[:, 1]
    np.testing.assert_allclose(pd.read_csv(tmp_path / "s.csv")["pd"], want, rtol=1e-9)
    # the fairness audit scores the raw file the same way
    r = CliRunner().invoke(app, ["audit", "fairness", "--model", str(tmp_path / "m"), "--data",
                                 str(tmp_path / "gmsc.csv"), "--sensitive", "age_band", "--json"])
    assert r.exit_code == 0, r.output
    assert sum(g["n"] for g in json.loads(r.stdout)["by_group"]) == len(raw)
    r = CliRunner().invoke(app, ["credit", "train", "--table", str(tmp_path / "gmsc.csv"), "--out",
                                 str(tmp_path / "m2"), "--no-derived"])
    assert r.exit_code == 0, r.output
    assert "TotalPastDue" not in load_model(tmp_path / "m2")[0].bins_


def test_train_and_score_the_ensemble(data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from buyerscore.datasets import read_applicants
    from buyerscore.models.credit import CreditEnsemble

    runner = CliRunner()
    r = runner.invoke(app, ["credit", "train", "--dataset", "german_credit", "--data-dir", str(data_dir),
                            "--out", str(tmp_path / "m"), "--model", "ensemble", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["model"] == "CreditEnsemble" and summary["metrics"]["auc"] > 0.72
    # the train-vs-holdout PSI uses out-of-sample training scores (in-sample forest scores would read as drift)
    assert summary["metrics"]["psi_reference"].startswith("out-of-sample scores of 800")
    assert summary["metrics"]["psi_train_test_score"] < 0.1
    m = CreditEnsemble.load(tmp_path / "m")
    assert set(m.members_) == {"gbm", "forest"} and "age_in_years" not in m.features_
    read_applicants("german_credit", data_dir).head(10).to_csv(tmp_path / "in.csv", index=False)
    r = runner.invoke(app, ["credit", "score", "--model", str(tmp_path / "m"), "--input", str(tmp_path / "in.csv"),
                            "--out", str(tmp_path / "s.csv"), "--reasons", "2"])
    assert r.exit_code == 0, r.output
    s = pd.read_csv(tmp_path / "s.csv")
    assert len(s) == 10 and s["pd"].between(0, 1).all() and json.loads(s["reasons"].iloc[0])
    bad = runner.invoke(app, ["credit", "train", "--dataset", "german_credit", "--data-dir", str(data_dir),
                              "--out", str(tmp_path / "x"), "--model", "svm"])
    assert bad.exit_code == 2 and "'forest' or 'ensemble'" in bad.output


def test_ensemble_members_option(data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from buyerscore.models.credit import CreditEnsemble, CreditScorecard

    runner = CliRunner()
    r = runner.invoke(app, ["credit", "train", "--dataset", "german_credit", "--data-dir", str(data_dir),
                            "--out", str(tmp_path / "m"), "--model", "ensemble", "--members", "gbm, scorecard",
                            "--json"])
    assert r.exit_code == 0, r.output
    m = CreditEnsemble.load(tmp_path / "m")
    assert list(m.members_) == ["gbm", "scorecard"] and m.weights_ == {"gbm": 0.5, "scorecard": 0.5}
    card = m.members_["scorecard"]
    assert isinstance(card, CreditScorecard) and card.monotonic_trend == "auto_heuristic"
    # a scorecard member keeps no out-of-sample training PDs: its in-sample ones stand in, the GBM's are out of sample
    assert json.loads(r.stdout)["metrics"]["psi_reference"] == (
        "out-of-sample scores of 800 training rows (in-sample PDs of the scorecard member, which keeps none)")
    for bad_members in ("gbm,svm", "gbm,gbm", " , "):
        bad = runner.invoke(app, ["credit", "train", "--dataset", "german_credit", "--data-dir", str(data_dir),
                                  "--out", str(tmp_path / "x"), "--model", "ensemble", "--members", bad_members])
        assert bad.exit_code == 2 and "--members must list distinct names among gbm, forest, scorecard" in bad.output
    bad = runner.invoke(app, ["credit", "train", "--dataset", "german_credit", "--data-dir", str(data_dir),
                              "--out", str(tmp_path / "x"), "--model", "gbm", "--members", "gbm,scorecard"])
    assert bad.exit_code == 2 and "--members applies to --model ensemble only" in bad.output


def test_three_member_ensemble_psi_uses_the_forest_out_of_bag_scores(data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """--members gbm,forest,scorecard (the lowest StatLog cost on German credit): the train-vs-holdout PSI
    used the members' in-sample scores, where the forest scores its own rows almost perfectly (PSI 0.59, a
    false "major shift"); now the forest's out-of-bag and the GBM's out-of-fold PDs, the scorecard's in-sample."""
    r = CliRunner().invoke(app, ["credit", "train", "--dataset", "german_credit", "--data-dir", str(data_dir),
                                 "--out", str(tmp_path / "m"), "--model", "ensemble", "--members",
                                 "gbm,forest,scorecard", "--json"])
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.stdout)["metrics"]
    assert metrics["psi_reference"].startswith("out-of-sample scores of 800 training rows (in-sample PDs of the "
                                               "scorecard member")
    assert metrics["psi_train_test_score"] < 0.25


def test_train_refuses_a_table_too_small_to_measure(data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from buyerscore.datasets import read_applicants

    read_applicants("german_credit", data_dir).head(40).to_csv(tmp_path / "t.csv", index=False)
    r = CliRunner().invoke(app, ["credit", "train", "--table", str(tmp_path / "t.csv"), "--out", str(tmp_path / "m")])
    assert r.exit_code == 2 and "fewer than 5 of one class" in " ".join(r.output.split())
