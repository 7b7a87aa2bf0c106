"""``buyerscore credit train|score``: probability-of-default models from applicant tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from buyerscore.cli._common import console, friendly_errors, out, print_json, step, table

app = typer.Typer(help="Credit scoring: monotone WOE scorecard, calibrated monotone LightGBM, random forest, ensemble.",
                  no_args_is_help=True)

PASS_THROUGH = ("user_id", "as_of", "dataset")


def _read_table(path: Path) -> Any:
    import pandas as pd

    from buyerscore.exceptions import UnreadableInputError

    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist.")
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            return pd.read_parquet(path)
        if name.endswith((".json", ".jsonl", ".ndjson")):
            return pd.read_json(path, lines=not name.endswith(".json"))
        return pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - any parser error becomes one readable message
        raise UnreadableInputError(f"could not read {path}: {exc}") from None


def _check_number_columns(frame: Any, path: Path, share: float = 0.95) -> None:
    """Fail on a text column whose values are numbers except a few (a typo, ``1,200``, ``n/a``): read as text,
    it would silently become a categorical predictor.  A column of codes (``A11``, ``A12``) is left alone."""
    import numpy as np
    import pandas as pd

    from buyerscore._validation import examples
    from buyerscore.exceptions import SchemaError

    for c in frame.columns:
        s = frame[c]
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            continue
        filled = s.notna() & (s.astype("string").str.strip() != "")
        if not filled.any():
            continue
        num = pd.to_numeric(s.where(filled), errors="coerce")
        bad = filled & num.isna()
        n_ok = int((filled & num.notna()).sum())
        if bad.any() and n_ok >= share * int(filled.sum()):
            rows = (np.flatnonzero(bad.to_numpy()) + 1).tolist()
            raise SchemaError(
                f"{path}: column {c!r} holds numbers except {int(bad.sum())} value(s), e.g. "
                f"{examples(s[bad].tolist())} at data row(s) {examples(rows)} (1 = the first row after the header). "
                "Fix or blank those cells (blank = missing); write numbers without thousands separators.")


def _write_table(df: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.lower().endswith(".parquet"):
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)


@app.command("train")
def train_cmd(
    out_dir: Path = typer.Option(..., "--out", help="Model directory to write."),
    dataset: str | None = typer.Option(None, "--dataset", help="Applicant dataset name, e.g. german_credit."),
    table_path: Path | None = typer.Option(None, "--table", help="Applicant table file (CSV, Parquet, JSON)."),
    target: str = typer.Option("label", "--target", help="Target column, 1 = bad."),
    model: str = typer.Option("scorecard", "--model",
                              help="scorecard, gbm, forest (calibrated random forest) or ensemble (log-odds mean of "
                                   "--members: best on small tables such as German credit)."),
    members: str = typer.Option("gbm,forest", "--members",
                                help="Ensemble only: comma-separated members among gbm, forest, scorecard "
                                     "(gbm,forest,scorecard had the lowest StatLog cost on German credit)."),
    coding: str = typer.Option("woe", "--coding",
                               help="Scorecard and the ensemble's scorecard member: woe (one coefficient per feature), "
                                    "dummy (one per bin) or monotone (one per bin, points keep the bins' WOE "
                                    "order)."),
    trend: str | None = typer.Option(None, "--trend",
                                     help="Scorecard and the ensemble's scorecard member: optbinning monotonic_trend "
                                          "(auto_asc_desc = monotone, the scorecard's default; auto_heuristic also "
                                          "allows a peak or a valley, the member's default)."),
    include_sensitive: bool = typer.Option(False, "--include-sensitive",
                                           help="Use protected columns (sex, age, ...) as inputs."),
    derived: bool = typer.Option(True, "--derived/--no-derived",
                                 help="Add the derived ratio columns of known public tables (Give Me Some Credit, "
                                      "Taiwan; see docs/credit.md); 'credit score' adds them again. Other tables "
                                      "are unchanged."),
    test_size: float = typer.Option(0.2, "--test-size", help="Stratified hold-out share for the reported metrics."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the hold-out split and the model."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Folder of the public datasets."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Fit a PD model on a dataset or table; save it with its features, data hash, parameters and metrics."""
    with friendly_errors():
        import numpy as np
        from sklearn.model_selection import train_test_split

        from buyerscore.artifacts import data_hash
        from buyerscore.models import metrics as mt
        from buyerscore.models.base import log_odds, score_from_pd, split_applicants
        from buyerscore.models.credit import (
            CreditEnsemble,
            CreditForest,
            CreditGBM,
            CreditScorecard,
            special_codes_for,
        )
        from buyerscore.models.credit.ensemble import PRESET_MEMBERS

        if (dataset is None) == (table_path is None):
            raise ValueError("give exactly one of --dataset NAME or --table FILE.")
        if model not in ("scorecard", "gbm", "forest", "ensemble"):
            raise ValueError(f"--model must be 'scorecard', 'gbm', 'forest' or 'ensemble'; got {model!r}.")
        names = [m.strip() for m in members.split(",") if m.strip()]
        if not names or any(m not in PRESET_MEMBERS for m in names) or len(set(names)) != len(names):
            raise ValueError(f"--members must list distinct names among {', '.join(PRESET_MEMBERS)}; "
                             f"got {members!r}.")
        if model != "ensemble" and names != ["gbm", "forest"]:
            raise ValueError(f"--members applies to --model ensemble only; got --model {model}.")
        if not 0.05 <= test_size <= 0.5:
            raise ValueError(f"--test-size must be in [0.05, 0.5]; got {test_size}.")
        with step("reading applicants"):
            if dataset is not None:
                from buyerscore.datasets import read_applicants

                frame = read_applicants(dataset, data_dir)
            else:
                frame = _read_table(table_path)  # type: ignore[arg-type]
                _check_number_columns(frame, table_path)  # type: ignore[arg-type]
        X, y = split_applicants(frame, target)
        drop_redundant = model != "scorecard"
        if derived:
            from buyerscore.models.credit import add_ratio_features

            X = add_ratio_features(X, drop_redundant=drop_redundant)
        n_bad, n_good = int(np.sum(y == 1)), int(np.sum(y == 0))
        if min(n_bad, n_good) * test_size < 5:
            raise ValueError(f"{len(y):,} applicants with {n_bad:,} bad and {n_good:,} good: a {test_size:.0%} hold-out "
                             "would hold fewer than 5 of one class, so its AUC, KS and PSI would mean nothing. Use a "
                             "larger table (or a larger --test-size).")
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y)
        if model == "scorecard":
            est: Any = CreditScorecard(special_codes=special_codes_for(dataset), include_sensitive=include_sensitive,
                                       coding=coding, monotonic_trend=trend or "auto_asc_desc")
        elif model == "gbm":
            est = CreditGBM(include_sensitive=include_sensitive, random_state=seed)
        elif model == "forest":
            est = CreditForest(include_sensitive=include_sensitive, random_state=seed, n_jobs=-1)
        else:
            card = CreditScorecard(special_codes=special_codes_for(dataset), coding=coding,
                                   monotonic_trend=trend or "auto_heuristic")
            est = CreditEnsemble(include_sensitive=include_sensitive, random_state=seed, n_jobs=-1,
                                 members=[("scorecard", card) if m == "scorecard" else m for m in names])
        with step(f"fitting {type(est).__name__}"):
            est.fit(Xtr, ytr)
        p = est.predict_proba(Xte)[:, 1]
        metrics: dict[str, Any] = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in mt.summary(yte, p).items()}
        # reference: out-of-sample scores of the training rows where the model keeps them (a fully grown
        # forest scores its own training rows almost perfectly, which would read as a large shift)
        oof = getattr(est, "oof_proba_", None)
        in_sample: list[str] = []
        if oof is None and isinstance(est, CreditEnsemble):
            # a scorecard member keeps no out-of-sample PDs: take its in-sample ones (as for a scorecard alone)
            # and the other members' out-of-sample ones, not the forest's almost perfect in-sample ones
            lg = np.zeros(len(Xtr))
            for name, member in est.members_.items():
                o = getattr(member, "oof_proba_", None)
                if o is None:
                    o = member.predict_proba(Xtr)[:, 1]
                    in_sample.append(name)
                lg = lg + est.weights_[name] * log_odds(o)
            oof = 1.0 / (1.0 + np.exp(-lg))
        held = np.isfinite(oof) if oof is not None else np.zeros(0, dtype=bool)
        if oof is not None and held.sum() >= 50:
            ref = score_from_pd(oof[held], base_score=est.base_score, base_odds=est.base_odds, pdo=est.pdo)
            metrics["psi_reference"] = f"out-of-sample scores of {int(held.sum())} training rows" + (
                f" (in-sample PDs of the {', '.join(in_sample)} member, which keeps none)" if in_sample else "")
        else:
            ref = est.score(Xtr)
            metrics["psi_reference"] = "in-sample scores of the training rows"
        metrics["psi_train_test_score"] = round(mt.psi(ref, est.score(Xte)), 6)
        metrics["holdout"] = f"stratified {test_size:.0%}, seed {seed}"
        metrics["fit_seconds"] = round(float(est.fit_time_), 3)
        est.save(out_dir, training_data_hash=data_hash(Xtr), metrics=metrics,
                 extra={"dataset": dataset, "table": str(table_path) if table_path else None, "target": target,
                        "excluded_features": list(est.excluded_features_),
                        "derived_columns": {"drop_redundant": drop_redundant} if derived else None})
        if model == "scorecard":
            est.export_table(out_dir / "scorecard.csv")
            est.export_table(out_dir / "scorecard.md")
            est.export_table(out_dir / "scorecard.json")
        summary = {"model_dir": str(out_dir), "model": type(est).__name__, "features": list(est.features_),
                   "excluded_sensitive": list(est.excluded_features_), "metrics": metrics,
                   "bad_rate_train": float(np.mean(ytr))}
        if as_json:
            print_json(summary)
            return
        out.print(table(f"{type(est).__name__} -> {out_dir}", ["metric", "value"],
                        [[k, v] for k, v in metrics.items()]))
        out.print(f"features: {', '.join(est.features_)}")
        if est.excluded_features_:
            out.print(f"left out (sensitive): {', '.join(est.excluded_features_)} (use --include-sensitive to opt in)")


