"""One reason-code layer for every model.

A model provides per-row, per-feature *contributions*: positive values push toward the
adverse outcome (higher default risk, fewer points, lower expected spend, more unusual
behaviour).  For the scorecard a contribution is the points lost against the best bin of the
feature; for a GBM it is the SHAP value in log-odds of default; for the anomaly detector it is
the tail score ``max(0, -ln(2 p_tail))`` of the feature's value.  :func:`top_reasons` turns them into the top-k
reasons with a human text from the feature registry (English or Chinese), and
:func:`global_importance` summarises them over a population (mean absolute contribution).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from buyerscore.features.registry import describe

#: Phrases per outcome and language: (adverse phrase, favourable phrase).
OUTCOME_PHRASES: dict[str, dict[str, tuple[str, str]]] = {
    "score": {"en": ("lowers the score", "raises the score"), "zh": ("拉低了评分", "提高了评分")},
    "risk": {"en": ("raises the default risk", "lowers the default risk"), "zh": ("提高了违约风险", "降低了违约风险")},
    "spend": {"en": ("lowers the expected spend", "raises the expected spend"),
              "zh": ("降低了预期消费", "提高了预期消费")},
    "anomaly": {"en": ("is unusual", "is typical"), "zh": ("明显异常", "属于正常范围")},
}
LANGS = ("en", "zh")


@dataclass(frozen=True)
class ReasonCode:
    """One reason: the feature, its contribution, the row's value and a human text."""

    feature: str
    contribution: float
    value: Any
    text: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if _missing(d["value"]):
            d["value"] = None  # pd.NA / NaT are not JSON
        elif isinstance(d["value"], (np.generic,)):
            d["value"] = d["value"].item()
        return d


#: How a missing value is quoted, per language.
MISSING = {"en": "missing", "zh": "缺失"}


def _missing(v: Any) -> bool:
    """None, NaN, pd.NA or NaT (nullable columns hold pd.NA, not NaN)."""
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):  # list-like values
        return False


def _fmt(v: Any, lang: str = "en") -> str:
    if _missing(v):
        return MISSING[lang]
    if isinstance(v, (float, np.floating)):
        return f"{v:,.4g}"
    return str(v)


def reason_text(feature: str, contribution: float, value: Any = None, *, lang: str = "en",
                outcome: str = "score", reference: Any = None) -> str:
    """The human text of one reason.

    Examples
    --------
    >>> reason_text("refund_rate", 2.0, 0.5, outcome="anomaly", reference=0.0)
    'Refunds per purchase (0.5; typical 0) is unusual'
    >>> reason_text("refund_rate", 2.0, 0.5, lang="zh")
    '退款率（次数）（值 0.5）拉低了评分'
    """
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}. Got {lang!r} instead.")
    if outcome not in OUTCOME_PHRASES:
        raise ValueError(f"outcome must be one of {sorted(OUTCOME_PHRASES)}. Got {outcome!r} instead.")
    bad, good = OUTCOME_PHRASES[outcome][lang]
    phrase = bad if contribution > 0 else good
    has_ref = not _missing(reference)
    if lang == "zh":
        ref = f"，典型值 {_fmt(reference, 'zh')}" if has_ref else ""
        return f"{describe(feature, 'zh')}（值 {_fmt(value, 'zh')}{ref}）{phrase}"
    ref = f"; typical {_fmt(reference)}" if has_ref else ""
    return f"{describe(feature)} ({_fmt(value)}{ref}) {phrase}"


