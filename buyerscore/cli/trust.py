"""CLI commands of the trust area: ``anomaly fit|score``, ``audit fairness``, ``monitor`` and ``report``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer

from buyerscore.cli._common import (
    check_platforms,
    console,
    friendly_errors,
    out,
    parse_cutoff,
    print_json,
    step,
    table,
)

anomaly_app = typer.Typer(help="Anomaly / fraud detection over behaviour features.", no_args_is_help=True)
audit_app = typer.Typer(help="Audits of fitted models.", no_args_is_help=True)

_ID_COLS = ("user_id", "as_of", "dataset", "label", "platform")


def _read(path: Path) -> Any:
    from buyerscore.cli.credit import _read_table

    return _read_table(path)


def _write(df: Any, path: Path) -> None:
    from buyerscore.cli._common import write_table

    write_table(df, path, "parquet" if path.name.lower().endswith((".parquet", ".pq")) else "csv")


def _features(db: Path | None, features: Path | None, as_of: str | None, platform: str | None) -> Any:
    from buyerscore.exceptions import LeakageError

    if features is not None:
        F = _read(features)
    else:
        if db is None:
            raise ValueError("give either --features FILE (a feature table) or --db STORE with --as-of DATE.")
        if as_of is None:
            raise LeakageError("--as-of is required with --db: features are built from events up to that cut-off.")
        from buyerscore.events.store import EventStore
        from buyerscore.models.anomaly.features import anomaly_features

        if not db.exists():
            raise FileNotFoundError(f"store {db} does not exist; ingest events first (buyerscore ingest).")
        ts = parse_cutoff(as_of, "--as-of")
        with EventStore(db, read_only=True) as store, step(f"building features as of {ts}"):
            check_platforms(store.con, [platform] if platform else None)
            F = anomaly_features(store.con, as_of=ts, platforms=platform)
            if len(F) == 0:
                where, args = ("WHERE platform = ?", [platform]) if platform else ("", [])
                lo, hi = store.con.execute(f"SELECT min(ts), max(ts) FROM events {where}", args).fetchone()  # type: ignore[misc]
                span = f"its events run from {lo} to {hi}" if lo is not None else "it holds no events"
                what = f"platform {platform!r} of store {db}" if platform else f"store {db}"
                F.attrs["empty_why"] = (f"no user has an event at or before --as-of {ts} in {what} ({span}); "
                                        "pick a later --as-of.")
    return F


def _num(v: Any) -> Any:
    """A float for the table, or an empty cell for NaN."""
    f = float(v)
    return "" if math.isnan(f) else f


def _cell(v: Any) -> Any:
    """A table cell: numbers through :func:`_num` (NaN -> empty), anything else as it is."""
    return _num(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


# -- anomaly ---------------------------------------------------------------------------------------
@anomaly_app.command("fit")
def anomaly_fit(
    out_dir: Path = typer.Option(..., "--out", help="Model directory to write."),
    db: Path | None = typer.Option(None, "--db", help="Event store to build features from."),
    features: Path | None = typer.Option(None, "--features", help="Or: a feature table (CSV/Parquet) to fit on."),
    as_of: str | None = typer.Option(None, "--as-of", help="Feature cut-off (required with --db)."),
    platform: str | None = typer.Option(None, "--platform", help="Only this platform."),
    contamination: float = typer.Option(0.01, "--contamination", help="Share of users to flag."),
    detectors: str = typer.Option("iforest,ecod,copod", "--detectors", help="Comma-separated detectors."),
    combine: str = typer.Option("max", "--combine", help="mean or max of the detectors' calibrated scores."),
    change_features: bool = typer.Option(True, "--change-features/--no-change-features",
                                         help="Add recent-vs-history ratios (see docs/trust.md)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Fit the anomaly ensemble on behaviour features and save it (no training rows are stored)."""
    with friendly_errors():
        from buyerscore.artifacts import data_hash, save_model
        from buyerscore.models.anomaly import AnomalyDetector

        det = AnomalyDetector(detectors=[d.strip() for d in detectors.split(",") if d.strip()],
                              contamination=contamination, combine=combine,  # type: ignore[arg-type]
                              change_features=change_features)
        det._check_params()  # a wrong --contamination fails before minutes of feature building
        F = _features(db, features, as_of, platform)
        if len(F) == 0 and "empty_why" in F.attrs:
            raise ValueError(F.attrs["empty_why"])
        with step(f"fitting anomaly detectors on {len(F):,} users"):
            det.fit(F)
        flagged = int(det.predict(F).sum())
        metrics = {"n_train": det.n_train_, "flagged_train": flagged, "threshold": det.threshold_}
        save_model(det, out_dir, kind="anomaly.AnomalyDetector", features=list(det.feature_names_in_),
                   training_data_hash=data_hash(F), params=det.get_params(), metrics=metrics, as_of=as_of)
    if as_json:
        print_json({"model": str(out_dir), **metrics})
    else:
        out.print(table(f"anomaly model -> {out_dir}", ["users", "features", "flagged", "threshold"],
                        [[det.n_train_, len(det.features_), flagged, det.threshold_]]))


