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
    return sf.reset_index(drop=True).astype("string").fillna("missing")


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
    yt = np.asarray(y_true).astype(int).ravel()
    yp = np.asarray(y_pred).astype(int).ravel()
    if yt.shape != yp.shape:
        raise ModelInputError(f"y_true and y_pred must have the same length; got {yt.size} and {yp.size}.")
    for name, arr in (("y_true", yt), ("y_pred", yp)):
        if not np.isin(arr, (0, 1)).all():
            raise ModelInputError(f"{name} must hold 0/1 (1 = favourable outcome); found values "
                                  f"{np.unique(arr)[:3].tolist()}.")
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
        bg = mf.by_group
        sizes = g.value_counts()
        for grp in bg.index:
            m = (g == grp).to_numpy()
            rows.append({"attribute": attr, "group": str(grp), "n": int(m.sum()),
                         "base_rate": float(yt[m].mean()), "selection_rate": float(bg.loc[grp, "selection_rate"]),
                         "tpr": float(bg.loc[grp, "tpr"]), "fpr": float(bg.loc[grp, "fpr"]),
                         "auc": _auc(yt[m], ys[m]) if ys is not None else float("nan")})
        big = [grp for grp in bg.index if sizes.get(grp, 0) >= min_group_size]
        small = [str(grp) for grp in bg.index if grp not in big]
        if small:
            notes.append(f"{attr}: groups {small} have fewer than {min_group_size} rows; left out of the ratios.")
        sub = bg.loc[big] if big else bg
        sr = sub["selection_rate"]
        di = float(sr.min() / sr.max()) if sr.max() > 0 else float("nan")
        tpr = sub["tpr"].dropna()
        fpr = sub["fpr"].dropna()
        eo = float(tpr.max() - tpr.min()) if len(tpr) else float("nan")
        fp_gap = float(fpr.max() - fpr.min()) if len(fpr) else float("nan")
        aucs = [r["auc"] for r in rows if r["attribute"] == attr and r["group"] in {str(b) for b in big}
                and not np.isnan(r["auc"])]
        summary[attr] = {
            "groups": len(bg),
            "disparate_impact_ratio": di,
            "di_flag": _below(di, di_threshold),
            "lowest_selection_group": str(sr.idxmin()),
            "highest_selection_group": str(sr.idxmax()),
            "equal_opportunity_difference": eo,
            "equalized_odds_difference": float(np.nanmax([eo, fp_gap])) if not (np.isnan(eo) and np.isnan(fp_gap))
            else float("nan"),
            "auc_gap": float(max(aucs) - min(aucs)) if len(aucs) >= 2 else float("nan"),
        }
    by_group = pd.DataFrame(rows)
    top = by_group.groupby("attribute")["selection_rate"].transform("max")
    by_group["di_ratio"] = by_group["selection_rate"] / top.where(top > 0)
    by_group["flag"] = [_below(v, di_threshold) for v in by_group["di_ratio"]]
    return FairnessReport(by_group=by_group, summary=summary, di_threshold=di_threshold, notes=notes)


def audit_credit(y_bad: Any, pd_: Any, sensitive: pd.DataFrame | pd.Series | dict[str, Any], *,
                 threshold: float = 0.5, **kwargs: Any) -> FairnessReport:
    """Audit a probability-of-default model: approve when ``pd < threshold``; good payers deserve approval."""
    p = np.asarray(pd_, dtype=float).ravel()
    yb = np.asarray(y_bad).astype(int).ravel()
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
