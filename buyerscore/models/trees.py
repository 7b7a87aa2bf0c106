"""Compiled evaluation of fitted tree ensembles: the batch-scoring fast path.

A fitted LightGBM booster or scikit-learn isolation forest is flattened once into node arrays and
evaluated by a small `numba <https://numba.pydata.org>`_ kernel that gives the library's own result,
bit for bit (tested on real data):

- LightGBM (:class:`BoostedTrees`): the bit-vector algorithm of QuickScorer (Lucchese et al., SIGIR
  2015): each tree's node tests are independent, so they are evaluated for 64 rows at once in
  vectorised loops with no branches, and each row's leaf is the lowest set bit of its leaf mask
  (32-bit when every tree has at most 32 leaves, else 64-bit); up to ``_SCALAR_ROWS`` (4) rows, as in
  one API call, each row's node tests run alone instead of filling a 64-lane block (GMSC GBM
  ``score_record`` median 94 -> 35 us, ``benchmarks/credit.py``).  The decision
  rules are LightGBM's: ``value <= threshold`` goes left; NaN goes the node's default direction
  (``missing_type`` NaN) or counts as 0 (``None``); ``|x| <= 1e-35`` counts as 0, as in LightGBM's
  dense-row reader; +-inf and huge values are compared as they are.  Thresholds are the model's own
  (``dump_model`` prints ``|threshold| >= 1e300`` as +-1e300, e.g. ``inf`` for the split of NaN from
  every value, so those are read from ``model_to_string``).  Leaf values are summed tree by tree per
  class, in LightGBM's order, so ``raw_score`` equals ``Booster.predict(raw_score=True)`` exactly.
- isolation forest (:class:`IsolationTrees`): float32 inputs, ``value <= threshold`` goes left; each
  leaf holds the path length ``score_samples`` adds for it; trees with at most 64 leaves take the same
  bit-vector algorithm, larger ones are walked by 64 rows together.

Why: LightGBM's ``predict`` costs ~18 ns per tree and row (one thread) and scikit-learn dispatches each
isolation tree separately; the kernels cost ~2.5 ns per tree and row for 15-leaf boosters, run without
the GIL (the batch scorer's threads score chunks in parallel) and have almost no per-call overhead
(one-user API calls).

Without numba (or with ``BUYERSCORE_COMPILED_TREES=0``) every caller falls back to the library's own
``predict``; so does any booster the kernel does not cover (categorical or zero-as-missing splits,
linear trees, more than 64 leaves per tree).

Examples
--------
>>> import lightgbm as lgb
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(500, 3)); X[::7, 1] = np.nan
>>> y = X[:, 0] + np.nan_to_num(X[:, 1]) + rng.normal(size=500)
>>> m = lgb.LGBMRegressor(n_estimators=20, verbose=-1).fit(X, y)
>>> bool(np.array_equal(raw_score(m, X), m.predict(X, raw_score=True)))
True
"""

from __future__ import annotations

import functools
import logging
import math
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

try:  # numba is optional: without it every caller uses the library's own predict
    import numba as _nb
except ImportError:  # pragma: no cover - exercised only without numba
    _nb = None  # type: ignore[assignment]


def enabled() -> bool:
    """True when the compiled path is available and not switched off (``BUYERSCORE_COMPILED_TREES=0``)."""
    return _nb is not None and os.environ.get("BUYERSCORE_COMPILED_TREES", "1").strip().lower() not in (
        "0", "false", "no", "off")


_DEBRUIJN_TABLE = np.zeros(64, dtype=np.int64)
for _i in range(64):
    _DEBRUIJN_TABLE[((1 << _i) * 0x03F79D71B4CB0A89 & 0xFFFFFFFFFFFFFFFF) >> 58] = _i
_MAX_LEAVES = 64
"""Leaves per tree the bit-vector kernel handles (one 64-bit mask per tree)."""


