"""Small shared helpers of the purchasing-power estimators."""

from __future__ import annotations

from typing import Any

from sklearn.exceptions import NotFittedError as _SkNotFitted
from sklearn.utils.validation import check_is_fitted

from buyerscore.exceptions import NotFittedError


def ensure_fitted(est: Any, attr: str) -> None:
    """``check_is_fitted`` raising buyerscore's :class:`~buyerscore.exceptions.NotFittedError`."""
    try:
        check_is_fitted(est, attr)
    except _SkNotFitted:
        raise NotFittedError(f"This {type(est).__name__} is not fitted yet; call fit(X, y) first.") from None
