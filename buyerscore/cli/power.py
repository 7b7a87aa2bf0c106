"""``buyerscore power train|score``: future-spend forecasts and value tiers from the event store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from buyerscore.cli._common import (
    check_model_out,
    check_platforms,
    console,
    friendly_errors,
    out,
    parse_cutoff,
    print_json,
    staged_model_dir,
    step,
    table,
    table_kind,
    write_table,
)

power_app = typer.Typer(help="Purchasing power: expected future spend and high/mid/low tiers.", no_args_is_help=True)

KEYS = ["platform", "user_id"]
METHODS = ("auto", "tweedie", "two_part", "blend", "rate")
LANGS = ("en", "zh")
MAX_HORIZON = 36_500  # 100 years: further out, cut-off + horizon leaves the calendar pandas can hold


def _check_horizon(horizon: int) -> None:
    if not 1 <= horizon <= MAX_HORIZON:
        raise ValueError(f"--horizon {horizon}: the label window must be 1 to {MAX_HORIZON:,} days after the cut-off; "
                         "give its length in days, e.g. --horizon 90.")


def _tier_thresholds(text: str, kind: str) -> tuple[float, float]:
    """``--tier-thresholds 0.5,0.9`` as two increasing numbers (quantiles in (0, 1) with --tier-kind quantile)."""
    if kind not in ("quantile", "amount"):
        raise ValueError(f"--tier-kind {kind!r}: use quantile (cut points are shares of the users) or amount "
                         "(cut points are spend amounts).")
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--tier-thresholds {text!r}: give two comma-separated numbers, the low|mid and mid|high "
                         "cut points, e.g. 0.5,0.9 (quantiles) or 100,1000 (amounts with --tier-kind amount).") from None
    if not lo < hi:
        raise ValueError(f"--tier-thresholds {text!r}: the low|mid cut point must be below the mid|high one, "
                         "e.g. 0.5,0.9.")
    if kind == "quantile" and not 0 < lo < hi < 1:
        raise ValueError(f"--tier-thresholds {text!r}: quantiles must lie in (0, 1), e.g. 0.5,0.9 (50 % and 90 %); "
                         "for spend amounts add --tier-kind amount.")
    return lo, hi


def _data_span(con: Any, platforms: list[str] | None) -> tuple[Any, Any]:
    """First and last event time in the store (on ``platforms``); ``(None, None)`` when there is none."""
    from buyerscore.models.purchasing_power.inputs import _check_events

    _check_events(con)
    row = con.execute("SELECT MIN(ts), MAX(ts) FROM events WHERE ? OR list_contains(?, platform)",
                      [not platforms, list(platforms or [])]).fetchone()
    return (row[0], row[1]) if row else (None, None)


def _check_cutoff(ts: Any, span: tuple[Any, Any], platforms: list[str] | None, *, scoring: bool) -> None:
    """A cut-off before the first event is an error (no user exists yet); one more than a day after the last
    event is a warning when scoring (every user then looks inactive since the data ended)."""
    import pandas as pd

    first, last = span
    where = f" on platform(s) {', '.join(platforms)}" if platforms else ""
    if first is None:
        raise ValueError(f"The store has no events{where}; load some with 'buyerscore ingest' or "
                         "'buyerscore datasets load'.")
    if ts < pd.Timestamp(first):
        raise ValueError(f"--cutoff {ts} is before the store's first event{where} ({first}): no user exists yet. "
                         f"Give a cut-off between {first} and {last}.")
    gap = (ts - pd.Timestamp(last)) / pd.Timedelta(days=1)
    if scoring and gap > 1:
        console.print(f"[yellow]warning:[/] --cutoff {ts} is {gap:.0f} days after the store's last event{where} "
                      f"({last}): every user looks inactive since then, so the forecasts describe a shop that "
                      "stopped. Use a cut-off at the end of the data, or load the newer events first.",
                      highlight=False)


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
    tier_thresholds: str = typer.Option("0.5,0.9", "--tier-thresholds",
                                        help="SpendTier cut points low|mid,mid|high: quantiles of the users' "
                                             "future spend (default 50 % and 90 %), or amounts with --tier-kind "
                                             "amount. Spend above a cut point is in the upper tier."),
    tier_kind: str = typer.Option("quantile", "--tier-kind", help="quantile or amount: how --tier-thresholds "
                                  "are read (with many users who spend nothing, a quantile cut point can be 0 "
                                  "and leave the mid tier empty: use amount or higher quantiles)."),
    behaviour: bool = typer.Option(True, "--behaviour/--no-behaviour",
                                   help="Add the generic behaviour features of build_features."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Fit a SpendForecaster (and SpendTier) on features as of CUTOFF and spend in (CUTOFF, CUTOFF+HORIZON].

    The model directory is written whole when every fit succeeded: an existing one at --out is replaced
    (with --no-tiers, its tier/ goes too), and a failed fit leaves it as it was."""
    with friendly_errors():
        import numpy as np
        import pandas as pd

        from buyerscore.artifacts import data_hash, save_model
        from buyerscore.events.store import EventStore
        from buyerscore.exceptions import ModelInputError
        from buyerscore.models.purchasing_power import SpendForecaster, SpendTier
        from buyerscore.models.purchasing_power.inputs import model_features, spend_labels
        from buyerscore.models.purchasing_power.metrics import spend_report

        # option errors first, before minutes of feature building
        _check_horizon(horizon)
        if method not in METHODS:
            raise ValueError(f"--method {method!r}: use one of {', '.join(METHODS)}.")
        thresholds = _tier_thresholds(tier_thresholds, tier_kind)
        check_model_out(out_dir)
        if not db.exists():
            raise FileNotFoundError(f"No store at {db}; create it with 'buyerscore ingest' or 'buyerscore datasets load'.")
        ts = parse_cutoff(cutoff)
        with EventStore(db, read_only=True) as store, step("building features and labels"):
            check_platforms(store.con, platform)
            span = _data_span(store.con, platform)
            _check_cutoff(ts, span, platform, scoring=False)
            X = model_features(store.con, as_of=ts, platforms=platform or None, behaviour=behaviour)
            y = spend_labels(store.con, as_of=ts, horizon_days=horizon, users=X)["future_spend"].to_numpy()
            last = span[1]
        if len(X) < 20:
            raise ValueError(f"Only {len(X)} user(s) have events at or before {ts} (the store's events run from "
                             f"{span[0]} to {last}); at least 20 are needed: move --cutoff later or load more users.")
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
        tier = None  # first: its cut points fail in seconds, the forecaster takes minutes
        if tiers:
            with step("fitting SpendTier"):
                try:
                    tier = SpendTier(thresholds=thresholds, kind=tier_kind).fit(X, y)  # type: ignore[arg-type]
                except ModelInputError as exc:
                    raise ModelInputError(f"{exc} On the command line: --tier-thresholds (now {tier_thresholds}) and "
                                          f"--tier-kind (now {tier_kind}), or --no-tiers. Nothing was written.") from None
        with step(f"fitting SpendForecaster on {len(X):,} users"):
            fc = SpendForecaster(horizon_days=horizon, method=method).fit(X, y)  # type: ignore[arg-type]
        metrics: dict[str, Any] = {"train": spend_report(y, fc.predict(X)), "validation_ngini": fc.validation_scores_,
                   "method": fc.method_, "users": len(X), "buyers_share": float(np.mean(y > 0))}
        feats = list(fc.feature_names_in_)
        common: dict[str, Any] = {"features": feats, "training_data_hash": data_hash(X), "as_of": str(ts),
                  "extra": {"horizon_days": horizon, "behaviour_features": behaviour, "platforms": platform or []}}
        with staged_model_dir(out_dir) as stage:
            save_model(fc, stage, kind="spend_forecaster", params=fc.get_params(), metrics=metrics, **common)
            if tier is not None:
                save_model(tier, stage / "tier", kind="spend_tier", params=tier.get_params(),
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
    """Write the spend model's input table as of CUTOFF (platform, user_id, as_of, then the RFM summary, spend
    windows and behaviour features), for 'power score --features' or a scheduled scoring job elsewhere.
    A .parquet or .csv --out name picks the format."""
    with friendly_errors():
        from buyerscore.events.store import EventStore
        from buyerscore.models.purchasing_power.inputs import model_features

        kind = table_kind(out_path)
        if not db.exists():
            raise FileNotFoundError(f"No store at {db}; create it with 'buyerscore ingest' or 'buyerscore datasets load'.")
        ts = parse_cutoff(cutoff)
        with EventStore(db, read_only=True) as store, step(f"building power features as of {ts}"):
            check_platforms(store.con, platform)
            _check_cutoff(ts, _data_span(store.con, platform), platform, scoring=True)
            X = model_features(store.con, as_of=ts, platforms=platform or None, behaviour=behaviour)
        n_features = X.shape[1] - len(KEYS)
        X.insert(len(KEYS), "as_of", str(ts))  # the cut-off travels with the table ('power score' copies it)
        write_table(X, out_path, kind)
    console.print(f"wrote {len(X):,} users x {n_features} features as of {ts} to {out_path}")


@power_app.command("score")
def score(
    model: Path = typer.Option(..., "--model", help="Model directory written by 'buyerscore power train'."),
    out_path: Path = typer.Option(..., "--out", help="Scores file to write: .parquet or .csv (from the name)."),
    db: Path | None = typer.Option(None, "--db", help="DuckDB store with the events."),
    cutoff: str | None = typer.Option(None, "--cutoff", help="Scoring cut-off (required with --db)."),
    features: Path | None = typer.Option(None, "--features", help="Or: a table written by 'buyerscore power "
                                         "features' (platform, user_id, as_of, features; .parquet, .csv or .json)."),
    reasons: int = typer.Option(3, "--reasons", min=0, help="Reason codes per user (0 = none)."),
    lang: str = typer.Option("en", "--lang", help="Language of the reason texts (en or zh)."),
    jobs: int | None = typer.Option(None, "--jobs", min=1, help="Threads for the reason codes (SHAP contributions, "
                                    "the slow part: about 0.4 ms per user and booster); default min(2, CPUs)."),
) -> None:
    """Score users: expected spend over the model's horizon, tier probabilities and spend-lowering reasons.

    The tier column is the tier SpendTier.predict names (probabilities weighted by its class_weights_,
    see docs/purchasing-power.md), not always the most probable one."""
    with friendly_errors():
        from buyerscore.artifacts import load_model
        from buyerscore.events.store import EventStore
        from buyerscore.models.purchasing_power import SpendForecaster, SpendTier
        from buyerscore.models.purchasing_power.inputs import model_features

        if lang not in LANGS:
            raise ValueError(f"--lang {lang!r}: use one of {', '.join(LANGS)}.")
        kind = table_kind(out_path)
        if (db is None) == (features is None):
            raise ValueError("Give either --db with --cutoff, or --features.")
        fc, meta = load_model(model)
        if not isinstance(fc, SpendForecaster):  # a user error: ValueError, so exit code 2 with this message
            raise ValueError(f"{model} holds a {meta.kind} model, not a spend forecaster; pass a directory written "  # noqa: TRY004
                             "by 'buyerscore power train'.")
        tier = None
        tier_dir = Path(model) / "tier"
        if (tier_dir / "metadata.json").exists():
            tier, tmeta = load_model(tier_dir)
            if not isinstance(tier, SpendTier) or (tmeta.training_data_hash, tmeta.as_of) != (
                    meta.training_data_hash, meta.as_of):
                raise ValueError(f"{tier_dir} holds a {tmeta.kind} model trained as of {tmeta.as_of} (data hash "
                                 f"{tmeta.training_data_hash[:12]}), not the tiers of the forecaster in {model} "
                                 f"(as of {meta.as_of}, data hash {meta.training_data_hash[:12]}); train both again "
                                 "with 'buyerscore power train', or remove the stale tier/ folder.")
        as_of: Any = None
        if db is not None:
            if cutoff is None:
                raise ValueError("--cutoff is required with --db: scores use only events at or before it.")
            ts = parse_cutoff(cutoff)
            plats = meta.extra.get("platforms") or None
            with EventStore(db, read_only=True) as store, step("building features"):
                check_platforms(store.con, plats)
                _check_cutoff(ts, _data_span(store.con, plats), plats, scoring=True)
                X = model_features(store.con, as_of=ts, platforms=plats,
                                   behaviour=bool(meta.extra.get("behaviour_features", True)))
            as_of = str(ts)
        else:
            assert features is not None
            from buyerscore.cli.credit import _read_table

            X = _read_table(features)
            if "user_id" not in X.columns:
                raise ValueError(f"{features} has no user_id column, so its scores could not be matched to users; "
                                 "write the table with 'buyerscore power features' (platform, user_id, as_of, "
                                 "features) or add the user_id column.")
            missing = [c for c in fc.feature_names_in_ if c not in X.columns]
            if missing:
                raise ValueError(f"{features} lacks {len(missing)} of the model's {len(fc.feature_names_in_)} input "
                                 f"columns, e.g. {missing[:5]}; write it with 'buyerscore power features --db STORE "
                                 "--cutoff DATE' (or score from the store with --db and --cutoff).")
            if "as_of" in X.columns:  # written by 'power features'
                as_of = X["as_of"].astype(str).to_numpy()
        with step(f"scoring {len(X):,} users"):
            res = X[[c for c in KEYS if c in X.columns]].copy()
            res["expected_spend"] = fc.predict(X)
            res["horizon_days"] = meta.extra.get("horizon_days")
            res["as_of"] = as_of
            if tier is not None:
                proba = tier.predict_proba(X)
                for j, c in enumerate(tier.classes_):
                    res[f"p_{c}"] = proba[:, j]
                res["tier"] = tier.tiers_from_proba(proba) if len(X) else []
            if reasons > 0:
                from buyerscore.serving.batch import default_jobs

                fc.set_params(n_jobs=jobs or default_jobs())
                rc = fc.reason_codes(X, k=reasons, lang=lang)
                res["reasons"] = ["; ".join(r.text for r in row) for row in rc]
                res["reason_features"] = [[r.feature for r in row] for row in rc]
        write_table(res, out_path, kind)
    console.print(f"wrote {len(res):,} scores to {out_path}")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    app.add_typer(power_app, name="power")