class _BitVectorTrees:
    """Collects trees for the bit-vector kernel: per tree its internal nodes (in pre-order) with the
    mask that clears their left subtree's leaves, and its leaf values numbered left to right."""

    def __init__(self) -> None:
        self.feature: list[int] = []
        self.threshold: list[float] = []
        self.nan_left: list[int] = []
        self.mask: list[int] = []
        self.node_start: list[int] = []
        self.leaf_value: list[float] = []
        self.leaf_start: list[int] = []

    def add(self, root: Any, describe: Any) -> None:
        """Add one tree.  ``describe(node)`` returns ``(leaf_value, None)`` for a leaf and
        ``(None, (feature, threshold, nan_left, left_node, right_node))`` for a split."""
        self.node_start.append(len(self.feature))
        l0 = len(self.leaf_value)
        self.leaf_start.append(l0)

        def walk(node: Any) -> tuple[int, int]:  # the subtree's leaf range [lo, hi)
            value, split = describe(node)
            if split is None:
                self.leaf_value.append(float(value))
                i = len(self.leaf_value) - 1 - l0
                return i, i + 1
            feat, thr, nan_left, left, right = split
            j = len(self.feature)
            self.feature.append(int(feat))
            self.threshold.append(float(thr))
            self.nan_left.append(int(bool(nan_left)))
            self.mask.append(0)
            lo, mid = walk(left)
            _, hi = walk(right)
            if hi > _MAX_LEAVES:
                raise NotImplementedError(f"trees with more than {_MAX_LEAVES} leaves are not compiled")
            self.mask[j] = ~(((1 << (mid - lo)) - 1) << lo) & 0xFFFFFFFFFFFFFFFF
            return lo, hi

        walk(root)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"feature": np.asarray(self.feature, dtype=np.int32),
                "threshold": np.asarray(self.threshold, dtype=np.float64),
                "nan_left": np.asarray(self.nan_left, dtype=np.uint64),
                "mask": np.asarray(self.mask, dtype=np.uint64),
                "node_start": np.asarray([*self.node_start, len(self.feature)], dtype=np.int32),
                "leaf_value": np.asarray(self.leaf_value, dtype=np.float64),
                "leaf_start": np.asarray(self.leaf_start, dtype=np.int32)}