@app.command("score")
def score_cmd(
    model_dir: Path = typer.Option(..., "--model", help="Model directory written by 'credit train'."),
    input_path: Path = typer.Option(..., "--input", help="Applicants to score (CSV, Parquet, JSON)."),
    out_path: Path = typer.Option(..., "--out", help="Output file (.csv or .parquet)."),
    reasons: int = typer.Option(4, "--reasons", help="Adverse reason codes per applicant (0 = none)."),
    lang: str = typer.Option("en", "--lang", help="Language of the reason texts: en or zh."),
) -> None:
    """Score applicants: PD, points, grade and the top adverse reasons."""
    with friendly_errors():
        from buyerscore.artifacts import load_model

        model, meta = load_model(model_dir)
        if not all(hasattr(model, a) for a in ("predict_proba", "score", "grade", "reason_codes")):
            raise ValueError(f"{model_dir} holds a {meta.kind} model, not a credit model; score it with the command "
                             "that trained it, or pass a directory written by 'buyerscore credit train'.")
        frame = _read_table(input_path)
        target = meta.extra.get("target", "label")
        keep = [c for c in PASS_THROUGH if c in frame.columns]
        X = frame.drop(columns=[c for c in (*PASS_THROUGH, "label", target) if c in frame.columns])
        from buyerscore.models.credit import derive_as_trained

        X = derive_as_trained(X, meta.extra)  # the derived columns the model was trained with, if any
        result = frame[keep].copy()
        result["pd"] = model.predict_proba(X)[:, 1]
        result["score"] = model.score(X)
        result["grade"] = model.grade(X)
        if reasons > 0:
            rc = model.reason_codes(X, k=reasons, lang=lang)
            result["reasons"] = [json.dumps([r.to_dict() for r in row], ensure_ascii=False, default=str) for row in rc]
        _write_table(result, out_path)
        out.print(f"scored {len(result):,} applicant(s) with {meta.kind} -> {out_path}")
        unseen = model.unseen_inputs(X) if hasattr(model, "unseen_inputs") else {}
        if unseen:
            from buyerscore._validation import examples

            rows = sorted({r for v in unseen.values() for r in v})
            parts = [f"{c}: {len(v)} row(s), e.g. {examples(X[c].iloc[v].tolist())} at data row(s) "
                     f"{examples([r + 1 for r in v])}" for c, v in list(unseen.items())[:5]]
            console.print(f"[yellow]warning:[/] {len(rows):,} applicant(s) have values the model never saw in training "
                          f"(a category it did not know, or a number outside the training range); they were still "
                          f"scored. Check them: " + "; ".join(parts), highlight=False)


def register(root: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    root.add_typer(app, name="credit")
