"""Small helpers for parameter checks with one message shape (see STYLE.md rule 2)."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable
from typing import Any


def check_param(owner: object | str, name: str, value: Any, ok: Callable[[Any], bool], rule: str) -> None:
    """Raise ``ValueError`` with the project-wide message shape if ``ok(value)`` is false.

    Examples
    --------
    >>> check_param("CreditScorecard", "pdo", 20, lambda v: v > 0, "a float > 0")
    >>> check_param("CreditScorecard", "pdo", -5, lambda v: v > 0, "a float > 0")
    Traceback (most recent call last):
    ...
    ValueError: The 'pdo' parameter of CreditScorecard must be a float > 0. Got -5 instead.
    """
    try:
        good = bool(ok(value))
    except Exception:  # comparisons with a wrong type count as invalid
        good = False
    if not good:
        owner_name = owner if isinstance(owner, str) else type(owner).__name__
        raise ValueError(f"The {name!r} parameter of {owner_name} must be {rule}. Got {value!r} instead.")


def is_int(value: Any) -> bool:
    """True for an integer, Python's or numpy's (``np.int64(4)`` from a parameter grid); False for a bool.

    >>> import numpy as np
    >>> is_int(4), is_int(np.int64(4)), is_int(True), is_int(4.0)
    (True, True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def examples(values: Iterable[Any], k: int = 3) -> str:
    """Format at most ``k`` example values for an error message."""
    vals = list(values)
    shown = ", ".join(repr(v) for v in vals[:k])
    return shown + (f" (and {len(vals) - k} more)" if len(vals) > k else "")
