"""Shared pieces of buyerscore's probability-of-default models.

* points scaling (:func:`scaling`): ``score = offset + factor * ln(good:bad odds)`` with
  ``factor = pdo / ln 2`` and ``offset = base_score - factor * ln(base_odds)``; the default
  600 points at 50:1 odds with 20 points to double the odds;
* grades A-E by score band;
* input checks naming missing, extra and mistyped columns;
* sensitive columns (the protected attributes of :data:`buyerscore.datasets.DATASETS`) are
  left out of model inputs unless ``include_sensitive=True``;
* :class:`CreditModelBase`, the scikit-learn-contract base of ``CreditScorecard`` and
  ``CreditGBM`` (``predict_proba`` = PD, ``score`` = points, ``grade``, ``reason_codes``,
  ``score_record`` for one record without pandas, ``save`` / ``load``).

Note that ``score(X)`` returns points per row (credit-scoring usage), not scikit-learn's
default accuracy; use ``scoring="roc_auc"`` with ``cross_val_score``.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from buyerscore._validation import as_frame, check_param, examples, target_vector
from buyerscore.exceptions import ModelInputError, NotFittedError

logger = logging.getLogger(__name__)

GRADES = ("A", "B", "C", "D", "E")
#: PD upper bounds of grades A-D (E is everything above 20 %).
DEFAULT_GRADE_PD = (0.02, 0.05, 0.10, 0.20)
#: Columns of the canonical applicant table that are never predictors.
APPLICANT_ID_COLUMNS = ("user_id", "as_of", "label", "dataset")


def scaling(base_score: float = 600.0, base_odds: float = 50.0, pdo: float = 20.0) -> tuple[float, float]:
    """``(offset, factor)`` of the points scale.

    Examples
    --------
    >>> offset, factor = scaling(600, 50, 20)
    >>> round(factor, 4), round(offset + factor * math.log(50), 6), round(offset + factor * math.log(100), 6)
    (28.8539, 600.0, 620.0)
    """
    factor = pdo / math.log(2.0)
    return base_score - factor * math.log(base_odds), factor


def log_odds(p: Any, eps: float = 1e-9) -> np.ndarray:
    """``ln(p / (1 - p))`` with ``p`` clipped to ``[eps, 1 - eps]`` (the PD models' common clip).

    >>> float(log_odds(0.5)), float(log_odds(1.0)) == float(log_odds(1 - 1e-9))
    (0.0, True)
    """
    q = np.clip(np.asarray(p, dtype=float), eps, 1 - eps)
    return np.log(q / (1 - q))


def score_from_pd(p: Any, *, base_score: float = 600.0, base_odds: float = 50.0, pdo: float = 20.0) -> np.ndarray:
    """Points of a probability of default (``p`` clipped to ``[1e-9, 1 - 1e-9]``).

    >>> float(score_from_pd(1 / 51))
    600.0
    """
    offset, factor = scaling(base_score, base_odds, pdo)
    q = np.clip(np.asarray(p, dtype=float), 1e-9, 1 - 1e-9)
    return offset + factor * np.log((1 - q) / q)


def pd_from_score(s: Any, *, base_score: float = 600.0, base_odds: float = 50.0, pdo: float = 20.0) -> np.ndarray:
    """Inverse of :func:`score_from_pd`."""
    offset, factor = scaling(base_score, base_odds, pdo)
    return 1.0 / (1.0 + np.exp((np.asarray(s, dtype=float) - offset) / factor))


def sensitive_columns() -> set[str]:
    """Protected columns of every known dataset plus the user attributes ``sex`` and ``age_band``."""
    from buyerscore.datasets import DATASETS

    out = {"sex", "age_band"}
    for spec in DATASETS.values():
        out.update(spec.sensitive)
    return out


def split_applicants(frame: pd.DataFrame, target: str = "label") -> tuple[pd.DataFrame, np.ndarray]:
    """Split a canonical applicant frame into predictors and the 0/1 target."""
    if target not in frame.columns:
        raise ModelInputError(f"target column {target!r} not in the table (columns: {list(frame.columns)[:12]}).")
    y = frame[target].to_numpy()
    X = frame.drop(columns=[c for c in (*APPLICANT_ID_COLUMNS, target) if c in frame.columns])
    return X, y


def check_target(y: Any, owner: str) -> np.ndarray:
    arr = target_vector(y, owner, "one 0 (good) / 1 (bad) label per row of X")
    if arr.size == 0:
        raise ValueError(f"{owner}: y is empty; fit needs one 0 (good) / 1 (bad) label per row of X.")
    try:
        yf = arr.astype(float)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}: y must hold 0 (good) and 1 (bad); got values like {examples(np.unique(arr.astype(str)))}.") from None
    bad = ~np.isin(yf, (0.0, 1.0))
    distinct = np.unique(yf[~np.isnan(yf)])
    if len(distinct) > 2 and np.all(distinct == np.round(distinct)):
        raise ValueError(f"{owner}: Only binary classification is supported; y holds {len(distinct)} distinct "
                         f"values ({examples(distinct.tolist())}). A PD model needs 0 (good) / 1 (bad) labels.")
    if bad.any() and np.any(yf[bad] != np.round(yf[bad])):
        i = np.flatnonzero(bad & (yf != np.round(yf)))
        raise ValueError(f"{owner}: y looks continuous ({int(bad.sum())} value(s) other than 0 and 1, e.g. "
                         f"{examples(yf[i].tolist())} in rows {examples(i.tolist())}); a PD model needs 0 (good) / "
                         "1 (bad) labels. Threshold the target first (e.g. days past due >= 90).")
    if bad.any():
        raise ValueError(f"{owner}: y must hold 0 (good) and 1 (bad); {int(bad.sum())} row(s) differ, "
                         f"e.g. rows {examples(np.flatnonzero(bad).tolist())}.")
    if yf.min() == yf.max():
        raise ValueError(f"{owner}: y holds only one class ({int(yf[0])}); a PD model needs both goods and bads.")
    return yf.astype(np.int64)


class CreditModelBase(ClassifierMixin, BaseEstimator):
    """Common behaviour of the PD models; subclasses implement ``_fit``, ``_logit`` and ``contributions``."""

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing values get their own bin / LightGBM's missing branch
        tags.input_tags.string = True  # text columns are categorical features
        tags.input_tags.categorical = True
        tags.classifier_tags.multi_class = False  # a PD: y is 0 (good) / 1 (bad)
        return tags

    # ------------------------------------------------------------------ parameters
    def _check_common_params(self) -> None:
        name = type(self).__name__
        check_param(name, "base_score", self.base_score, lambda v: np.isfinite(float(v)), "a finite float")
        check_param(name, "base_odds", self.base_odds, lambda v: float(v) > 0, "a float > 0")
        check_param(name, "pdo", self.pdo, lambda v: float(v) > 0, "a float > 0")
        check_param(name, "grade_bands", self.grade_bands,
                    lambda v: v is None or (len(v) == 4 and all(a > b for a, b in itertools.pairwise(v))),
                    "None or 4 strictly decreasing score cut points (A/B, B/C, C/D, D/E)")
        check_param(name, "include_sensitive", self.include_sensitive, lambda v: isinstance(v, bool), "a bool")
        check_param(name, "sensitive_features", self.sensitive_features,
                    lambda v: v == "auto" or (not isinstance(v, str) and all(isinstance(c, str) for c in v)),
                    "'auto' or a list of column names")

    # ------------------------------------------------------------------ inputs
    def _fit_inputs(self, X: Any, y: Any) -> tuple[pd.DataFrame, np.ndarray]:
        """The checked target (0/1) and the predictor columns of a training frame, of equal length."""
        name = type(self).__name__
        Xs = self._select_inputs(X)  # X first: an empty or unusable frame is named as such
        yv = check_target(y, name)
        if len(yv) != len(Xs):
            raise ValueError(f"{name}: X has {len(Xs)} rows but y has {len(yv)}.")
        return Xs, yv

    def _select_inputs(self, X: pd.DataFrame) -> pd.DataFrame:
        model = type(self).__name__
        X = as_frame(X, model)  # a 2-D array gets scikit-learn's names x0, x1, ...
        if X.shape[1] == 0:
            raise ModelInputError(f"{model}.fit got 0 feature(s) (shape={X.shape}) while a minimum of 1 is "
                                  "required: pass at least one predictor column.")
        if X.shape[0] == 0:
            raise ModelInputError(f"{model}.fit got 0 sample(s) (shape={X.shape}) while a minimum of 1 is "
                                  "required: pass at least one row.")
        _check_column_names(X, f"{model}.fit")
        ids = [c for c in APPLICANT_ID_COLUMNS if c in X.columns]
        if ids:
            raise ModelInputError(f"columns {ids} are identifiers or the label, not predictors; drop them "
                                  "(buyerscore.models.base.split_applicants does this).")
        sens = sensitive_columns() if self.sensitive_features == "auto" else set(self.sensitive_features)
        excluded = [] if self.include_sensitive else [c for c in X.columns if c in sens]
        if excluded:
            logger.info("%s: leaving out sensitive column(s) %s (include_sensitive=True to use them)",
                        type(self).__name__, excluded)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        self.excluded_features_ = excluded
        keep = [c for c in X.columns if c not in excluded]
        if not keep:
            raise ModelInputError(f"no predictors left after leaving out sensitive columns {excluded}.")
        self.feature_dtypes_ = {c: ("numerical" if (pd.api.types.is_numeric_dtype(X[c]) or
                                                  pd.api.types.is_bool_dtype(X[c])) else "categorical")
                                for c in keep}
        for c in keep:
            if self.feature_dtypes_[c] == "numerical" and pd.api.types.is_float_dtype(X[c]):
                _check_finite(X[c], f"{model}.fit")
        empty = [c for c in keep if X[c].isna().all()]
        if empty:  # like a constant column: kept, but no model can learn from it
            logger.info("%s: column(s) %s hold no value (all missing) and carry no information", model, empty)
        self.input_profile_ = _profile(X[keep], self.feature_dtypes_)
        return X[keep]

    def unseen_inputs(self, X: Any) -> dict[str, list[int]]:
        """Where scoring input lies outside what the model saw in training: column -> row positions
        with a category never seen in fit, or a number below the training minimum or above its maximum.

        The model still scores those rows (an unseen category falls in the missing/other bin, a number
        beyond the range in the outermost bin), but an analyst should look at them: a typo (``spaceship``
        for a loan purpose) or a unit change (``-5`` months) gets an arbitrary score.  Missing values
        are not counted.  Models saved before this method existed return ``{}``.

        Examples
        --------
        >>> from buyerscore.models.credit import CreditScorecard
        >>> i = np.arange(600)
        >>> X = pd.DataFrame({"months": 4.0 + i % 36, "purpose": np.where(i % 3 == 1, "tv", "car")})
        >>> y = ((i % 3 == 1) & (i % 4 > 0) | (i % 36 > 30)).astype(int)
        >>> m = CreditScorecard(min_iv=0.0).fit(X, y)
        >>> sorted(m.features_)
        ['months', 'purpose']
        >>> m.unseen_inputs(pd.DataFrame({"months": [10.0, -5.0, 99.0], "purpose": ["car", "boat", None]}))
        {'purpose': [1], 'months': [1, 2]}
        """
        profile = getattr(self, "input_profile_", None)
        if not profile:
            return {}
        Xc = self._check_X(X)
        out: dict[str, list[int]] = {}
        for c in self.features_:
            info = profile.get(c)
            if info is None:
                continue
            s = Xc[c]
            if "categories" in info:
                seen = set(info["categories"])
                v = s.to_numpy(dtype=object)
                bad = np.array([not pd.isna(x) and str(x) not in seen for x in v], dtype=bool)
            else:
                v = s.to_numpy(dtype=float)
                with np.errstate(invalid="ignore"):
                    bad = (v < info["min"]) | (v > info["max"])
            if bad.any():
                out[c] = np.flatnonzero(bad).tolist()
        return out

    def _check_X(self, X: Any) -> pd.DataFrame:
        """Validate scoring input: a frame with every model feature, no unknown column, right types."""
        check_fitted(self)
        model = type(self).__name__
        if isinstance(X, Mapping):
            X = pd.DataFrame([X])
        X = as_frame(X, model, columns=list(self.feature_names_in_))  # an array: columns by position
        _check_column_names(X, f"Input for {model}")
        allowed = set(self.feature_names_in_)
        missing = [c for c in self.features_ if c not in X.columns]
        extra = [c for c in X.columns if c not in allowed]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing column(s) {missing}")
            if extra:
                parts.append(f"unknown column(s) {extra[:10]}" + (f" (+{len(extra) - 10} more)" if len(extra) > 10 else ""))
            unused = [c for c in self.feature_names_in_ if c not in self.features_]
            also = f" (it also accepts, and ignores, {examples(unused, 10)})" if unused else ""
            raise ModelInputError(f"Input for {model}: {'; '.join(parts)}. Score with the columns the model uses: "
                                  f"{list(self.features_)}{also}.")
        out = {}
        for c in self.features_:
            s = X[c]
            if self.feature_dtypes_[c] == "numerical":
                if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
                    out[c] = s.to_numpy(dtype=float, na_value=np.nan)
                else:
                    num = pd.to_numeric(s, errors="coerce")
                    bad = num.isna() & s.notna()
                    if bad.any():
                        rows = np.flatnonzero(bad.to_numpy())
                        raise ModelInputError(
                            f"Input for {model}: column {c!r} must be numeric; {int(bad.sum())} value(s) are not, "
                            f"e.g. {examples(s.iloc[rows].tolist())} at row(s) {examples((rows + 1).tolist())} "
                            "(1 = the first row). Write plain numbers (1234.5: no thousands separators or currency "
                            "signs), or leave the value empty for missing.")
                    out[c] = num.to_numpy(dtype=float, na_value=np.nan)
            else:
                out[c] = s.astype(object).where(s.notna(), None).to_numpy()
        return pd.DataFrame(out, index=X.index)

    # ------------------------------------------------------------------ outputs
    def _finish_fit(self) -> None:
        self.offset_, self.factor_ = scaling(float(self.base_score), float(self.base_odds), float(self.pdo))
        if self.grade_bands is None:
            pds = np.asarray(DEFAULT_GRADE_PD)
            self.grade_bands_ = [float(v) for v in self.offset_ + self.factor_ * np.log((1 - pds) / pds)]
        else:
            self.grade_bands_ = [float(v) for v in self.grade_bands]
        self.classes_ = np.array([0, 1])

    def _logit(self, X: pd.DataFrame) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict_proba(self, X: Any) -> np.ndarray:
        """``[P(good), P(bad)]`` per row; column 1 is the probability of default."""
        p = 1.0 / (1.0 + np.exp(-self._logit(self._check_X(X))))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any, threshold: float = 0.5) -> np.ndarray:
        """1 (bad) where the PD exceeds ``threshold``."""
        return (self.predict_proba(X)[:, 1] > threshold).astype(np.int64)

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> np.ndarray:  # type: ignore[override]
        """Points per row (higher = safer). ``y`` and ``sample_weight`` are ignored."""
        lg = self._logit(self._check_X(X))
        return self.offset_ - self.factor_ * lg

    def _grade_of(self, s: np.ndarray) -> np.ndarray:
        cuts = np.asarray(self.grade_bands_[::-1])  # increasing
        # score >= cut A/B -> A ...; searchsorted on increasing cuts gives 0 (lowest) .. 4 (highest)
        s = np.asarray(s, dtype=float)
        pos = np.searchsorted(cuts, np.nan_to_num(s, nan=-np.inf), side="right")
        out = np.asarray(GRADES[::-1], dtype=object)[pos]
        out[np.isnan(s)] = None  # no score, no grade (searchsorted put NaN above every cut: grade A)
        return out

    def grade(self, X: Any) -> np.ndarray:
        """Grade A (safest) to E per row, by score band (``grade_bands_``)."""
        return self._grade_of(self.score(X))

    def contributions(self, X: Any) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError

    def reason_codes(self, X: Any, k: int = 4, lang: str = "en") -> list[list[Any]]:
        """Top ``k`` adverse reasons per row (see :func:`buyerscore.explain.reason_codes.top_reasons`)."""
        from buyerscore.explain.reason_codes import top_reasons

        Xc = self._check_X(X)
        return top_reasons(self.contributions(Xc), Xc, k=k, direction="adverse", lang=lang)

    def _record_values(self, record: Mapping[str, Any]) -> list[Any]:
        check_fitted(self)
        missing = [c for c in self.features_ if c not in record]
        if missing:
            raise ModelInputError(f"record for {type(self).__name__} lacks field(s) {missing}; "
                                  f"expected {list(self.features_)}.")
        vals = []
        for c in self.features_:
            v = record[c]
            if self.feature_dtypes_[c] == "numerical" and v is not None and not isinstance(v, (int, float)):
                try:
                    v = float(v)
                except (TypeError, ValueError):
                    raise ModelInputError(f"record field {c!r} must be numeric; got {v!r}.") from None
            vals.append(v)
        return vals

    def _record_result(self, logit: float) -> dict[str, Any]:
        p = 1.0 / (1.0 + math.exp(-logit))
        s = self.offset_ - self.factor_ * logit
        g: str | None = None if math.isnan(s) else "E"
        for grade, cut in zip(GRADES, self.grade_bands_, strict=False) if g else ():
            if s >= cut:
                g = grade
                break
        return {"pd": p, "score": s, "grade": g}

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path, *, training_data_hash: str = "", metrics: dict[str, Any] | None = None,
             as_of: str | None = None, extra: dict[str, Any] | None = None) -> Path:
        """Write the model and its metadata with :func:`buyerscore.artifacts.save_model`."""
        from buyerscore.artifacts import save_model

        check_fitted(self)
        return save_model(self, path, kind=f"credit.{type(self).__name__}", features=list(self.features_),
                          training_data_hash=training_data_hash, params=self.get_params(), metrics=metrics or {},
                          as_of=as_of, extra={"feature_names_in": list(self.feature_names_in_),
                                              "excluded_features": list(self.excluded_features_), **(extra or {})})

    @classmethod
    def load(cls, path: str | Path) -> CreditModelBase:
        """Load a model saved by :meth:`save` (checks it is a ``cls``)."""
        from buyerscore.artifacts import load_model

        model, meta = load_model(path)
        if not isinstance(model, cls):
            raise ModelInputError(f"{path} holds a {meta.kind} model, not a {cls.__name__}.")
        return model


def _profile(X: pd.DataFrame, dtypes: dict[str, str], max_categories: int = 1000) -> dict[str, dict[str, Any]]:
    """Per training column, what :meth:`CreditModelBase.unseen_inputs` compares with: the categories seen
    (as text; a column with more than ``max_categories`` is not profiled) or the finite min and max."""
    out: dict[str, dict[str, Any]] = {}
    for c, kind in dtypes.items():
        s = X[c]
        if kind == "categorical":
            cats = s.dropna().astype(str).unique()
            if len(cats) <= max_categories:
                out[c] = {"categories": sorted(cats.tolist())}
        else:
            v = s.to_numpy(dtype=float, na_value=np.nan)
            v = v[np.isfinite(v)]
            if v.size:
                out[c] = {"min": float(v.min()), "max": float(v.max())}
    return out


def _check_column_names(X: pd.DataFrame, where: str) -> None:
    """Column names must be unique strings: models, reason codes and saved metadata refer to them."""
    names = list(X.columns)
    odd = [c for c in names if not isinstance(c, str)]
    if odd:
        raise ModelInputError(
            f"{where}: column names must be strings; {len(odd)} are not, e.g. {examples(odd)} "
            f"({type(odd[0]).__name__}). Name the columns, e.g. X.columns = X.columns.astype(str), and use the "
            "same names when scoring.")
    dup = X.columns[X.columns.duplicated()].unique().tolist()
    if dup:
        pos = [i for i, c in enumerate(names) if c in set(dup)]
        raise ModelInputError(
            f"{where}: column name(s) {examples(dup)} appear more than once (at positions {examples(pos, 6)}); "
            "give every column a unique name or drop the copies, e.g. X = X.loc[:, ~X.columns.duplicated()].")


def _check_finite(s: pd.Series, where: str) -> None:
    """Training values must not be +-inf: no model can learn where infinity belongs (a division by zero?)."""
    v = s.to_numpy(dtype=float, na_value=np.nan)
    bad = np.isinf(v)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ModelInputError(
            f"{where}: column {s.name!r} holds {len(rows)} infinite value(s), e.g. {examples(v[rows].tolist())} at "
            f"row(s) {examples((rows + 1).tolist())} (1 = the first row). Replace them with NaN (missing) or a finite value before fitting, "
            f"e.g. X[{s.name!r}] = X[{s.name!r}].replace([np.inf, -np.inf], np.nan). (When scoring, +-inf counts as "
            "beyond every training value.)")


def check_fitted(est: BaseEstimator) -> None:
    try:
        check_is_fitted(est)
    except ValueError as exc:  # sklearn's NotFittedError (a ValueError) -> ours, same message
        raise NotFittedError(str(exc)) from None


def as_list(v: Sequence[str] | None) -> list[str]:
    return list(v) if v is not None else []
