"""One reason-code layer for every model.

A model provides per-row, per-feature *contributions*: positive values push toward the
adverse outcome (higher default risk, fewer points, lower expected spend).  For the
scorecard a contribution is the points lost against the best bin of the feature; for a
GBM it is the SHAP value in log-odds of default.  :func:`top_reasons` turns them into the
top-k reasons with a human text from the feature registry.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from buyerscore.features.registry import describe


@dataclass(frozen=True)
class ReasonCode:
    """One reason: the feature, its contribution, the row's value and a human text."""

    feature: str
    contribution: float
    value: Any
    text: str

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if isinstance(d["value"], (np.generic,)):
            d["value"] = d["value"].item()
        return d


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "missing"
    if isinstance(v, (float, np.floating)):
        return f"{v:,.4g}"
    return str(v)


def top_reasons(
    contributions: pd.DataFrame,
    values: pd.DataFrame | None = None,
    *,
    k: int = 4,
    direction: Literal["adverse", "driving"] = "adverse",
    lang: str = "en",
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

    Examples
    --------
    >>> c = pd.DataFrame({"a": [3.0, -1.0], "b": [1.0, 2.0]})
    >>> [[r.feature for r in row] for row in top_reasons(c, k=1)]
    [['a'], ['b']]
    """
    if k <= 0:
        raise ValueError(f"k must be a positive int. Got {k!r} instead.")
    arr = contributions.to_numpy(dtype=float)
    cols = list(contributions.columns)
    key = np.where(np.isnan(arr), -np.inf, arr if direction == "adverse" else np.abs(arr))
    order = np.argsort(-key, axis=1, kind="stable")[:, :k]
    vals = values.reindex(columns=cols) if values is not None else None
    is_zh = lang == "zh"
    out: list[list[ReasonCode]] = []
    for i in range(arr.shape[0]):
        row: list[ReasonCode] = []
        for j in order[i]:
            c = arr[i, j]
            if direction == "adverse" and not c > 0:
                continue
            v = vals.iat[i, j] if vals is not None else None
            name = cols[j]
            if is_zh:
                text = f"{describe(name, 'zh')}（值 {_fmt(v)}）" + ("拉低了评分" if c > 0 else "提高了评分")
            else:
                text = f"{describe(name)} ({_fmt(v)}) " + ("lowers the score" if c > 0 else "raises the score")
            row.append(ReasonCode(name, float(c), v, text))
        out.append(row)
    return out