@dataclass(frozen=True)
class BoostedTrees:
    """A LightGBM booster as flat arrays for the bit-vector ("QuickScorer") kernel.

    Every internal node of tree ``t`` (``node_start[t]:node_start[t + 1]``) is tested for every row:
    a node whose test sends the row right (``x[feature] > threshold``, or NaN when NaN goes right)
    clears the bits of the leaves of its left subtree in the tree's 64-bit leaf mask; the row's leaf
    is the lowest bit left (leaves numbered left to right).  The tests are independent of each other,
    so the kernel evaluates them for a block of rows at once (vectorised), with no branches.
    """

    feature: np.ndarray      # int32, per internal node
    threshold: np.ndarray    # float64
    nan_left: np.ndarray     # uint64 (0/1): where a NaN goes
    mask: np.ndarray         # uint64: the leaf mask applied when the row goes right
    node_start: np.ndarray   # int32, per tree + 1
    leaf_value: np.ndarray   # float64
    leaf_start: np.ndarray   # int32, per tree
    out_col: np.ndarray      # int32, per tree
    n_outputs: int
    n_features: int
    feature_names: tuple[str, ...] = ()
    objective: str = ""      # LightGBM objective, e.g. "binary sigmoid:1", "gamma", "multiclass num_class:3"

    @property
    def n_trees(self) -> int:
        return int(self.leaf_start.shape[0])

    @functools.cached_property
    def row_index(self) -> np.ndarray:
        """Row of the kernel's feature block each node reads: ``2 * feature + nan_left`` (the copy of
        the feature with NaN as -inf when NaN goes left, as NaN -- never ``<=`` a threshold -- when it
        goes right)."""
        return (2 * self.feature.astype(np.int64) + self.nan_left.astype(np.int64)).astype(np.int32)

    @functools.cached_property
    def kernel_mask(self) -> tuple[np.ndarray, np.ndarray]:
        """``mask`` as the kernel takes it, with its all-ones value (a 1-element array of the same type):
        32-bit when every tree has at most 32 leaves (the upper 32 bits of every mask are then all ones,
        so dropping them changes nothing, and a row's mask always keeps its leaf's bit), else 64-bit."""
        leaves = np.diff(np.r_[self.leaf_start, len(self.leaf_value)])
        if leaves.size == 0 or int(leaves.max()) <= 32:
            return (self.mask & np.uint64(0xFFFFFFFF)).astype(np.uint32), np.full(1, 0xFFFFFFFF, dtype=np.uint32)
        return self.mask, np.full(1, 0xFFFFFFFFFFFFFFFF, dtype=np.uint64)

    @classmethod
    def from_lightgbm(cls, booster: Any, num_iteration: int | None = None) -> BoostedTrees:
        """Flatten a :class:`lightgbm.Booster` (numeric splits, constant leaves, <= 64 leaves per tree).

        ``num_iteration`` as in ``Booster.predict``: None = the best iteration when early stopping
        recorded one, else all; <= 0 = all.

        Raises
        ------
        NotImplementedError
            For categorical or zero-as-missing splits, linear trees, averaged (random forest) output
            or trees with more than 64 leaves.
        """
        dump = booster.dump_model(num_iteration=-1)
        if dump.get("average_output"):
            raise NotImplementedError("random-forest boosters (average_output) are not compiled")
        k = int(dump.get("num_tree_per_iteration", 1))
        if num_iteration is None:
            num_iteration = int(getattr(booster, "best_iteration", 0) or 0)
        trees = dump["tree_info"]
        if num_iteration and num_iteration > 0:
            trees = trees[: num_iteration * k]
        col = _BitVectorTrees()
        exact: list[list[float]] = []  # per tree, its thresholds by split_index (read when needed)
        tree_no = 0

        def describe(node: dict[str, Any]) -> tuple[Any, Any]:
            if "split_feature" not in node:
                if node.get("leaf_coeff"):
                    raise NotImplementedError("linear trees are not compiled")
                return node["leaf_value"], None
            if node.get("decision_type", "<=") != "<=":
                raise NotImplementedError("categorical splits are not compiled")
            missing = node.get("missing_type", "None")
            if missing not in ("None", "NaN"):
                raise NotImplementedError(f"missing_type {missing!r} splits are not compiled")
            thr = float(node["threshold"])
            if abs(thr) >= _DUMP_CLAMP:  # dump_model prints AvoidInf(threshold): the true one may be larger
                if not exact:
                    exact.extend(_model_thresholds(booster))
                thr = exact[tree_no][int(node["split_index"])]
            if math.isnan(thr):
                raise NotImplementedError("NaN split thresholds are not compiled")
            # NaN: missing_type NaN -> the default direction; None -> LightGBM reads it as 0.0
            nan_left = bool(node.get("default_left", False)) if missing == "NaN" else 0.0 <= thr
            return None, (node["split_feature"], thr, nan_left, node["left_child"], node["right_child"])

        for t in trees:
            if t.get("is_linear"):
                raise NotImplementedError("linear trees are not compiled")
            tree_no = int(t.get("tree_index", tree_no))
            col.add(t["tree_structure"], describe)
            tree_no += 1
        return cls(**col.arrays(), out_col=np.asarray([i % k for i in range(len(trees))], dtype=np.int32),
                   n_outputs=k, n_features=int(dump.get("max_feature_idx", -1)) + 1,
                   feature_names=tuple(dump.get("feature_names") or ()), objective=str(dump.get("objective", "")))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Raw score per row, as ``Booster.predict(X, raw_score=True)``: ``(n,)`` or ``(n, n_outputs)``."""
        XT = _feature_major(X, np.float64, self.n_features)
        out = np.zeros((XT.shape[1], self.n_outputs), dtype=np.float64)
        mask, full = self.kernel_mask
        _kernels()[0](XT, self.row_index, self.threshold, mask, full, self.node_start, self.leaf_value,
                      self.leaf_start, self.out_col, out)
        return out[:, 0] if self.n_outputs == 1 else out


_DUMP_CLAMP = 1e300
"""``Booster.dump_model`` writes thresholds through LightGBM's ``AvoidInf``: ``|t| >= 1e300`` as +-1e300."""


def _model_thresholds(booster: Any) -> list[list[float]]:
    """Every tree's split thresholds, by split index, as the booster holds them (``model_to_string``
    writes them in full: ``inf`` and values beyond 1e300 that ``dump_model`` clamps)."""
    out: list[list[float]] = []
    for line in booster.model_to_string(num_iteration=-1).splitlines():
        if line.startswith("Tree="):
            out.append([])
        elif line.startswith("threshold=") and out:
            out[-1] = [float(v) for v in line[len("threshold="):].split()]
    return out


