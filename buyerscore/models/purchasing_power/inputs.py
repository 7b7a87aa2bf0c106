"""Model-specific inputs of the purchasing-power models, built from the event store *as of* a cut-off.

Everything here reads only events with ``ts <= as_of`` (``as_of`` is a required keyword):

* :func:`rfm_summary` – the BG/NBD / Gamma-Gamma summary (``frequency, recency, T, monetary_value``)
  from *daily* aggregated purchases, in days;
* :func:`power_features` – spend-specific behaviour features (net spend in recent windows, purchase-day
  counts, inter-purchase gaps, basket statistics, refunds, breadth) next to the RFM summary;
* :func:`daily_sequences` – each user's daily activity (event counts by type, spend, gap) for the
  sequence model;
* :func:`spend_labels` – net spend in ``(as_of, as_of + horizon]`` (purchases minus refunds, floored
  at 0), the label of the benchmark protocol.

A "purchase day" is a calendar day with at least one ``purchase`` event; its value is the purchase
amount of that day minus the refunds of that day (floored at 0).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd

from buyerscore.exceptions import LeakageError, SchemaError
from buyerscore.features.build import round_features
from buyerscore.features.sql import to_timestamp as _features_ts

logger = logging.getLogger(__name__)

__all__ = ["daily_sequences", "model_features", "power_features", "rfm_summary", "spend_labels", "to_timestamp",
           "training_windows"]

KEYS = ["platform", "user_id"]


def to_timestamp(as_of: str | datetime | pd.Timestamp | None, *, name: str = "as_of") -> pd.Timestamp:
    """Parse a cut-off like :func:`buyerscore.features.build_features` does (naive UTC; a date means
    midnight at its start).  To include a whole day pass its last instant, e.g. ``"2011-06-30 23:59:59"``.

    Examples
    --------
    >>> to_timestamp("2011-06-30 12:00")
    Timestamp('2011-06-30 12:00:00')
    """
    if as_of is None:
        raise LeakageError(f"{name} is required: features use only events at or before it and labels only after it.")
    return _features_ts(as_of, name)


def _platform_clause(platforms: Sequence[str] | None) -> tuple[str, list[object]]:
    if not platforms:
        return "", []
    return f" AND platform IN ({', '.join('?' * len(platforms))})", list(platforms)


def _check_events(con: duckdb.DuckDBPyConnection) -> None:
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if "events" not in tables:
        raise SchemaError("The store has no 'events' table; ingest events first ('buyerscore ingest FILE').")


def _daily(con: duckdb.DuckDBPyConnection, as_of: pd.Timestamp, platforms: Sequence[str] | None) -> pd.DataFrame:
    """Per (platform, user, day): purchase value, refund value, events by type, lines, quantity."""
    pc, params = _platform_clause(platforms)
    q = f"""
        SELECT platform, user_id, CAST(date_trunc('day', ts) AS DATE) AS day,
               sum(CASE WHEN event_type = 'purchase' THEN coalesce(amount, 0) ELSE 0 END) AS buy,
               sum(CASE WHEN event_type = 'refund' THEN coalesce(amount, 0) ELSE 0 END) AS refund,
               count(*) FILTER (WHERE event_type = 'purchase') AS n_buy_lines,
               count(*) FILTER (WHERE event_type = 'refund') AS n_refund_lines,
               count(*) FILTER (WHERE event_type = 'view') AS n_view,
               count(*) FILTER (WHERE event_type = 'click') AS n_click,
               count(*) FILTER (WHERE event_type = 'cart') AS n_cart,
               count(*) FILTER (WHERE event_type = 'favorite') AS n_fav,
               count(*) FILTER (WHERE event_type = 'review') AS n_review,
               count(*) AS n_events,
               sum(CASE WHEN event_type = 'purchase' THEN coalesce(quantity, 0) ELSE 0 END) AS qty,
               count(DISTINCT order_id) FILTER (WHERE event_type = 'purchase') AS n_orders,
               count(DISTINCT category) FILTER (WHERE event_type = 'purchase') AS n_cats_day,
               max(CASE WHEN event_type = 'purchase' THEN amount END) AS max_line
        FROM events WHERE ts <= ?{pc}
        GROUP BY ALL"""
    _check_events(con)
    d = con.execute(q, [as_of.to_pydatetime(), *params]).df()
    d["day"] = pd.to_datetime(d["day"])
    return d


def rfm_summary(con: duckdb.DuckDBPyConnection, *, as_of: str | datetime | pd.Timestamp,
                platforms: Sequence[str] | None = None, daily: pd.DataFrame | None = None) -> pd.DataFrame:
    """BG/NBD summary per (platform, user_id) from purchases at or before ``as_of``, in days.

    Every user with at least one event at or before ``as_of`` gets a row; users without a purchase
    have ``frequency = recency = 0``, ``T`` = days since their first event and ``monetary_value = 0``.

    Returns
    -------
    DataFrame
        ``platform, user_id, frequency, recency, T, monetary_value, first_value``.
    """
    ts = to_timestamp(as_of)
    d = _daily(con, ts, platforms) if daily is None else daily
    end = ts.normalize()
    first_event = d.groupby(KEYS, sort=True)["day"].min()
    buy = d[d["n_buy_lines"] > 0].copy()
    buy["value"] = (buy["buy"] - buy["refund"]).clip(lower=0)
    buy = buy.sort_values([*KEYS, "day"])
    g = buy.groupby(KEYS, sort=True)
    first = g["day"].min()
    last = g["day"].max()
    n = g.size()
    total = g["value"].sum()
    first_val = g["value"].first()
    out = pd.DataFrame(index=first_event.index)
    out["frequency"] = (n - 1).reindex(out.index).fillna(0).astype(float)
    out["recency"] = ((last - first).dt.days).reindex(out.index).fillna(0).astype(float)
    start = first.reindex(out.index).fillna(first_event)
    out["T"] = (end - start).dt.days.astype(float)
    rep = (total - first_val).reindex(out.index)
    out["monetary_value"] = (rep / out["frequency"].where(out["frequency"] > 0)).fillna(0.0)
    out["first_value"] = first_val.reindex(out.index).fillna(0.0)
    return out.reset_index()


def power_features(con: duckdb.DuckDBPyConnection, *, as_of: str | datetime | pd.Timestamp,
                   platforms: Sequence[str] | None = None,
                   windows: Sequence[int] = (30, 90, 180)) -> pd.DataFrame:
    """Spend features per (platform, user_id) from events at or before ``as_of``.

    Columns: the :func:`rfm_summary` columns, then ``net_spend`` (all purchases minus refunds),
    ``spend_{w}d`` / ``days_{w}d`` (net spend and purchase days in the last ``w`` days), ``days_since_last``,
    ``gap_mean`` / ``gap_std`` / ``gap_last`` (days between purchase days), ``day_value_max`` / ``_median`` /
    ``_last`` / ``_std``, ``line_max``, ``lines_per_day``, ``qty_total``, ``orders``, ``refund_share``,
    ``n_refund_lines``, ``n_categories``, ``n_events`` and counts of views, clicks, carts, favourites and reviews,
    ``spend_rate`` (net spend per day of tenure) and ``spend_trend`` (last-90-day rate over tenure rate).
    """
    ts = to_timestamp(as_of)
    d = _daily(con, ts, platforms)
    out = rfm_summary(con, as_of=ts, platforms=platforms, daily=d).set_index(KEYS)
    end = ts.normalize()
    d["value"] = d["buy"] - d["refund"]
    d["age"] = (end - d["day"]).dt.days
    g = d.groupby(KEYS, sort=True)
    out["net_spend"] = g["value"].sum()
    out["purchase_total"] = g["buy"].sum()
    out["refund_total"] = g["refund"].sum()
    out["refund_share"] = (out["refund_total"] / out["purchase_total"].where(out["purchase_total"] > 0)).fillna(0)
    for w in windows:
        m = d["age"] < w
        out[f"spend_{w}d"] = d[m].groupby(KEYS)["value"].sum().reindex(out.index).fillna(0)
        out[f"days_{w}d"] = d[m & (d["n_buy_lines"] > 0)].groupby(KEYS).size().reindex(out.index).fillna(0)
    buy = d[d["n_buy_lines"] > 0].sort_values([*KEYS, "day"]).copy()
    buy["gap"] = buy.groupby(KEYS)["day"].diff().dt.days
    bg = buy.groupby(KEYS, sort=True)
    out["days_since_last"] = bg["age"].min().reindex(out.index)
    out["days_since_first"] = g["age"].max()
    out["gap_mean"] = bg["gap"].mean().reindex(out.index)
    out["gap_std"] = bg["gap"].std().reindex(out.index)
    out["gap_last"] = bg["gap"].last().reindex(out.index)
    vpos = buy["value"].clip(lower=0)
    buy["vpos"] = vpos
    out["day_value_max"] = bg["vpos"].max().reindex(out.index).fillna(0)
    out["day_value_median"] = bg["vpos"].median().reindex(out.index).fillna(0)
    out["day_value_std"] = bg["vpos"].std().reindex(out.index)
    out["day_value_last"] = bg["vpos"].last().reindex(out.index).fillna(0)
    out["line_max"] = bg["max_line"].max().reindex(out.index).fillna(0)
    out["lines_per_day"] = (bg["n_buy_lines"].sum() / bg.size()).reindex(out.index).fillna(0)
    out["qty_total"] = g["qty"].sum()
    out["orders"] = g["n_orders"].sum()
    out["n_refund_lines"] = g["n_refund_lines"].sum()
    for c in ("n_view", "n_click", "n_cart", "n_fav", "n_review", "n_events"):
        out[c] = g[c].sum()
    pc, params = _platform_clause(platforms)
    cats = con.execute(
        f"SELECT platform, user_id, count(DISTINCT category) AS n_categories, count(DISTINCT item_id) AS n_items "
        f"FROM events WHERE ts <= ? AND event_type = 'purchase'{pc} GROUP BY ALL",
        [ts.to_pydatetime(), *params]).df().set_index(KEYS)
    out["n_categories"] = cats["n_categories"].reindex(out.index).fillna(0)
    out["n_items"] = cats["n_items"].reindex(out.index).fillna(0)
    tenure = (out["days_since_first"] + 1).astype(float)
    out["spend_rate"] = out["net_spend"] / tenure
    out["spend_trend"] = (out["spend_90d"] / np.minimum(tenure, 90)) / out["spend_rate"].where(out["spend_rate"] > 0) \
        if "spend_90d" in out else np.nan
    # 12 significant digits, as build_features: DuckDB's parallel sums add in a varying order, so without it
    # the same store gave values ~1e-11 apart from run to run (and forecasts ~2.5e-11 apart)
    out = round_features(out.astype(float))
    return out.reset_index()


def spend_labels(con: duckdb.DuckDBPyConnection, *, as_of: str | datetime | pd.Timestamp, horizon_days: int,
                 users: pd.DataFrame | None = None, platforms: Sequence[str] | None = None) -> pd.DataFrame:
    """Net spend (purchases minus refunds, floored at 0) and a purchase flag in ``(as_of, as_of + horizon]``.

    ``users`` (``platform, user_id``) fixes the rows (users with no event in the window get 0);
    by default every user with an event at or before ``as_of``.
    """
    ts = to_timestamp(as_of)
    if int(horizon_days) <= 0:
        raise ValueError(f"horizon_days must be a positive int. Got {horizon_days!r} instead.")
    end = ts + pd.Timedelta(days=int(horizon_days))
    pc, params = _platform_clause(platforms)
    lab = con.execute(
        f"""SELECT platform, user_id,
                   sum(CASE WHEN event_type = 'purchase' THEN coalesce(amount, 0)
                            WHEN event_type = 'refund' THEN -coalesce(amount, 0) ELSE 0 END) AS net,
                   count(*) FILTER (WHERE event_type = 'purchase') AS n_buy,
                   min(ts) AS first_ts
            FROM events WHERE ts > ? AND ts <= ?{pc} GROUP BY ALL""",
        [ts.to_pydatetime(), end.to_pydatetime(), *params]).df()
    if len(lab) and (pd.to_datetime(lab["first_ts"]) <= ts).any():  # pragma: no cover - guarded by the query
        raise LeakageError(f"labels include events at or before as_of={ts}.")
    if users is None:
        users = con.execute(f"SELECT DISTINCT platform, user_id FROM events WHERE ts <= ?{pc}",
                            [ts.to_pydatetime(), *params]).df().sort_values(KEYS)
    out = users[KEYS].merge(lab[[*KEYS, "net", "n_buy"]], on=KEYS, how="left")
    out["future_spend"] = out["net"].fillna(0).clip(lower=0).astype(float)
    out["future_purchase"] = (out["n_buy"].fillna(0) > 0).astype(int)
    return out[[*KEYS, "future_spend", "future_purchase"]].reset_index(drop=True)


def daily_sequences(con: duckdb.DuckDBPyConnection, *, as_of: str | datetime | pd.Timestamp,
                    platforms: Sequence[str] | None = None, max_len: int = 64) -> pd.DataFrame:
    """Each user's last ``max_len`` active days before ``as_of``, one row per (platform, user_id, day).

    Columns: ``day``, ``age`` (days before the cut-off), ``gap`` (days since the previous active day),
    ``buy``, ``refund`` (amounts), ``n_buy_lines``, ``n_refund_lines``, ``n_view``, ``n_click``, ``n_cart``,
    ``n_fav``, ``n_review``, ``qty``, ``n_cats_day``, ``max_line``.
    """
    ts = to_timestamp(as_of)
    d = _daily(con, ts, platforms).sort_values([*KEYS, "day"])
    d["age"] = (ts.normalize() - d["day"]).dt.days.astype(float)
    d["gap"] = d.groupby(KEYS)["day"].diff().dt.days.fillna(0).astype(float)
    d["rank"] = d.groupby(KEYS).cumcount(ascending=False)
    d = d[d["rank"] < max_len].drop(columns="rank")
    return d.reset_index(drop=True)


def model_features(con: duckdb.DuckDBPyConnection, *, as_of: str | datetime | pd.Timestamp,
                   platforms: Sequence[str] | None = None, behaviour: bool = True) -> pd.DataFrame:
    """The feature frame of :class:`~.forecaster.SpendForecaster`: :func:`power_features` joined with the
    generic behaviour features of :func:`buyerscore.features.build_features` (same cut-off; on a name clash
    the power feature is kept).  ``behaviour=False`` uses the power features only."""
    ts = to_timestamp(as_of)
    pf = power_features(con, as_of=ts, platforms=platforms)
    if not behaviour:
        return pf
    from buyerscore.features import build_features

    bf = build_features(con, as_of=ts, platforms=list(platforms) if platforms else None)
    bf = bf[[*KEYS, *[c for c in bf.columns if c not in pf.columns]]]
    out = pf.merge(bf, on=KEYS, how="left")
    num = [c for c in out.columns if c not in KEYS]
    out[num] = out[num].apply(pd.to_numeric, errors="coerce").astype(float)
    return out


def _register_specs() -> None:
    """Describe the power features in the feature registry (without replacing existing entries)."""
    from buyerscore.features.registry import REGISTRY, FeatureSpec, register

    specs = [
        ("frequency", "Repeat purchase days before the cut-off", "days", "截止日前重复购买天数"),
        ("recency", "Days from first to last purchase day", "days", "首次到最近一次购买的天数"),
        ("T", "Days from first purchase to the cut-off", "days", "首次购买至截止日的天数"),
        ("monetary_value", "Mean value of repeat purchase days", "currency", "重复购买日的平均金额"),
        ("first_value", "Value of the first purchase day", "currency", "首个购买日的金额"),
        ("net_spend", "Net spend (purchases minus refunds) before the cut-off", "currency", "截止日前净消费"),
        ("purchase_total", "Gross purchase amount before the cut-off", "currency", "截止日前购买总额"),
        ("refund_total", "Refunded amount before the cut-off", "currency", "截止日前退款总额"),
        ("refund_share", "Refunds as a share of purchases", "ratio", "退款占购买的比例"),
        ("spend_{w}d", "Net spend in the last {w} days", "currency", "最近{w}天净消费"),
        ("days_{w}d", "Purchase days in the last {w} days", "days", "最近{w}天购买天数"),
        ("days_since_last", "Days since the last purchase", "days", "距最近一次购买的天数"),
        ("days_since_first", "Days since the first event", "days", "距首次行为的天数"),
        ("gap_mean", "Mean days between purchase days", "days", "购买间隔平均天数"),
        ("gap_std", "Spread of days between purchase days", "days", "购买间隔标准差"),
        ("gap_last", "Days between the last two purchase days", "days", "最近两次购买间隔"),
        ("day_value_max", "Largest purchase-day value", "currency", "单日最高消费"),
        ("day_value_median", "Median purchase-day value", "currency", "单日消费中位数"),
        ("day_value_std", "Spread of purchase-day values", "currency", "单日消费标准差"),
        ("day_value_last", "Value of the last purchase day", "currency", "最近购买日的金额"),
        ("line_max", "Largest single purchase line", "currency", "单笔最高金额"),
        ("lines_per_day", "Purchase lines per purchase day", "count", "每个购买日的购买行数"),
        ("qty_total", "Items bought before the cut-off", "count", "截止日前购买件数"),
        ("spend_rate", "Net spend per day since the first event", "currency/day", "每日平均净消费"),
        ("spend_trend", "Last-90-day spend rate over the overall rate", "ratio", "近90天消费速度与整体之比"),
        ("clv_expected_purchases", "BG/NBD expected purchases in the horizon", "count", "BG/NBD预期购买次数"),
        ("clv_p_alive", "BG/NBD probability the customer is still active", "probability", "BG/NBD仍活跃概率"),
        ("clv_value_per_purchase", "Gamma-Gamma expected value per purchase", "currency", "Gamma-Gamma单次预期金额"),
        ("clv_expected_spend", "BG/NBD x Gamma-Gamma expected spend", "currency", "BG/NBD×Gamma-Gamma预期消费"),
    ]
    for name, en, unit, zh in specs:
        if name not in REGISTRY:
            register(FeatureSpec(name, en, unit, zh))


_register_specs()


def training_windows(con: duckdb.DuckDBPyConnection, *, as_of: str | datetime | pd.Timestamp, horizon_days: int,
                     n_windows: int = 6, step_days: int = 30, platforms: Sequence[str] | None = None,
                     behaviour: bool = True, min_history_days: int = 14
                     ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Stacked training rows from cut-offs *before* ``as_of``, using only spend known at ``as_of``.

    Cut-off ``k`` (k = 1..``n_windows``) is ``as_of - k * step_days``; its rows are the
    :func:`model_features` as of that cut-off and its label is the spend in
    ``(cut-off, cut-off + h_k]`` with ``h_k = min(horizon_days, k * step_days)``, so no label window
    passes ``as_of``.  Cut-offs less than ``min_history_days`` after the first event are skipped.

    Returns
    -------
    (X, y, label_horizon)
        ``X`` holds the feature columns and a ``cutoff`` column; ``y`` the spend labels; ``label_horizon``
        each row's label-window length in days (pass it to ``SpendForecaster.fit(label_horizon=...)``).

    Examples
    --------
    >>> from buyerscore.events.store import EventStore
    >>> ev = pd.DataFrame({"user_id": ["a", "a", "b"], "ts": ["2024-01-01", "2024-02-10", "2024-01-05"],
    ...                    "event_type": "purchase", "amount": [10.0, 20.0, 5.0], "platform": "shop"})
    >>> with EventStore(":memory:") as s:
    ...     _ = s.ingest_frame(ev, source="doc")
    ...     X, y, h = training_windows(s.con, as_of="2024-03-01", horizon_days=60, n_windows=2, step_days=30,
    ...                                behaviour=False)
    >>> [str(c.date()) for c in X["cutoff"]], X["user_id"].tolist(), y.tolist(), h.tolist()
    (['2024-01-31', '2024-01-31'], ['a', 'b'], [20.0, 0.0], [30.0, 30.0])
    """
    ts = to_timestamp(as_of)
    for name, v, lo in (("horizon_days", horizon_days, 1), ("n_windows", n_windows, 1), ("step_days", step_days, 1)):
        if int(v) != v or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}. Got {v!r} instead.")
    _check_events(con)
    pc, params = _platform_clause(platforms)
    row = con.execute(f"SELECT min(ts) FROM events WHERE ts <= ?{pc}", [ts.to_pydatetime(), *params]).fetchone()
    first = row[0] if row else None
    if first is None:
        raise SchemaError(f"no events at or before as_of={ts}; move as_of or load events.")
    frames, ys, hs = [], [], []
    for k in range(1, int(n_windows) + 1):
        cut = ts - pd.Timedelta(days=int(k * step_days))
        if cut < pd.Timestamp(first) + pd.Timedelta(days=int(min_history_days)):
            logger.info("training window at %s skipped: less than %d days of history", cut, min_history_days)
            continue
        h = int(min(int(horizon_days), k * int(step_days)))
        X = model_features(con, as_of=cut, platforms=platforms, behaviour=behaviour)
        y = spend_labels(con, as_of=cut, horizon_days=h, users=X, platforms=platforms)["future_spend"].to_numpy()
        X.insert(0, "cutoff", cut)
        frames.append(X)
        ys.append(y)
        hs.append(np.full(len(y), float(h)))
    if not frames:
        raise SchemaError(f"no training window fits before as_of={ts} with step_days={step_days} and "
                          f"min_history_days={min_history_days} (first event {first}); use a smaller step_days.")
    cols = frames[0].columns
    return (pd.concat([f[cols] for f in frames], ignore_index=True), np.concatenate(ys), np.concatenate(hs))
