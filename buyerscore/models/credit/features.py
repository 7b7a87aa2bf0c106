"""Row-wise ratio features for the public credit tables (stateless: no fitting, no leakage).

:func:`add_ratio_features` recognises the Give Me Some Credit and Taiwan columns and adds
ratios that scorecards cannot build themselves (a scorecard is additive in its inputs).
Tables without those columns are returned unchanged.  The new columns are described in
:mod:`buyerscore.features.credit_columns`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

GMSC_PAST_DUE = ("NumberOfTime30-59DaysPastDueNotWorse", "NumberOfTime60-89DaysPastDueNotWorse",
                 "NumberOfTimes90DaysLate")


def add_ratio_features(X: pd.DataFrame, *, drop_redundant: bool = False) -> pd.DataFrame:
    """Return a copy of ``X`` with ratio features added where the source columns exist.

    Give Me Some Credit: ``TotalPastDue`` (the three past-due counts added up; the 96/98
    codes kept as 96), ``MonthlyDebt`` (``DebtRatio`` x income; the file holds the raw debt
    in ``DebtRatio`` when income is missing), ``IncomePerPerson``, ``RevolvingLinesShare``,
    ``UtilisedLines`` (utilisation, capped at 2, times the open credit lines: +0.001 inner AUC
    for the monotone scorecard, which cannot form that product itself);
    ``DebtRatio`` becomes missing where income is missing (it is not a ratio there).
    Taiwan: ``PAY_MAX`` (worst delay over 6 months), ``UTIL_1`` (last bill / limit),
    ``PAY_RATIO_1`` (last payment / last bill), ``PAY_MEAN``, ``N_DELAY`` (months with a
    delay), ``UTIL_MEAN``, ``PAY_TO_BILL_6M``, ``BILL_TREND`` and ``PAYR_1..5`` (payment of
    month i / bill of month i + 1, the bill it pays).  Applying it twice gives the same table
    as applying it once.

    ``drop_redundant=True`` also drops source columns that the new ones summarise:
    Taiwan's ``BILL_AMT2..BILL_AMT6`` (kept in ``UTIL_MEAN``, ``BILL_TREND`` and
    ``PAYR_1..5``; ``BILL_AMT1`` stays).  For the GBM this raised AUC by 0.0004-0.0005 in
    inner cross-validation (the old bills are near-copies of each other, so trees spend
    splits on noise); scorecards select among correlated columns themselves.

    Examples
    --------
    >>> X = pd.DataFrame({"DebtRatio": [0.5, 800.0], "MonthlyIncome": [2000.0, np.nan], "NumberOfDependents": [1, 0],
    ...                   "NumberOfOpenCreditLinesAndLoans": [4, 0], "NumberRealEstateLoansOrLines": [1, 0],
    ...                   "NumberOfTime30-59DaysPastDueNotWorse": [1, 98], "NumberOfTime60-89DaysPastDueNotWorse": [0, 98],
    ...                   "NumberOfTimes90DaysLate": [2, 98]})
    >>> add_ratio_features(X)[["TotalPastDue", "MonthlyDebt", "IncomePerPerson", "RevolvingLinesShare"]].to_numpy().tolist()
    [[3.0, 1000.0, 1000.0, 0.75], [96.0, 800.0, nan, nan]]
    """
    X = X.copy()
    cols = set(X.columns)
    if set(GMSC_PAST_DUE) <= cols:
        v = X[list(GMSC_PAST_DUE)].astype(float)
        coded = (v >= 90).any(axis=1)
        X["TotalPastDue"] = v.where(v < 90).sum(axis=1).where(~coded, 96.0)
    if {"DebtRatio", "MonthlyIncome"} <= cols:
        inc = X["MonthlyIncome"].astype(float)
        dr = X["DebtRatio"].astype(float)
        # where income is missing the file's DebtRatio holds the debt itself; on a table this
        # function already transformed, DebtRatio is missing there and MonthlyDebt holds it
        raw_debt = X["MonthlyDebt"].astype(float) if "MonthlyDebt" in cols else dr
        X["MonthlyDebt"] = (dr * inc).where(inc.notna(), raw_debt)
        if "NumberOfDependents" in cols:
            X["IncomePerPerson"] = inc / (X["NumberOfDependents"].astype(float).fillna(0) + 1)
        X["DebtRatio"] = dr.where(inc.notna())
    if {"NumberOfOpenCreditLinesAndLoans", "NumberRealEstateLoansOrLines"} <= cols:
        lines = X["NumberOfOpenCreditLinesAndLoans"].astype(float)
        X["RevolvingLinesShare"] = (lines - X["NumberRealEstateLoansOrLines"].astype(float)) / lines.replace(0, np.nan)
    if {"NumberOfOpenCreditLinesAndLoans", "RevolvingUtilizationOfUnsecuredLines"} <= cols:
        util = X["RevolvingUtilizationOfUnsecuredLines"].astype(float).clip(upper=2.0)
        X["UtilisedLines"] = util * X["NumberOfOpenCreditLinesAndLoans"].astype(float)
    pay = [f"PAY_{i}" for i in (0, 2, 3, 4, 5, 6)]
    if set(pay) <= cols:
        X["PAY_MAX"] = X[pay].max(axis=1)
    if {"BILL_AMT1", "LIMIT_BAL"} <= cols:
        X["UTIL_1"] = X["BILL_AMT1"] / X["LIMIT_BAL"].replace(0, np.nan)
    if {"PAY_AMT1", "BILL_AMT1"} <= cols:
        bill = X["BILL_AMT1"].where(X["BILL_AMT1"] > 0)
        X["PAY_RATIO_1"] = X["PAY_AMT1"] / bill
    bills = [f"BILL_AMT{i}" for i in range(1, 7)]
    pays = [f"PAY_AMT{i}" for i in range(1, 7)]
    if set(pay) | set(bills) | set(pays) | {"LIMIT_BAL"} <= cols:
        limit = X["LIMIT_BAL"].replace(0, np.nan)
        X["PAY_MEAN"] = X[pay].mean(axis=1)
        X["N_DELAY"] = (X[pay] > 0).sum(axis=1)
        X["UTIL_MEAN"] = X[bills].mean(axis=1) / limit
        X["PAY_TO_BILL_6M"] = X[pays].sum(axis=1) / X[bills].clip(lower=0).sum(axis=1).replace(0, np.nan)
        X["BILL_TREND"] = (X["BILL_AMT1"] - X["BILL_AMT6"]) / limit
        for i in range(1, 6):
            prev = X[f"BILL_AMT{i + 1}"]
            X[f"PAYR_{i}"] = X[f"PAY_AMT{i}"] / prev.where(prev > 0)
        if drop_redundant:
            X = X.drop(columns=bills[1:])
    return X


def derived_sources(columns: Sequence[str], *, drop_redundant: bool = False) -> dict[str, list[str]]:
    """Which of ``columns`` each derived column is computed from, for a model's input columns (derived ones
    included, as ``feature_names_in_`` holds them): derived column -> its source columns.

    A column counts as derived when :func:`add_ratio_features` computes it again from the others.

    Examples
    --------
    >>> derived_sources(["DebtRatio", "MonthlyIncome", "NumberOfDependents", "MonthlyDebt", "IncomePerPerson"])
    {'MonthlyDebt': ['DebtRatio', 'MonthlyIncome'], 'IncomePerPerson': ['DebtRatio', 'MonthlyIncome', 'NumberOfDependents']}
    """
    cols = list(dict.fromkeys(columns))
    one = pd.DataFrame({c: [1.0] for c in cols})
    derived = [c for c in cols if c in add_ratio_features(one.drop(columns=[c]), drop_redundant=drop_redundant)]
    raw = [c for c in cols if c not in derived]
    base = one[raw]
    out: dict[str, list[str]] = {d: [] for d in derived}
    for c in raw:
        made = set(add_ratio_features(base.drop(columns=[c]), drop_redundant=drop_redundant).columns)
        for d in derived:
            if d not in made:
                out[d].append(c)
    return out


def derive_as_trained(X: pd.DataFrame, extra: Mapping[str, Any] | None) -> pd.DataFrame:
    """Add the derived columns a saved model was trained with, as recorded by ``credit train``.

    ``extra`` is the model's ``metadata.extra``; its ``derived_columns`` entry (``None`` or
    ``{"drop_redundant": bool}``) says whether :func:`add_ratio_features` ran before fitting.
    Every command that scores a saved credit model calls this, so raw applicant tables work.

    Examples
    --------
    >>> X = pd.DataFrame({"DebtRatio": [0.5], "MonthlyIncome": [2000.0]})
    >>> list(derive_as_trained(X, {"derived_columns": {"drop_redundant": False}}).columns)
    ['DebtRatio', 'MonthlyIncome', 'MonthlyDebt']
    >>> derive_as_trained(X, {"derived_columns": None}) is X
    True
    """
    spec = (extra or {}).get("derived_columns")
    if not spec:
        return X
    return add_ratio_features(X, drop_redundant=bool(spec.get("drop_redundant")))
