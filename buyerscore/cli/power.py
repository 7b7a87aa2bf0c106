"""``buyerscore power train|score``: future-spend forecasts and value tiers from the event store."""

from __future__ import annotations

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

power_app = typer.Typer(help="Purchasing power: expected future spend and high/mid/low tiers.", no_args_is_help=True)

KEYS = ["platform", "user_id"]


@power_app.command("train")
def train(
    db: Path = typer.Option(..., "--db", help="DuckDB store with the events."),
    cutoff: str = typer.Option(..., "--cutoff", help="Training cut-off: features use events at or before it "
                               "(a date means midnight at its start)."),
    horizon: int = typer.Option(..., "--horizon", help="Label window in days after the cut-off."),
    out_dir: Path = typer.Option(..., "--out", help="Model directory to write."),
    platform: list[str] | None = typer.Option(None, "--platform", help="Only these platforms (repeatable)."),
    method: str = typer.Option("auto", "--method", help="auto (the best candidate on held-out rows), tweedie, "
                                                         "two_part, blend or rate."),
    tiers: bool = typer.Option(True, "--tiers/--no-tiers", help="Also fit the high/mid/low SpendTier."),
    behaviour: bool = typer.Option(True, "--behaviour/--no-behaviour",
                                   help="Add the generic behaviour features of build_features."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Fit a SpendForecaster (and SpendTier) on features as of CUTOFF and spend in (CUTOFF, CUTOFF+HORIZON]."""
    with friendly_errors():
        import numpy as np
        import pandas as pd

        from buyerscore.artifacts import data_hash, save_model
        from buyerscore.events.store import EventStore
        from buyerscore.models.purchasing_power import SpendForecaster, SpendTier
        from buyerscore.models.purchasing_power.inputs import model_features, spend_labels
        from buyerscore.models.purchasing_power.metrics import spend_report

        if not db.exists():
            raise FileNotFoundError(f"No store at {db}; create it with 'buyerscore ingest' or 'buyerscore datasets load'.")
        ts = parse_cutoff(cutoff)
        with EventStore(db, read_only=True) as store, step("building features and labels"):
            check_platforms(store.con, platform)
            X = model_features(store.con, as_of=ts, platforms=platform or None, behaviour=behaviour)
            y = spend_labels(store.con, as_of=ts, horizon_days=horizon, users=X)["future_spend"].to_numpy()
            last = store.con.execute("SELECT MAX(ts) FROM events WHERE ? OR list_contains(?, platform)",
                                     [not platform, list(platform or [])]).fetchone()[0]  # type: ignore[index]
        if len(X) < 20:
            raise ValueError(f"Only {len(X)} user(s) have events at or before {ts}; move --cutoff later.")
        end = ts + pd.Timedelta(days=horizon)
        if last is not None and pd.Timestamp(last) < end:
            seen = max(0.0, (pd.Timestamp(last) - ts) / pd.Timedelta(days=1))
            if not np.any(y > 0):
                raise ValueError(f"No spend in the label window ({ts}, {end}]: the last event is at {last}. "
                                 f"Move --cutoff at least {horizon} days before it.")
            console.print(f"[yellow]warning:[/] the label window ends at {end} but the last event is at {last}: "
                          f"only {seen:.0f} of its {horizon} days are observed, so spend is under-counted and the "
                          "forecasts will be too low. Move --cutoff earlier or shorten --horizon.")
        if not np.any(y > 0):
            raise ValueError(f"No user spent anything in ({ts}, {end}]; nothing to learn a spend level from.")
        with step(f"fitting SpendForecaster on {len(X):,} users"):
            fc = SpendForecaster(horizon_days=horizon, method=method).fit(X, y)  # type: ignore[arg-type]
        metrics: dict[str, Any] = {"train": spend_report(y, fc.predict(X)), "validation_ngini": fc.validation_scores_,
                   "method": fc.method_, "users": len(X), "buyers_share": float(np.mean(y > 0))}
        feats = list(fc.feature_names_in_)
        common: dict[str, Any] = {"features": feats, "training_data_hash": data_hash(X), "as_of": str(ts),
                  "extra": {"horizon_days": horizon, "behaviour_features": behaviour, "platforms": platform or []}}
        save_model(fc, out_dir, kind="spend_forecaster", params=fc.get_params(), metrics=metrics, **common)
        if tiers:
            with step("fitting SpendTier"):
                tier = SpendTier().fit(X, y)
            save_model(tier, out_dir / "tier", kind="spend_tier", params=tier.get_params(),
                       metrics={"cut_points": list(tier.cut_points_)}, **common)
    if as_json:
        print_json({"model": str(out_dir), **metrics})
    else:
        r = metrics["train"]
        out.print(table(f"power model -> {out_dir}", ["users", "method", "train ngini", "top decile", "validation"],
                        [[len(X), fc.method_, r["ngini"], r["top_decile"], str(fc.validation_scores_)]]))


@power_app.command("features")
def features_cmd(
    db: Path = typer.Option(..., "--db", help="DuckDB store with the events."),
    cutoff: str = typer.Option(..., "--cutoff", help="Features use events at or before it (a date means midnight "
                               "at its start)."),
    out_path: Path = typer.Option(Path("power_features.parquet"), "--out", help="Parquet file to write."),
    platform: list[str] | None = typer.Option(None, "--platform", help="Only these platforms (repeatable)."),
    behaviour: bool = typer.Option(True, "--behaviour/--no-behaviour",
                                   help="Add the generic behaviour features (as 'power train' does by default)."),
) -> None:
    """Write the spend model's input table as of CUTOFF (RFM summary, spend windows, behaviour features), for
    'power score --features' or a scheduled scoring job elsewhere."""
    with friendly_errors():
        from buyerscore.events.store import EventStore
        from buyerscore.models.purchasing_power.inputs import model_features

        if not db.exists():
            raise FileNotFoundError(f"No store at {db}; create it with 'buyerscore ingest' or 'buyerscore datasets load'.")
        ts = parse_cutoff(cutoff)
        with EventStore(db, read_only=True) as store, step(f"building power features as of {ts}"):
            check_platforms(store.con, platform)
            X = model_features(store.con, as_of=ts, platforms=platform or None, behaviour=behaviour)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        X.to_parquet(out_path, index=False)
    console.print(f"wrote {len(X):,} users x {X.shape[1] - len(KEYS)} features as of {ts} to {out_path}")


@power_app.command("score")
def score(
    model: Path = typer.Option(..., "--model", help="Model directory written by 'buyerscore power train'."),
    out_path: Path = typer.Option(..., "--out", help="Parquet file of scores."),
    db: Path | None = typer.Option(None, "--db", help="DuckDB store with the events."),
    cutoff: str | None = typer.Option(None, "--cutoff", help="Scoring cut-off (required with --db)."),
    features: Path | None = typer.Option(None, "--features", help="Or: a features parquet (platform, user_id, ...)."),
    reasons: int = typer.Option(3, "--reasons", help="Reason codes per user (0 = none)."),
    lang: str = typer.Option("en", "--lang", help="Language of the reason texts (en or zh)."),
) -> None:
    """Score users: expected spend over the model's horizon, tier probabilities and spend-lowering reasons."""
    with friendly_errors():
        from buyerscore.artifacts import load_model
        from buyerscore.events.store import EventStore
        from buyerscore.models.purchasing_power import SpendForecaster
        from buyerscore.models.purchasing_power.inputs import model_features

        fc, meta = load_model(model)
        if not isinstance(fc, SpendForecaster):  # a user error: ValueError, so exit code 2 with this message
            raise ValueError(f"{model} holds a {meta.kind} model, not a spend forecaster; pass a directory written "  # noqa: TRY004
                             "by 'buyerscore power train'.")
        if (db is None) == (features is None):
            raise ValueError("Give either --db with --cutoff, or --features.")
        if db is not None:
            if cutoff is None:
                raise ValueError("--cutoff is required with --db: scores use only events at or before it.")
            ts = parse_cutoff(cutoff)
            plats = meta.extra.get("platforms") or None
            with EventStore(db, read_only=True) as store, step("building features"):
                check_platforms(store.con, plats)
                X = model_features(store.con, as_of=ts, platforms=plats,
                                   behaviour=bool(meta.extra.get("behaviour_features", True)))
        else:
            assert features is not None
            from buyerscore.cli.credit import _read_table

            X = _read_table(features)
            ts = None
            missing = [c for c in fc.feature_names_in_ if c not in X.columns]
            if missing:
                raise ValueError(f"{features} lacks {len(missing)} of the model's {len(fc.feature_names_in_)} input "
                                 f"columns, e.g. {missing[:5]}; write it with 'buyerscore power features --db STORE "
                                 "--cutoff DATE' (or score from the store with --db and --cutoff).")
        with step(f"scoring {len(X):,} users"):
            res = X[[c for c in KEYS if c in X.columns]].copy()
            res["expected_spend"] = fc.predict(X)
            res["horizon_days"] = meta.extra.get("horizon_days")
            res["as_of"] = str(ts) if ts is not None else None
            tier_dir = Path(model) / "tier"
            if (tier_dir / "metadata.json").exists():
                tier, _ = load_model(tier_dir)
                proba = tier.predict_proba(X)
                for j, c in enumerate(tier.classes_):
                    res[f"p_{c}"] = proba[:, j]
                res["tier"] = [tier.classes_[i] for i in proba.argmax(axis=1)]
            if reasons > 0:
                rc = fc.reason_codes(X, k=reasons, lang=lang)
                res["reasons"] = ["; ".join(r.text for r in row) for row in rc]
                res["reason_features"] = [[r.feature for r in row] for row in rc]
        out_path.parent.mkdir(parents=True, exist_ok=True)
        res.to_parquet(out_path, index=False)
    console.print(f"wrote {len(res):,} scores to {out_path}")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(power_app, name="power")
