"""Inject realistic, documented anomalies into a real shop's events, for evaluating detectors.

Public shop logs carry no fraud labels, so :func:`inject_anomalies` adds the behaviour of known
abuse patterns to randomly chosen real users shortly before a cut-off; those users are the
positives.  Amounts and quantities come from the shop's own distributions, so the injected rows
look like the shop's rows.  The patterns (one per ``anomaly_type``):

``card_testing``
    A fraudster checks stolen card numbers: a burst of 15-40 separate orders of one cheap item each
    (amount between the shop's 1st and 10th percentile line amount) within about an hour.
``refund_abuse``
    "Wardrobing" / serial returns: 6-12 purchases at typical line amounts, 80-100 % of them refunded
    (full amount) 1-5 days later.
``view_storm``
    A scraping bot: 300-900 product views of distinct items at a machine-regular cadence (2-6 s)
    within one session, with no cart or purchase (meant for logs with views, e.g. Taobao).
``spend_spike``
    Account take-over or cash-out: 1-3 orders worth 15-40 times the user's own median order value
    (the shop's median for users without one) in the last 3 days.

Every injected event lies in ``(as_of - window_days, as_of]`` and has an ``event_id`` starting with
``inject:``; the original events are returned unchanged.

Examples
--------
>>> ev = pd.DataFrame({"event_id": [f"e{i}" for i in range(40)], "user_id": [f"u{i % 20}" for i in range(40)],
...     "ts": pd.date_range("2024-01-01", periods=40, freq="D"), "event_type": "purchase", "platform": "shop",
...     "amount": 10.0, "quantity": 1.0, "order_id": [f"o{i}" for i in range(40)]})
>>> res = inject_anomalies(ev, as_of="2024-02-09", n_per_type={"card_testing": 2, "spend_spike": 1})
>>> res.labels["anomaly_type"].value_counts().sort_index().to_dict()
{'card_testing': 2, 'spend_spike': 1}
>>> bool((res.events["ts"] <= pd.Timestamp("2024-02-09")).all())
True
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from buyerscore._validation import check_param
from buyerscore.exceptions import LeakageError, ModelInputError

logger = logging.getLogger(__name__)

ANOMALY_TYPES = ("card_testing", "refund_abuse", "view_storm", "spend_spike")
"""The injectable anomaly patterns (see the module docstring)."""

_NEEDS_AMOUNTS = {"card_testing", "refund_abuse", "spend_spike"}


@dataclass
class InjectionResult:
    """Events with the injected rows, the labelled users and the injected rows alone."""

    events: pd.DataFrame
    labels: pd.DataFrame      # platform, user_id, anomaly_type
    injected: pd.DataFrame    # the added events only


def _counts(n_per_type: int | Mapping[str, int], types: Sequence[str]) -> dict[str, int]:
    if isinstance(n_per_type, Mapping):
        bad = [t for t in n_per_type if t not in ANOMALY_TYPES]
        if bad:
            raise ValueError(f"Unknown anomaly type(s) {bad}; known: {list(ANOMALY_TYPES)}.")
        return {t: int(n) for t, n in n_per_type.items() if int(n) > 0}
    return {t: int(n_per_type) for t in types}


def inject_anomalies(
    events: pd.DataFrame,
    *,
    as_of: object,
    n_per_type: int | Mapping[str, int] = 20,
    types: Sequence[str] = ANOMALY_TYPES,
    window_days: float = 14.0,
    min_history_events: int = 1,
    random_state: int | None = 0,
) -> InjectionResult:
    """Add documented anomalous behaviour to randomly chosen users active before ``as_of``.

    Parameters
    ----------
    events : DataFrame
        Canonical events (at least ``event_id, user_id, ts, event_type, platform``; ``amount``,
        ``quantity``, ``order_id``, ``item_id`` used when present).
    as_of : date-like
        Cut-off; injected events fall in ``(as_of - window_days, as_of]``.  Required.
    n_per_type : int or mapping, default 20
        Users per anomaly type (a mapping selects the types and overrides ``types``).
    types : sequence of str
        Anomaly types when ``n_per_type`` is an int.
    window_days : float, default 14
        How far before ``as_of`` the anomalies may start.
    min_history_events : int, default 1
        Victims must have at least this many events at or before ``as_of - window_days``.
    random_state : int, optional
        Seed; the same seed gives the same injection.

    Returns
    -------
    InjectionResult
        ``events`` (original + injected, sorted by ts), ``labels`` (one row per victim) and ``injected``.
    """
    required = ["event_id", "user_id", "ts", "event_type", "platform"]
    missing = [c for c in required if c not in events.columns]
    if missing:
        raise ModelInputError(f"inject_anomalies: events lack column(s) {missing}; pass canonical events.")
    if as_of is None:
        raise LeakageError("inject_anomalies needs as_of (the cut-off the features will be built at).")
    check_param("inject_anomalies", "window_days", window_days, lambda v: float(v) > 0, "a float > 0")
    bad = [t for t in types if t not in ANOMALY_TYPES]
    if bad:
        raise ValueError(f"Unknown anomaly type(s) {bad}; known: {list(ANOMALY_TYPES)}.")
    counts = _counts(n_per_type, types)
    cutoff = pd.Timestamp(as_of)
    start = cutoff - pd.Timedelta(days=float(window_days))
    rng = np.random.default_rng(random_state)

    ev = events
    ts = pd.to_datetime(ev["ts"])
    hist = ev[ts <= start]
    per_user = hist.groupby(["platform", "user_id"], observed=True).size()
    pool = per_user[per_user >= min_history_events].index.to_list()
    need = sum(counts.values())
    if len(pool) < need:
        raise ModelInputError(f"inject_anomalies: only {len(pool)} users have >= {min_history_events} event(s) before "
                              f"{start}; asked for {need} victims. Lower n_per_type or move as_of later.")
    chosen = [pool[i] for i in rng.choice(len(pool), size=need, replace=False)]

    has_amount = "amount" in ev.columns and pd.to_numeric(ev["amount"], errors="coerce").notna().any()
    purchases = ev[ev["event_type"] == "purchase"]
    amounts = pd.to_numeric(purchases["amount"], errors="coerce").dropna() if has_amount else pd.Series(dtype=float)
    amounts = amounts[amounts > 0].sort_values(ignore_index=True)  # sorted: the result does not depend on row order
    if any(t in _NEEDS_AMOUNTS for t in counts) and amounts.empty:
        raise ModelInputError(f"inject_anomalies: types {sorted(set(counts) & _NEEDS_AMOUNTS)} need purchase amounts "
                              "and these events have none; use types=('view_storm',) for logs without prices.")
    if has_amount and "order_id" in ev.columns:
        order_val = purchases.assign(a=pd.to_numeric(purchases["amount"], errors="coerce")).groupby(
            ["platform", "user_id", "order_id"], observed=True)["a"].sum()
        user_median_order = order_val.groupby(level=[0, 1]).median()
    else:
        user_median_order = pd.Series(dtype=float)
    shop_median_order = float(user_median_order.median()) if len(user_median_order) else (
        float(amounts.median()) if len(amounts) else 1.0)
    tiny_lo, tiny_hi = (np.quantile(amounts, [0.01, 0.10]) if len(amounts) else (0.5, 2.0))
    items = np.sort(ev["item_id"].dropna().astype(str).unique()) if "item_id" in ev.columns else np.array([])

    rows: list[dict[str, object]] = []
    labels: list[dict[str, object]] = []
    pos = 0

    def when(span_days: float) -> pd.Timestamp:
        """A start time so that an episode of ``span_days`` ends at or before the cut-off."""
        latest = max(float(window_days) - span_days, 0.0)
        return start + pd.Timedelta(days=float(rng.uniform(0.0, latest)))

    def item() -> object:
        return items[rng.integers(len(items))] if len(items) else None

    for kind, n in counts.items():
        for _ in range(n):
            plat, uid = chosen[pos]
            pos += 1
            labels.append({"platform": plat, "user_id": uid, "anomaly_type": kind})
            tag = f"inject:{kind}:{uid}"
            if kind == "card_testing":
                k = int(rng.integers(15, 41))
                t0 = when(0.05)
                offs = np.sort(rng.uniform(0, 3600, size=k))
                for i in range(k):
                    rows.append({"event_id": f"{tag}:{i}", "user_id": uid, "platform": plat, "event_type": "purchase",
                                 "ts": t0 + pd.Timedelta(seconds=float(offs[i])), "item_id": item(), "quantity": 1.0,
                                 "amount": round(float(rng.uniform(tiny_lo, tiny_hi)), 2), "order_id": f"{tag}:o{i}"})
            elif kind == "refund_abuse":
                k = int(rng.integers(6, 13))
                t0 = when(6.0)
                n_ref = max(1, round(k * rng.uniform(0.8, 1.0)))
                for i in range(k):
                    a = round(float(rng.choice(amounts.to_numpy())), 2)
                    tb = t0 + pd.Timedelta(hours=float(rng.uniform(0, 24)))
                    it = item()
                    rows.append({"event_id": f"{tag}:b{i}", "user_id": uid, "platform": plat, "event_type": "purchase",
                                 "ts": tb, "item_id": it, "quantity": 1.0, "amount": a, "order_id": f"{tag}:o{i}"})
                    if i < n_ref:
                        tr = min(tb + pd.Timedelta(days=float(rng.uniform(1, 5))), cutoff)
                        rows.append({"event_id": f"{tag}:r{i}", "user_id": uid, "platform": plat,
                                     "event_type": "refund", "ts": tr, "item_id": it, "quantity": 1.0, "amount": a,
                                     "order_id": f"{tag}:o{i}"})
            elif kind == "view_storm":
                k = int(rng.integers(300, 901))
                t0 = when(0.1)
                gaps = rng.uniform(2, 6, size=k).cumsum()
                for i in range(k):
                    rows.append({"event_id": f"{tag}:{i}", "user_id": uid, "platform": plat, "event_type": "view",
                                 "ts": t0 + pd.Timedelta(seconds=float(gaps[i])), "item_id": item()})
            else:  # spend_spike
                base = float(user_median_order.get((plat, uid), np.nan))
                if not base > 0:
                    base = shop_median_order
                k = int(rng.integers(1, 4))
                for i in range(k):
                    t = cutoff - pd.Timedelta(days=float(rng.uniform(0, min(3.0, float(window_days)))))
                    rows.append({"event_id": f"{tag}:{i}", "user_id": uid, "platform": plat, "event_type": "purchase",
                                 "ts": t, "item_id": item(), "quantity": float(rng.integers(1, 5)),
                                 "amount": round(base * float(rng.uniform(15, 40)), 2), "order_id": f"{tag}:o{i}"})

    injected = pd.DataFrame(rows).reindex(columns=ev.columns)
    if len(injected):
        injected["ts"] = pd.to_datetime(injected["ts"]).astype(ts.dtype)
        injected = injected.astype({c: ev[c].dtype for c in ev.columns if c in ("user_id", "platform", "event_type")
                                    and ev[c].dtype != object}, errors="ignore")
    out = pd.concat([ev.assign(ts=ts), injected], ignore_index=True).sort_values("ts", kind="stable",
                                                                                 ignore_index=True)
    logger.info("injected %d events for %d users (%s)", len(injected), len(labels), counts)
    return InjectionResult(events=out, labels=pd.DataFrame(labels, columns=["platform", "user_id", "anomaly_type"]),
                           injected=injected)