@anomaly_app.command("score")
def anomaly_score(
    model: Path = typer.Option(..., "--model", help="Model directory from 'buyerscore anomaly fit'."),
    db: Path | None = typer.Option(None, "--db", help="Event store to build features from."),
    features: Path | None = typer.Option(None, "--features", help="Or: a feature table (CSV/Parquet)."),
    as_of: str | None = typer.Option(None, "--as-of", help="Feature cut-off (required with --db)."),
    platform: str | None = typer.Option(None, "--platform", help="Only this platform."),
    out_path: Path | None = typer.Option(None, "--out", help="Write all scores (CSV or Parquet)."),
    top: int = typer.Option(20, "--top", help="Most unusual users to show."),
    k: int = typer.Option(3, "--reasons", help="Reasons per user."),
    lang: str = typer.Option("en", "--lang", help="Language of the reasons: en or zh."),
    as_json: bool = typer.Option(False, "--json", help="Print the top users as JSON."),
) -> None:
    """Score users: anomaly score in [0, 1], the flag, and the features that make each user unusual."""
    with friendly_errors():
        from buyerscore.artifacts import load_model

        det, meta = load_model(model)
        if not meta.kind.startswith("anomaly"):
            raise ValueError(f"{model} holds a {meta.kind} model, not an anomaly detector.")
        from buyerscore.explain.reason_codes import LANGS

        if k <= 0:  # checked before minutes of feature building
            raise ValueError(f"--reasons must be a positive whole number of reasons per user; got {k}.")
        if lang not in LANGS:
            raise ValueError(f"--lang must be one of {', '.join(LANGS)}; got {lang!r}.")
        F = _features(db, features, as_of, platform)
        if len(F) == 0 and "empty_why" in F.attrs:
            console.print(f"[yellow]note:[/] {F.attrs['empty_why']}", highlight=False)
        with step(f"scoring {len(F):,} users"):
            sf = det.score_frame(F, k=k, lang=lang)
        if out_path is not None:
            _write(sf, out_path)
        top_rows = sf.sort_values("anomaly_score", ascending=False).head(top)
    if as_json:
        print_json({"n": len(sf), "flagged": int(sf["flagged"].sum()), "threshold": det.threshold_,
                    "top": top_rows.to_dict(orient="records")})
        return
    idc = [c for c in ("platform", "user_id") if c in top_rows.columns]
    out.print(table(f"{int(sf['flagged'].sum()):,} of {len(sf):,} users flagged (threshold {det.threshold_:.3f})",
                    [*idc, "score", "reasons"],
                    [[*[r[c] for c in idc], float(r["anomaly_score"]), r["reasons"]]
                     for _, r in top_rows.iterrows()]))


