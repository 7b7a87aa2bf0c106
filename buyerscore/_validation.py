"""Small helpers for parameter checks with one message shape (see STYLE.md rule 2)."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Iterable, Sequence
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
    except Exception:  # noqa: BLE001 - any failure of the rule (a comparison with a wrong type) = invalid
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


def as_frame(X: Any, owner: str, *, columns: Sequence[str] | None = None) -> Any:
    """``X`` as a pandas DataFrame: a frame is returned as is; a 2-D array-like (numpy array, memmap,
    list of rows) gets ``columns`` (a fitted model's ``feature_names_in_``, read by position) or, at fit
    time, the names ``x0 .. x{n-1}``, as scikit-learn names unnamed columns.

    An object array's columns that hold only numbers become float columns; sparse, complex and
    non-2-D input is refused with a message that says what to pass instead.

    Examples
    --------
    >>> import numpy as np
    >>> as_frame(np.array([[1.0, 2.0]]), "CreditGBM").columns.tolist()
    ['x0', 'x1']
    >>> as_frame(np.array([[1.0, 2.0]]), "CreditGBM", columns=["age", "debt"]).columns.tolist()
    ['age', 'debt']
    >>> as_frame(np.array([1.0, 2.0]), "CreditGBM")
    Traceback (most recent call last):
    ...
    buyerscore.exceptions.ModelInputError: CreditGBM: Expected 2D array, got 1D array instead (shape (2,)). \
Reshape your data with X.reshape(-1, 1) (one feature) or X.reshape(1, -1) (one row), or pass a DataFrame with named columns.
    """
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    from buyerscore.exceptions import ModelInputError

    if isinstance(X, pd.DataFrame):
        return X
    if sp.issparse(X):
        raise ModelInputError(f"{owner}: sparse input is not supported; pass a dense array (X.toarray()) or a "
                              "DataFrame with named columns.")
    if isinstance(X, pd.Series):
        raise ModelInputError(f"{owner}: Expected 2D array, got a Series {X.name!r}; pass X.to_frame() for one "
                              "feature, or a DataFrame with named columns.")
    try:
        A = np.asarray(X)
    except (TypeError, ValueError) as exc:  # ragged lists and the like
        raise ModelInputError(f"{owner}: could not read X as a 2-D table ({exc}); pass a DataFrame with named "
                              "columns.") from None
    if np.iscomplexobj(A):
        raise ModelInputError(f"{owner}: Complex data not supported; X holds complex numbers.")
    if A.ndim != 2:
        raise ModelInputError(f"{owner}: Expected 2D array, got {A.ndim}D array instead (shape {A.shape}). Reshape your "
                              "data with X.reshape(-1, 1) (one feature) or X.reshape(1, -1) (one row), or pass a "
                              "DataFrame with named columns.")
    if columns is None:
        names = [f"x{i}" for i in range(A.shape[1])]
    else:
        names = list(columns)
        if len(names) != A.shape[1]:
            raise ModelInputError(f"X has {A.shape[1]} features, but {owner} is expecting {len(names)} features as "
                                  f"input ({examples(names)}, by position); pass a DataFrame with named columns.")
        if names != [f"x{i}" for i in range(len(names))]:  # fitted on named columns: say they are read by position
            warnings.warn(f"X does not have valid feature names, but {owner} was fitted with feature names; its "
                          f"columns are read by position as {examples(names)}.", UserWarning, stacklevel=3)
    frame = pd.DataFrame(A, columns=names)
    if A.dtype == object:
        for c in names:
            num = pd.to_numeric(frame[c], errors="coerce")
            if num.notna().sum() == frame[c].notna().sum():
                frame[c] = num.astype(float)
    return frame


def target_vector(y: Any, owner: str, what: str, error: type[ValueError] = ValueError) -> Any:
    """``y`` as a 1-d numpy array, as scikit-learn takes a target: ``None`` is an error saying ``what`` to
    pass, a column vector (a one-column frame) is ravelled with a ``DataConversionWarning``, any other
    shape is an ``error``.  The values are not checked.

    >>> target_vector([0, 1], "CreditGBM", "0/1 labels").tolist()
    [0, 1]
    """
    import numpy as np
    from sklearn.exceptions import DataConversionWarning

    if y is None:
        raise error(f"{owner}.fit requires y to be passed, but the target y is None; pass {what}.")
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:  # a one-column frame / column vector, as scikit-learn: ravel, warn
        warnings.warn(f"A column-vector y was passed when a 1d array was expected ({owner}); using y.ravel().",
                      DataConversionWarning, stacklevel=3)
        arr = arr.ravel()
    if arr.ndim != 1:
        raise error(f"{owner}: y must be 1-dimensional ({what}); got shape {arr.shape}.")
    return arr