def isolation_tree_arrays(tree: Any, path_lengths: np.ndarray, average_path: np.ndarray,
                          offset: int = 0) -> dict[str, Any]:
    """One fitted isolation tree (``forest.estimators_[i]`` with the forest's ``_decision_path_lengths[i]``
    and ``_average_path_length_per_tree[i]``) as node arrays for a fixed-depth walk: a node sends a row
    to ``left`` when ``x[feature] <= threshold`` (x as float32), else to ``right``; a leaf points to
    itself and holds the path length ``score_samples`` adds for it.  Node ids start at ``offset``."""
    t = tree.tree_
    leaf = t.children_left < 0
    ids = np.arange(t.node_count)
    return {"feature": np.where(leaf, 0, t.feature), "threshold": np.where(leaf, np.inf, t.threshold),
            "left": np.where(leaf, ids, t.children_left) + offset,
            "right": np.where(leaf, ids, t.children_right) + offset,
            "value": np.where(leaf, path_lengths + average_path - 1.0, 0.0), "depth": int(t.max_depth),
            "n_nodes": int(t.node_count)}


@dataclass(frozen=True)
class IsolationTrees:
    """A fitted :class:`sklearn.ensemble.IsolationForest` as flat arrays for two kernels, tree by tree.

    A tree with at most 64 leaves (most of them: ``max_samples=256`` trees have ~45) is evaluated like
    a booster (:class:`BoostedTrees`: every node test for 64 rows at once, the leaf from a 64-bit mask);
    a larger one is walked: node ``k`` sends a row to ``child[2k]`` when ``x[feature[k]] <= threshold[k]``,
    else to ``child[2k + 1]``, and a leaf points to itself, so every row takes exactly ``depth`` steps.
    Leaves hold the path length ``score_samples`` adds for them; trees are summed in their order, with x
    compared as float32 (as scikit-learn does), so :meth:`predict` gives scikit-learn's summed depths.
    """

    kind: np.ndarray         # int8 per tree: 0 = bit-vector arrays, 1 = walk arrays
    index: np.ndarray        # int32 per tree: its number among the trees of its kind
    q_feature: np.ndarray    # bit-vector trees (as BoostedTrees; no missing values)
    q_threshold: np.ndarray  # float32: each threshold floored to float32 (exact for float32 inputs)
    q_mask: np.ndarray
    q_node_start: np.ndarray
    q_leaf_value: np.ndarray
    q_leaf_start: np.ndarray
    w_feature: np.ndarray    # walked trees, per node (leaves included)
    w_threshold: np.ndarray  # float32, floored likewise
    w_child: np.ndarray
    w_value: np.ndarray
    w_root: np.ndarray
    w_depth: np.ndarray
    n_features: int

    @property
    def n_trees(self) -> int:
        return int(self.kind.shape[0])

    @classmethod
    def from_isolation_forest(cls, forest: Any) -> IsolationTrees:
        kind: list[int] = []
        index: list[int] = []
        col = _BitVectorTrees()
        wf: list[Any] = []
        wt: list[Any] = []
        wc: list[Any] = []
        wv: list[Any] = []
        wr: list[Any] = []
        wd: list[Any] = []
        off = 0
        for tree, dpl, apl in zip(forest.estimators_, forest._decision_path_lengths,
                                  forest._average_path_length_per_tree, strict=True):
            t = tree.tree_
            leaf = t.children_left < 0
            add = dpl + apl - 1.0  # what score_samples adds for a row ending in that leaf
            if int(leaf.sum()) <= _MAX_LEAVES:
                kind.append(0)
                index.append(len(col.leaf_start))
                col.add(0, lambda j, t=t, add=add: (add[j], None) if t.children_left[j] < 0 else
                        (None, (t.feature[j], t.threshold[j], False, t.children_left[j], t.children_right[j])))
            else:
                kind.append(1)
                index.append(len(wr))
                w = isolation_tree_arrays(tree, dpl, apl, off)
                wf.append(w["feature"])
                wt.append(w["threshold"])
                wc.append(np.column_stack([w["left"], w["right"]]).ravel())
                wv.append(w["value"])
                wr.append(off)
                wd.append(w["depth"])
                off += w["n_nodes"]

        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

        q = col.arrays()
        return cls(kind=np.asarray(kind, dtype=np.int8), index=np.asarray(index, dtype=np.int32),
                   q_feature=q["feature"], q_threshold=_floor32(q["threshold"]), q_mask=q["mask"],
                   q_node_start=q["node_start"], q_leaf_value=q["leaf_value"], q_leaf_start=q["leaf_start"],
                   w_feature=cat(wf, np.int32), w_threshold=_floor32(cat(wt, np.float64)), w_child=cat(wc, np.int32),
                   w_value=cat(wv, np.float64), w_root=np.asarray(wr, dtype=np.int32),
                   w_depth=np.asarray(wd, dtype=np.int32), n_features=int(forest.n_features_in_))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Summed path lengths per row (``-log2(-score_samples) * denominator``)."""
        XT = _feature_major(X, np.float32, self.n_features)  # scikit-learn trees compare float32 inputs
        out = np.zeros(XT.shape[1], dtype=np.float64)
        _kernels()[1](XT, self.kind, self.index, self.q_feature, self.q_threshold, self.q_mask, self.q_node_start,
                      self.q_leaf_value, self.q_leaf_start, self.w_feature, self.w_threshold, self.w_child,
                      self.w_value, self.w_root, self.w_depth, out)
        return out


def _floor32(threshold: np.ndarray) -> np.ndarray:
    """The largest float32 <= each float64 threshold: for a float32 ``x``, ``x <= t`` exactly when
    ``x <= _floor32(t)``, so the isolation kernel compares in float32 (twice the lanes per vector)."""
    with np.errstate(over="ignore"):  # beyond float32's range: +-inf, then floored to its largest value
        t = threshold.astype(np.float32)
    above = t.astype(np.float64) > threshold
    t[above] = np.nextafter(t[above], np.float32(-np.inf))
    return t


def _feature_major(X: Any, dtype: Any, n_features: int) -> np.ndarray:
    """``X`` (rows x features) as a C-contiguous (features x rows) array of ``dtype``.

    A pandas frame's ``to_numpy()`` is column-major already, so its transpose needs no copy; the
    kernels read each feature's values for a block of rows from one contiguous run.
    """
    A = np.asarray(X)
    if A.ndim != 2 or A.shape[1] != n_features:
        raise ValueError(f"expected a 2-d array with {n_features} columns, got shape {A.shape}")
    return np.ascontiguousarray(A.T, dtype=dtype)


_JITTED: dict[Any, Any] = {}
_KERNEL_LOCK = threading.Lock()


def jit(func: Any) -> Any:
    """``func`` compiled by numba (no GIL, cached on disk by numba), once per process, on first use."""
    with _KERNEL_LOCK:
        kernel = _JITTED.get(func)
        if kernel is None:
            kernel = _JITTED[func] = _nb.njit(nogil=True, cache=True)(func)
    return kernel


def _kernels() -> tuple[Any, Any]:
    """The boosted-tree and isolation-tree kernels."""
    return jit(_boosted_kernel), jit(_isolation_kernel)


def _tree_masks(Xt, rows, threshold, mask, full, k0, k1, m):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """The bit-vector step shared by both kernels: nodes ``k0:k1`` of one tree tested for all 64 lanes
    of the block (a node reads row ``rows[k]`` of ``Xt``); ``m`` ends as each lane's leaf mask.  Masks
    are ``mask``'s integer type (32 bits for trees of <= 32 leaves: half the memory traffic); ``full``
    is that type's all-ones value."""
    for i in range(64):  # all lanes, also past the last row of a short final block: a fixed trip count
        m[i] = full      # vectorises better; those lanes are computed and never read back
    for k in range(k0, k1):
        row = Xt[rows[k]]
        th = threshold[k]
        mk = mask[k]
        for i in range(64):
            m[i] = m[i] if row[i] <= th else m[i] & mk