def top_reasons(
    contributions: pd.DataFrame,
    values: pd.DataFrame | None = None,
    *,
    k: int = 4,
    direction: Literal["adverse", "driving"] = "adverse",
    lang: str = "en",
    outcome: str = "score",
    reference: pd.Series | None = None,
) -> list[list[ReasonCode]]:
    """Top ``k`` reasons per row.

    Parameters
    ----------
    contributions : DataFrame
        Rows = scored records, columns = features; > 0 means toward the adverse outcome.
    values : DataFrame, optional
        The feature values of the same rows, quoted in the text.
    k : int
        Reasons per row.
    direction : {"adverse", "driving"}
        "adverse": largest positive contributions (why the score is worse); "driving": largest
        absolute contributions either way.
    lang : {"en", "zh"}
        Language of the text.
    outcome : {"score", "risk", "spend", "anomaly"}
        What the contribution moves, for the phrase ("lowers the score", "is unusual", ...).
    reference : Series, optional
        A typical value per feature (e.g. the training median), quoted as "typical ...".

    Examples
    --------
    >>> c = pd.DataFrame({"a": [3.0, -1.0], "b": [1.0, 2.0]})
    >>> [[r.feature for r in row] for row in top_reasons(c, k=1)]
    [['a'], ['b']]
    >>> top_reasons(c, k=1, lang="zh")[0][0].text
    'a（值 缺失）拉低了评分'
    """
    if not isinstance(k, (int, np.integer)) or k <= 0:
        raise ValueError(f"k must be a positive int. Got {k!r} instead.")
    if direction not in ("adverse", "driving"):
        raise ValueError(f"direction must be 'adverse' or 'driving'. Got {direction!r} instead.")
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}. Got {lang!r} instead.")
    arr = contributions.to_numpy(dtype=float)
    cols = list(contributions.columns)
    key = np.where(np.isnan(arr), -np.inf, arr if direction == "adverse" else np.abs(arr))
    order = np.argsort(-key, axis=1, kind="stable")[:, :k]
    vals = values.reindex(columns=cols) if values is not None else None
    ref = reference.reindex(cols) if reference is not None else None
    out: list[list[ReasonCode]] = []
    for i in range(arr.shape[0]):
        row: list[ReasonCode] = []
        for j in order[i]:
            c = arr[i, j]
            if np.isnan(c) or (direction == "adverse" and not c > 0):
                continue
            v = vals.iat[i, j] if vals is not None else None
            name = cols[j]
            text = reason_text(name, c, v, lang=lang, outcome=outcome,
                               reference=ref.iat[j] if ref is not None else None)
            row.append(ReasonCode(name, float(c), v, text))
        out.append(row)
    return out


def reasons_frame(reasons: list[list[ReasonCode]], index: Any = None) -> pd.DataFrame:
    """Flatten :func:`top_reasons` output to a long frame ``row, rank, feature, contribution, value, text``.

    Examples
    --------
    >>> c = pd.DataFrame({"a": [3.0], "b": [1.0]})
    >>> reasons_frame(top_reasons(c, k=2))[["row", "rank", "feature"]].values.tolist()
    [[0, 1, 'a'], [0, 2, 'b']]
    """
    idx = list(index) if index is not None else list(range(len(reasons)))
    rows = [{"row": idx[i], "rank": r + 1, **rc.to_dict()} for i, rs in enumerate(reasons) for r, rc in enumerate(rs)]
    return pd.DataFrame(rows, columns=["row", "rank", "feature", "contribution", "value", "text"])


def global_importance(contributions: pd.DataFrame, *, lang: str = "en") -> pd.DataFrame:
    """Global importance: mean absolute contribution per feature over all rows, largest first.

    Returns a frame with ``feature``, ``mean_abs_contribution``, ``share`` (of the total),
    ``mean_contribution`` (signed; > 0 means the feature pushes the population toward the adverse
    outcome on average) and ``description`` (registry text in ``lang``).

    Examples
    --------
    >>> c = pd.DataFrame({"a": [1.0, -1.0], "b": [3.0, 1.0]})
    >>> global_importance(c)[["feature", "mean_abs_contribution", "share"]].values.tolist()
    [['b', 2.0, 0.6666666666666666], ['a', 1.0, 0.3333333333333333]]
    """
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}. Got {lang!r} instead.")
    arr = contributions.to_numpy(dtype=float)
    if arr.shape[0] == 0:
        raise ValueError("global_importance needs at least one row of contributions.")
    with np.errstate(all="ignore"):
        mabs = np.nanmean(np.abs(arr), axis=0)
        mean = np.nanmean(arr, axis=0)
    mabs = np.nan_to_num(mabs)
    total = mabs.sum()
    df = pd.DataFrame({
        "feature": [str(c) for c in contributions.columns],
        "mean_abs_contribution": mabs,
        "share": mabs / total if total > 0 else np.zeros_like(mabs),
        "mean_contribution": np.nan_to_num(mean),
        "description": [describe(str(c), lang) for c in contributions.columns],
    })
    return df.sort_values("mean_abs_contribution", ascending=False, kind="stable").reset_index(drop=True)