# -- audit fairness --------------------------------------------------------------------------------
@audit_app.command("fairness")
def audit_fairness(
    model: Path = typer.Option(..., "--model", help="Credit model directory (buyerscore credit train)."),
    data: Path = typer.Option(..., "--data", help="Applicant table with labels and sensitive columns."),
    sensitive: str = typer.Option("age_band,sex", "--sensitive",
                                  help="Comma-separated protected columns (age_band/sex are derived from AGE, SEX, "
                                       "age_in_years, personal_status_and_sex when absent)."),
    label_col: str = typer.Option("label", "--label-col", help="Outcome column, 1 = bad."),
    threshold: float = typer.Option(0.5, "--threshold", help="Approve when the probability of default is below it."),
    min_group_size: int = typer.Option(20, "--min-group-size", min=1,
                                       help="Groups with fewer rows are listed but left out of the ratios and "
                                            "differences (one person must not decide a flag)."),
    mitigate: bool = typer.Option(False, "--mitigate", help="Also fit group thresholds (fairlearn ThresholdOptimizer, "
                                                             "equalised odds) on the first attribute and show the "
                                                             "trade-off (in-sample)."),
    out_path: Path | None = typer.Option(None, "--out", help="Write the per-group table (CSV or Parquet)."),
    as_json: bool = typer.Option(False, "--json", help="Print the audit as JSON."),
) -> None:
    """Selection rate, disparate impact (flag < 0.8), equal opportunity / equalised odds and AUC by group."""
    with friendly_errors():
        import numpy as np

        from buyerscore.artifacts import load_model
        from buyerscore.explain.fairness import audit_credit, derive_sensitive, mitigate_thresholds

        if not 0.0 < threshold < 1.0:
            raise ValueError(f"--threshold is a probability of default strictly between 0 and 1; got {threshold}.")
        est, meta = load_model(model)
        df = _read(data)
        if label_col not in df.columns:
            raise ValueError(f"label column {label_col!r} not in {data} (columns: {list(df.columns)[:10]}); "
                             "use --label-col.")
        import pandas as pd

        lab = pd.to_numeric(df[label_col], errors="coerce")
        bad = ~lab.isin([0, 1]).to_numpy()
        if bad.any():
            rows = np.flatnonzero(bad)
            vals = ", ".join(repr(v) for v in df[label_col][bad].head(3).tolist())
            raise ValueError(f"label column {label_col!r} of {data} must hold 0/1 (1 = bad); {int(bad.sum())} row(s) "
                             f"do not, e.g. {vals} at row(s) {rows[:3].tolist()} (0 = the first data row). Recode "
                             "the labels to 0/1 (good -> 0, bad -> 1) and drop rows without an observed outcome.")
        attrs = [a.strip() for a in sensitive.split(",") if a.strip()]
        derived = derive_sensitive(df)
        sens = {}
        derived_from: list[str] = []
        for a in attrs:
            if a in df.columns:
                sens[a] = df[a]
            elif a in derived.columns:
                sens[a] = derived[a]
                derived_from.append(a)
            else:
                raise ValueError(f"sensitive column {a!r} is neither in {data} nor derivable "
                                 f"(columns: {list(df.columns)[:10]}).")
        sens_df = pd.DataFrame(sens).reset_index(drop=True)
        X = df.drop(columns=[c for c in (*_ID_COLS, label_col, "age_band", "sex") if c in df.columns])
        from buyerscore.models.credit import derive_as_trained

        X = derive_as_trained(X, meta.extra)  # the derived columns a credit model was trained with, if any
        with step(f"scoring {len(X):,} rows with {meta.kind}"):
            pd_ = np.asarray(est.predict_proba(X))[:, 1]
        y = lab.to_numpy(dtype=int)
        rep = audit_credit(y, pd_, sens_df, threshold=threshold, min_group_size=min_group_size)
        said = []
        for a in derived_from:  # say how a derived attribute was made
            src = next((c for c in (("AGE", "age_in_years", "age") if a == "age_band" else
                                    ("SEX", "personal_status_and_sex")) if c in df.columns), "?")
            how = ("bands <25, 25-34, 35-49, 50+ (years)" if a == "age_band" else
                   "1 -> male, 2 -> female" if src == "SEX" else "the first word (male / female)")
            said.append(f"{a} derived from {src}: {how}; rows without a value form the group 'missing'.")
        rep.notes[:0] = said
        result: dict[str, Any] = {"model": str(model), "kind": meta.kind, "threshold": threshold,
                                  "min_group_size": min_group_size, **rep.to_dict()}
        if mitigate:
            mit = mitigate_thresholds(1 - y.astype(int), 1 - pd_, sens_df[attrs[0]],
                                      y_pred=(pd_ < threshold).astype(int))
            result["mitigation"] = {"attribute": attrs[0], "constraint": mit.constraint,
                                    "tradeoff": mit.tradeoff.to_dict(orient="records")}
        if out_path is not None:
            _write(rep.by_group, out_path)
    if as_json:
        print_json(result)
        return
    cols = ["attribute", "group", "n", "base_rate", "selection_rate", "di_ratio", "tpr", "fpr", "auc"]
    out.print(table(f"fairness of {meta.kind} (approve if PD < {threshold})", [*cols, "flag"],
                    [[*[_cell(r[c]) for c in cols],
                      "DI < 0.8" if r["flag"] else "" if r["in_ratios"] else f"left out (n < {min_group_size})"]
                     for _, r in rep.by_group.iterrows()]))
    s = rep.summary_frame()
    scols = ["attribute", "disparate_impact_ratio", "equal_opportunity_difference", "equalized_odds_difference",
             "auc_gap"]
    out.print(table("per attribute", [*scols, "flag"],
                    [[*[_cell(r[c]) for c in scols], "DI < 0.8" if r["di_flag"] else ""] for _, r in s.iterrows()]))
    for note in rep.notes:
        out.print(f"note: {note}", highlight=False)
    if mitigate:
        t = mit.tradeoff
        out.print(table(f"mitigation on {attrs[0]} ({mit.constraint}, in-sample)", list(t.columns),
                        t.values.tolist()))


