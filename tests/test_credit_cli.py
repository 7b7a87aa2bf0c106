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

    # a missing predictor column is named, with exit code 2
    bad = pd.read_csv(inp).drop(columns=["duration_in_month"])
    bad.to_csv(tmp_path / "bad.csv", index=False)
    r = runner.invoke(app, ["credit", "score", "--model", str(model), "--input", str(tmp_path / "bad.csv"),
                            "--out", str(tmp_path / "x.csv")])
    assert r.exit_code == 2 and "duration_in_month" in r.output


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
    assert bad.exit_code == 2 and "coding" in bad.output and "'woe' or 'dummy'" in bad.output
