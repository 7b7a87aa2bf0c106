"""Audit of the credit user surface and the registry lifecycle: target codings, identifier columns,
delimiters, scoring-input errors, exports, model directories and registry commands, on the real files."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from typer.testing import CliRunner

from buyerscore.cli import app

runner = CliRunner()


def _msg(r) -> str:  # type: ignore[no-untyped-def]
    return " ".join(r.output.split())


def _german(data_dir: Path) -> pd.DataFrame:
    return pd.read_csv(data_dir / "german_credit" / "germancredit.csv.gz")


@pytest.fixture(scope="module")
def german_model(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """German credit as an analyst's export: a pandas row index (unnamed first column), a client_id, the
    original 1 = good / 2 = bad coding with two outcomes not yet known, ';' as the delimiter, a unicode name."""
    tmp = tmp_path_factory.mktemp("german")
    d = _german(data_dir).rename(columns={"duration_in_month": "期限（月）"})
    d.insert(0, "client_id", [f"C{i:05d}" for i in range(len(d))])
    d["creditability"] = d["creditability"].map({"good": 1, "bad": 2}).astype(object)
    d.loc[[4, 9], "creditability"] = None
    d.to_csv(tmp / "german.csv", sep=";")  # index=True: the unnamed first column of row numbers
    model = tmp / "model"
    r = runner.invoke(app, ["credit", "train", "--table", str(tmp / "german.csv"), "--target", "creditability",
                            "--bad-value", "2", "--out", str(model), "--json"])
    assert r.exit_code == 0, r.output
    return tmp, model


def test_target_codings_are_named_and_recoded(data_dir: Path, tmp_path: Path) -> None:
    """Before: a good/bad, 1/2 or yes/no target read as '0 bad and 0 good' (or '700 bad and 0 good'), NaN targets
    failed with scikit-learn's 'Input y contains NaN.'"""
    d = _german(data_dir)
    cases = {"12": (d["creditability"].map({"good": 1, "bad": 2}), "--bad-value 2"),
             "yn": (d["creditability"].map({"good": "no", "bad": "yes"}), "--bad-value yes"),
             "one": (pd.Series(0, index=d.index), "needs both good and bad")}
    for name, (col, expected) in cases.items():
        d.assign(creditability=col).to_csv(tmp_path / f"{name}.csv", index=False)
        r = runner.invoke(app, ["credit", "train", "--table", str(tmp_path / f"{name}.csv"), "--target",
                                "creditability", "--out", str(tmp_path / f"m_{name}")])
        assert r.exit_code == 2 and expected in _msg(r) and "'creditability'" in _msg(r), (name, _msg(r))
        assert not (tmp_path / f"m_{name}").exists()
    m12 = _msg(runner.invoke(app, ["credit", "train", "--table", str(tmp_path / "12.csv"), "--target",
                                   "creditability", "--out", str(tmp_path / "m")]))
    assert "'1' (700 rows), '2' (300 rows)" in m12
    r = runner.invoke(app, ["credit", "train", "--table", str(tmp_path / "12.csv"), "--target", "creditabilty",
                            "--out", str(tmp_path / "m")])
    assert r.exit_code == 2 and "Did you mean 'creditability'" in _msg(r)
    r = runner.invoke(app, ["credit", "train", "--table", str(tmp_path / "12.csv"), "--target", "creditability",
                            "--bad-value", "3", "--out", str(tmp_path / "m")])
    assert r.exit_code == 2 and "--bad-value '3' does not occur" in _msg(r)


