"""Drift monitoring: population stability (PSI) per feature and for the score, performance decay, a verdict.

:func:`drift_report` compares a *reference* frame (the training or last-validated population) with a
*current* one.  PSI uses :func:`buyerscore.models.metrics.psi` with quantile bins of the reference
(categorical columns: one bin per category; a numeric column with at most ``bins`` distinct reference
values, such as a constant or a small count: one bin per value, and values the reference never had
their own bins, so a constant 5 that becomes 7 is a shift; missing values: their own bin, so a column
that fills up or empties is a shift).  Status per column: ``ok`` below ``warn`` (0.1), ``warn`` below
``alert`` (0.25), ``alert`` above; identifier-like columns are left out (a name such as ``id``,
``customer_id``, ``email`` or ``name``, see :mod:`buyerscore.explain._identifiers`) or ``skipped``
(text with a distinct value on nearly every row), whose PSI would only
say that the people changed.  Where both frames have labels and a score, the AUC
and KS of each are compared (the score's direction is taken from the reference: a score that
decreases with risk, such as points, is flipped).

Verdict: ``retrain recommended`` when the score PSI is at alert level, or the AUC fell by at least
``auc_drop`` (absolute), or at least ``alert_share`` of the features are at alert level;
``monitor`` when anything is at warn level or above, or a reference column is missing from the
current frame (listed in ``one_sided``, with the current frame's new columns); otherwise ``stable``.
A column that holds numbers in one frame and text in the other is read as numbers; a cell that is
not a number is an error naming it (one stray word would otherwise look like a large shift).

Examples
--------
>>> rng = np.random.default_rng(0)
>>> ref = pd.DataFrame({"x": rng.normal(size=2000), "score": rng.uniform(size=2000)})
>>> cur = pd.DataFrame({"x": rng.normal(1.0, 1.0, size=2000), "score": rng.uniform(size=2000)})
>>> rep = drift_report(ref, cur, score_col="score")
>>> rep.table.set_index("column").loc["x", "status"], rep.verdict
('alert', 'retrain recommended')
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from buyerscore.exceptions import ModelInputError
from buyerscore.explain._identifiers import IDENTIFIER
from buyerscore.models.metrics import auc, ks, psi

logger = logging.getLogger(__name__)

WARN, ALERT = 0.1, 0.25
RETRAIN = "retrain recommended"
#: Column names taken for identifiers (not compared when the features are chosen automatically).
ID_NAME = IDENTIFIER
#: A text column with more distinct reference values than this, nearly one per row, is identifier-like.
ID_MIN_DISTINCT = 50


@dataclass
class DriftReport:
    """PSI table, performance comparison, verdict and the reasons for it."""

    table: pd.DataFrame
    performance: dict[str, Any]
    verdict: str
    reasons: list[str] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=lambda: {"warn": WARN, "alert": ALERT})
    one_sided: dict[str, list[str]] = field(default_factory=dict)
    """Columns found in only one frame: ``reference_only`` / ``current_only`` (not compared)."""

    @property
    def retrain(self) -> bool:
        return self.verdict == RETRAIN

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "retrain_recommended": self.retrain, "reasons": self.reasons,
                "thresholds": self.thresholds, "performance": self.performance, "one_sided_columns": self.one_sided,
                "columns": self.table.replace({np.nan: None}).to_dict(orient="records")}


def _status(v: float, warn: float, alert: float) -> str:
    if np.isnan(v):
        return "n/a"
    return "alert" if v >= alert else "warn" if v >= warn else "ok"


def column_psi(ref: pd.Series, cur: pd.Series, *, bins: int = 10) -> float:
    """PSI of one column: quantile bins for numbers, one bin per category otherwise.

    >>> column_psi(pd.Series(list("aabb")), pd.Series(list("abbb"))) > 0
    True
    """
    if pd.api.types.is_numeric_dtype(ref) and pd.api.types.is_numeric_dtype(cur) and not pd.api.types.is_bool_dtype(ref):
        r = ref.astype(float).replace([np.inf, -np.inf], np.nan).to_numpy()
        c = cur.astype(float).replace([np.inf, -np.inf], np.nan).to_numpy()
        vals = np.unique(r[~np.isnan(r)])
        if vals.size <= bins:  # quantile bins would merge a constant or a small count with its neighbours
            return psi(_value_codes(r, vals), _value_codes(c, vals), bins=np.arange(2 * vals.size) + 0.5)
        return psi(r, c, bins=bins)
    cats = pd.Index(pd.concat([ref, cur]).astype("string").dropna().unique())
    r = pd.Series(cats.get_indexer(ref.astype("string")), dtype=float).replace(-1, np.nan)
    c = pd.Series(cats.get_indexer(cur.astype("string")), dtype=float).replace(-1, np.nan)
    return psi(r.to_numpy(), c.to_numpy(), bins=np.arange(len(cats) - 1) + 0.5)


def _value_codes(x: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """Bin codes for one bin per reference value: ``2 i + 1`` for ``vals[i]``, ``2 i`` for values between
    ``vals[i - 1]`` and ``vals[i]`` (below the first, above the last: 0 and ``2 len(vals)``); NaN stays NaN."""
    pos = np.searchsorted(vals, x, side="left")
    eq = (pos < vals.size) & (vals[np.minimum(pos, vals.size - 1)] == x) if vals.size else np.zeros(x.shape, bool)
    codes = np.where(eq, 2 * pos + 1, 2 * pos).astype(float)
    codes[np.isnan(x)] = np.nan
    return codes


def _identifier_like(s: pd.Series) -> bool:
    """Text with a distinct value on (nearly) every row: ids, names, free text."""
    if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return False
    present = s.dropna()
    k = int(present.astype("string").nunique())
    return k > ID_MIN_DISTINCT and k >= 0.9 * len(present)


def drift_report(reference: pd.DataFrame, current: pd.DataFrame, *, features: list[str] | None = None,
                 score_col: str | None = None, label_col: str | None = None, warn: float = WARN,
                 alert: float = ALERT, bins: int = 10, auc_drop: float = 0.05, alert_share: float = 0.2,
                 exclude: tuple[str, ...] = ("user_id", "platform", "as_of", "event_id")) -> DriftReport:
    """Compare ``current`` with ``reference``; see the module docstring for the rules.

    Parameters
    ----------
    reference, current : DataFrame
        Frames with the same columns (features, and optionally a score and a 0/1 label, 1 = bad).
    features : list of str, optional
        Columns to check (default: the columns both share, except ids, the score and the label).
    score_col, label_col : str, optional
        The model score and the observed outcome (performance is compared when both exist in both frames).
    warn, alert : float
        PSI thresholds.
    bins : int
        Quantile bins of the reference.
    auc_drop : float
        Absolute AUC decrease that recommends retraining.
    alert_share : float
        Share of features at alert level that recommends retraining.
    """
    if not 0 < warn < alert:
        raise ValueError(f"thresholds must satisfy 0 < warn < alert; got warn={warn}, alert={alert}.")
    for name, df in (("reference", reference), ("current", current)):
        if len(df) == 0:
            raise ModelInputError(f"the {name} frame is empty; drift needs rows in both frames.")
    for col in (score_col, label_col):
        if col is not None and (col not in reference.columns or col not in current.columns):
            where = [n for n, d in (("reference", reference), ("current", current)) if col not in d.columns]
            raise ModelInputError(f"column {col!r} is missing from the {' and '.join(where)} frame; "
                                  "check --score-col / --label-col.")
    skip = {score_col, label_col, *exclude}
    one_sided: dict[str, list[str]] = {}
    by_name: list[str] = []
    if features is None:
        by_name = [c for c in reference.columns if c in current.columns and c not in skip and ID_NAME.match(str(c))]
        skip.update(by_name)
        features = [c for c in reference.columns if c in current.columns and c not in skip]
        one_sided = {"reference_only": [c for c in reference.columns if c not in current.columns and c not in skip],
                     "current_only": [c for c in current.columns if c not in reference.columns and c not in skip]}
    else:
        missing = [c for c in features if c not in reference.columns or c not in current.columns]
        if missing:
            raise ModelInputError(f"feature column(s) {missing[:3]} are not in both frames.")
    reference, current = reference.copy(deep=False), current.copy(deep=False)
    for c in [*features, *(x for x in (score_col, label_col) if x)]:
        reference[c], current[c] = _same_kind(c, reference[c], current[c], must_be_number=c in (score_col, label_col))
    rows = []
    cols = ([(score_col, "score")] if score_col else []) + [(c, "feature") for c in features]
    by_values: list[str] = []
    for c, kind in cols:
        r, k = reference[c], current[c]
        ident = kind == "feature" and _identifier_like(r)
        if ident:
            by_values.append(c)
        v = float("nan") if ident else column_psi(r, k, bins=bins)
        num = pd.api.types.is_numeric_dtype(r) and not pd.api.types.is_bool_dtype(r)
        rows.append({"column": c, "kind": kind, "psi": v, "status": "skipped" if ident else _status(v, warn, alert),
                     "ref_mean": float(r.mean()) if num else float("nan"),
                     "cur_mean": float(k.mean()) if num and pd.api.types.is_numeric_dtype(k) else float("nan"),
                     "ref_missing": float(r.isna().mean()), "cur_missing": float(k.isna().mean())})
    table = pd.DataFrame(rows, columns=["column", "kind", "psi", "status", "ref_mean", "cur_mean", "ref_missing",
                                        "cur_missing"])
    perf: dict[str, Any] = {}
    reasons: list[str] = []
    if score_col and label_col:
        try:
            yr, yc = reference[label_col].to_numpy(float), current[label_col].to_numpy(float)
            sr, sc = reference[score_col].to_numpy(float), current[score_col].to_numpy(float)
            okr, okc = ~np.isnan(yr) & ~np.isnan(sr), ~np.isnan(yc) & ~np.isnan(sc)
            a_ref = auc(yr[okr], sr[okr])
            sign = 1.0 if a_ref >= 0.5 else -1.0
            a_ref = auc(yr[okr], sign * sr[okr])
            a_cur = auc(yc[okc], sign * sc[okc])
            perf = {"ref_auc": a_ref, "cur_auc": a_cur, "auc_change": a_cur - a_ref,
                    "ref_ks": ks(yr[okr], sign * sr[okr]), "cur_ks": ks(yc[okc], sign * sc[okc]),
                    "ref_bad_rate": float(yr[okr].mean()), "cur_bad_rate": float(yc[okc].mean()),
                    "score_direction": "increases with risk" if sign > 0 else "decreases with risk"}
            if a_ref - a_cur >= auc_drop:
                reasons.append(f"AUC fell from {a_ref:.3f} to {a_cur:.3f} (drop >= {auc_drop}).")
        except ValueError as exc:
            perf = {"note": f"performance not computed: {exc}"}
    if score_col:
        sp = float(table.loc[table["kind"] == "score", "psi"].iloc[0])
        if sp >= alert:
            reasons.append(f"score PSI {sp:.3f} >= {alert}.")
    feat = table[table["kind"] == "feature"]
    n_alert = int((feat["status"] == "alert").sum())
    feat = feat[feat["status"] != "skipped"]  # identifier-like columns are not features of the population
    if len(feat) and n_alert / len(feat) >= alert_share:
        top = feat[feat["status"] == "alert"].sort_values("psi", ascending=False)["column"].head(3).tolist()
        reasons.append(f"{n_alert} of {len(feat)} features at alert level (PSI >= {alert}), e.g. {top}.")
    if reasons:
        verdict = RETRAIN
    elif (table["status"].isin(["warn", "alert"])).any():
        verdict = "monitor"
        moved = table[table["status"].isin(["warn", "alert"])].assign(_a=lambda t: t["status"] == "alert")
        moved = moved.sort_values(["_a", "psi"], ascending=[False, False])  # alert first, largest shift first
        shown = [f"{c} ({st}, PSI {v:.2f})" for c, st, v in moved[["column", "status", "psi"]].head(8).itertuples(
            index=False)]
        more = f" and {len(moved) - 8} more" if len(moved) > 8 else ""
        reasons.append(f"{len(moved)} column(s) shifted (PSI >= warn; {int(moved['_a'].sum())} at alert) but not "
                       f"enough to retrain: {', '.join(shown)}{more}.")
    else:
        verdict = "stable"
    if one_sided.get("reference_only"):  # a data problem, not a reason to retrain: at least "monitor"
        verdict = "monitor" if verdict == "stable" else verdict
        reasons.append(f"column(s) {one_sided['reference_only'][:5]} of the reference are missing from the "
                       "current frame: a model that uses them cannot score it.")
    if one_sided.get("current_only"):
        reasons.append(f"new column(s) in the current frame, not compared: {one_sided['current_only'][:5]}.")
    if by_name:
        reasons.append(f"column(s) {by_name[:5]} look like identifiers by their name: not compared "
                       "(pass features=[...] to compare them anyway).")
    if by_values:
        reasons.append(f"column(s) {by_values[:5]} hold a distinct text value on nearly every row (identifiers, "
                       "names or free text): not compared (status 'skipped').")
    return DriftReport(table=table, performance=perf, verdict=verdict, reasons=reasons,
                       thresholds={"warn": warn, "alert": alert, "auc_drop": auc_drop, "alert_share": alert_share},
                       one_sided={k: v for k, v in one_sided.items() if v})


def _same_kind(name: str, ref: pd.Series, cur: pd.Series, *, must_be_number: bool) -> tuple[pd.Series, pd.Series]:
    """The two frames' copies of one column as the same kind: where one side (or, for the score and the
    label, either side) holds numbers, the other's text is converted, and any cell that is not a number is
    an error naming the frame, the rows and the values (one stray word would otherwise read as a big shift)."""
    def numeric(s: pd.Series) -> bool:
        return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)

    def empty(s: pd.Series) -> bool:  # an all-missing column (read as float) has no kind of its own
        return bool(s.isna().all())

    if empty(ref) != empty(cur) and not must_be_number:
        blank, full = (ref, cur) if empty(ref) else (cur, ref)
        if not numeric(full):
            blank = pd.Series(pd.NA, index=blank.index, dtype="object")
            return (blank, cur) if empty(ref) else (ref, blank)
        return ref.astype(float) if empty(ref) else ref, cur.astype(float) if empty(cur) else cur
    if not (must_be_number or numeric(ref) != numeric(cur)):
        return ref, cur
    out = []
    for frame, s in (("reference", ref), ("current", cur)):
        if numeric(s) or pd.api.types.is_bool_dtype(s):
            out.append(s.astype(float) if pd.api.types.is_bool_dtype(s) else s)
            continue
        num = pd.to_numeric(s, errors="coerce")
        bad = num.isna() & s.notna()
        if bad.any():
            rows = np.flatnonzero(bad.to_numpy())
            vals = ", ".join(repr(v) for v in s[bad].head(3).tolist())
            raise ModelInputError(
                f"column {name!r} of the {frame} frame must hold numbers (as the other frame's does); "
                f"{int(bad.sum())} cell(s) do not, e.g. {vals} at row(s) {rows[:3].tolist()} (0 = the first data "
                "row). Fix or blank those cells.")
        out.append(num)
    return out[0], out[1]
