"""HTML report: every section present or explained, offline, inputs round trip, CLI, headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from buyerscore.explain.report import (
    SECTIONS,
    ReportInputs,
    build_report,
    inputs_from_registry,
    load_inputs,
    render_report,
    save_inputs,
)

ROOT = Path(__file__).resolve().parents[1]
IDS = [sid for sid, _ in SECTIONS]


def full_inputs(n: int = 600, seed: int = 0) -> ReportInputs:
    """Inputs for every section (synthetic numbers, real-looking shapes)."""
    from buyerscore.explain.fairness import audit_credit
    from buyerscore.explain.monitoring import drift_report
    from buyerscore.models.anomaly import AnomalyDetector

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    logit = -1.2 + x @ np.array([1.0, -0.7, 0.4, 0.0])
    p = 1 / (1 + np.exp(-logit))
    y = (rng.uniform(size=n) < p).astype(int)
    score = 600 + 28.85 * (np.log((1 - p) / p) - np.log(50))
    grade = np.select([p < 0.05, p < 0.1, p < 0.2, p < 0.4], list("ABCD"), "E")
    feats = pd.DataFrame(x, columns=["recency_days", "monetary_mean", "refund_rate", "n_orders"])
    shap = feats * np.array([1.0, -0.7, 0.4, 0.0])
    spend_true = rng.gamma(1.0, 100.0, n)
    spend_pred = spend_true * rng.lognormal(0, 0.5, n)
    tiers = np.where(spend_pred > np.quantile(spend_pred, 0.9), "high",
                     np.where(spend_pred > np.median(spend_pred), "mid", "low"))
    tiers_true = np.where(spend_true > np.quantile(spend_true, 0.9), "high",
                          np.where(spend_true > np.median(spend_true), "mid", "low"))
    det = AnomalyDetector(contamination=0.02, n_estimators=20).fit(feats.assign(user_id=[f"u{i}" for i in range(n)]))
    sf = det.score_frame(feats.assign(user_id=[f"u{i}" for i in range(n)]))
    sens = pd.DataFrame({"sex": rng.choice(["female", "male"], n), "age_band": rng.choice(["<25", "25-34", "35+"], n)})
    fair = audit_credit(y, p, sens, threshold=0.3)
    drift = drift_report(feats.iloc[: n // 2], feats.iloc[n // 2:] + [0.5, 0, 0, 0])
    table = pd.DataFrame({"feature": ["recency_days"] * 3, "bin": ["[-inf, 0)", "[0, 1)", "[1, inf)"],
                          "points": [10.0, 25.5, 40.0]})
    return ReportInputs(title="test report", y_true=y, proba=p, score=score, grade=grade, scorecard_table=table,
                        shap=shap, shap_values=feats, spend_true=spend_true, spend_pred=spend_pred, tiers=tiers,
                        tiers_true=tiers_true, anomaly_scores=sf["anomaly_score"].to_numpy(),
                        anomaly_threshold=det.threshold_, anomaly_table=sf.nlargest(10, "anomaly_score"),
                        fairness=fair.by_group, fairness_summary=fair.summary_frame(), drift=drift.table,
                        drift_verdict=drift.verdict, metadata={"as_of": "2024-01-31"})


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_report(full_inputs(), tmp_path_factory.mktemp("rep") / "report.html")


def test_every_section_rendered_and_offline(report_file: Path) -> None:
    text = report_file.read_text(encoding="utf-8")
    for sid in IDS:
        assert f"<section id='{sid}'>" in text
    assert "class='na'" not in text  # everything was given
    assert text.count("Plotly.newPlot") >= 13 and "fig-scorecard" in text
    # self-contained: plotly.js once, no external scripts, stylesheets or CDN
    assert len(re.findall(r"<script type='text/javascript'>", text)) == 1
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=['\"]?https?:", text)


def test_missing_inputs_say_why() -> None:
    text = render_report(ReportInputs(y_true=[0, 1, 0, 1], proba=[0.1, 0.9, 0.4, 0.6],
                                      notes={"fairness": "no sensitive attributes in this data"}))
    for sid in IDS:
        assert f"<section id='{sid}'>" in text
    assert "AUC <b>1.000</b>" in text
    assert "not available: no sensitive attributes in this data" in text
    assert "not available: no scorecard table given" in text
    assert "not available: no actual spend" in text
    single = render_report(ReportInputs(y_true=[0, 0, 0], proba=[0.1, 0.2, 0.3]))
    assert "not available: labels hold a single class" in single


def test_broken_input_does_not_lose_the_report() -> None:
    text = render_report(ReportInputs(spend_true=[1.0, 2.0], spend_pred=[1.0, 2.0, 3.0], tiers=["high", "low"]))
    assert "not available: spend_true has 2 rows but spend_pred has 3" in text
    assert "fig-tiers" in text


def test_inputs_round_trip_and_registry(tmp_path: Path) -> None:
    inp = full_inputs(200)
    d = save_inputs(inp, tmp_path / "reg" / "report_inputs")
    back = load_inputs(d)
    np.testing.assert_allclose(back.proba, inp.proba)
    assert back.grade.tolist() == inp.grade.tolist()
    assert back.drift_verdict == inp.drift_verdict and back.anomaly_threshold == inp.anomaly_threshold
    pd.testing.assert_frame_equal(back.fairness, inp.fairness.reset_index(drop=True), check_dtype=False)
    # a saved model directory next to the inputs is listed in the header
    from buyerscore.artifacts import save_model
    from buyerscore.models.anomaly import AnomalyDetector

    det = AnomalyDetector(n_estimators=5).fit(pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3}))
    save_model(det, tmp_path / "reg" / "models" / "anomaly", kind="anomaly.AnomalyDetector", features=["a", "b"],
               training_data_hash="h", as_of="2024-01-31")
    reg = inputs_from_registry(tmp_path / "reg")
    assert "anomaly.AnomalyDetector" in reg.metadata["models"]
    from buyerscore.cli import app

    out = tmp_path / "r.html"
    res = CliRunner().invoke(app, ["report", "--registry", str(tmp_path / "reg"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "<section id='drift'>" in out.read_text(encoding="utf-8")
    # models only (e.g. a serving registry): every empty section says where its inputs should come from
    only_models = inputs_from_registry(tmp_path / "reg" / "models")
    assert "no precomputed report inputs" in render_report(only_models)
    res = CliRunner().invoke(app, ["report", "--registry", str(tmp_path / "empty"), "--out", str(out)])
    assert res.exit_code == 2 and "does not exist" in " ".join(res.output.split())


# ------------------------------------------------------------------------------------------- chromium
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--enable-logging=stderr", "--v=0"]


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium not found: scripts/test-setup.sh installs it (apt-get install -y chromium)")
        pytest.skip("chromium not installed (run scripts/test-setup.sh)")
    return exe


def _run_chromium(exe: str, url: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([exe, *CHROME_FLAGS, f"--user-data-dir={tmp}", "--virtual-time-budget=15000", *extra, url],
                          check=False, capture_output=True, text=True, timeout=180)


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def test_console_detection_works(chromium: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>undefinedFunction();</script></body></html>", encoding="utf-8")
    res = _run_chromium(chromium, bad.as_uri(), tmp_path / "profile", "--dump-dom")
    assert any("undefinedFunction" in line for line in _console(res.stderr))


def test_report_in_headless_chromium(chromium: str, report_file: Path, tmp_path: Path) -> None:
    res = _run_chromium(chromium, report_file.as_uri(), tmp_path / "profile", "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    assert _console(res.stderr) == []  # no console errors (nor any console output)
    dom = res.stdout
    for sid in IDS:
        assert f'<section id="{sid}">' in dom
    assert dom.count('class="main-svg"') >= 12  # plotly drew the figures
    art = ROOT / "ci-artifacts"
    art.mkdir(exist_ok=True)
    shot = art / "report.png"
    res = _run_chromium(chromium, report_file.as_uri(), tmp_path / "profile2", f"--screenshot={shot}",
                        "--window-size=1280,5000", "--hide-scrollbars")
    assert res.returncode == 0 and shot.exists() and shot.stat().st_size > 10_000


def test_real_german_scorecard_report(data_dir, tmp_path: Path) -> None:
    """Credit sections from a real scorecard on German credit; fairness from its audit."""
    from buyerscore.datasets import read_applicants
    from buyerscore.explain.fairness import audit_credit, derive_sensitive
    from buyerscore.explain.report import credit_inputs, fairness_inputs, merge_inputs
    from buyerscore.models.credit import CreditScorecard, split_applicants

    app = read_applicants("german_credit", data_dir)
    X, y = split_applicants(app)
    model = CreditScorecard().fit(X.iloc[:700], y[:700])
    ci = credit_inputs(model, X.iloc[700:], y[700:])
    assert ci.scorecard_table is not None and set(ci.shap.columns) == set(model.features_)
    assert (ci.shap.to_numpy() >= -1e-9).all()  # points lost against the best bin are never negative
    audit = audit_credit(y[700:], ci.proba, derive_sensitive(app.iloc[700:])[["age_band", "sex"]])
    text = render_report(merge_inputs(ci, fairness_inputs(audit), ReportInputs(title="German credit")))
    for sid in ("roc", "ks", "calibration", "score-distribution", "lift", "scorecard", "shap", "fairness"):
        body = text.split(f"<section id='{sid}'>")[1].split("</section>")[0]
        assert "class='na'" not in body, sid
    card = text.split("<section id='scorecard'>")[1].split("</section>")[0]
    # one bar chart per model feature (not the base-points row), at most 12
    n = len(model.features_)
    assert "fig-scorecard" in card and f"{min(n, 12)} of {n} features" in card
    assert "not available: no actual spend" in text and "<title>German credit</title>" in text
    # the contribution axes say their unit: points lost for a scorecard (log-odds for the tree models)
    shap = text.split("<section id='shap'>")[1].split("</section>")[0]
    assert ci.contribution_unit.startswith("points lost") and "Unit: points lost" in shap
    assert "SHAP" not in text.split("<section id='shap'>")[1].split("<p")[0]  # the title does not say SHAP
    save_inputs(ci, tmp_path / "inp")
    assert load_inputs(tmp_path / "inp").contribution_unit == ci.contribution_unit


# ------------------------------------------------------------------------------------------- edge cases
def test_report_carries_no_user_ids(tmp_path: Path) -> None:
    from buyerscore.explain.report import anomaly_inputs
    from buyerscore.models.anomaly import AnomalyDetector

    rng = np.random.default_rng(0)
    F = pd.DataFrame(rng.normal(size=(200, 3)), columns=["recency_days", "monetary_mean", "refund_rate"])
    F["user_id"] = [f"jane.doe{i}@example.com" for i in range(200)]  # features as anomaly_features returns them
    det = AnomalyDetector(contamination=0.05, n_estimators=10).fit(F)
    inp = anomaly_inputs(det, F, top=10)
    assert "user_id" not in inp.anomaly_table.columns and inp.anomaly_table["rank"].tolist() == list(range(1, 11))
    assert "@example.com" not in render_report(inp)
    # a table built by hand keeps its ids out of the page, and out of saved inputs
    by_hand = ReportInputs(anomaly_scores=[0.1, 0.9], anomaly_table=pd.DataFrame(
        {"user_id": ["u-secret-1"], "email": ["x@example.com"], "anomaly_score": [0.9], "reasons": ["r"]}))
    text = render_report(by_hand)
    assert "u-secret-1" not in text and "x@example.com" not in text and "user_id, email left out" in text
    back = load_inputs(save_inputs(by_hand, tmp_path / "in"))
    assert back.anomaly_table.columns.tolist() == ["anomaly_score", "reasons"]


def test_registry_folder_with_a_scorecard_and_stray_parquet_files(tmp_path: Path) -> None:
    """A folder like `buyerscore demo --out DIR` writes: models/credit (kind 'credit_scorecard') next to
    scores.parquet and features.parquet, which are not report inputs."""
    from buyerscore.artifacts import save_model
    from buyerscore.models.credit import CreditScorecard

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"util": rng.random(500), "late": rng.integers(0, 4, 500)})
    y = (rng.random(500) < 0.1 + 0.3 * X["util"]).astype(int)
    sc = CreditScorecard().fit(X, y)
    save_model(sc, tmp_path / "models" / "credit", kind="credit_scorecard", features=["util", "late"],
               training_data_hash="h")
    X.to_parquet(tmp_path / "scores.parquet")
    inputs = inputs_from_registry(tmp_path)
    assert inputs.scorecard_table is not None  # was: "the model is not a CreditScorecard"
    text = render_report(inputs)
    assert "not available: no precomputed report inputs" in text.split("<section id='roc'>")[1].split("</section>")[0]
    assert "class='na'" not in text.split("<section id='scorecard'>")[1].split("</section>")[0]


def test_fairness_notes_and_drift_reasons_reach_the_page(tmp_path: Path) -> None:
    from buyerscore.explain.fairness import fairness_audit
    from buyerscore.explain.monitoring import drift_report
    from buyerscore.explain.report import drift_inputs, fairness_inputs, merge_inputs

    audit = fairness_audit([1, 0, 1, 0, 1], [1, 0, 1, 1, 0], pd.Series(list("aaaab"), name="g"), min_group_size=2,
                           di_threshold=0.9)
    rng = np.random.default_rng(0)
    drift = drift_report(pd.DataFrame({"x": rng.normal(size=500)}), pd.DataFrame({"x": rng.normal(2, 1, 500)}))
    inp = load_inputs(save_inputs(merge_inputs(fairness_inputs(audit), drift_inputs(drift)), tmp_path / "in"))
    text = render_report(inp)
    fair = text.split("<section id='fairness'>")[1].split("</section>")[0]
    assert "fewer than 2 rows; listed but left out" in fair
    assert "disparate impact ratio below 0.9 is flagged" in fair  # the audit's threshold (was always 0.8)
    assert "1 of 1 features at alert level" in text.split("<section id='drift'>")[1].split("</section>")[0]


def test_anomaly_section_shows_what_the_flags_are_about_and_wide_tables_scroll(tmp_path: Path) -> None:
    """Each flagged user's first reason, counted over all flagged users (not only the table's top rows),
    is drawn as a bar chart and survives save/load; every table sits in a scrolling wrapper."""
    from buyerscore.explain.report import anomaly_inputs
    from buyerscore.models.anomaly import AnomalyDetector

    rng = np.random.default_rng(1)
    F = pd.DataFrame(rng.normal(size=(400, 3)), columns=["recency_days", "monetary_mean", "refund_rate"])
    F.loc[:11, "refund_rate"] = 40.0  # 12 users with absurd refund rates
    det = AnomalyDetector(contamination=0.05, n_estimators=20).fit(F)
    inp = anomaly_inputs(det, F, top=5)
    d = inp.anomaly_drivers
    assert d.columns.tolist() == ["feature", "flagged_users"]
    assert d["flagged_users"].sum() == int(det.predict(F).sum()) > 5  # all flagged users, not the top 5
    assert d.iloc[0]["feature"] == "refund_rate" and d.iloc[0]["flagged_users"] >= 8  # most of the 12
    back = load_inputs(save_inputs(inp, tmp_path / "in"))
    pd.testing.assert_frame_equal(back.anomaly_drivers, d)
    text = render_report(back)
    section = text.split("<section id='anomaly'>")[1].split("</section>")[0]
    assert "fig-anomaly-reasons" in section and f"First reason of the {d['flagged_users'].sum()} flagged" in section
    assert text.count("<table class='tbl'>") == text.count("<div class='tblwrap'><table class='tbl'>") > 0
