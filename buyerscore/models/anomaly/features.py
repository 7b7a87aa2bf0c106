"""Behaviour-change features for anomaly detection, derived from :func:`buyerscore.features.build_features`.

Lifetime features dilute a sudden change in behaviour (a burst of 30 tiny orders is a small part
of a wholesaler's year), so the detector also looks at the user's *recent* behaviour relative to
their own history.  Every column is a ratio of columns of ``build_features`` (no new data, no
leakage: the same ``as_of``), undefined ratios are NaN; the texts are registered in the feature
registry (English and Chinese).

>>> F = pd.DataFrame({"n_events": [10], "active_days": [2], "n_orders": [6], "n_purchase_days": [2],
...     "n_purchases": [8], "events_7d": [5], "purchases_7d": [4], "spend_7d": [4.0], "monetary_sum": [40.0],
...     "refund_count": [3]})
>>> behaviour_change_features(F).iloc[0].round(3).to_dict()  # doctest: +NORMALIZE_WHITESPACE
{'events_per_active_day': 5.0, 'orders_per_purchase_day': 3.0, 'events_share_7d': 0.5,
 'spend_share_7d': 0.1, 'line_value_ratio_7d': 0.2, 'refunds_per_order': 0.5}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from buyerscore.features.registry import FeatureSpec, register

_SPECS = (
    FeatureSpec("events_per_active_day", "Events per active day", "events/day", "每个活跃日的行为次数"),
    FeatureSpec("orders_per_purchase_day", "Orders per day with a purchase", "orders/day", "每个购买日的订单数"),
    FeatureSpec("events_share_7d", "Share of all events that happened in the last 7 days", "share",
                "近7天行为占全部行为的比例"),
    FeatureSpec("spend_share_7d", "Share of lifetime spend in the last 7 days", "share", "近7天消费占累计消费的比例"),
    FeatureSpec("line_value_ratio_7d", "Mean purchase value in the last 7 days relative to the user's lifetime mean",
                "ratio", "近7天平均购买金额相对历史平均的倍数"),
    FeatureSpec("refunds_per_order", "Refunds per order", "ratio", "每笔订单的退款次数"),
)
_BURST_SPECS = (
    FeatureSpec("max_events_1h", "Most events in one clock hour", "events", "单个小时内的最多行为次数"),
    FeatureSpec("max_purchases_1h", "Most purchases in one clock hour", "purchases", "单个小时内的最多购买次数"),
    FeatureSpec("refunds_30d", "Refunds in the last 30 days", "refunds", "近30天退款次数"),
    FeatureSpec("refund_share_30d", "Refunds per purchase in the last 30 days", "ratio", "近30天每次购买的退款次数"),
)
for _s in _BURST_SPECS:
    register(_s)

BURST_FEATURES = tuple(s.name for s in _BURST_SPECS)
for _s in _SPECS:
    register(_s)

CHANGE_FEATURES = tuple(s.name for s in _SPECS)


def _div(a: pd.Series, b: pd.Series) -> pd.Series:
    a = a.astype(float)
    b = b.astype(float)
    return (a / b.where(b > 0)).astype(float)


def behaviour_change_features(features: pd.DataFrame) -> pd.DataFrame:
    """The :data:`CHANGE_FEATURES` of each row of a ``build_features`` frame (same index).

    Columns needed: ``n_events, active_days, n_orders, n_purchase_days, n_purchases, events_7d,
    purchases_7d, spend_7d, monetary_sum, refund_count``; a missing one gives NaN in the ratios that use it.
    """
    g = features.get
    nan = pd.Series(np.nan, index=features.index)

    def col(name: str) -> pd.Series:
        v = g(name)
        return nan if v is None else v

    out = pd.DataFrame(index=features.index)
    out["events_per_active_day"] = _div(col("n_events"), col("active_days"))
    out["orders_per_purchase_day"] = _div(col("n_orders"), col("n_purchase_days"))
    out["events_share_7d"] = _div(col("events_7d"), col("n_events"))
    out["spend_share_7d"] = _div(col("spend_7d"), col("monetary_sum"))
    out["line_value_ratio_7d"] = _div(_div(col("spend_7d"), col("purchases_7d")),
                                      _div(col("monetary_sum"), col("n_purchases")))
    out["refunds_per_order"] = _div(col("refund_count"), col("n_orders"))
    return out


def with_change_features(features: pd.DataFrame) -> pd.DataFrame:
    """``features`` with :func:`behaviour_change_features` appended (columns already present are replaced)."""
    extra = behaviour_change_features(features)
    return pd.concat([features.drop(columns=[c for c in extra.columns if c in features.columns]), extra], axis=1)


def burst_features(con: Any, *, as_of: object, platforms: str | Sequence[str] | None = None,
                   table: str = "events") -> pd.DataFrame:
    """Short-burst and recent-refund counts per ``(platform, user_id)`` from events with ``ts <= as_of``.

    ``max_events_1h`` / ``max_purchases_1h`` (most events / purchases in one clock hour: bots and
    card testing), ``refunds_30d`` and ``refund_share_30d`` (refunds per purchase in the last 30 days;
    NaN without purchases).  Users with no event at or before ``as_of`` are absent.

    Examples
    --------
    >>> import duckdb
    >>> con = duckdb.connect()
    >>> _ = con.execute("CREATE TABLE events AS SELECT * FROM (VALUES ('a', 'p', TIMESTAMP '2024-01-01 10:05', "
    ...     "'purchase'), ('a', 'p', TIMESTAMP '2024-01-01 10:50', 'purchase'), ('a', 'p', TIMESTAMP "
    ...     "'2024-01-02 09:00', 'refund'), ('a', 'p', TIMESTAMP '2024-02-01', 'refund')) "
    ...     "t(user_id, platform, ts, event_type)")
    >>> burst_features(con, as_of="2024-01-15").astype(str).iloc[0].tolist()
    ['p', 'a', '2', '2', '1', '0.5']
    """
    from buyerscore.features.sql import timestamp_literal, to_timestamp

    ts = to_timestamp(as_of)
    lit = timestamp_literal(ts)
    start = timestamp_literal(ts - pd.Timedelta(days=30))
    plats = [platforms] if isinstance(platforms, str) else list(platforms or [])
    pf = ("AND platform IN (" + ", ".join("'" + p.replace("'", "''") + "'" for p in plats) + ")") if plats else ""
    sql = f"""
        WITH ev AS (SELECT platform, user_id, ts, event_type FROM {table} WHERE ts <= {lit} {pf}),
        hourly AS (SELECT platform, user_id, date_trunc('hour', ts) AS h, COUNT(*) AS n,
                          COUNT(*) FILTER (WHERE event_type = 'purchase') AS p
                   FROM ev GROUP BY ALL),
        recent AS (SELECT platform, user_id,
                          COUNT(*) FILTER (WHERE event_type = 'refund') AS r,
                          COUNT(*) FILTER (WHERE event_type = 'purchase') AS p
                   FROM ev WHERE ts > {start} GROUP BY ALL)
        SELECT h.platform, h.user_id, CAST(MAX(h.n) AS BIGINT) AS max_events_1h,
               CAST(MAX(h.p) AS BIGINT) AS max_purchases_1h,
               CAST(COALESCE(ANY_VALUE(r.r), 0) AS BIGINT) AS refunds_30d,
               CASE WHEN COALESCE(ANY_VALUE(r.p), 0) > 0 THEN ANY_VALUE(r.r) / ANY_VALUE(r.p) END AS refund_share_30d
        FROM hourly h LEFT JOIN recent r USING (platform, user_id)
        GROUP BY h.platform, h.user_id ORDER BY h.platform, h.user_id
    """
    df = con.execute(sql).df()
    df["refund_share_30d"] = df["refund_share_30d"].astype(float)
    return df


def anomaly_features(con: Any, *, as_of: object, platforms: str | Sequence[str] | None = None,
                     table: str = "events") -> pd.DataFrame:
    """:func:`buyerscore.features.build_features` joined with :func:`burst_features` (same users, same cut-off).

    Pass the result to ``AnomalyDetector(change_features=True)`` to add the recent-vs-history ratios too.
    """
    from buyerscore.features import build_features

    F = build_features(con, as_of=as_of, platforms=platforms, table=table)
    B = burst_features(con, as_of=as_of, platforms=platforms, table=table)
    return F.merge(B, on=["platform", "user_id"], how="left")
