"""Optimal monotone binning of credit features, with a fast pre-aggregated path.

Both paths hand the work to optbinning's solver (``OptimalBinning``, the estimator that
``BinningProcess`` runs per variable); buyerscore only changes *what* it is given:

* ``fast=True`` (default): the feature is first reduced to weighted counts -- one row per
  distinct value when a feature has few of them, else one row per fine quantile cell
  (``max_hist_bins``) -- and the solver runs on those few thousand weighted rows instead of
  millions of raw rows.  Optimal split points are then snapped to the next cell edge so that
  the partition of the training data (and therefore every count, WOE and IV in the table)
  is exactly the one the solver chose.
* ``fast=False``: optbinning's ``BinningProcess`` on the raw rows.

The fitted result is a small, picklable :class:`FeatureBinning` with a vectorised and a
scalar lookup (no optbinning or pandas needed at scoring time).  WOE here is oriented
toward risk: ``woe = ln(share of bads / share of goods)``, so a larger WOE means a riskier
bin (the opposite sign of optbinning's table).
"""

from __future__ import annotations

import bisect
import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, overload

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

MISSING_LABEL = "Missing"
_SMOOTH = 0.5  # added to event / non-event counts of a bin before taking the WOE log
_F32_MAX = float(np.finfo(np.float32).max)


def _for_solver(x: np.ndarray) -> np.ndarray:
    """Numeric values as optbinning's solver can take them: its pre-binning tree works in float32, so
    finite values beyond +-3.4e38 are capped there (every split it returns lies strictly between two
    float32 values, so a capped value falls in the same bin as the value itself)."""
    return np.clip(x, -_F32_MAX, _F32_MAX)


@dataclass
class FeatureBinning:
    """The fitted bins of one feature.

    Bin layout: ``n_regular`` ordinary bins, then one bin per special-code group (in the
    order of ``special_codes``), then the missing bin (which also takes categories never
    seen in training).
    """

    name: str
    dtype: Literal["numerical", "categorical"]
    splits: np.ndarray
    categories: dict[Any, int]
    special_codes: dict[str, list[float]]
    labels: list[str]
    event: np.ndarray
    nonevent: np.ndarray
    woe: np.ndarray = field(init=False)
    iv: float = field(init=False)
    trend: str = field(init=False)

    def __post_init__(self) -> None:
        e, g = self.event.astype(float), self.nonevent.astype(float)
        te, tg = max(e.sum(), 1e-12), max(g.sum(), 1e-12)
        empty = (e + g) == 0
        woe = np.log(((e + _SMOOTH) / te) / ((g + _SMOOTH) / tg))
        woe[empty] = 0.0  # a bin never seen in training is neutral
        self.woe = woe
        self.iv = float(np.sum(((e / te) - (g / tg)) * woe))
        reg = woe[: self.n_regular]
        if self.dtype == "categorical" or len(reg) < 2:
            self.trend = "none"
        elif np.all(np.diff(reg) >= -1e-12):
            self.trend = "ascending"
        elif np.all(np.diff(reg) <= 1e-12):
            self.trend = "descending"
        else:
            self.trend = "non-monotone"
        self._splits_list = [float(s) for s in self.splits]
        self._special_lookup = {float(c): self.n_regular + k
                                for k, codes in enumerate(self.special_codes.values()) for c in codes}

    @property
    def n_regular(self) -> int:
        if self.dtype == "numerical":
            return len(self.splits) + 1
        return (max(self.categories.values()) + 1) if self.categories else 1

    @property
    def missing_index(self) -> int:
        return self.n_regular + len(self.special_codes)

    @property
    def n_bins(self) -> int:
        return self.missing_index + 1

    def bin_index(self, x: Any) -> np.ndarray:
        """Bin of every value of ``x`` (array-like), as int indices into the bin layout."""
        if self.dtype == "categorical":
            s = pd.Series(np.asarray(x, dtype=object))
            idx = s.map(self.categories)
            return idx.fillna(self.missing_index).to_numpy(dtype=np.int64)
        xv = np.asarray(x, dtype=float)
        idx = np.searchsorted(self.splits, xv, side="right")
        for k, codes in enumerate(self.special_codes.values()):
            idx[np.isin(xv, codes)] = self.n_regular + k
        idx[np.isnan(xv)] = self.missing_index
        return idx

    def bin_index_one(self, v: Any) -> int:
        """Bin of one value (pure Python, for single-record scoring)."""
        if self.dtype == "categorical":
            return self.categories.get(v, self.missing_index) if v is not None else self.missing_index
        if v is None:
            return self.missing_index
        f = float(v)
        if math.isnan(f):
            return self.missing_index
        sp = self._special_lookup.get(f)
        if sp is not None:
            return sp
        return bisect.bisect_right(self._splits_list, f)

    def transform_woe(self, x: Any) -> np.ndarray:
        return self.woe[self.bin_index(x)]

    def table(self) -> pd.DataFrame:
        """Bins with counts, bad rate, WOE (risk-oriented) and IV contribution."""
        e, g = self.event.astype(float), self.nonevent.astype(float)
        n = e + g
        te, tg = max(e.sum(), 1e-12), max(g.sum(), 1e-12)
        return pd.DataFrame({
            "feature": self.name, "bin": np.arange(self.n_bins), "label": self.labels,
            "count": n, "bads": e, "bad_rate": np.where(n > 0, e / np.maximum(n, 1), np.nan),
            "woe": self.woe, "iv": ((e / te) - (g / tg)) * self.woe,
        })