def _put_value(Xt, f, lane, v):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """Write feature ``f``'s value ``v`` into lane ``lane`` of both copies of its block, as LightGBM reads
    it: row 2f with NaN as NaN (``NaN <= t`` is false: it goes right at every threshold), row 2f + 1 with
    NaN as -inf (goes left at every threshold); |v| <= 1e-35f counts as 0.  Every other value, +-inf
    included, is compared as it is, with thresholds of +-inf too (``inf <= inf``: left, as in LightGBM)."""
    kz = 1.0000000180025095e-35
    v = 0.0 if (v >= -kz and v <= kz) else v  # NaN fails both tests and stays NaN
    Xt[2 * f, lane] = v
    Xt[2 * f + 1, lane] = -np.inf if v != v else v  # noqa: PLR0124 - NaN


def _first_leaf_debruijn(mm):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """Index of the lowest set bit of the 64-bit ``mm`` by de Bruijn multiplication (without numba's
    ``trailing_zeros``)."""
    return _DEBRUIJN_TABLE[((mm & (~mm + np.uint64(1))) * np.uint64(0x03F79D71B4CB0A89)) >> np.uint64(58)]


if _nb is not None:  # compiled into the kernels that call them (inline), so never called from Python
    _tree_masks = _nb.njit(inline="always")(_tree_masks)
    _put_value = _nb.njit(inline="always")(_put_value)
    try:  # LLVM's cttz: one instruction (tzcnt), for 32- and 64-bit masks alike
        from numba.cpython.unsafe.numbers import trailing_zeros as _first_leaf
    except ImportError:  # pragma: no cover - older or future numba without it
        _first_leaf = _nb.njit(inline="always")(_first_leaf_debruijn)  # type: ignore[assignment]