def test_quarantined_targets_ids_and_delimiter(german_model: tuple[Path, Path]) -> None:
    """Before: the ';' file was one column, the 1/2 target was refused as '0 good', NaN targets crashed, the
    row index and client_id would have been predictors, and scores carried no identifier to join them back."""
    _, model = german_model
    meta = json.loads((model / "metadata.json").read_text())
    extra = meta["extra"]
    assert extra["target_coding"] == {"bad": "2", "good": "1"} and extra["rows_without_target"] == 2
    assert sorted(extra["id_columns"]) == ["Unnamed: 0", "client_id"]
    assert not {"Unnamed: 0", "client_id"} & set(extra["feature_names_in"])
    assert meta["metrics"]["n_train"] + meta["metrics"]["n_holdout"] == 998
    assert "期限（月）" in extra["feature_names_in"]
    text = (model / "metadata.json").read_text()
    assert "C00004" not in text and "C00000" not in text  # names of the id columns, never their values
    rejects = pd.read_csv(model / "rejects.csv")
    assert rejects["data_row"].tolist() == [5, 10] and set(rejects.columns) == {"data_row", "column", "reason"}
    bad_rate = json.loads((model / "metadata.json").read_text())["metrics"]["bad_rate"]
    assert 0.25 < bad_rate < 0.35  # 2 = bad, about 30 %

    # scoring copies the identifiers through (a tab-separated input this time)
    tmp = model.parent
    inp = pd.read_csv(tmp / "german.csv", sep=";").head(30)
    inp.to_csv(tmp / "in.tsv.csv", sep="\t", index=False)
    r = runner.invoke(app, ["credit", "score", "--model", str(model), "--input", str(tmp / "in.tsv.csv"),
                            "--out", str(tmp / "s.csv")])
    assert r.exit_code == 0, r.output
    s = pd.read_csv(tmp / "s.csv")
    assert s["client_id"].tolist() == inp["client_id"].tolist() and s["grade"].isin(list("ABCDE")).all()
    r = runner.invoke(app, ["credit", "score", "--model", str(model), "--input", str(tmp / "in.tsv.csv"),
                            "--out", str(tmp / "s.json")])
    assert r.exit_code == 2 and ".csv, .csv.gz or .parquet" in _msg(r) and not (tmp / "s.json").exists()


def test_id_columns_of_the_real_files(data_dir: Path) -> None:
    """Give Me Some Credit's unnamed row number and Taiwan's ID were candidate predictors (a GBM used ID)."""
    from buyerscore.cli.credit import _id_columns

    gmsc = pd.read_csv(data_dir / "give_me_some_credit" / "cs-training.csv.gz", nrows=50)
    taiwan = pd.read_csv(data_dir / "uci_default_credit_card_taiwan" / "default_of_credit_card_clients.csv.gz",
                         nrows=50)
    assert _id_columns(gmsc, "auto") == ["Unnamed: 0"] and _id_columns(taiwan, "auto") == ["ID"]
    assert _id_columns(taiwan, "none") == [] and _id_columns(taiwan, "LIMIT_BAL") == ["LIMIT_BAL"]


