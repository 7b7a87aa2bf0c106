"""Fairness audit of decisions by protected group (fairlearn), and one mitigation.

Convention: everything is expressed in the *favourable* outcome (credit approved, high spend tier
assigned).  ``y_true`` is 1 when the person truly deserves it (a good payer, a truly high spender),
``y_pred`` is 1 when the model gives it, ``y_score`` increases with the favourable outcome.
:func:`audit_credit` converts a probability of default (1 = bad) into that convention.

Per group: ``n``, ``base_rate`` (share deserving), ``selection_rate`` (share given the outcome),
``tpr`` (given it among those deserving: equal opportunity), ``fpr`` (given it among those not
deserving), ``auc`` (of ``y_score``) and ``di_ratio`` (selection rate / the highest group's).
Per attribute: the disparate impact ratio (lowest / highest selection rate; flagged below 0.8,
the "four-fifths rule"), the equal-opportunity difference (max - min TPR), the equalised-odds
difference (max of the TPR and FPR gaps, as in fairlearn) and the AUC gap.

A rate a group cannot have is left empty (NaN) and out of the differences, with a note: the TPR of a
group with nobody deserving, the FPR of a group where everybody deserves (fairlearn would report 0
there, which reads as a real gap).  Groups smaller than ``min_group_size`` are listed but left out
of every ratio and difference (their ``di_ratio`` is empty and ``in_ratios`` false).  A numeric
attribute with more than :data:`MAX_NUMERIC_GROUPS` distinct values (a raw age) is an error: bucket
it first (:func:`age_band`).

Sensitive attributes are for auditing only: they are never model inputs unless the user opts in.

Examples
--------
>>> y_true = np.array([1, 1, 0, 0, 1, 1, 0, 0])
>>> y_pred = np.array([1, 1, 1, 0, 1, 0, 0, 0])
>>> sex = pd.Series(["f", "f", "f", "f", "m", "m", "m", "m"], name="sex")
>>> rep = fairness_audit(y_true, y_pred, sex)
>>> rep.summary["sex"]["disparate_impact_ratio"], rep.summary["sex"]["equal_opportunity_difference"]
(0.3333333333333333, 0.5)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
from sklearn.base import BaseEstimator
from sklearn.metrics import accuracy_score, roc_auc_score

from buyerscore.exceptions import ModelInputError

logger = logging.getLogger(__name__)

DI_THRESHOLD = 0.8
AGE_BANDS = (25, 35, 50)
#: A numeric sensitive attribute with more distinct values than this is refused (bucket it first).
MAX_NUMERIC_GROUPS = 20


@dataclass
class FairnessReport:
    """Result of :func:`fairness_audit`: per-group metrics and a per-attribute summary."""

    by_group: pd.DataFrame
    summary: dict[str, dict[str, Any]]
    di_threshold: float = DI_THRESHOLD
    notes: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> list[str]:
        """Attributes whose disparate impact ratio is below the threshold."""
        return [a for a, s in self.summary.items() if s["di_flag"]]

    def summary_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{"attribute": a, **s} for a, s in self.summary.items()])

    def to_dict(self) -> dict[str, Any]:
        return {"di_threshold": self.di_threshold, "summary": self.summary,
                "by_group": self.by_group.replace({np.nan: None}).to_dict(orient="records"), "notes": self.notes}


def _below(ratio: float, threshold: float) -> bool:
    """``ratio < threshold``, not counting floating-point noise (36/55 / 27/33 is exactly 0.8, not below it)."""
    return bool(not np.isnan(ratio) and ratio < threshold and not np.isclose(ratio, threshold, rtol=0, atol=1e-9))


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    if s is None or len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, s))


def _as_frame(sensitive: pd.DataFrame | pd.Series | dict[str, Any], n: int) -> pd.DataFrame:
    if isinstance(sensitive, pd.Series):
        sf = sensitive.to_frame(sensitive.name or "group")
    elif isinstance(sensitive, dict):
        sf = pd.DataFrame(sensitive)
    else:
        sf = sensitive
    if len(sf) != n:
        raise ModelInputError(f"sensitive features have {len(sf)} rows but there are {n} predictions; "
                              "pass one row per scored person, in the same order.")
    for c in sf.columns:
        col = sf[c]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            k = int(col.nunique())
            if k > MAX_NUMERIC_GROUPS:
                eg = ", ".join(str(v) for v in col.dropna().unique()[:3])
                raise ModelInputError(
                    f"sensitive attribute {c!r} is numeric with {k} distinct values (e.g. {eg}): each value would "
                    "be its own group, and groups of one or two people would decide the ratios. Bucket it first: "
                    f"buyerscore.explain.fairness.age_band(...) gives <25, 25-34, 35-49, 50+ (CLI: --sensitive "
                    "age_band, derived from AGE / age_in_years / age), or pass your own bands as text.")
    return sf.reset_index(drop=True).astype("string").fillna("missing")


def _binary(name: str, values: Any, meaning: str) -> np.ndarray:
    """``values`` as 0/1 ints; anything else (0.7, 2, NaN, "bad") is an error naming the rows and values."""
    raw = pd.Series(np.asarray(values, dtype=object).ravel())
    num = pd.to_numeric(raw, errors="coerce")
    bad = ~num.isin([0, 1]).to_numpy()
    if bad.any():
        rows = np.flatnonzero(bad)
        vals = ", ".join(repr(v) for v in raw[bad].head(3).tolist())
        raise ModelInputError(
            f"{name} must hold 0/1 ({meaning}); {int(bad.sum())} value(s) do not, e.g. {vals} at row(s) "
            f"{rows[:3].tolist()} (0 = the first row). Turn scores into decisions with a threshold, recode "
            "labels to 0/1 and drop rows without an observed outcome.")
    return num.to_numpy(dtype=int)


def fairness_audit(y_true: Any, y_pred: Any, sensitive: pd.DataFrame | pd.Series | dict[str, Any], *,
                   y_score: Any = None, di_threshold: float = DI_THRESHOLD, min_group_size: int = 1) -> FairnessReport:
    """Audit favourable-outcome decisions ``y_pred`` against ``y_true`` by each sensitive attribute.

    Parameters
    ----------
    y_true, y_pred : array-like of 0/1
        Deserves / gets the favourable outcome.
    sensitive : DataFrame, Series or dict
        One column per protected attribute (e.g. ``age_band``, ``sex``); missing values form the group "missing".
    y_score : array-like, optional
        Score increasing with the favourable outcome, for the AUC by group.
    di_threshold : float, default 0.8
        Disparate impact ratios below it are flagged.
    min_group_size : int, default 1
        Groups smaller than this are left out of the ratios and differences (still listed, with a note).
    """
    n_true, n_pred = np.asarray(y_true).size, np.asarray(y_pred).size
    if n_true != n_pred:
        raise ModelInputError(f"y_true and y_pred must have the same length; got {n_true} and {n_pred}.")
    yt = _binary("y_true", y_true, "1 = deserves the favourable outcome")
    yp = _binary("y_pred", y_pred, "1 = given the favourable outcome")
    ys = None if y_score is None else np.asarray(y_score, dtype=float).ravel()
    sf = _as_frame(sensitive, yt.size)
    rows: list[dict[str, Any]] = []
    summary: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    for attr in sf.columns:
        g = sf[attr]
        mf = MetricFrame(metrics={"selection_rate": selection_rate, "tpr": true_positive_rate,
                                  "fpr": false_positive_rate},
                         y_true=yt, y_pred=yp, sensitive_features=g)
        bg = mf.by_group.astype(float)
        sizes = g.value_counts()
        no_pos, no_neg = [], []
        for grp in bg.index:  # fairlearn reports 0 for a rate a group cannot have; it is undefined
            m = (g == grp).to_numpy()
            if not (yt[m] == 1).any():
                bg.loc[grp, "tpr"] = np.nan
                no_pos.append(str(grp))
            if not (yt[m] == 0).any():
                bg.loc[grp, "fpr"] = np.nan
                no_neg.append(str(grp))
        if no_pos:
            notes.append(f"{attr}: group(s) {no_pos} have nobody deserving the favourable outcome (y_true = 1): "
                         "their TPR is undefined, left empty and out of the equal-opportunity and "
                         "equalised-odds differences.")
        if no_neg:
            notes.append(f"{attr}: group(s) {no_neg} have nobody undeserving (y_true = 0): their FPR is "
                         "undefined, left empty and out of the equalised-odds difference.")
        big = [grp for grp in bg.index if sizes.get(grp, 0) >= min_group_size]
        small = [str(grp) for grp in bg.index if grp not in big]
        if small:
            notes.append(f"{attr}: group(s) {small} have fewer than {min_group_size} rows; listed but left out of "
                         "the ratios and differences.")
        sub = bg.loc[big]
        sr = sub["selection_rate"]
        top = float(sr.max()) if len(sr) else float("nan")
        di = float(sr.min() / top) if top > 0 else float("nan")
        if len(sr) and not top > 0:
            notes.append(f"{attr}: no group got the favourable outcome; the disparate impact ratio is undefined.")
        for grp in bg.index:
            m = (g == grp).to_numpy()
            inside = grp in big
            rows.append({"attribute": attr, "group": str(grp), "n": int(m.sum()),
                         "base_rate": float(yt[m].mean()), "selection_rate": float(bg.loc[grp, "selection_rate"]),
                         "tpr": float(bg.loc[grp, "tpr"]), "fpr": float(bg.loc[grp, "fpr"]),
                         "auc": _auc(yt[m], ys[m]) if ys is not None else float("nan"),
                         "di_ratio": float(bg.loc[grp, "selection_rate"]) / top if inside and top > 0 else float("nan"),
                         "in_ratios": inside})
        tpr = sub["tpr"].dropna()
        fpr = sub["fpr"].dropna()
        eo = float(tpr.max() - tpr.min()) if len(tpr) >= 2 else float("nan")  # a gap needs two groups
        fp_gap = float(fpr.max() - fpr.min()) if len(fpr) >= 2 else float("nan")
        aucs = [r["auc"] for r in rows if r["attribute"] == attr and r["in_ratios"] and not np.isnan(r["auc"])]
        summary[attr] = {
            "groups": len(bg),
            "disparate_impact_ratio": di,
            "di_flag": _below(di, di_threshold),
            "lowest_selection_group": str(sr.idxmin()) if top > 0 else None,
            "highest_selection_group": str(sr.idxmax()) if top > 0 else None,
            "equal_opportunity_difference": eo,
            "equalized_odds_difference": float(np.nanmax([eo, fp_gap])) if not (np.isnan(eo) and np.isnan(fp_gap))
            else float("nan"),
            "auc_gap": float(max(aucs) - min(aucs)) if len(aucs) >= 2 else float("nan"),
            "groups_left_out": small,
        }
    by_group = pd.DataFrame(rows)
    by_group["flag"] = [_below(v, di_threshold) for v in by_group["di_ratio"]]
    return FairnessReport(by_group=by_group, summary=summary, di_threshold=di_threshold, notes=notes)


def audit_credit(y_bad: Any, pd_: Any, sensitive: pd.DataFrame | pd.Series | dict[str, Any], *,
                 threshold: float = 0.5, **kwargs: Any) -> FairnessReport:
    """Audit a probability-of-default model: approve when ``pd < threshold``; good payers deserve approval."""
    p = np.asarray(pd_, dtype=float).ravel()
    yb = _binary("y_bad", y_bad, "the observed outcome, 1 = bad")
    return fairness_audit(1 - yb, (p < threshold).astype(int), sensitive, y_score=1.0 - p, **kwargs)


# ---------------------------------------------------------------------------------------------- helpers
def age_band(age: Any, cuts: tuple[int, ...] = AGE_BANDS) -> pd.Series:
    """Age in years -> band labels (``<25``, ``25-34``, ``35-49``, ``50+`` by default); NaN stays missing.

    >>> age_band([19, 25, 40, 70]).tolist()
    ['<25', '25-34', '35-49', '50+']
    """
    a = pd.to_numeric(pd.Series(age), errors="coerce")
    edges = [-np.inf, *cuts, np.inf]
    labels = [f"<{cuts[0]}"] + [f"{lo}-{hi - 1}" for lo, hi in pairwise(cuts)] + [f"{cuts[-1]}+"]
    return pd.cut(a, edges, right=False, labels=labels).astype("string")


def derive_sensitive(frame: pd.DataFrame) -> pd.DataFrame:
    """``age_band`` and ``sex`` from the raw columns of the known datasets, when present.

    Recognised: ``AGE`` / ``age_in_years`` / ``age`` (years) -> ``age_band``; Taiwan ``SEX`` (1 male,
    2 female) and German ``personal_status_and_sex`` ("male : ...", "female : ...") -> ``sex``.
    Existing ``age_band`` / ``sex`` columns are kept.

    >>> derive_sensitive(pd.DataFrame({"AGE": [22, 41], "SEX": [2, 1]})).values.tolist()
    [['<25', 'female'], ['35-49', 'male']]
    """
    out = pd.DataFrame(index=frame.index)
    if "age_band" in frame.columns:
        out["age_band"] = frame["age_band"].astype("string")
    else:
        for c in ("AGE", "age_in_years", "age"):
            if c in frame.columns:
                out["age_band"] = age_band(frame[c]).to_numpy()
                break
    if "sex" in frame.columns:
        out["sex"] = frame["sex"].astype("string")
    elif "SEX" in frame.columns:
        out["sex"] = pd.to_numeric(frame["SEX"], errors="coerce").map({1: "male", 2: "female"}).astype("string")
    elif "personal_status_and_sex" in frame.columns:
        out["sex"] = frame["personal_status_and_sex"].astype("string").str.strip().str.split(" ").str[0]
    return out


# ---------------------------------------------------------------------------------------------- mitigation
class _ScoreAsModel(BaseEstimator):
    """A fitted 'model' whose prediction is its single input column (lets ThresholdOptimizer use given scores)."""

    def fit(self, X: Any, y: Any = None) -> _ScoreAsModel:
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(X, dtype=float)[:, 0]


@dataclass
class Mitigation:
    """A fitted group-threshold post-processing and its before/after trade-off."""

    optimizer: Any
    constraint: str
    tradeoff: pd.DataFrame  # rows before/after: accuracy, selection rate, DI ratio, EO and EOdds differences


def _best_single_threshold(y: np.ndarray, s: np.ndarray, objective: str) -> float:
    """The one threshold (on a grid of score quantiles) that maximises ``objective`` on ``(y, s)``."""
    from sklearn.metrics import balanced_accuracy_score

    fn = balanced_accuracy_score if objective == "balanced_accuracy_score" else accuracy_score
    grid = np.unique(np.quantile(s, np.linspace(0.0, 1.0, 201)))
    vals = [fn(y, (s >= t).astype(int)) for t in grid]
    return float(grid[int(np.argmax(vals))])


def mitigate_thresholds(y_true: Any, y_score: Any, sensitive: pd.Series, *, y_pred: Any,
                        constraint: str = "equalized_odds", objective: str = "accuracy_score",
                        eval_set: tuple[Any, Any, pd.Series, Any] | None = None,
                        random_state: int = 0) -> Mitigation:
    """Fit fairlearn's ``ThresholdOptimizer`` (group-specific, possibly randomised thresholds) on ``y_score``.

    ``y_true``/``y_score``/``sensitive`` fit the thresholds; the trade-off is measured on
    ``eval_set = (y_true, y_score, sensitive, y_pred)`` when given (use held-out data), else on the fitting
    data, in three rows: ``before`` (the decisions ``y_pred``), ``single threshold`` (the one threshold that
    maximises ``objective`` on the fitting data, to separate the cost of the objective from the cost of
    fairness) and ``after`` (group thresholds under ``constraint``).  Columns: accuracy, balanced accuracy,
    selection rate, disparate impact ratio, equal-opportunity and equalised-odds differences.
    """
    from fairlearn.postprocessing import ThresholdOptimizer
    from sklearn.metrics import balanced_accuracy_score

    s = np.asarray(y_score, dtype=float).reshape(-1, 1)
    yt = np.asarray(y_true).astype(int)
    sens = pd.Series(sensitive).astype("string").fillna("missing").to_numpy()
    for grp in pd.unique(sens):  # fairlearn's own message ("Degenerate labels") names no fix
        labels = np.unique(yt[sens == grp])
        if labels.size < 2:
            name = getattr(sensitive, "name", None) or "the sensitive attribute"
            raise ModelInputError(
                f"group {grp!r} of {name} has only y_true = {int(labels[0])} ({int((sens == grp).sum())} rows), so "
                "no group threshold can be fitted for it. Merge it with a neighbouring group, leave its rows out, "
                "or mitigate on another attribute.")
    opt = ThresholdOptimizer(estimator=_ScoreAsModel(), constraints=constraint, objective=objective, prefit=True,
                             predict_method="predict")
    opt.fit(s, yt, sensitive_features=sens)
    t_single = _best_single_threshold(yt, s[:, 0], objective)
    yt_e, ys_e, sens_e, yp_e = eval_set if eval_set is not None else (y_true, y_score, sensitive, y_pred)
    yt_e = np.asarray(yt_e).astype(int)
    ys_e = np.asarray(ys_e, dtype=float)
    sens_e_arr = pd.Series(sens_e).astype("string").fillna("missing").reset_index(drop=True)
    after = opt.predict(ys_e.reshape(-1, 1), sensitive_features=sens_e_arr.to_numpy(),
                        random_state=random_state).astype(int)
    rows = []
    for label, pred in (("before", np.asarray(yp_e).astype(int)), ("single threshold", (ys_e >= t_single).astype(int)),
                        ("after", after)):
        rep = fairness_audit(yt_e, pred, sens_e_arr.rename("group"))
        sm = rep.summary["group"]
        rows.append({"stage": label, "accuracy": float(accuracy_score(yt_e, pred)),
                     "balanced_accuracy": float(balanced_accuracy_score(yt_e, pred)),
                     "selection_rate": float(pred.mean()), "disparate_impact_ratio": sm["disparate_impact_ratio"],
                     "equal_opportunity_difference": sm["equal_opportunity_difference"],
                     "equalized_odds_difference": sm["equalized_odds_difference"]})
    return Mitigation(optimizer=opt, constraint=constraint, tradeoff=pd.DataFrame(rows))