#: Up to this many rows the boosted kernel tests each row's nodes alone instead of a 64-lane block.
_SCALAR_ROWS = 4


def _boosted_kernel(XT, row_index, threshold, mask, full, node_start, leaf_value, leaf_start, out_col, out):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    n_feat, n = XT.shape
    # two copies of each feature's block (see _put_value); a node reads the copy of its NaN direction
    Xt = np.zeros((2 * n_feat, 64))
    m = np.empty(64, dtype=mask.dtype)
    n_out = out.shape[1]
    acc = np.zeros((n_out, 64))  # the block's sums, contiguous per output (vectorised adds)
    ones = full[0]
    if n <= _SCALAR_ROWS:  # a few rows (one API call): walk each row's node tests alone, not 64 lanes
        for i in range(n):
            for f in range(n_feat):
                _put_value(Xt, f, 0, XT[f, i])
            for c in range(n_out):
                acc[c, 0] = 0.0
            for t in range(leaf_start.shape[0]):
                mm = ones
                for k in range(node_start[t], node_start[t + 1]):
                    if not Xt[row_index[k], 0] <= threshold[k]:
                        mm &= mask[k]
                acc[out_col[t], 0] += leaf_value[leaf_start[t] + _first_leaf(mm)]
            for c in range(n_out):
                out[i, c] = acc[c, 0]
        return
    for b0 in range(0, n, 64):
        nb = min(64, n - b0)
        for f in range(n_feat):
            for i in range(nb):
                _put_value(Xt, f, i, XT[f, b0 + i])
        acc[:] = 0.0
        for t in range(leaf_start.shape[0]):  # trees in LightGBM's order: the same sums, bit for bit
            _tree_masks(Xt, row_index, threshold, mask, ones, node_start[t], node_start[t + 1], m)
            ls = leaf_start[t]
            a = acc[out_col[t]]
            for i in range(64):
                a[i] += leaf_value[ls + _first_leaf(m[i])]
        for c in range(n_out):
            for i in range(nb):
                out[b0 + i, c] = acc[c, i]


def _isolation_kernel(XT, kind, index, q_feature, q_threshold, q_mask, q_node_start, q_leaf_value, q_leaf_start,  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
                      w_feature, w_threshold, w_child, w_value, w_root, w_depth, out):
    n_feat, n = XT.shape
    Xt = np.zeros((n_feat, 64), dtype=np.float32)  # thresholds are floored to float32 (_floor32)
    m = np.empty(64, dtype=np.uint64)
    ones = ~np.uint64(0)
    node = np.empty(64, dtype=np.int64)
    for b0 in range(0, n, 64):
        nb = min(64, n - b0)
        for f in range(n_feat):
            for i in range(nb):
                Xt[f, i] = XT[f, b0 + i]
        for t in range(kind.shape[0]):
            j = index[t]
            if kind[t] == 0:
                _tree_masks(Xt, q_feature, q_threshold, q_mask, ones, q_node_start[j], q_node_start[j + 1], m)
                ls = q_leaf_start[j]
                for i in range(nb):
                    out[b0 + i] += q_leaf_value[ls + _first_leaf(m[i])]
            else:
                r = w_root[j]
                for i in range(nb):
                    node[i] = r
                for _ in range(w_depth[j]):
                    for i in range(nb):
                        k = node[i]
                        node[i] = w_child[2 * k + np.int64(not (Xt[w_feature[k], i] <= w_threshold[k]))]
                for i in range(nb):
                    out[b0 + i] += w_value[node[i]]


# -- cached per fitted model ------------------------------------------------------------------------
_CACHE: weakref.WeakKeyDictionary[Any, dict[int | None, BoostedTrees | IsolationTrees | None]] = (
    weakref.WeakKeyDictionary())
_CACHE_LOCK = threading.Lock()


