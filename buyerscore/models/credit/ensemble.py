"""A weighted log-odds average of calibrated PD models (default: the GBM and the random forest)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone

from buyerscore._validation import check_param
from buyerscore.exceptions import ModelInputError
from buyerscore.models.base import CreditModelBase, log_odds

logger = logging.getLogger(__name__)


PRESET_MEMBERS = ("gbm", "forest", "scorecard")
"""Names ``CreditEnsemble(members=...)`` accepts in place of (name, estimator) pairs."""
DEFAULT_MEMBERS = ("gbm", "forest")


class CreditEnsemble(CreditModelBase):
    """Average the calibrated log-odds of several PD models; one PD, score, grade and reason codes.

    Each member is cloned and fitted on the same rows; the ensemble's log-odds are the weighted
    mean of the members' calibrated log-odds, so the PD stays on the members' (calibrated) scale
    and points, grades and reason codes work as for a single model.  The default members are a
    :class:`CreditGBM` (monotone, 5 cross-fitted boosters) and a :class:`CreditForest`: a boosted
    and a bagged ensemble of trees make different errors, and on small application tables their
    mean ranks better than either (German credit: see ``docs/credit.md``).  On large tables
    (Give Me Some Credit, Taiwan) the GBM alone is as good and much faster.

    Parameters
    ----------
    members : list of (name, estimator) or of names, optional
        Unfitted buyerscore PD models (:class:`CreditGBM`, :class:`CreditForest`,
        :class:`CreditScorecard`, ...).  Their ``include_sensitive`` and ``sensitive_features``
        are set to the ensemble's, so one switch governs every member.  None = the default pair.
        A name stands for a preset member: ``"gbm"`` (``CreditGBM(n_folds=5)``), ``"forest"``
        (``CreditForest()``) or ``"scorecard"`` (``CreditScorecard(monotonic_trend="auto_heuristic")``,
        the peak/valley scorecard that lowered the StatLog cost on German credit as a third member).
    weights : sequence of float, optional
        One non-negative weight per member (normalised to sum to 1); None = equal weights.
    base_score, base_odds, pdo, grade_bands
        Points scale and grades, as in :class:`CreditScorecard`.
    sensitive_features, include_sensitive
        As in :class:`CreditScorecard`; passed on to every member.
    random_state : int
        Seed of the default members.
    n_jobs : int
        Threads of the default members.

    Attributes
    ----------
    members_ : dict of name -> fitted estimator
    weights_ : dict of name -> normalised weight
    oof_proba_ : ndarray or None
        Out-of-sample PD of each training row, from the members' own held-out PDs (``oof_proba_``
        of :class:`CreditGBM` and :class:`CreditForest`); NaN where a member has none; None when a
        member (e.g. a scorecard) keeps none.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"util": rng.random(1500), "late": rng.integers(0, 4, 1500)})
    >>> y = (rng.random(1500) < 0.05 + 0.3 * X["util"] + 0.05 * X["late"]).astype(int)
    >>> from buyerscore.models.credit import CreditForest, CreditGBM
    >>> ens = CreditEnsemble(members=[("gbm", CreditGBM(n_estimators=100)),
    ...                               ("forest", CreditForest(n_estimators=50, min_samples_leaf=5))]).fit(X, y)
    >>> sorted(ens.weights_.items())
    [('forest', 0.5), ('gbm', 0.5)]
    """

    def __init__(self, *, members: Sequence[tuple[str, CreditModelBase] | str] | None = None,
                 weights: Sequence[float] | None = None, base_score: float = 600.0, base_odds: float = 50.0,
                 pdo: float = 20.0, grade_bands: Sequence[float] | None = None,
                 sensitive_features: Sequence[str] | str = "auto", include_sensitive: bool = False,
                 random_state: int = 0, n_jobs: int = 1) -> None:
        self.members = members
        self.weights = weights
        self.base_score = base_score
        self.base_odds = base_odds
        self.pdo = pdo
        self.grade_bands = grade_bands
        self.sensitive_features = sensitive_features
        self.include_sensitive = include_sensitive
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _preset(self, name: str) -> CreditModelBase:
        from buyerscore.models.credit.forest import CreditForest
        from buyerscore.models.credit.gbm import CreditGBM
        from buyerscore.models.credit.scorecard import CreditScorecard

        if name == "gbm":
            return CreditGBM(n_folds=5, random_state=self.random_state, n_jobs=self.n_jobs)
        if name == "forest":
            return CreditForest(random_state=self.random_state, n_jobs=self.n_jobs)
        if name == "scorecard":
            return CreditScorecard(monotonic_trend="auto_heuristic")
        raise ModelInputError(f"CreditEnsemble: unknown member name {name!r}; use one of {list(PRESET_MEMBERS)} "
                              "or pass a (name, estimator) pair.")

    def _check_params(self) -> list[tuple[str, CreditModelBase]]:
        self._check_common_params()
        n = "CreditEnsemble"
        given = list(self.members) if self.members is not None else list(DEFAULT_MEMBERS)
        members = [(m, self._preset(m)) if isinstance(m, str) else m for m in given]
        check_param(n, "members", members,
                    lambda v: len(v) >= 1 and all(isinstance(m, tuple) and len(m) == 2 and isinstance(m[0], str)
                                                  and isinstance(m[1], CreditModelBase) for m in v),
                    "a non-empty list of (name, buyerscore PD model) pairs")
        names = [m[0] for m in members]
        if len(set(names)) != len(names):
            raise ModelInputError(f"CreditEnsemble: member names must be unique; got {names}.")
        if self.weights is not None:
            check_param(n, "weights", self.weights,
                        lambda v: len(v) == len(members) and all(float(w) >= 0 for w in v) and sum(v) > 0,
                        f"{len(members)} non-negative numbers with a positive sum (one per member)")
        return members

    # ------------------------------------------------------------------ fit
    def fit(self, X: pd.DataFrame, y: Any) -> CreditEnsemble:
        """Fit every member on ``X, y``."""
        t0 = time.perf_counter()
        members = self._check_params()
        Xs, yv = self._fit_inputs(X, y)
        w = np.ones(len(members)) if self.weights is None else np.asarray(self.weights, dtype=float)
        w = w / w.sum()
        self.members_: dict[str, CreditModelBase] = {}
        self.weights_ = {name: float(wi) for (name, _), wi in zip(members, w, strict=True)}
        for name, est in members:
            m = clone(est).set_params(include_sensitive=self.include_sensitive,
                                      sensitive_features=self.sensitive_features)
            self.members_[name] = m.fit(X, yv)
        oofs = [getattr(m, "oof_proba_", None) for m in self.members_.values()]
        if all(o is not None for o in oofs):
            lg = sum(self.weights_[name] * log_odds(o) for name, o in zip(self.members_, oofs, strict=True))
            self.oof_proba_ = 1.0 / (1.0 + np.exp(-np.asarray(lg)))
        else:
            self.oof_proba_ = None
        used = {c for m in self.members_.values() for c in m.features_}
        self.features_ = [c for c in Xs.columns if c in used]
        self._finish_fit()
        self.fit_time_ = time.perf_counter() - t0
        logger.info("CreditEnsemble: members %s, weights %s, %.1fs", list(self.members_), self.weights_,
                    self.fit_time_)
        return self

    # ------------------------------------------------------------------ scoring
    def _logit(self, X: pd.DataFrame) -> np.ndarray:
        out = np.zeros(len(X))
        for name, m in self.members_.items():
            out += self.weights_[name] * m._logit(X[m.features_])
        return out

    def member_proba(self, X: Any) -> pd.DataFrame:
        """Each member's PD per row (columns = member names), for comparison and monitoring."""
        Xc = self._check_X(X)
        return pd.DataFrame({name: 1.0 / (1.0 + np.exp(-m._logit(Xc[m.features_])))
                             for name, m in self.members_.items()}, index=Xc.index)

    def contributions(self, X: Any) -> pd.DataFrame:
        """Weighted mean of the members' contributions in log-odds (> 0 = adverse).

        A scorecard member's points lost are divided by its points-per-log-odds factor; the GBM's
        and the forest's are SHAP values in log-odds already.
        """
        from buyerscore.models.credit.scorecard import CreditScorecard

        Xc = self._check_X(X)
        out = pd.DataFrame(0.0, index=Xc.index, columns=self.features_)
        for name, m in self.members_.items():
            c = m.contributions(Xc)
            if isinstance(m, CreditScorecard):
                c = c / m.factor_
            out[c.columns] += self.weights_[name] * c.to_numpy()
        return out

    def score_record(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """PD, points and grade of one record (a dict): the weighted members' log-odds."""
        self._record_values(record)  # checks fitted, fields present and numeric
        lg = sum(self.weights_[name] * float(log_odds(m.score_record(record)["pd"]))
                 for name, m in self.members_.items())
        return self._record_result(lg)
