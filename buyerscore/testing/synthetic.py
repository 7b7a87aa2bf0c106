"""A documented, seedable generator of realistic-looking synthetic shopper behaviour.

Every user has latent traits drawn once:

``value``
    price level multiplier (log-normal, median 1): high-value users buy dearer items.
``propensity``
    probability that a carted item is bought (Beta(2, 5)).
``activity``
    expected number of sessions over the period (Gamma, mean ``mean_sessions``).
``refund_prob``, ``review_prob``, ``instalment_prob``
    per-order probabilities of a refund, a review and a payment split into instalments
    (instalments are likelier for expensive baskets of low-value users).
``peak_hour``
    the hour around which the user's sessions start.

Each user has ``1 + Poisson(activity)`` sessions spread uniformly between a sign-up day and the
end of the period.  A session is ``1 + Poisson(4)`` product **views** (items drawn from a Zipf-like
catalogue with categories and base prices); each view is **favourited** with probability 0.03 and
**carted** with probability ``0.08 + 0.25 * propensity``; a carted item is **purchased** with
probability ``propensity`` (amount = base price * value * quantity).  The purchases of a session form
one order, paid by one **payment** event (with ``installments``); a purchase line is **refunded**
(1-20 days later) with ``refund_prob``; an order is **reviewed** (3-15 days later) with
``review_prob``: the rating is lower when the order was refunded, and the text (English or Portuguese,
30 % empty) matches the rating.

The latent traits are returned with the events so models can be checked against the truth.

>>> d = generate_events(50, seed=1)
>>> sorted(d.events["event_type"].unique())[:3]
['cart', 'favorite', 'payment']
>>> d.events["user_id"].nunique() == 50 and d.events.equals(generate_events(50, seed=1).events)
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

REVIEW_TEXTS: dict[int, tuple[str, ...]] = {
    5: ("Excellent product, arrived fast. Recommend!", "Perfect, loved it", "great quality, very happy",
        "Produto excelente, chegou rápido. Recomendo!", "Adorei, perfeito", "ótimo produto, muito satisfeito"),
    4: ("Good product, works fine", "nice, satisfied", "Bom produto, gostei", "chegou antes do prazo, bom"),
    3: ("ok, as described", "it is fine but slow delivery", "produto ok", "normal, nada de mais"),
    2: ("poor quality, disappointed", "arrived late and damaged", "produto ruim, demorou muito",
        "veio com defeito, decepcionado"),
    1: ("Terrible. Never arrived, want a refund", "broken, worst purchase, scam", "Péssimo, não recebi o produto",
        "horrível, produto quebrado, quero devolver"),
}
_TEXTS = [t for r in sorted(REVIEW_TEXTS) for t in REVIEW_TEXTS[r]]
_TEXT_OFFSET = {r: sum(len(REVIEW_TEXTS[k]) for k in sorted(REVIEW_TEXTS) if k < r) for r in REVIEW_TEXTS}


@dataclass
class SyntheticData:
    """Output of :func:`generate_events`.

    Attributes
    ----------
    events : pandas.DataFrame
        Canonical events (id-like columns are categoricals to keep memory low).
    users : pandas.DataFrame
        ``user_id, platform, age_band, sex, region`` (attributes for fairness audits).
    latent : pandas.DataFrame
        ``user_id`` and the latent traits that drove the behaviour.
    """

    events: pd.DataFrame
    users: pd.DataFrame
    latent: pd.DataFrame


def _cat(codes: np.ndarray, names: np.ndarray | list[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes.astype(np.int64), categories=pd.Index(names))


def generate_events(
    n_users: int = 1000, *, seed: int = 0, start: str = "2024-01-01", days: int = 365, platform: str = "synthetic",
    mean_sessions: float = 12.0, currency: str = "USD", with_event_id: bool = True,
) -> SyntheticData:
    """Generate synthetic behaviour events (see the module docstring for the model).

    Parameters
    ----------
    n_users : int
        Number of users (every user has at least one session).
    seed : int
        Seed of the random generator; the same arguments give identical output.
    start : str
        First day of the period (UTC).
    days : int
        Length of the period in days (refunds and reviews may fall up to 20 days after it).
    platform : str
        Value of the ``platform`` column.
    mean_sessions : float
        Mean number of sessions per user over the period (about 6 events per session).
    currency : str
        ISO 4217 code of amounts.
    with_event_id : bool
        Add ``event_id`` (``<platform>:<row>``); set False for very large frames.

    Returns
    -------
    SyntheticData
        Events sorted by time, user attributes and latent traits.
    """
    if n_users < 1:
        raise ValueError(f"The 'n_users' parameter of generate_events must be an int >= 1. Got {n_users!r} instead.")
    rng = np.random.default_rng(seed)
    day_s = 86400
    t0 = np.datetime64(pd.Timestamp(start).to_datetime64(), "s")

    # --- users ----------------------------------------------------------------------------------
    value = rng.lognormal(0.0, 0.6, n_users)
    propensity = rng.beta(2.0, 5.0, n_users)
    activity = rng.gamma(1.5, mean_sessions / 1.5, n_users)
    refund_prob = rng.beta(1.0, 15.0, n_users)
    review_prob = rng.beta(2.0, 5.0, n_users)
    instalment_prob = np.clip(0.15 + 0.35 * (value < 0.8) + rng.normal(0, 0.05, n_users), 0, 0.9)
    peak_hour = rng.normal(19.0, 3.0, n_users)
    signup = rng.uniform(0, days * 0.6, n_users)
    user_names = np.char.add("u", np.char.zfill(np.arange(n_users).astype(str), 7))

    # --- catalogue ------------------------------------------------------------------------------
    n_items = max(50, n_users * 2)
    n_cats = 40
    item_price = np.round(rng.lognormal(3.0, 0.8, n_items), 2)
    item_cat = rng.integers(0, n_cats, n_items)
    item_names = np.char.add("i", np.arange(n_items).astype(str))
    cat_names = np.char.add("c", np.arange(n_cats).astype(str))

    # --- sessions ---------------------------------------------------------------------------------
    n_sess = 1 + rng.poisson(activity)
    s_user = np.repeat(np.arange(n_users), n_sess)
    n_s = len(s_user)
    s_day = np.floor(signup[s_user] + rng.uniform(0, 1, n_s) * (days - signup[s_user]))
    s_hour = np.mod(peak_hour[s_user] + rng.normal(0, 3.0, n_s), 24.0)
    s_t = (s_day * day_s + s_hour * 3600).astype(np.int64)

    # --- views, favourites, carts, purchases ----------------------------------------------------
    n_views = 1 + rng.poisson(4.0, n_s)
    v_sess = np.repeat(np.arange(n_s), n_views)
    v_user = s_user[v_sess]
    n_v = len(v_sess)
    v_item = (rng.zipf(1.4, n_v) - 1 + rng.integers(0, n_items, n_v) * (rng.random(n_v) < 0.5)) % n_items
    v_t = s_t[v_sess] + np.cumsum(rng.exponential(45.0, n_v)).astype(np.int64) % 1800
    fav = rng.random(n_v) < 0.03
    cart = rng.random(n_v) < (0.08 + 0.25 * propensity[v_user])
    buy = cart & (rng.random(n_v) < propensity[v_user])
    qty = 1 + rng.poisson(0.3, n_v)
    amount = np.round(item_price[v_item] * value[v_user] * qty, 2)

    parts: list[dict[str, np.ndarray]] = []

    def add(etype: int, idx: np.ndarray, t: np.ndarray, **cols: np.ndarray) -> None:
        parts.append({"etype": np.full(len(idx), etype), "user": v_user[idx] if "user" not in cols else cols.pop("user"),
                      "t": t, **cols, "idx": idx})

    all_v = np.arange(n_v)
    add(0, all_v, v_t, item=v_item)
    fi = all_v[fav]
    add(3, fi, v_t[fi] + 5, item=v_item[fi])
    ci = all_v[cart]
    add(2, ci, v_t[ci] + 20, item=v_item[ci], qty=qty[ci])
    bi = all_v[buy]
    p_t = s_t[v_sess[bi]] + 1900  # checkout after the browsing of the session
    add(4, bi, p_t, item=v_item[bi], qty=qty[bi], amount=amount[bi], order=v_sess[bi])

    # orders: one payment per session with purchases
    o_sess, o_first = np.unique(v_sess[bi], return_index=True)
    o_total = np.bincount(np.searchsorted(o_sess, v_sess[bi]), weights=amount[bi])
    o_user = s_user[o_sess]
    inst = np.where(rng.random(len(o_sess)) < instalment_prob[o_user] * np.clip(o_total / 60, 0.3, 2),
                    rng.integers(2, 13, len(o_sess)), 1)
    add(6, o_sess, s_t[o_sess] + 1910, user=o_user, amount=np.round(o_total, 2), order=o_sess, inst=inst)

    # refunds of purchase lines
    refunded = rng.random(len(bi)) < refund_prob[v_user[bi]]
    ri = bi[refunded]
    add(5, ri, p_t[refunded] + rng.integers(1, 21, len(ri)) * day_s, item=v_item[ri], qty=qty[ri],
        amount=amount[ri], order=v_sess[ri])

    # reviews of orders
    o_refunded = np.zeros(len(o_sess), dtype=bool)
    o_refunded[np.searchsorted(o_sess, v_sess[ri])] = True
    reviewed = rng.random(len(o_sess)) < review_prob[o_user]
    rating = np.clip(np.rint(rng.normal(4.3 - 2.3 * o_refunded + 0.3 * (value[o_user] > 1), 0.9)), 1, 5).astype(int)
    offs = np.array([_TEXT_OFFSET[r] for r in rating], dtype=np.int64)
    sizes = np.array([len(REVIEW_TEXTS[r]) for r in rating], dtype=np.int64)
    text_code = offs + (rng.random(len(o_sess)) * sizes).astype(np.int64)
    text_code = np.where(rng.random(len(o_sess)) < 0.3, -1, text_code)
    rv = np.flatnonzero(reviewed)
    add(7, o_sess[rv], s_t[o_sess[rv]] + rng.integers(3, 16, len(rv)) * day_s + 3600, user=o_user[rv],
        order=o_sess[rv], rating=rating[rv], text=text_code[rv], item=v_item[bi][o_first[rv]])

    # --- assemble ----------------------------------------------------------------------------------
    def cat_col(key: str, fill: int = -1) -> np.ndarray:
        return np.concatenate([p.get(key, np.full(len(p["t"]), fill)) for p in parts])

    etype = cat_col("etype")
    t = cat_col("t")
    order = np.argsort(t, kind="stable")
    user = cat_col("user")[order]
    item = cat_col("item")[order]
    sess = cat_col("order")[order]
    etype = etype[order]
    n = len(order)
    amount_all = np.concatenate([p.get("amount", np.full(len(p["t"]), np.nan)) for p in parts])[order]
    qty_all = np.concatenate([p.get("qty", np.full(len(p["t"]), 1)) for p in parts]).astype(float)[order]
    qty_all[np.isin(etype, [6, 7])] = np.nan
    rating_all = cat_col("rating")[order]
    inst_all = cat_col("inst")[order]
    text_all = cat_col("text")[order]

    used_orders, order_codes = np.unique(sess, return_inverse=True)
    has_order = used_orders >= 0
    order_names = np.char.add("o", used_orders[has_order].astype(str))
    order_codes = np.where(used_orders[order_codes] >= 0, order_codes - (~has_order).sum(), -1)

    types = np.array(["view", "click", "cart", "favorite", "purchase", "refund", "payment", "review"])
    events = pd.DataFrame({
        "user_id": _cat(user, user_names),
        "ts": (t0 + t[order].astype("timedelta64[s]")).astype("datetime64[us]"),
        "event_type": _cat(etype, types),
        "platform": _cat(np.zeros(n, dtype=np.int64), [platform]),
        "item_id": _cat(item, item_names),
        "category": _cat(np.where(item >= 0, item_cat[np.maximum(item, 0)], -1), cat_names),
        "quantity": qty_all,
        "amount": amount_all,
        "currency": _cat(np.where(np.isnan(amount_all), -1, 0), [currency]),
        "order_id": _cat(order_codes, order_names),
        "rating": pd.array(np.where(rating_all >= 0, rating_all, 0), dtype="Int64").astype("Int64"),
        "text": _cat(text_all, _TEXTS),
        "installments": pd.array(inst_all, dtype="Int64"),
    })
    events.loc[rating_all < 0, "rating"] = pd.NA
    events.loc[inst_all < 0, "installments"] = pd.NA
    if with_event_id:
        events.insert(0, "event_id", [f"{platform}:{i}" for i in range(n)])
    regions = np.array(["north", "south", "east", "west", "centre"])
    bands = np.array(["18-24", "25-34", "35-44", "45-54", "55+"])
    users = pd.DataFrame({
        "user_id": user_names, "platform": platform,
        "age_band": bands[rng.integers(0, len(bands), n_users)],
        "sex": np.where(rng.random(n_users) < 0.5, "F", "M"),
        "region": regions[rng.integers(0, len(regions), n_users)],
    })
    latent = pd.DataFrame({"user_id": user_names, "value": value, "propensity": propensity, "activity": activity,
                           "refund_prob": refund_prob, "review_prob": review_prob,
                           "instalment_prob": instalment_prob, "peak_hour": np.mod(peak_hour, 24)})
    return SyntheticData(events=events, users=users, latent=latent)


def generate_n_events(n_events: int, *, seed: int = 0, **kwargs: object) -> SyntheticData:
    """Generate about ``n_events`` events (users are added in proportion; the count is approximate)."""
    probe_kw = {k: v for k, v in kwargs.items() if k != "with_event_id"}
    probe = generate_events(500, seed=seed, with_event_id=False, **probe_kw)  # type: ignore[arg-type]
    per_user = len(probe.events) / 500
    return generate_events(max(1, round(n_events / per_user)), seed=seed, **kwargs)  # type: ignore[arg-type]


DEFAULT_LOGIT = {"intercept": -1.8, "log_value": -3.0, "refund_prob": 20.0, "instalment_prob": 2.0,
                 "propensity": -6.0, "noise_sd": 0.3}
"""Coefficients of the synthetic default model of :func:`synthetic_applicants` (on the latent traits)."""


def synthetic_applicants(data: SyntheticData, *, as_of: str, user_ids: Any = None, seed: int = 0,
                         coefficients: dict[str, float] | None = None) -> pd.DataFrame:
    """A synthetic credit applicant table for the users of ``data``, labels drawn from their latent traits.

    ``P(bad) = sigmoid(intercept + log_value * log(value) + refund_prob * refund_prob
    + instalment_prob * instalment_prob + propensity * propensity + N(0, noise_sd))`` with
    :data:`DEFAULT_LOGIT`: cheaper shoppers, frequent refunders and instalment users default more,
    which their *behaviour* reveals, so a credit model on behaviour features can learn it.  The
    label is the outcome after ``as_of``; the table has the canonical applicant columns only
    (``user_id, as_of, label, dataset``): predictors are joined from behaviour features on
    ``user_id`` as of the same date.

    >>> d = generate_events(200, seed=3)
    >>> a = synthetic_applicants(d, as_of="2024-10-01")
    >>> list(a.columns), bool(0.05 < a["label"].mean() < 0.4)
    (['user_id', 'as_of', 'label', 'dataset'], True)
    """
    c = {**DEFAULT_LOGIT, **(coefficients or {})}
    lat = data.latent if user_ids is None else data.latent[data.latent["user_id"].isin(list(user_ids))]
    rng = np.random.default_rng(seed + 7919)
    logit = (c["intercept"] + c["log_value"] * np.log(lat["value"].to_numpy())
             + c["refund_prob"] * lat["refund_prob"].to_numpy() + c["instalment_prob"] * lat["instalment_prob"].to_numpy()
             + c["propensity"] * lat["propensity"].to_numpy() + rng.normal(0, c["noise_sd"], len(lat)))
    label = (rng.uniform(size=len(lat)) < 1 / (1 + np.exp(-logit))).astype("int32")
    return pd.DataFrame({"user_id": lat["user_id"].astype(str).to_numpy(), "as_of": pd.Timestamp(as_of),
                         "label": label, "dataset": "synthetic"})