def _booster(model: Any) -> Any:
    b = getattr(model, "booster_", None)
    return b if b is not None else model


def flat_trees(model: Any, num_iteration: int | None = None) -> BoostedTrees | IsolationTrees | None:
    """The cached :class:`BoostedTrees` / :class:`IsolationTrees` of a LightGBM model/booster or
    isolation forest, or None when the compiled path is off or does not cover the model.

    ``num_iteration`` (LightGBM) as in ``Booster.predict``: None = the best iteration if recorded.
    """
    if not enabled():
        return None
    obj = _booster(model)
    try:
        with _CACHE_LOCK:
            per = _CACHE.get(obj)
            if per is not None and num_iteration in per:
                return per[num_iteration]
    except TypeError:  # not weak-referenceable
        return None
    flat: BoostedTrees | IsolationTrees | None
    try:
        if hasattr(obj, "dump_model"):
            flat = BoostedTrees.from_lightgbm(obj, num_iteration)
        elif hasattr(obj, "estimators_") and hasattr(obj, "_decision_path_lengths"):
            flat = IsolationTrees.from_isolation_forest(obj)
        else:
            flat = None
    except (NotImplementedError, KeyError, AttributeError, ValueError) as e:
        logger.debug("tree ensemble not compiled (%s); using the library's predict", e)
        flat = None
    with _CACHE_LOCK:
        _CACHE.setdefault(obj, {})[num_iteration] = flat
    return flat


def _matrix(flat: BoostedTrees, X: Any) -> np.ndarray | None:
    """``X`` as the float64 matrix the booster was trained on, or None (LightGBM's own ``predict``
    then checks and converts) when its columns, their order or their types do not simply match."""
    cols = getattr(X, "columns", None)
    try:
        if cols is not None:
            if flat.feature_names and tuple(str(c) for c in cols) != flat.feature_names:
                return None
            if not all(getattr(dt, "kind", "O") in "biuf" for dt in X.dtypes):  # e.g. pandas categoricals
                return None
            A = X.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            A = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return A if A.ndim == 2 and A.shape[1] == flat.n_features else None


def raw_score(model: Any, X: Any, num_iteration: int | None = None) -> np.ndarray:
    """``model.predict(X, raw_score=True, num_iteration=num_iteration)`` of a LightGBM model/booster, by
    the compiled kernel when possible.

    ``X`` is a 2-d array or a DataFrame with the model's feature columns, in its order.
    """
    flat = flat_trees(model, num_iteration)
    if isinstance(flat, BoostedTrees):
        A = _matrix(flat, X)
        if A is not None:
            return flat.predict(A)
    return np.asarray(model.predict(X, raw_score=True, num_iteration=num_iteration))


_EXP_LINK = ("gamma", "tweedie", "poisson")
_IDENTITY_LINK = ("regression", "regression_l2", "l2", "mean_squared_error", "mse", "regression_l1", "l1",
                  "huber", "fair", "quantile", "mape")


def predict(model: Any, X: Any) -> np.ndarray:
    """What LightGBM's ``predict`` returns for a regressor (``exp`` of the raw score for gamma /
    tweedie / poisson, the raw score for L2-type objectives), or the probability of the positive
    class for a binary classifier (``predict_proba(X)[:, 1]``); computed from :func:`raw_score`.

    Other objectives (multiclass, ranking, cross-entropy, ...) go to the model's own ``predict``.
    The link functions are numpy's, so results may differ from LightGBM's in the last bit.
    """
    flat = flat_trees(model)
    if isinstance(flat, BoostedTrees) and flat.n_outputs == 1:
        name, *params = flat.objective.split()
        A = _matrix(flat, X)
        if A is not None:
            if name == "binary":
                sig = dict(p.split(":", 1) for p in params if ":" in p).get("sigmoid", "1")
                return 1.0 / (1.0 + np.exp(-float(sig) * flat.predict(A)))
            if name in _EXP_LINK:
                return np.exp(flat.predict(A))
            if name in _IDENTITY_LINK and not any(p.startswith("sqrt") for p in params):  # reg_sqrt squares
                return flat.predict(A)
    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X))
        if proba.ndim != 2 or proba.shape[1] != 2:
            raise ValueError(f"trees.predict covers regressors and binary classifiers; this model gives "
                             f"{proba.shape[-1]} class probabilities (use raw_score or predict_proba).")
        return proba[:, 1]
    return np.asarray(model.predict(X))
