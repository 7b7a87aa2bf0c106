"""``buyerscore credit train|score``: probability-of-default models from applicant tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from buyerscore.cli._common import (
    check_model_out,
    console,
    friendly_errors,
    out,
    print_json,
    staged_model_dir,
    step,
    table,
    write_table,
)

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
        from buyerscore.events.io import csv_separator

        return pd.read_csv(path, sep=csv_separator(path))
    except Exception as exc:  # noqa: BLE001 - any parser error becomes one readable message
        raise UnreadableInputError(f"could not read {path}: {exc}") from None


#: Column names taken for identifiers by ``--id-column auto`` (case-insensitive), besides ``*_id`` and an
#: unnamed first column of distinct values (a row index written by ``DataFrame.to_csv``).
ID_NAMES = ("id", "user_id", "customer_id", "client_id", "applicant_id", "application_id", "loan_id")


def _id_columns(frame: Any, spec: str, *, exclude: tuple[str, ...] = ()) -> list[str]:
    """Identifier columns of an applicant table: never predictors, passed through to the scores.

    ``spec``: ``auto`` (columns named ``id``, ``*_id`` and the like, or an unnamed first column of
    distinct values, e.g. Give Me Some Credit's row number), ``none``, or comma-separated names.
    """
    import re

    from buyerscore.exceptions import SchemaError

    spec = spec.strip()
    if spec.lower() == "none" or not spec:
        return []
    if spec.lower() != "auto":
        names = [c.strip() for c in spec.split(",") if c.strip()]
        absent = [c for c in names if c not in frame.columns]
        if absent:
            raise SchemaError(f"--id-column {', '.join(absent)}: not a column of the table (its columns: "
                              f"{list(frame.columns)[:12]}); give the exact name, or 'none'.")
        return [c for c in names if c not in exclude]
    out = []
    for i, c in enumerate(frame.columns):
        if c in exclude or not isinstance(c, str):
            continue
        low = c.strip().lower()
        unnamed = re.fullmatch(r"unnamed: \d+", low) is not None or low == ""
        if low in ID_NAMES or low.endswith("_id") or (unnamed and i == 0 and frame[c].is_unique):
            out.append(c)
    return out


#: German credit's original coding (UCI ``german.data``) is 1 = good, 2 = bad.
_TARGET_WORDS = {"bad": 1, "good": 0}


def _binary_target(frame: Any, target: str, bad_value: str | None, where: str) -> tuple[Any, dict[str, Any]]:
    """``frame`` with ``target`` recoded to 0 (good) / 1 (bad) and the rows without a target left out.

    Accepts 0/1 (numbers, ``True``/``False``), ``good``/``bad`` (any case) or, with ``bad_value``, any
    two values of which ``bad_value`` marks the bads (``--bad-value 2`` for German credit's 1/2 coding,
    ``--bad-value yes``).  Rows with an empty target are quarantined: left out of the fit and reported
    by data row (1 = the first row after the header), never silently dropped.  Returns the frame and a
    summary for the model's metadata (coding and the quarantined row count, never the rows' values).
    """
    import numpy as np
    import pandas as pd

    from buyerscore._validation import examples
    from buyerscore.exceptions import SchemaError

    if target not in frame.columns:
        import difflib

        close = difflib.get_close_matches(target, [str(c) for c in frame.columns], n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise SchemaError(f"{where}: no target column {target!r}; its columns are {list(frame.columns)[:15]}."
                          f"{hint} Name the column of the 0 (good) / 1 (bad) outcome with --target.")
    s = frame[target]
    text = s.astype("string").str.strip()
    missing = (s.isna() | (text == "")).to_numpy()
    num = pd.to_numeric(s[~missing], errors="coerce").to_numpy(dtype=float)
    txt = text[~missing].to_numpy(dtype=object)
    whole = np.isfinite(num) & (num == np.round(num))  # 2.0 (a number column with blanks) reads as 2
    txt[whole] = [str(int(v)) for v in num[whole]]

    def counts() -> str:
        vc = pd.Series(txt).value_counts()
        return ", ".join(f"{v!r} ({n:,} rows)" for v, n in list(vc.items())[:6]) + (" ..." if len(vc) > 6 else "")

    if bad_value is not None:
        bv = bad_value.strip()
        try:
            bnum: float | None = float(bv)
        except ValueError:
            bnum = None
        is_bad = (txt == bv) | ((num == bnum) if bnum is not None else np.zeros(len(txt), dtype=bool))
        if not is_bad.any():
            raise SchemaError(f"{where}: --bad-value {bv!r} does not occur in column {target!r}, which holds "
                              f"{counts()}. Give the value that marks a bad (defaulted) applicant.")
        goods = pd.unique(txt[~is_bad])
        if len(goods) > 1:
            raise SchemaError(f"{where}: with --bad-value {bv!r} the other rows of {target!r} must hold one 'good' "
                              f"value; they hold {examples(goods.tolist())}. Recode the target to two values first.")
        y = is_bad.astype(np.int64)
        coding = {"bad": bv, "good": str(goods[0]) if len(goods) else None}
    elif len(txt) and np.isin(num, (0.0, 1.0)).all():
        y = num.astype(np.int64)
        coding = {"bad": "1", "good": "0"}
    elif len(txt) and set(np.char.lower(txt.astype(str))) <= set(_TARGET_WORDS):
        y = np.array([_TARGET_WORDS[v.lower()] for v in txt], dtype=np.int64)
        coding = {"bad": "bad", "good": "good"}
    else:
        vals = pd.unique(txt)
        hint = ""
        if len(vals) == 2:
            guess = "2" if set(vals) == {"1", "2"} else None
            rarer = pd.Series(txt).value_counts().index[-1]  # bads are usually the fewer
            hint = (" German credit's original file codes 1 = good, 2 = bad: pass --bad-value 2." if guess else
                    f" Say which value marks a bad applicant with --bad-value, e.g. --bad-value {rarer}.")
        elif len(txt) == 0:
            hint = " Every row's target is empty."
        else:
            hint = " Recode it to 0 (good) / 1 (bad) first (e.g. 1 where days past due >= 90)."
        raise SchemaError(f"{where}: target column {target!r} must hold 0 (good) / 1 (bad); it holds {counts()}."
                          f"{hint}")
    info: dict[str, Any] = {"target_coding": coding}
    rows = (np.flatnonzero(missing) + 1).tolist()  # data rows, 1 = the first after the header
    if rows:
        info["rows_without_target"] = len(rows)
        console.print(f"[yellow]warning:[/] {len(rows):,} row(s) have no value in target column {target!r} "
                      f"(data row(s) {examples(rows)}; 1 = the first row after the header); they are left out of "
                      "training and listed in rejects.csv of the model directory. Fill in their outcome to use "
                      "them.", highlight=False)
    kept = frame.loc[~missing].copy()
    kept[target] = y
    if y.min() == y.max():
        which = "bad (1)" if y[0] == 1 else "good (0)"
        raise SchemaError(f"{where}: every one of the {len(y):,} rows with a target is {which} in column {target!r} "
                          f"(coded {coding['bad']!r} = bad); a PD model needs both good and bad applicants. Check "
                          "--target and --bad-value, or add rows of the other outcome.")
    info["quarantined_rows"] = rows
    return kept, info


def _as_numbers(s: Any) -> tuple[Any, Any]:
    """A text column as numbers (blank cells missing) and the mask of its filled cells that are not numbers."""
    import pandas as pd

    blank = s.isna() | (s.astype("string").str.strip() == "")
    num = pd.to_numeric(s.where(~blank), errors="coerce")
    return num, (num.isna() & ~blank).to_numpy(dtype=bool)


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
        num, bad = _as_numbers(s)
        n_ok = int(num.notna().sum())
        if bad.any() and n_ok >= share * (n_ok + int(bad.sum())):
            rows = (np.flatnonzero(bad) + 1).tolist()
            raise SchemaError(
                f"{path}: column {c!r} holds numbers except {int(bad.sum())} value(s), e.g. "
                f"{examples(s[bad].tolist())} at data row(s) {examples(rows)} (1 = the first row after the header). "
                "Fix or blank those cells (blank = missing); write numbers without thousands separators.")


@app.command("train")
def train_cmd(
    out_dir: Path = typer.Option(..., "--out", help="Model directory to write."),
    dataset: str | None = typer.Option(None, "--dataset", help="Applicant dataset name, e.g. german_credit."),
    table_path: Path | None = typer.Option(None, "--table", help="Applicant table file (CSV, Parquet, JSON)."),
    target: str = typer.Option("label", "--target",
                               help="Target column: 0 = good, 1 = bad (also good/bad; other codings with "
                                    "--bad-value). Rows with an empty target are left out and listed in rejects.csv."),
    bad_value: str | None = typer.Option(None, "--bad-value",
                                         help="The target value that marks a bad applicant when it is not 1 or "
                                              "'bad', e.g. 2 for German credit's original 1/2 coding, or yes."),
    id_column: str = typer.Option("auto", "--id-column",
                                  help="Identifier column(s), comma-separated: never predictors, passed through by "
                                       "'credit score'. auto = columns named id, *_id, ... and an unnamed first "
                                       "column of distinct values (a row index); none = no identifiers."),
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
        check_model_out(out_dir)
        with step("reading applicants"):
            if dataset is not None:
                from buyerscore.datasets import read_applicants

                frame = read_applicants(dataset, data_dir)
            else:
                frame = _read_table(table_path)  # type: ignore[arg-type]
        where = str(table_path) if table_path is not None else f"dataset {dataset}"
        if table_path is not None:  # before rows are left out, so that the rows it names are the file's
            _check_number_columns(frame.drop(columns=[target], errors="ignore"), table_path)
        frame, target_info = _binary_target(frame, target, bad_value, where)
        quarantined = target_info.pop("quarantined_rows")
        ids = _id_columns(frame, id_column, exclude=(target, *PASS_THROUGH))
        if ids:
            frame = frame.drop(columns=ids)
            console.print(f"identifier column(s) {', '.join(ids)} left out of the predictors (--id-column none to "
                          "use them); 'credit score' passes them through.", highlight=False)
        X, y = split_applicants(frame, target)
        drop_redundant = model != "scorecard"
        if derived:
            from buyerscore.models.credit import add_ratio_features

            X = add_ratio_features(X, drop_redundant=drop_redundant)
        n_bad, n_good = int(np.sum(y == 1)), int(np.sum(y == 0))
        if min(n_bad, n_good) * test_size < 5:
            raise ValueError(f"{len(y):,} applicants with {n_bad:,} bad and {n_good:,} good (column {target!r}, "
                             f"{target_info['target_coding']['bad']!r} = bad): a {test_size:.0%} hold-out would hold "
                             "fewer than 5 of one class, so its AUC, KS and PSI would mean nothing. Use a larger table "
                             "(or a larger --test-size).")
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
        metrics["n_train"], metrics["n_holdout"] = len(ytr), len(yte)
        with staged_model_dir(out_dir) as stage:
            est.save(stage, training_data_hash=data_hash(Xtr), metrics=metrics,
                     extra={"dataset": dataset, "table": str(table_path) if table_path else None, "target": target,
                            **target_info, "id_columns": ids, "excluded_features": list(est.excluded_features_),
                            "derived_columns": {"drop_redundant": drop_redundant} if derived else None})
            if model == "scorecard":
                for suffix in ("csv", "md", "json"):
                    est.export_table(stage / f"scorecard.{suffix}")
            if quarantined:  # row numbers and the reason only: a model directory never holds applicants' data
                import pandas as pd

                pd.DataFrame({"data_row": quarantined, "column": target,
                              "reason": "empty target: outcome unknown"}).to_csv(stage / "rejects.csv", index=False)
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
    reasons: int = typer.Option(4, "--reasons", min=0, help="Adverse reason codes per applicant (0 = none)."),
    lang: str = typer.Option("en", "--lang", help="Language of the reason texts: en or zh."),
    id_column: str = typer.Option("auto", "--id-column",
                                  help="Identifier column(s) to copy to the output, comma-separated; auto = those "
                                       "recorded at training plus columns named id, *_id, ... that the model does "
                                       "not use; none = only user_id, as_of and dataset."),
) -> None:
    """Score applicants: PD, points, grade and the top adverse reasons (identifier columns are copied through)."""
    with friendly_errors():
        from buyerscore.artifacts import load_model
        from buyerscore.explain.reason_codes import LANGS

        if lang not in LANGS:
            raise ValueError(f"--lang must be one of {', '.join(LANGS)}; got {lang!r}.")
        if not out_path.name.lower().endswith((".csv", ".csv.gz", ".parquet")):
            raise ValueError(f"--out {out_path}: write the scores to a .csv, .csv.gz or .parquet file.")
        model, meta = load_model(model_dir)
        if not all(hasattr(model, a) for a in ("predict_proba", "score", "grade", "reason_codes")):
            raise ValueError(f"{model_dir} holds a {meta.kind} model, not a credit model; score it with the command "
                             "that trained it, or pass a directory written by 'buyerscore credit train'.")
        frame = _read_table(input_path)
        target = meta.extra.get("target", "label")
        inputs = {str(c) for c in getattr(model, "feature_names_in_", [])}
        if id_column.strip().lower() == "auto":
            recorded = [c for c in meta.extra.get("id_columns") or [] if c in frame.columns]
            found = [c for c in _id_columns(frame, "auto", exclude=(target, "label", *PASS_THROUGH))
                     if c not in inputs]  # a model that was trained on an id column still gets it
            ids = list(dict.fromkeys([*recorded, *found]))
        else:
            ids = _id_columns(frame, id_column, exclude=(target, "label", *PASS_THROUGH))
        keep = [c for c in PASS_THROUGH if c in frame.columns] + ids
        X = frame.drop(columns=[c for c in (*PASS_THROUGH, "label", target, *ids) if c in frame.columns])
        from buyerscore.models.credit import derive_as_trained

        X = _numeric_inputs(X, model, input_path)
        X = derive_as_trained(X, meta.extra)  # the derived columns the model was trained with, if any
        _check_derived_sources(X, model, meta.extra, input_path)
        result = frame[keep].copy()
        result["pd"] = model.predict_proba(X)[:, 1]
        result["score"] = model.score(X)
        result["grade"] = model.grade(X)
        if reasons > 0:
            rc = model.reason_codes(X, k=reasons, lang=lang)
            result["reasons"] = [json.dumps([r.to_dict() for r in row], ensure_ascii=False, default=str) for row in rc]
        write_table(result, out_path)
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


def _numeric_inputs(X: Any, model: Any, path: Path) -> Any:
    """``X`` with the model's number columns as numbers; a cell that is not a number is an error naming the
    column, the values and the data rows (before derived columns are computed from it)."""
    import numpy as np
    import pandas as pd

    from buyerscore._validation import examples
    from buyerscore.exceptions import ModelInputError

    X = X.copy()
    for c, kind in (getattr(model, "feature_dtypes_", None) or {}).items():
        if kind != "numerical" or c not in X.columns:
            continue
        s = X[c]
        if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            continue
        num, bad = _as_numbers(s)
        if bad.any():
            rows = (np.flatnonzero(bad) + 1).tolist()
            raise ModelInputError(
                f"{path}: column {c!r} must hold numbers; {int(bad.sum())} value(s) do not, e.g. "
                f"{examples(s[bad].tolist())} at data row(s) {examples(rows)} (1 = the first row after the header). "
                "Write plain numbers (1234.5: no thousands separators or currency signs), or leave the cell empty "
                "for missing.")
        X[c] = num.astype(float)
    return X


def _check_derived_sources(X: Any, model: Any, extra: dict[str, Any], path: Path) -> None:
    """A model feature computed from input columns (``derived_columns``) is missing: name the input columns."""
    from buyerscore.exceptions import ModelInputError
    from buyerscore.models.credit.features import derived_sources

    missing = [c for c in getattr(model, "features_", []) if c not in X.columns]
    spec = (extra or {}).get("derived_columns")
    if not missing or not spec:
        return
    sources = derived_sources([str(c) for c in model.feature_names_in_], drop_redundant=bool(spec.get("drop_redundant")))
    need = {d: [c for c in sources[d] if c not in X.columns] for d in missing if d in sources}
    raw = sorted({c for v in need.values() for c in v})
    if raw:
        plain = [c for c in missing if c not in sources]
        made = "; ".join(f"{d} from {', '.join(sources[d])}" for d in need if need[d])
        raise ModelInputError(
            f"{path} lacks input column(s) {raw}: the model's feature(s) are computed from them ({made})"
            + (f"; it also lacks {plain}" if plain else "") + ". Score a table with the columns the model was "
            "trained on (metadata.json 'extra.feature_names_in' lists them).")


def register(root: typer.Typer) -> None:
    """Add this area's commands to the root app."""
    root.add_typer(app, name="credit")
