"""``buyerscore features`` (point-in-time features to Parquet) and ``buyerscore demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from buyerscore.cli._common import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    check_platforms,
    console,
    friendly_errors,
    out,
    parse_cutoff,
    step,
    table,
    table_kind,
    write_table,
)


def _windows(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--windows must be comma-separated whole days, e.g. 7,30,90,365; got {text!r}.") from None


def features(
    db: Path = typer.Option(..., "--db", help="DuckDB store with ingested events."),
    cutoff: str = typer.Option(..., "--cutoff", help="As-of date/time (UTC); only events with ts <= cutoff are used."),
    windows: str = typer.Option("7,30,90,365", "--windows", help="Window lengths in days, comma-separated."),
    platform: list[str] | None = typer.Option(None, "--platform", help="Only this platform (repeatable)."),
    out_path: Path = typer.Option(Path("features.parquet"), "--out",
                                  help="File to write: Parquet (.parquet) or CSV (.csv)."),
    horizon: float | None = typer.Option(None, "--horizon",
                                         help="Also write labels over (cutoff, cutoff + horizon days]."),
    labels_out: Path | None = typer.Option(None, "--labels-out",
                                           help="Labels file, .parquet or .csv (default: <out>_labels.parquet)."),
) -> None:
    """Build point-in-time behaviour features, one row per (platform, user), and write them to Parquet."""
    from buyerscore.cli.core import store_errors
    from buyerscore.events.store import EventStore
    from buyerscore.features import build_features, build_labels

    with store_errors():
        if not db.exists():
            raise FileNotFoundError(f"store {db} does not exist; create it with 'buyerscore ingest' or "
                                    "'buyerscore datasets load'.")
        wins = _windows(windows)
        ts = parse_cutoff(cutoff)
        kind = table_kind(out_path, "--out")
        base = next((out_path.name[:-len(x)] for x in (*PARQUET_SUFFIXES, *CSV_SUFFIXES) if out_path.name.lower().endswith(x)),
                    out_path.stem)
        lpath = labels_out or out_path.with_name(base + "_labels.parquet")
        if horizon is not None:
            lkind = table_kind(lpath, "--labels-out")
            if lpath.resolve() == out_path.resolve():
                raise ValueError(f"--labels-out {lpath} is the --out file: the labels would overwrite the "
                                 "features; give another name (e.g. labels.parquet).")
        with EventStore(db, read_only=True) as store:
            check_platforms(store.con, platform)
            with step(f"features as of {ts}"):
                f = build_features(store.con, as_of=ts, windows=wins, platforms=platform or None)
            lab = None
            if horizon is not None:
                with step(f"labels over {horizon:g} days after {ts}"):
                    lab = build_labels(store.con, as_of=ts, horizon_days=horizon, platforms=platform or None)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        write_table(f, out_path, kind)
        if lab is not None:
            lpath.parent.mkdir(parents=True, exist_ok=True)
            write_table(lab, lpath, lkind)
    n_feat = f.shape[1] - 2
    rows = [[str(p), len(g), int((g["n_purchases"] > 0).sum()), float(g["monetary_sum"].sum(skipna=True)),
             float(g["recency_days"].median()) if g["recency_days"].notna().any() else float("nan")]
            for p, g in f.groupby("platform")]
    out.print(table(f"features as of {ts}: {len(f):,} users x {n_feat} features -> {out_path}",
                    ["platform", "users", "purchasers", "spend to date", "median recency (days)"], rows))
    if lab is not None:
        console.print(f"labels: {int(lab['future_purchase'].sum()):,} of {len(lab):,} users buy in the next "
                      f"{horizon:g} days -> {lpath}")
    if len(f) == 0:
        console.print("[yellow]no user has an event at or before the cutoff[/]")


def demo(
    data_dir: Path | None = typer.Option(None, "--data-dir",
                                         help="Use the real public datasets in this folder instead of synthetic data."),
    out_dir: Path = typer.Option(Path("buyerscore-demo"), "--out", help="Folder for the store and outputs."),
    users: int = typer.Option(2000, "--users", min=1, help="Synthetic shoppers to generate."),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic generator."),
) -> None:
    """End to end: generate (or load) data -> ingest -> features -> train power, credit, anomaly -> score ->
    fairness and drift -> HTML report (see buyerscore/demo.py)."""
    from buyerscore.demo import run_full_demo

    with friendly_errors():
        full = run_full_demo(out_dir, data_dir, n_users=users, seed=seed, progress=step)
    res = full.base
    s = res.summary
    out.print(table(f"buyerscore demo ({res.source})",
                    ["platform", "as of", "events", "users", "buyers", "spend/user", "buy next",
                     "next spend/user", "rank corr"],
                    [[r.platform, r.as_of, int(r.events), int(r.users), int(r.purchasers), r.mean_spend_before,
                      r.future_buyers_share, r.mean_future_spend, r.spend_corr] for r in s.itertuples()]))
    m = full.metrics
    out.print(table("hold-out quality (30 % of users / applicants)", ["model", "metric", "value"], [
        ["purchasing power", "normalised Gini of future spend", m["power"]["normalized_gini"]],
        ["purchasing power", "top-decile capture", m["power"]["top_decile_capture"]],
        ["credit scorecard", "AUC", m["credit"]["auc"]],
        ["credit scorecard", "KS", m["credit"]["ks"]],
    ]))
    console.print(f"store {res.db_path} | features {res.features_path} | scores {full.scores_path} | "
                  f"models {full.models_dir}")
    out.print(f"report: {full.report_path}")


def register(app: typer.Typer) -> None:
    app.command()(features)
    app.command()(demo)