# -- monitor ---------------------------------------------------------------------------------------
def monitor(
    reference: Path = typer.Option(..., "--reference", help="Reference population (CSV/Parquet), e.g. training."),
    current: Path = typer.Option(..., "--current", help="Current population with the same columns."),
    score_col: str | None = typer.Option(None, "--score-col", help="Model score column (PSI and performance)."),
    label_col: str | None = typer.Option(None, "--label-col", help="Observed 0/1 outcome (1 = bad), if known."),
    warn: float = typer.Option(0.1, "--warn", help="PSI warning threshold."),
    alert: float = typer.Option(0.25, "--alert", help="PSI alert threshold."),
    fail_on_retrain: bool = typer.Option(False, "--fail-on-retrain",
                                         help="Exit with code 3 when retraining is recommended (for schedulers)."),
    out_path: Path | None = typer.Option(None, "--out", help="Write the JSON report to this file."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Population stability (PSI) per feature and for the score, performance decay, and a retrain verdict."""
    import json

    with friendly_errors():
        from buyerscore.explain.monitoring import drift_report

        ref, cur = _read(reference), _read(current)
        for opt, path, df in (("--reference", reference, ref), ("--current", current, cur)):
            if len(df) == 0:
                raise ValueError(f"{opt} {path} has no data rows (columns: {list(df.columns)[:10]}); drift compares "
                                 "two populations, so both files need rows. Point it at a non-empty file.")
        rep = drift_report(ref, cur, score_col=score_col, label_col=label_col, warn=warn, alert=alert)
        d = rep.to_dict()
        if out_path is not None:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            out_path.write_text(json.dumps(d, indent=2, default=str), encoding="utf-8")
    if as_json:
        print_json(d)
    else:
        t = rep.table.sort_values("psi", ascending=False)
        style = {"alert": "[bold red]alert[/]", "warn": "[yellow]warn[/]", "ok": "[green]ok[/]"}
        tab = table(f"drift: {len(ref):,} reference vs {len(cur):,} current rows", ["column", "kind", "PSI", "status",
                                                                                   "ref mean", "cur mean"],
                    [[r["column"], r["kind"], _num(r["psi"]), style.get(r["status"], r["status"]),
                      _num(r["ref_mean"]), _num(r["cur_mean"])] for _, r in t.iterrows()])
        out.print(tab)
        if rep.performance:
            out.print(table("performance", list(rep.performance), [list(rep.performance.values())]))
        colour = {"retrain recommended": "bold red", "monitor": "yellow", "stable": "green"}[rep.verdict]
        out.print(f"verdict: [{colour}]{rep.verdict}[/]")
        for r in rep.reasons:
            out.print(f"  - {r}", highlight=False)
    if fail_on_retrain and rep.retrain:
        raise typer.Exit(3)


# -- report ----------------------------------------------------------------------------------------
def report(
    registry: Path = typer.Option(..., "--registry", help="Folder with saved model dirs and/or report inputs "
                                                          "(report_inputs/ written by save_inputs)."),
    out_path: Path = typer.Option(Path("report.html"), "--out", help="HTML file to write."),
    title: str | None = typer.Option(None, "--title", help="Page title."),
) -> None:
    """Write one self-contained offline HTML report (ROC, KS, calibration, ..., fairness, drift)."""
    with friendly_errors():
        from buyerscore.explain.report import build_report, inputs_from_registry

        inputs = inputs_from_registry(registry)
        if title:
            inputs.title = title
        with step("rendering report"):
            p = build_report(inputs, out_path)
    console.print(f"report written to {p} ({p.stat().st_size / 1e6:.1f} MB)", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(anomaly_app, name="anomaly")
    app.add_typer(audit_app, name="audit")
    app.command()(monitor)
    app.command()(report)
