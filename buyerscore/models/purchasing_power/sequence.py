"""``SequenceSpendModel``: a GRU over each user's daily activity predicting future spend (``[deep]`` extra).

Each active day before the cut-off is one step (from
:func:`~buyerscore.models.purchasing_power.inputs.daily_sequences`): counts by event type (purchase
lines, refunds, views, clicks, carts, favourites, reviews), quantity, distinct categories, the largest line,
the time gap since the previous active day and the age of the day, all as ``log1p`` and standardised, plus
an embedding of the day's *amount bucket* (deciles of the day's purchase value).  The GRU's last state is
joined with an MLP of the user's static features (optional) and a zero-inflated lognormal head
(Wang, Liu & Miao 2019): P(purchase), and the mean and spread of log spend given a purchase.  The
prediction is ``P(purchase) * exp(mu + sigma^2 / 2)``.

PyTorch is imported only when the model is fit or used; without it the module still imports and
``fit`` raises an ImportError saying to install ``buyerscore[deep]``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from buyerscore._validation import check_param, examples
from buyerscore.exceptions import ModelInputError
from buyerscore.models.purchasing_power._base import ensure_fitted

logger = logging.getLogger(__name__)

__all__ = ["SequenceSpendModel"]

KEYS = ["platform", "user_id"]
STEP_COLS = ["buy", "refund", "n_buy_lines", "n_refund_lines", "n_view", "n_click", "n_cart", "n_fav", "n_review",
             "qty", "n_cats_day", "max_line", "gap", "age"]
N_BUCKETS = 11  # 0 = no purchase value, 1..10 = deciles


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("SequenceSpendModel needs PyTorch: pip install 'buyerscore[deep]' "
                          "(torch==2.13.0, CPU build is enough).") from exc
    return torch


def _build_net(torch: Any, n_step: int, n_static: int, hidden: int, emb: int) -> Any:
    nn = torch.nn

    class _Net(nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.bucket = nn.Embedding(N_BUCKETS, emb)
            self.gru = nn.GRU(n_step + emb, hidden, batch_first=True)
            self.static = nn.Sequential(nn.Linear(n_static, hidden), nn.ReLU()) if n_static else None
            self.head = nn.Sequential(nn.Linear(hidden * (2 if n_static else 1), hidden), nn.ReLU(),
                                      nn.Linear(hidden, 3))

        def forward(self, steps: Any, buckets: Any, lengths: Any, static: Any) -> Any:
            z = torch.cat([steps, self.bucket(buckets)], dim=-1)
            packed = nn.utils.rnn.pack_padded_sequence(z, lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, h = self.gru(packed)
            h = h[-1]
            if self.static is not None:
                h = torch.cat([h, self.static(static)], dim=-1)
            return self.head(h)

    return _Net()


def _ziln_loss(torch: Any, out: Any, y: Any, log_scale: float = 0.0) -> Any:
    logit, mu, log_sigma = out[:, 0], out[:, 1] + log_scale, out[:, 2].clamp(-4, 3)
    pos = (y > 0).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logit, pos)
    sigma = torch.exp(log_sigma)
    logy = torch.log(torch.clamp(y, min=1e-6))
    nll = pos * (log_sigma + logy + 0.5 * ((logy - mu) / sigma) ** 2)
    return bce + nll.sum() / torch.clamp(pos.sum(), min=1.0)


class SequenceSpendModel(RegressorMixin, BaseEstimator):
    """A GRU over each user's daily event sequence with a zero-inflated lognormal output.

    Parameters
    ----------
    hidden_size : int
        GRU state and head width.
    embedding_dim : int
        Width of the amount-bucket embedding.
    max_len : int
        Most recent active days used per user.
    epochs : int
    batch_size : int
    learning_rate : float
    weight_decay : float
    validation_fraction : float
        Rows held out to keep the best epoch (by ZILN loss); 0 keeps the last epoch.
    random_state : int
    n_threads : int
        Torch CPU threads.

    Notes
    -----
    ``fit(X, y, sequences=...)``: ``X`` has ``platform, user_id`` and (optionally) numeric static features;
    ``sequences`` is the output of ``daily_sequences(con, as_of=...)`` for the same cut-off.

    Examples
    --------
    >>> SequenceSpendModel(hidden_size=8, epochs=2).get_params()["hidden_size"]
    8
    """

    def __init__(self, *, hidden_size: int = 32, embedding_dim: int = 4, max_len: int = 64, epochs: int = 15,
                 batch_size: int = 256, learning_rate: float = 3e-3, weight_decay: float = 1e-5,
                 validation_fraction: float = 0.15, random_state: int = 0, n_threads: int = 1) -> None:
        self.hidden_size = hidden_size
        self.embedding_dim = embedding_dim
        self.max_len = max_len
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.n_threads = n_threads

    # -- tensors -------------------------------------------------------------------------------
    def _arrays(self, X: pd.DataFrame, sequences: pd.DataFrame,
                fit: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if not isinstance(X, pd.DataFrame) or not set(KEYS) <= set(X.columns):
            raise ModelInputError("SequenceSpendModel needs X as a DataFrame with 'platform' and 'user_id' columns.")
        missing = [c for c in [*KEYS, "day", *STEP_COLS] if c not in sequences.columns]
        if missing:
            raise ModelInputError(f"sequences lack column(s) {missing}; build them with daily_sequences(con, as_of=...).")
        n = len(X)
        L = int(self.max_len)
        users = pd.MultiIndex.from_frame(X[KEYS].astype(str))
        dup = users.duplicated(keep=False)
        if dup.any():
            names = list(dict.fromkeys(users[dup]))
            raise ModelInputError(
                f"X has {int(dup.sum())} rows for {len(names)} (platform, user_id) key(s) that appear more than once, "
                f"e.g. {examples(names)}; each user's sequence feeds one row. Keep one row per user "
                "(e.g. X.drop_duplicates(['platform', 'user_id'])).")
        s = sequences.sort_values([*KEYS, "day"])
        s = s[s.groupby(KEYS).cumcount(ascending=False) < L]
        row = users.get_indexer(pd.MultiIndex.from_frame(s[KEYS].astype(str)))
        keep = row >= 0
        s, row = s[keep], row[keep]
        if fit and not len(s):
            raise ModelInputError(
                f"None of the {n} users in X has a row in sequences; build sequences with daily_sequences(con, "
                "as_of=...) from the same store and cut-off as X (platform and user_id must match).")
        pos = s.groupby(KEYS).cumcount().to_numpy()
        vals = np.log1p(np.clip(np.nan_to_num(s[STEP_COLS].to_numpy(float), nan=0.0), 0, None))
        value = np.clip(s["buy"].to_numpy(float) - s["refund"].to_numpy(float), 0, None)
        if fit:
            self.step_mean_ = vals.mean(axis=0)
            self.step_std_ = vals.std(axis=0) + 1e-6
            pv = value[value > 0]
            self.bucket_edges_ = np.quantile(pv, np.linspace(0.1, 0.9, 9)) if pv.size else np.zeros(9)
        vals = (vals - self.step_mean_) / self.step_std_
        bucket = np.where(value > 0, np.searchsorted(self.bucket_edges_, value) + 1, 0)
        steps = np.zeros((n, L, len(STEP_COLS)), dtype=np.float32)
        buckets = np.zeros((n, L), dtype=np.int64)
        steps[row, pos] = vals
        buckets[row, pos] = bucket
        lengths = np.maximum(np.bincount(row, minlength=n), 1).astype(np.int64)
        static = X.drop(columns=KEYS)
        if fit:
            self.static_columns_ = [c for c in static.columns if pd.api.types.is_numeric_dtype(static[c])]
        else:
            lack = [c for c in self.static_columns_ if c not in static.columns]
            if lack:
                raise ModelInputError(f"X lacks static feature column(s) {lack[:5]} the model was trained on.")
        st = static[self.static_columns_].to_numpy(float) if self.static_columns_ else np.zeros((n, 0))
        st = np.nan_to_num(st, nan=0.0, posinf=0.0, neginf=0.0)
        st = np.sign(st) * np.log1p(np.abs(st))
        if fit:
            self.static_mean_ = st.mean(axis=0) if st.shape[1] else np.zeros(0)
            self.static_std_ = (st.std(axis=0) + 1e-6) if st.shape[1] else np.zeros(0)
        st = ((st - self.static_mean_) / self.static_std_).astype(np.float32)
        return steps, buckets, lengths, st

    # -- API -----------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: Any, *, sequences: pd.DataFrame) -> SequenceSpendModel:
        """Fit on users ``X`` (keys + optional static features), future spend ``y`` and their ``sequences``."""
        torch = _torch()
        check_param(self, "hidden_size", self.hidden_size, lambda v: int(v) == v and v > 0, "an int > 0")
        check_param(self, "epochs", self.epochs, lambda v: int(v) == v and v > 0, "an int > 0")
        check_param(self, "max_len", self.max_len, lambda v: int(v) == v and v > 0, "an int > 0")
        check_param(self, "validation_fraction", self.validation_fraction, lambda v: 0 <= float(v) < 1,
                    "a float in [0, 1)")
        torch.set_num_threads(int(self.n_threads))
        torch.manual_seed(int(self.random_state))
        if not len(X):
            raise ModelInputError("SequenceSpendModel.fit needs at least one user; got an empty X.")
        yv = np.asarray(y, dtype=float).ravel()
        if len(yv) != len(X):
            raise ModelInputError(f"X has {len(X)} rows but y has {len(yv)}; y must have one value per row of X.")
        bad = np.flatnonzero(~np.isfinite(yv) | (yv < 0))
        if bad.size:
            raise ModelInputError(f"y must be finite and >= 0 (future spend); {bad.size} row(s) are not, e.g. rows "
                                  f"{bad[:3].tolist()} with y = {[float(v) for v in yv[bad[:3]]]}. Drop those rows or "
                                  "floor net spend at 0 (spend_labels does).")
        steps, buckets, lengths, st = self._arrays(X, sequences, fit=True)
        net = _build_net(torch, steps.shape[2], st.shape[1], int(self.hidden_size), int(self.embedding_dim))
        opt = torch.optim.Adam(net.parameters(), lr=float(self.learning_rate), weight_decay=float(self.weight_decay))
        pos = yv[yv > 0]
        self.log_scale_ = float(np.mean(np.log(pos))) if pos.size else 0.0
        with torch.no_grad():  # start at the base rate and a unit log-spread
            last = net.head[-1]
            last.bias[0] = float(np.log((len(pos) + 1) / (len(yv) - len(pos) + 1)))
            last.bias[1] = 0.0
            last.bias[2] = float(np.log(np.std(np.log(pos)) + 1e-3)) if pos.size > 1 else 0.0
        T = [torch.from_numpy(a) for a in (steps, buckets, lengths, st)]
        ty = torch.from_numpy(yv.astype(np.float32))
        rng = np.random.default_rng(self.random_state)
        idx = rng.permutation(len(yv))
        n_val = int(len(yv) * float(self.validation_fraction))
        val, tr = idx[:n_val], idx[n_val:]
        best, best_state = np.inf, None
        self.history_: list[float] = []
        for _ in range(int(self.epochs)):
            net.train()
            order = rng.permutation(tr)
            for b in range(0, len(order), int(self.batch_size)):
                i = torch.from_numpy(order[b:b + int(self.batch_size)])
                opt.zero_grad()
                loss = _ziln_loss(torch, net(*(t[i] for t in T)), ty[i], self.log_scale_)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                opt.step()
            if n_val:
                net.eval()
                with torch.no_grad():
                    i = torch.from_numpy(val)
                    vl = float(_ziln_loss(torch, net(*(t[i] for t in T)), ty[i], self.log_scale_))
                self.history_.append(vl)
                if vl < best:
                    best, best_state = vl, {k: v.clone() for k, v in net.state_dict().items()}
        if best_state is not None:
            net.load_state_dict(best_state)
        self.net_ = net
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: pd.DataFrame, *, sequences: pd.DataFrame) -> np.ndarray:
        """Expected spend (>= 0) of the users in ``X`` given their ``sequences``."""
        ensure_fitted(self, "net_")
        torch = _torch()
        arrays = self._arrays(X, sequences, fit=False)
        self.net_.eval()
        outs = []
        with torch.no_grad():
            for b in range(0, len(X), 4096):
                out = self.net_(*(torch.from_numpy(a[b:b + 4096]) for a in arrays))
                p = torch.sigmoid(out[:, 0])
                ls = out[:, 2].clamp(-4, 3)
                outs.append((p * torch.exp(torch.clamp(out[:, 1] + self.log_scale_ + 0.5 * torch.exp(2 * ls), max=50))).numpy())
        pred = np.concatenate(outs) if outs else np.zeros(0)
        return np.clip(np.nan_to_num(pred.astype(float), nan=0.0), 0, None)

    def __getstate__(self) -> dict[str, Any]:  # keep pickles loadable: the net travels as a state dict
        state = self.__dict__.copy()
        if "net_" in state:
            state["net_state_"] = {k: v.cpu() for k, v in state.pop("net_").state_dict().items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        net_state = state.pop("net_state_", None)
        self.__dict__.update(state)
        if net_state is not None:
            torch = _torch()
            n_static = len(self.static_columns_)
            self.net_ = _build_net(torch, len(STEP_COLS), n_static, int(self.hidden_size), int(self.embedding_dim))
            self.net_.load_state_dict(net_state)