@pytest.fixture(scope="module")
def gmsc_model(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("gmsc")
    pd.read_csv(data_dir / "give_me_some_credit" / "cs-training.csv.gz", nrows=20000).to_csv(tmp / "g.csv",
                                                                                             index=False)
    model = tmp / "model"
    r = runner.invoke(app, ["credit", "train", "--table", str(tmp / "g.csv"), "--target", "SeriousDlqin2yrs",
                            "--out", str(model)])
    assert r.exit_code == 0, r.output
    return tmp, model


def test_score_input_errors_name_column_row_and_value(gmsc_model: tuple[Path, Path]) -> None:
    """Before: '5,000' in MonthlyIncome gave 'could not convert string to float' (no column, no row), and a
    missing NumberOfDependents was reported as a missing IncomePerPerson."""
    tmp, model = gmsc_model
    d = pd.read_csv(tmp / "g.csv", nrows=40).astype({"MonthlyIncome": object})
    d.loc[6, "MonthlyIncome"] = "5,000"
    d.to_csv(tmp / "typo.csv", index=False)
    r = runner.invoke(app, ["credit", "score", "--model", str(model), "--input", str(tmp / "typo.csv"),
                            "--out", str(tmp / "x.csv")])
    m = _msg(r)
    assert r.exit_code == 2 and "'MonthlyIncome'" in m and "'5,000'" in m and "data row(s) 7" in m, m
    d = pd.read_csv(tmp / "g.csv", nrows=40).drop(columns=["NumberOfDependents"])
    d.to_csv(tmp / "nodep.csv", index=False)
    r = runner.invoke(app, ["credit", "score", "--model", str(model), "--input", str(tmp / "nodep.csv"),
                            "--out", str(tmp / "x.csv")])
    m = _msg(r)
    assert r.exit_code == 2 and "lacks input column(s) ['NumberOfDependents']" in m and "IncomePerPerson" in m, m


def test_scorecard_exports_round_trip(gmsc_model: tuple[Path, Path]) -> None:
    """Before: the Markdown table printed counts as 1.376e+04."""
    from buyerscore.artifacts import load_model
    from buyerscore.models.credit import add_ratio_features

    tmp, model = gmsc_model
    est, _ = load_model(model)
    md = (model / "scorecard.md").read_text(encoding="utf-8")
    rows = [r.split("|")[1:-1] for r in md.splitlines()[2:]]
    cols = [c.strip() for c in md.splitlines()[0].split("|")[1:-1]]
    counts = [r[cols.index("count")].strip() for r in rows if r[0].strip() != "(base points)"]
    assert all(c.isdigit() for c in counts) and max(map(int, counts)) > 10000, counts[:5]
    table = pd.read_csv(model / "scorecard.csv")
    js = json.loads((model / "scorecard.json").read_text())
    assert len(js["bins"]) == len(table) == len(rows)
    raw = pd.read_csv(tmp / "g.csv", nrows=300).drop(columns=["SeriousDlqin2yrs", "Unnamed: 0"])
    X = add_ratio_features(raw)
    pts = {(r.feature, r.bin): r.points for r in table.itertuples()}
    jpts = {(b["feature"], b["bin"]): b["points"] for b in js["bins"]}
    base = pts[("(base points)", -1)]
    from_csv = base + sum(np.array([pts[(f, b)] for b in est.bins_[f].bin_index(X[f].to_numpy())])
                          for f in est.features_)
    from_json = jpts[("(base points)", -1)] + sum(
        np.array([jpts[(f, b)] for b in est.bins_[f].bin_index(X[f].to_numpy())]) for f in est.features_)
    np.testing.assert_allclose(from_csv, est.score(X), atol=1e-9)
    np.testing.assert_allclose(from_json, est.score(X), atol=1e-6)
    contrib = est.contributions(X).sum(axis=1).to_numpy()
    np.testing.assert_allclose(contrib, est.max_score_ - est.score(X), atol=1e-9)


def test_retrain_replaces_the_model_directory(data_dir: Path, gmsc_model: tuple[Path, Path],
                                             tmp_path: Path) -> None:
    """Before: a scorecard retrained as a GBM into the same --out kept the old scorecard.csv/md/json, and --out
    into any folder mixed the model with the folder's files."""
    _, model = gmsc_model
    out = tmp_path / "m"
    shutil.copytree(model, out)
    assert (out / "scorecard.csv").exists()
    r = runner.invoke(app, ["credit", "train", "--dataset", "german_credit", "--data-dir", str(data_dir),
                            "--model", "gbm", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["metadata.json", "model.joblib"]
    assert json.loads((out / "metadata.json").read_text())["kind"] == "credit.CreditGBM"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left
    other = tmp_path / "docs"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    r = runner.invoke(app, ["credit", "train", "--dataset", "german_credit", "--data-dir", str(data_dir),
                            "--out", str(other)])
    assert r.exit_code == 2 and "not a buyerscore model directory" in _msg(r)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


def test_damaged_and_other_version_model_directories(gmsc_model: tuple[Path, Path], tmp_path: Path) -> None:
    """Before: a truncated model.joblib printed an UnpicklingError traceback, and a model saved by another
    buyerscore version loaded without a word although the metadata records the version."""
    from buyerscore.artifacts import load_model

    tmp, model = gmsc_model
    inp = tmp_path / "in1.csv"
    pd.read_csv(tmp / "g.csv", nrows=5).to_csv(inp, index=False)
    cut = tmp_path / "cut"
    shutil.copytree(model, cut)
    data = (cut / "model.joblib").read_bytes()
    (cut / "model.joblib").write_bytes(data[: len(data) // 2])
    r = runner.invoke(app, ["credit", "score", "--model", str(cut), "--input", str(inp), "--out", str(tmp_path / "s.csv")])
    assert r.exit_code == 2 and "could not load" in _msg(r) and "damaged" in _msg(r), _msg(r)
    assert "Traceback" not in r.output
    (cut / "model.joblib").unlink()
    r = runner.invoke(app, ["credit", "score", "--model", str(cut), "--input", str(inp), "--out", str(tmp_path / "s.csv")])
    assert r.exit_code == 2 and "no model.joblib" in _msg(r)
    old = tmp_path / "old"
    shutil.copytree(model, old)
    meta = json.loads((old / "metadata.json").read_text())
    meta["buyerscore_version"] = "0.0.1"
    meta["field_of_a_later_version"] = {"x": 1}
    (old / "metadata.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match=r"saved by buyerscore 0\.0\.1.*this is buyerscore"):
        est, m = load_model(old)
    assert m.buyerscore_version == "0.0.1" and hasattr(est, "predict_proba")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(model)  # same version: quiet
    (old / "metadata.json").write_text("{not json")
    r = runner.invoke(app, ["credit", "score", "--model", str(old), "--input", str(inp), "--out", str(tmp_path / "s.csv")])
    assert r.exit_code == 2 and "metadata.jsonisdamaged" in "".join(r.output.split())


def _entry():  # type: ignore[no-untyped-def]
    from buyerscore.registry import ModelEntry

    X = pd.DataFrame({"x": [0.0, 1.0, 2.0]})
    return ModelEntry(LinearRegression().fit(X, 2 * X["x"]), ["x"], metrics={"r2": 1.0})


def test_registry_commands_on_missing_empty_and_damaged_registries(tmp_path: Path) -> None:
    """Before: 'models list' of a mistyped --registry printed an empty table with exit code 0, a bundle with a
    broken manifest made 'models list' fail for every bundle, and such a bundle could be promoted."""
    from buyerscore.registry import ModelRegistry

    r = runner.invoke(app, ["models", "list", "--registry", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "does not exist" in _msg(r)
    (tmp_path / "empty").mkdir()
    r = runner.invoke(app, ["models", "list", "--registry", str(tmp_path / "empty")])
    assert r.exit_code == 0 and "no bundles" in _msg(r)
    reg = ModelRegistry(tmp_path / "reg")
    v1 = reg.create({"power_spend": _entry()}, as_of="2024-01-01", training_data_hash="h1")
    v2 = reg.create({"power_spend": _entry()}, as_of="2024-02-01", training_data_hash="h2")
    r = runner.invoke(app, ["models", "promote", "1", "--registry", str(reg.root)])
    assert r.exit_code == 2 and "did you mean 'v1'" in _msg(r)
    r = runner.invoke(app, ["models", "promote", "v1/../v1", "--registry", str(reg.root)])
    assert r.exit_code == 2 and reg.promoted() is None
    (reg.versions_dir / v2 / "bundle.json").write_text("{oops")
    r = runner.invoke(app, ["models", "list", "--registry", str(reg.root), "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [x["version"] for x in rows] == [v1, v2] and rows[1]["damaged"]
    r = runner.invoke(app, ["models", "promote", v2, "--registry", str(reg.root)])
    assert r.exit_code == 2 and "damaged" in _msg(r) and reg.promoted() is None
    shutil.rmtree(reg.versions_dir / v1 / "models" / "power_spend")
    r = runner.invoke(app, ["models", "promote", v1, "--registry", str(reg.root)])
    assert r.exit_code == 2 and "power_spend" in _msg(r) and reg.promoted() is None


def test_bundle_metrics_text_is_never_cut_inside_a_number() -> None:
    """Before: 'buyerscore train' cut the metrics column at 90 characters: n_test=472 printed as n_test=4."""
    from buyerscore.cli.serving import _metric_text
    from buyerscore.serving.train import _metrics

    met = _metrics({"normalized_gini": np.float64(0.72164), "spearman": 0.4164, "top_decile_capture": 0.5972,
                    "n_train": np.int64(1886), "n_test": 472})
    assert met["n_test"] == 472 and isinstance(met["n_train"], int)
    text = _metric_text(met)
    assert "n_test=4," not in text and not text.endswith("n_test=4")
    assert text.endswith("... (+1)") and "n_train=1,886" in text
    assert _metric_text({"auc": 0.79, "n_test": 200}) == "auc=0.79, n_test=200"


def test_registry_credit_model_records_its_parameters(data_dir: Path, store) -> None:  # type: ignore[no-untyped-def]
    """Before: the bundle's credit metadata recorded only pdo/base_score/base_odds (not coding, trend, ...),
    counts as floats and no target or left-out sensitive columns."""
    from buyerscore.config import BuyerscoreConfig
    from buyerscore.serving.train import train_credit

    entries, name = train_credit(store, BuyerscoreConfig())
    e = entries["credit"]
    assert name == "german_credit" and e.params["coding"] == "woe" and e.params["monotonic_trend"] == "auto_asc_desc"
    assert isinstance(e.metrics["n_test"], int) and e.extra["target"] == "label"
    assert "age_in_years" in e.extra["excluded_features"]
