"""CLI: train -> models list/show/promote -> batch score (features and raw events) -> API credit by applicant id."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from buyerscore.cli import app
from buyerscore.datasets import load_dataset, read_dataset
from buyerscore.events.store import EventStore
from buyerscore.features import build_features
from buyerscore.pipeline import ScoringPipeline
from buyerscore.registry import ModelRegistry

AS_OF = "1997-09-30"
runner = CliRunner()


@pytest.fixture(scope="module")
def trained(data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("train")
    db = tmp / "store.duckdb"
    with EventStore(db) as store:
        load_dataset("cdnow_sample", store, data_dir)
        load_dataset("german_credit", store, data_dir)
    cfg = tmp / "buyerscore.toml"
    example = (Path(__file__).parents[1] / "buyerscore.toml.example").read_text()
    cfg.write_text(example.replace('db = "buyerscore.duckdb"', f'db = "{db.as_posix()}"'))
    reg = tmp / "registry"
    r = runner.invoke(app, ["train", "--config", str(cfg), "--as-of", AS_OF, "--out", str(reg), "--json"])
    assert r.exit_code == 0, r.output
    return tmp, db, reg, json.loads(r.stdout)


def test_train_writes_an_unpromoted_bundle(trained) -> None:
    _, _, _reg, manifest = trained
    assert manifest["version"] == "v1" and not manifest["promoted"]
    assert {"anomaly", "credit"} <= set(manifest["models"])
    try:
        from buyerscore.models.purchasing_power import SpendForecaster  # noqa: F401
    except ImportError:
        pass
    else:
        assert {"power_spend", "power_tier"} <= set(manifest["models"])
        assert manifest["models"]["power_spend"]["metrics"]["normalized_gini"] > 0
    assert manifest["models"]["credit"]["metrics"]["auc"] > 0.6
    assert manifest["as_of"].startswith(AS_OF) and len(manifest["training_data_hash"]) == 64
    assert manifest["config"]["features"]["windows"] == [7, 30, 90, 365]
    assert manifest["feature_spec"]["recency_days"]["description"]


def test_models_cli_list_show_promote(trained) -> None:
    _, _, reg, _ = trained
    r = runner.invoke(app, ["models", "promote", "v1", "--registry", str(reg)])
    assert r.exit_code == 0
    rows = json.loads(runner.invoke(app, ["models", "list", "--registry", str(reg), "--json"]).stdout)
    assert [(x["version"], x["promoted"]) for x in rows] == [("v1", True)]
    shown = json.loads(runner.invoke(app, ["models", "show", "--registry", str(reg)]).stdout)
    assert shown["version"] == "v1" and shown["promoted"]
    bad = runner.invoke(app, ["models", "promote", "v42", "--registry", str(reg)])
    assert bad.exit_code == 2 and "No bundle 'v42'" in bad.output


def test_batch_score_features_and_events_equal_direct(trained, data_dir: Path) -> None:
    tmp, db, reg, _ = trained
    ModelRegistry(reg).promote("v1")
    with EventStore(db, read_only=True) as store:
        X = build_features(store.con, as_of=AS_OF)
    X.to_parquet(tmp / "features.parquet")
    r = runner.invoke(app, ["score", "--registry", str(reg), "--input", str(tmp / "features.parquet"),
                            "--out", str(tmp / "scores.parquet"), "--chunk-rows", "500", "--jobs", "2", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["rows"] == len(X) and summary["chunks"] == -(-len(X) // 500) and summary["rows_per_s"] > 0
    got = pd.read_parquet(tmp / "scores.parquet")
    want = ScoringPipeline.from_registry(reg).score_frame(X)
    np.testing.assert_allclose(got["anomaly_score"], want["anomaly_score"])
    assert got["user_id"].tolist() == X["user_id"].tolist()
    # raw events: validated and featurised with the same SQL, then scored the same way
    ev = read_dataset("cdnow_sample", data_dir).events.assign(platform="cdnow_sample")
    ev.to_parquet(tmp / "events.parquet")
    r = runner.invoke(app, ["score", "--registry", str(reg), "--input", str(tmp / "events.parquet"),
                            "--out", str(tmp / "scores_ev.parquet"), "--as-of", AS_OF, "--json"])
    assert r.exit_code == 0, r.output
    got_ev = pd.read_parquet(tmp / "scores_ev.parquet").set_index("user_id").loc[X["user_id"]]
    # features agree to ~1e-15 (DuckDB sums in parallel); IsolationForest casts to float32, so a few scores may
    # move by one calibration step
    np.testing.assert_allclose(got_ev["anomaly_score"], want["anomaly_score"], atol=1e-3)
    assert np.mean(np.isclose(got_ev["anomaly_score"], want["anomaly_score"], rtol=1e-9)) > 0.95
    no_cut = runner.invoke(app, ["score", "--registry", str(reg), "--input", str(tmp / "events.parquet"),
                                 "--out", str(tmp / "x.parquet")])
    assert no_cut.exit_code == 2 and "as_of" in no_cut.output


def test_batch_score_names_what_it_leaves_out(trained) -> None:
    """Behaviour features without applicant columns: the credit model is left out and named (never a silent
    gap); a file lacking a feature every other model needs fails naming it. CSV input is read too."""
    tmp, db, reg, _ = trained
    ModelRegistry(reg).promote("v1")
    pipe = ScoringPipeline.from_registry(reg)
    with EventStore(db, read_only=True) as store:
        X = build_features(store.con, as_of=AS_OF)
    X.to_csv(tmp / "features.csv", index=False)
    r = runner.invoke(app, ["score", "--registry", str(reg), "--input", str(tmp / "features.csv"),
                            "--out", str(tmp / "s_csv.parquet"), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert "credit" not in summary["models"] and "anomaly" in summary["models"]
    assert set(summary["skipped"]["credit"]) == set(pipe.features["credit"])
    got = pd.read_parquet(tmp / "s_csv.parquet")
    assert len(got) == len(X) and not any(c.startswith("credit_") for c in got.columns)
    want = pipe.score_frame(X, reasons=False)
    np.testing.assert_allclose(got["anomaly_score"], want["anomaly_score"], rtol=1e-9)
    r = runner.invoke(app, ["score", "--registry", str(reg), "--input", str(tmp / "features.csv"),
                            "--out", str(tmp / "s_csv.parquet")])
    assert r.exit_code == 0 and "not scored: credit" in " ".join(r.output.split())
    gone = "recency_days"
    assert all(gone in fs for k, fs in pipe.features.items() if k != "credit")
    X.drop(columns=[gone]).to_parquet(tmp / "f_missing.parquet")
    r = runner.invoke(app, ["score", "--registry", str(reg), "--input", str(tmp / "f_missing.parquet"),
                            "--out", str(tmp / "none.parquet")])
    msg = " ".join(r.output.split())
    assert r.exit_code == 2 and "cannot be scored by any model" in msg and gone in msg
    assert not (tmp / "none.parquet").exists()


def test_api_scores_credit_of_an_applicant(trained) -> None:
    from fastapi.testclient import TestClient

    from buyerscore.serving.api import ServeSettings, create_app
    _, db, reg, _ = trained
    ModelRegistry(reg).promote("v1")
    client = TestClient(create_app(ServeSettings(registry=reg, db=db, allow_anonymous=True)))
    body = client.get("/v1/users/1/score").json()  # german_credit applicant 1 (no behaviour events)
    assert body["credit"]["grade"] in list("ABCDE") and 0 < body["credit"]["pd"] < 1
    assert any(isinstance(r["value"], str) for r in body["credit"]["reasons"])  # categorical predictor quoted
    assert body["power"] is None and "anomaly" in body["unavailable"]
    # the applicant record is dated 1994-01-01: a score as of an earlier day cannot use it (no leakage)
    assert client.get("/v1/users/1/score", params={"as_of": "1994-01-01T00:00:00"}).json()["credit"]["grade"]
    early = client.get("/v1/users/1/score", params={"as_of": "1993-12-31T00:00:00"})
    assert early.status_code == 404 and "no applicant record" in early.text


def test_report_of_a_trained_registry_shows_the_holdout(trained, tmp_path: Path) -> None:
    """`buyerscore train` keeps its hold-out numbers in the bundle, so `buyerscore report --registry` right
    after it draws ROC, spend and anomaly sections instead of 'not available' everywhere."""
    from buyerscore.explain.report import inputs_from_registry

    _, _, reg, manifest = trained
    inputs = inputs_from_registry(reg)
    n_test = manifest["models"]["credit"]["metrics"]["n_test"]
    assert len(inputs.y_true) == len(inputs.proba) == n_test
    from buyerscore.models.metrics import auc

    assert auc(inputs.y_true, inputs.proba) == pytest.approx(manifest["models"]["credit"]["metrics"]["auc"])
    assert inputs.anomaly_scores is not None and inputs.metadata["bundle"].startswith("v1")
    if "power_spend" in manifest["models"]:
        assert len(inputs.spend_true) == manifest["models"]["power_spend"]["metrics"]["n_test"]
    if manifest["models"]["credit"]["class"].endswith("CreditScorecard"):
        assert inputs.scorecard_table is not None and len(inputs.scorecard_table)
    r = runner.invoke(app, ["report", "--registry", str(reg), "--out", str(tmp_path / "r.html")])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    import re

    missing = re.findall(r"<p[^>]*>not available: ([^<]*)", html)
    assert len(missing) == 2 and all(("fairness" in m) or ("drift" in m) for m in missing), missing
    # each section says which rows it shows: hold-out for the metrics, training users for the anomalies
    ev = inputs.evaluated_on
    assert f"{n_test:,} held-out applicants" in ev["roc"] and "in-sample" in ev["anomaly"]
    assert "fitted on every applicant" in ev["scorecard"] and "Rows: " in html
    assert "00:00:00" not in inputs.title  # a date cut-off reads as a date


def test_bundle_scorecard_uses_the_datasets_special_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`buyerscore train` fitted the bundle's scorecard without the dataset's special codes (Give Me Some
    Credit's 96/98 past-due codes), unlike `credit train --dataset`; codes of columns the table lacks (derived
    ones) are left out."""
    from buyerscore.config import BuyerscoreConfig
    from buyerscore.events.store import EventStore
    from buyerscore.models.credit import SPECIAL_CODES
    from buyerscore.serving.train import train_credit

    rng = np.random.default_rng(0)
    n = 1500
    late = rng.poisson(0.4, n).astype(float)
    late[rng.choice(n, 40, replace=False)] = 98.0
    y = (rng.random(n) < np.where(late >= 96, 0.5, 0.05 + 0.1 * np.minimum(late, 3))).astype(int)
    t = pd.DataFrame({"user_id": [f"a{i}" for i in range(n)], "as_of": "2024-01-01", "label": y,
                      "dataset": "tiny", "late": late, "income": rng.lognormal(8, 0.5, n)})
    monkeypatch.setitem(SPECIAL_CODES, "tiny", {"late": [96.0, 98.0], "not_in_table": [0.0]})
    cfg = BuyerscoreConfig.model_validate({"credit": {"dataset": "tiny", "model": "scorecard"}})
    with EventStore(tmp_path / "s.duckdb") as store:
        store.write_applicants("tiny", t)
        entries, name = train_credit(store, cfg)
    model = entries["credit"].model
    assert name == "tiny" and model.special_codes == {"late": [96.0, 98.0]}
    table = model.scorecard_table()
    late_rows = table[table["feature"] == "late"].set_index("label")
    assert late_rows.loc["special 98: [98.0]", "count"] == 40  # its own bin, not merged with 2+ lates