def _labels_numerical(splits: np.ndarray) -> list[str]:
    if len(splits) == 0:
        return ["(-inf, inf)"]
    edges = [-np.inf, *splits.tolist(), np.inf]
    return [f"[{edges[i]:.6g}, {edges[i + 1]:.6g})" if i else f"(-inf, {edges[1]:.6g})"
            for i in range(len(edges) - 1)]


def _from_optbinning(ob: Any, name: str, dtype: Literal["numerical", "categorical"], special_codes: dict[str, list[float]],
                     reps: np.ndarray | None = None) -> FeatureBinning:
    """Convert a fitted optbinning ``OptimalBinning`` into a :class:`FeatureBinning`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optbinning's own pandas deprecation warnings
        bt = ob.binning_table.build()
    bt = bt.loc[[i for i in bt.index if i != "Totals"]]
    event = bt["Event"].to_numpy(dtype=float)
    nonevent = bt["Non-event"].to_numpy(dtype=float)
    n_special = len(special_codes) if special_codes else 1  # optbinning always has a "Special" row
    n_reg = len(bt) - n_special - 1
    if dtype == "numerical":
        splits = np.asarray(ob.splits, dtype=float)
        if reps is not None and len(splits):
            # snap each split to the next cell representative: same partition of the training cells
            pos = np.searchsorted(reps, splits, side="right")
            splits = np.unique(reps[np.minimum(pos, len(reps) - 1)])
        categories: dict[Any, int] = {}
        labels = _labels_numerical(splits)
        if len(splits) + 1 != n_reg:  # snapping merged two splits (cannot happen with distinct reps)
            raise RuntimeError(f"binning of {name!r}: {len(splits) + 1} bins after snapping, table has {n_reg}.")
    else:
        splits = np.array([], dtype=float)
        categories = {}
        labels = []
        for b, cats in enumerate(ob.splits):
            for c in list(cats):
                categories[c] = b
            labels.append("{" + ", ".join(map(str, list(cats))) + "}")
    if special_codes:
        labels += [f"special {k}: {v}" for k, v in special_codes.items()]
        sp_e, sp_g = event[n_reg:n_reg + len(special_codes)], nonevent[n_reg:n_reg + len(special_codes)]
    else:
        sp_e, sp_g = np.array([]), np.array([])
    labels.append(MISSING_LABEL)
    ev = np.r_[event[:n_reg], sp_e, event[-1]]
    ne = np.r_[nonevent[:n_reg], sp_g, nonevent[-1]]
    return FeatureBinning(name=name, dtype=dtype, splits=splits, categories=categories,
                          special_codes=dict(special_codes), labels=labels, event=ev, nonevent=ne)


def aggregate(x: np.ndarray, y: np.ndarray, *, max_hist_bins: int = 1024, sample_size: int = 500_000,
              random_state: int = 0, return_cells: bool = False) -> tuple[np.ndarray, ...]:
    """Reduce finite numeric ``x`` with 0/1 ``y`` to weighted cells.

    Returns ``(reps, n_good, n_bad)`` (and the cell of every row with ``return_cells``) where
    ``reps`` are increasing cell representatives (the lower edge of each cell; every ``x`` in
    cell ``j`` satisfies ``reps[j] <= x < reps[j+1]``).  Cells are the distinct values when
    there are at most ``max_hist_bins`` of them, else quantile cells; above 2 M rows both are
    found in a sample of ``sample_size`` rows.
    """
    n = x.size
    if n <= 2_000_000:
        # one (vectorised) sort of the rows gives the distinct values, the quantiles and the
        # cells at once: several times faster than searching every row among the cuts
        order = np.argsort(x)
        xs = x[order]
        first = np.r_[True, xs[1:] != xs[:-1]]
        u = xs[first]
        if len(u) > max_hist_bins:  # quantile cells, edges at observed values
            u = np.unique(xs[(np.arange(max_hist_bins) * n) // max_hist_bins])
        cuts = u[1:]
        m = len(cuts) + 1
        edges = np.searchsorted(xs, cuts, side="left")  # first row of each cell but the first
        bounds = np.r_[0, edges, n]
        sizes = np.diff(bounds)
        n_bad = np.diff(np.r_[0.0, np.cumsum(y[order], dtype=float)][bounds])
        n_all = sizes.astype(float)
        reps = u.copy()
        if return_cells:
            cell = np.empty(n, dtype=np.int64)
            cell[order] = np.repeat(np.arange(m), sizes)
            return reps, n_all - n_bad, n_bad, cell
        return reps, n_all - n_bad, n_bad
    # big: cuts from a sample, then every row is searched among them (no n-sized sort buffers)
    sample = x[np.random.default_rng(random_state).integers(0, n, sample_size)]
    u = np.unique(sample)
    if len(u) > max_hist_bins:
        u = np.unique(np.quantile(sample, np.linspace(0.0, 1.0, max_hist_bins + 1)[:-1]))
    cuts = u[1:]
    m = len(cuts) + 1
    cell = np.searchsorted(cuts, x, side="right")
    n_bad = np.bincount(cell, weights=y, minlength=m)
    n_all = np.bincount(cell, minlength=m).astype(float)
    reps = np.r_[min(u[0], x.min()), cuts]
    return (reps, n_all - n_bad, n_bad, cell) if return_cells else (reps, n_all - n_bad, n_bad)


@overload
def fit_feature(name: str, x: Any, y: np.ndarray, *, dtype: Literal["numerical", "categorical"] = ...,
                special_codes: Sequence[float] | Mapping[str, Sequence[float]] | None = ..., fast: bool = ...,
                max_hist_bins: int = ..., return_index: Literal[False] = ...,
                **solver_params: Any) -> FeatureBinning: ...
@overload
def fit_feature(name: str, x: Any, y: np.ndarray, *, dtype: Literal["numerical", "categorical"] = ...,
                special_codes: Sequence[float] | Mapping[str, Sequence[float]] | None = ..., fast: bool = ...,
                max_hist_bins: int = ..., return_index: Literal[True],
                **solver_params: Any) -> tuple[FeatureBinning, np.ndarray]: ...
def fit_feature(name: str, x: Any, y: np.ndarray, *, dtype: Literal["numerical", "categorical"] = "numerical",
                special_codes: Sequence[float] | Mapping[str, Sequence[float]] | None = None, fast: bool = True,
                max_hist_bins: int = 1024, return_index: bool = False,
                **solver_params: Any) -> FeatureBinning | tuple[FeatureBinning, np.ndarray]:
    """Fit optimal bins of one feature with optbinning's solver.

    Parameters
    ----------
    name : str
        Feature name (used in tables and reason codes).
    x : array-like
        Values; NaN / None are missing.
    y : ndarray
        0/1 target, 1 = bad.
    dtype : {"numerical", "categorical"}
    special_codes : sequence or mapping, optional
        Codes that get their own bin(s): a list gives one bin per code, a mapping
        ``{label: codes}`` one bin per label (e.g. ``{"96": [96], "98": [98]}``).
    fast : bool
        Pre-aggregate to weighted counts before the solver (see module docstring).
    max_hist_bins : int
        Fine cells of the pre-aggregation.
    return_index : bool
        Also return the bin index of every value of ``x`` (what ``bin_index(x)`` gives),
        reusing the pre-aggregation's cells instead of searching the splits again.
    **solver_params
        Passed to ``optbinning.OptimalBinning`` (``monotonic_trend``, ``max_n_prebins``, ...).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=5000); y = (rng.random(5000) < 1 / (1 + np.exp(-2 * x))).astype(int)
    >>> b = fit_feature("x", x, y, monotonic_trend="ascending")
    >>> b.trend, b.iv > 0.5
    ('ascending', True)
    """
    binning, idx = _fit_feature(name, x, y, dtype=dtype, special_codes=special_codes, fast=fast,
                                max_hist_bins=max_hist_bins, want_index=return_index, **solver_params)
    if not return_index:
        return binning
    return binning, (binning.bin_index(x) if idx is None else idx)


def _fit_feature(name: str, x: Any, y: np.ndarray, *, dtype: str, special_codes: Any, fast: bool,
                 max_hist_bins: int, want_index: bool, **solver_params: Any) -> tuple[FeatureBinning, np.ndarray | None]:
    """:func:`fit_feature`'s body; also returns the rows' bin indices when they come for free."""
    from optbinning import OptimalBinning

    codes = _normalise_special(special_codes)
    y = np.asarray(y, dtype=float)
    params = {"monotonic_trend": "auto_asc_desc", **solver_params}
    if dtype == "categorical":
        xs = pd.Series(np.asarray(x, dtype=object))
        miss = xs.isna().to_numpy()
        # optbinning orders categories by their unweighted event rate, so categoricals are
        # always fitted on raw rows (they are cheap: the solver sees one row per category)
        params.pop("monotonic_trend", None)
        if miss.all():  # no category at all: one empty bin, the missing bin carries every row
            bad = float(y.sum())
            return FeatureBinning(name=name, dtype="categorical", splits=np.array([], dtype=float), categories={},
                                  special_codes={}, labels=["{}", MISSING_LABEL], event=np.array([0.0, bad]),
                                  nonevent=np.array([0.0, len(y) - bad])), None
        ob = OptimalBinning(name=name, dtype="categorical", **params)
        ob.fit(xs.where(~miss, np.nan).to_numpy(), y.astype(int))
        return _from_optbinning(ob, name, "categorical", {}), None

    xv = np.asarray(x, dtype=float)
    if not fast:
        ob = OptimalBinning(name=name, dtype="numerical", special_codes=codes or None, **params)
        ob.fit(_for_solver(xv), y.astype(int))
        return _from_optbinning(ob, name, "numerical", codes), None
    is_nan = np.isnan(xv)
    is_sp = np.isin(xv, [c for cs in codes.values() for c in cs]) if codes else np.zeros(xv.size, bool)
    clean = ~(is_nan | is_sp)
    xs_, ys_ = [], []
    ws_: list[np.ndarray] = []
    reps = None
    cell_list: list[np.ndarray] = []
    if clean.all():  # no masked copies of (possibly) millions of rows
        reps, n_good, n_bad, *cell_list = aggregate(xv, y, max_hist_bins=max_hist_bins, return_cells=want_index)
        xs_ += [reps, reps]
        ys_ += [np.zeros(len(reps)), np.ones(len(reps))]
        ws_ += [n_good, n_bad]
    elif clean.any():
        reps, n_good, n_bad, *cell_list = aggregate(xv[clean], y[clean], max_hist_bins=max_hist_bins,
                                                    return_cells=want_index)
        xs_ += [reps, reps]
        ys_ += [np.zeros(len(reps)), np.ones(len(reps))]
        ws_ += [n_good, n_bad]
    for cs in codes.values():
        for c in cs:
            sel = xv == c
            if sel.any():
                b = y[sel].sum()
                xs_ += [np.array([c, c])]
                ys_ += [np.array([0.0, 1.0])]
                ws_ += [np.array([sel.sum() - b, b])]
    if is_nan.any():
        b = y[is_nan].sum()
        xs_ += [np.array([np.nan, np.nan])]
        ys_ += [np.array([0.0, 1.0])]
        ws_ += [np.array([is_nan.sum() - b, b])]
    if reps is None:
        # no ordinary value at all (every row missing or a special code): nothing to split,
        # one empty regular bin, the special and missing bins carry the rows
        splits = np.array([], dtype=float)
        reps, n_good, n_bad, cell_list = np.array([0.0]), np.zeros(1), np.zeros(1), [np.zeros(0, dtype=np.int64)]
    else:
        xa, ya, wa = np.concatenate(xs_), np.concatenate(ys_), np.concatenate(ws_)
        keep = wa > 0
        ob = OptimalBinning(name=name, dtype="numerical", special_codes=codes or None, **params)
        ob.fit(_for_solver(xa[keep]), ya[keep].astype(int), sample_weight=wa[keep])
        splits = np.asarray(ob.splits, dtype=float)
    # the solver only chose the splits: every count is already known from the cells, so the
    # bins are built directly (optbinning's binning table would re-validate all the rows)
    if len(splits):
        pos = np.searchsorted(reps, splits, side="right")
        splits = np.unique(reps[np.minimum(pos, len(reps) - 1)])
    cell_bin = np.searchsorted(splits, reps, side="right")
    n_reg = len(splits) + 1
    ev = [np.bincount(cell_bin, weights=n_bad, minlength=n_reg)]
    ne = [np.bincount(cell_bin, weights=n_good, minlength=n_reg)]
    idx: np.ndarray | None = None
    if want_index:
        if clean.all():
            idx = cell_bin[cell_list[0]]
        else:
            idx = np.empty(xv.size, dtype=np.int64)
            idx[clean] = cell_bin[cell_list[0]]
    for k, cs in enumerate(codes.values()):
        sel = np.isin(xv, cs)
        if idx is not None:
            idx[sel] = n_reg + k
        b = float(y[sel].sum())
        ev.append(np.array([b]))
        ne.append(np.array([sel.sum() - b]))
    b = float(y[is_nan].sum())
    ev.append(np.array([b]))
    ne.append(np.array([is_nan.sum() - b]))
    if idx is not None:
        idx[is_nan] = n_reg + len(codes)
    labels = _labels_numerical(splits) + [f"special {k}: {v}" for k, v in codes.items()] + [MISSING_LABEL]
    return FeatureBinning(name=name, dtype="numerical", splits=splits, categories={}, special_codes=dict(codes),
                          labels=labels, event=np.concatenate(ev), nonevent=np.concatenate(ne)), idx


def fit_process(X: pd.DataFrame, y: np.ndarray, *, categorical: Sequence[str],
                special_codes: Mapping[str, Any], **solver_params: Any) -> dict[str, FeatureBinning]:
    """The exact path: optbinning's ``BinningProcess`` on the raw rows of every column of ``X``.

    A column with no ordinary value (every row missing or a special code) leaves the solver nothing
    to split: it gets :func:`fit_feature`'s bins (one empty ordinary bin; the special and missing
    bins carry the rows), as on the fast path.
    """
    from optbinning import BinningProcess

    params = {"monotonic_trend": "auto_asc_desc", **solver_params}
    columns = list(X.columns)
    out: dict[str, FeatureBinning] = {}
    for c in columns:  # no ordinary value (all missing or special codes): nothing for the solver to split
        if c in categorical:
            if X[c].isna().all():
                out[c] = fit_feature(c, X[c].to_numpy(), y, dtype="categorical", **params)  # type: ignore[assignment]
            continue
        codes = _normalise_special(special_codes.get(c))
        x = X[c].to_numpy(dtype=float, na_value=np.nan)
        if not (~np.isnan(x) & ~np.isin(x, [v for vs in codes.values() for v in vs])).any():
            out[c] = fit_feature(c, x, y, special_codes=codes, **params)  # type: ignore[assignment]
    rest = [c for c in columns if c not in out]
    if rest:
        cat = [c for c in categorical if c in rest]
        fit_params = {}
        for c in rest:
            p = dict(params)
            if c in cat:
                p.pop("monotonic_trend", None)
            codes = _normalise_special(special_codes.get(c))
            if codes and c not in cat:
                p["special_codes"] = codes
            fit_params[c] = p
        top = {k: solver_params[k] for k in ("max_n_prebins", "min_prebin_size", "min_bin_size", "max_n_bins")
               if k in solver_params}
        bp = BinningProcess(rest, categorical_variables=cat, binning_fit_params=fit_params, **top)
        Xc = X[rest].copy()
        for c in rest:
            Xc[c] = Xc[c].astype(object) if c in cat else _for_solver(Xc[c].to_numpy(dtype=float, na_value=np.nan))
        bp.fit(Xc, np.asarray(y).astype(int))
        for c in rest:
            ob = bp.get_binned_variable(c)
            dtype: Literal["numerical", "categorical"] = "categorical" if c in cat else "numerical"
            out[c] = _from_optbinning(ob, c, dtype, _normalise_special(special_codes.get(c)) if dtype == "numerical"
                                      else {})
    return {c: out[c] for c in columns}


def _normalise_special(codes: Sequence[float] | Mapping[str, Sequence[float]] | None) -> dict[str, list[float]]:
    if codes is None:
        return {}
    if isinstance(codes, Mapping):
        out: dict[str, list[float]] = {}
        for k, vs in codes.items():
            many: Any = vs if isinstance(vs, (list, tuple, np.ndarray)) else [vs]  # one code or several
            out[str(k)] = [float(v) for v in many]
        return out
    return {_code_label(c): [float(c)] for c in codes}


def _code_label(c: float) -> str:
    f = float(c)
    return str(int(f)) if math.isfinite(f) and f.is_integer() else str(f)
