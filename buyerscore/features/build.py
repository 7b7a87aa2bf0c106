"""Build point-in-time features (as of a cut-off) and labels (strictly after it) on a DuckDB store.

>>> import pandas as pd
>>> from buyerscore.events import EventStore
>>> store = EventStore(":memory:")
>>> _ = store.ingest_frame(pd.DataFrame({
...     "user_id": ["u1", "u1", "u1"], "ts": ["2024-01-01", "2024-01-11", "2024-02-15"],
...     "event_type": ["purchase", "purchase", "purchase"], "amount": [10.0, 30.0, 99.0]}), source="doc")
>>> f = build_features(store.con, as_of="2024-01-31", windows=(30,))
>>> f[["user_id", "n_purchases", "monetary_sum", "recency_days", "ipt_mean_days"]].to_dict("records")
[{'user_id': 'u1', 'n_purchases': 2, 'monetary_sum': 40.0, 'recency_days': 20.0, 'ipt_mean_days': 10.0}]
>>> build_labels(store.con, as_of="2024-01-31", horizon_days=30)[["future_spend", "future_purchase"]].values.tolist()
[[99.0, 1.0]]
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from buyerscore._validation import check_param
from buyerscore.exceptions import LeakageError, SchemaError
from buyerscore.features.definitions import DEFAULT_WINDOWS, feature_names
from buyerscore.features.sql import feature_sql, label_sql, to_timestamp

logger = logging.getLogger(__name__)

_NEEDED = ("platform", "user_id", "event_id", "ts", "event_type", "item_id", "category", "quantity", "amount",
           "order_id", "rating", "text", "installments")


def _check_windows(windows: Sequence[int]) -> tuple[int, ...]:
    check_param("build_features", "windows", windows,
                lambda v: len(v) > 0 and all(int(x) == x and x > 0 for x in v) and len(set(v)) == len(v),
                "a non-empty sequence of distinct positive whole numbers of days")
    return tuple(int(x) for x in windows)


def _platforms(platforms: str | Sequence[str] | None) -> list[str] | None:
    if platforms is None:
        return None
    if isinstance(platforms, str):
        return [platforms]
    return list(platforms)


def _check_table(con: Any, table: str) -> None:
    try:
        cols = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
    except Exception as exc:
        raise SchemaError(f"No table {table!r} in this database; ingest events first "
                          f"('buyerscore ingest' or 'buyerscore datasets load').") from exc
    missing = [c for c in _NEEDED if c not in cols]
    if missing:
        raise SchemaError(f"Table {table!r} lacks column(s) {missing}; it must have the canonical event columns "
                          f"(see 'buyerscore schema').")


FEATURE_DIGITS = 12
"""Significant digits kept in every float feature (:func:`round_features`)."""


def round_significant(values: Any, digits: int = FEATURE_DIGITS) -> np.ndarray:
    """``values`` rounded to ``digits`` significant digits (0, NaN, +-inf and magnitudes beyond 1e+-290 kept).

    A mean or a sum of floats depends on the order its terms are added in, so two engines (or two users
    with the same numbers) can give results one unit in the last place apart.  Trees split between
    such neighbours and then send equal values to different leaves; rounding to 12 digits removes that
    noise, so DuckDB and Spark features give the same scores.

    >>> round_significant([1.5849625007211563, 1.5849625007211560, 123456.78901234567, 0.0]).tolist()
    [1.58496250072, 1.58496250072, 123456.789012, 0.0]
    """
    v = np.array(values, dtype=np.float64)
    a = np.abs(v)
    ok = np.isfinite(v) & (a > 1e-290) & (a < 1e290)
    if ok.any():
        x = v[ok]
        k = (digits - 1 - np.floor(np.log10(np.abs(x)))).astype(np.int64)
        up = k >= 0  # scale up by 10**k, or down by 10**-k: both exact powers of ten for |k| <= 22
        r = np.empty_like(x)
        r[up] = np.round(x[up] * 10.0 ** k[up]) / 10.0 ** k[up]
        r[~up] = np.round(x[~up] / 10.0 ** (-k[~up])) * 10.0 ** (-k[~up])
        v[ok] = r
    return v


def round_features(df: pd.DataFrame, digits: int = FEATURE_DIGITS) -> pd.DataFrame:
    """Round every float column of a feature frame to ``digits`` significant digits, in place; returns it.

    Used by :func:`build_features` and by the Spark path (:func:`buyerscore.spark.build_features_spark`),
    so that every feature producer hands models the same numbers.
    """
    for c in df.columns:
        if getattr(df[c].dtype, "kind", "O") == "f":
            df[c] = round_significant(df[c].to_numpy(dtype=np.float64, na_value=np.nan), digits)
    return df


def build_features(
    con: Any, *, as_of: object, windows: Sequence[int] = DEFAULT_WINDOWS,
    platforms: str | Sequence[str] | None = None, table: str = "events",
) -> pd.DataFrame:
    """Behaviour features of every user with at least one event at or before ``as_of``.

    Computed in DuckDB SQL from events with ``ts <= as_of`` only (the query is
    :func:`buyerscore.features.sql.feature_sql`); see ``docs/features.md`` and the registry for each
    column's meaning and unit.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        Connection holding the canonical ``events`` table (``EventStore(...).con``).
    as_of : date-like
        Cut-off (naive values are UTC; a date means midnight at its start).  Required.
    windows : sequence of int, default (7, 30, 90, 365)
        Window lengths in days of the windowed counts, spend and trends.
    platforms : str or sequence of str, optional
        Only these platforms (default: all).
    table : str, default "events"
        Events table name.

    Returns
    -------
    pandas.DataFrame
        One row per ``(platform, user_id)``, sorted; then the columns of
        :func:`~buyerscore.features.definitions.feature_names` (counts int64, the rest float64 with NaN
        where undefined).

    Examples
    --------
    >>> import duckdb
    >>> con = duckdb.connect()
    >>> _ = con.execute("CREATE TABLE events (event_id VARCHAR, user_id VARCHAR, ts TIMESTAMP, event_type VARCHAR, "
    ...     "platform VARCHAR, item_id VARCHAR, category VARCHAR, quantity DOUBLE, amount DOUBLE, currency VARCHAR, "
    ...     "order_id VARCHAR, rating INTEGER, text VARCHAR, installments INTEGER)")
    >>> _ = con.execute("INSERT INTO events (event_id, user_id, ts, event_type, platform) VALUES "
    ...     "('e1', 'a', '2024-01-01', 'view', 'shop'), ('e2', 'a', '2024-03-01', 'view', 'shop')")
    >>> build_features(con, as_of="2024-01-31", windows=(7,))[["user_id", "n_events", "n_views"]].values.tolist()
    [['a', 1, 1]]
    """
    ts = to_timestamp(as_of)
    wins = _check_windows(windows)
    plats = _platforms(platforms)
    _check_table(con, table)
    sql = feature_sql(as_of=ts, windows=wins, platforms=plats, table=table)
    logger.info("building features as of %s, windows %s, platforms %s", ts, wins, plats or "all")
    df = con.execute(sql).df()
    cols = ["platform", "user_id", *feature_names(wins)]
    assert list(df.columns) == cols, "feature query and definitions disagree"
    for c in cols[2:]:
        if df[c].dtype == object:  # all-NULL column on an empty result
            df[c] = pd.to_numeric(df[c])
    return round_features(df)  # 12 significant digits: no summation-order noise (round_significant)


def build_labels(
    con: Any, *, as_of: object, horizon_days: float, platforms: str | Sequence[str] | None = None,
    table: str = "events", warn_censored: bool = True,
) -> pd.DataFrame:
    """Future-spend labels in ``(as_of, as_of + horizon_days]`` for the users of :func:`build_features`.

    ``future_spend`` is the **gross** purchase amount in the horizon (known amounts only);
    ``future_net_spend`` subtracts refunds made in the horizon (whatever purchase they refund);
    ``future_purchase`` is 1 if there is any purchase event (priced or not); ``future_n_purchases``
    counts them.  Users without events in the horizon get 0.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        Connection holding the ``events`` table.
    as_of : date-like
        Cut-off; labels use only events strictly after it.
    horizon_days : float
        Length of the label window in days (> 0).
    platforms : str or sequence of str, optional
        Only these platforms.
    table : str, default "events"
        Events table name.
    warn_censored : bool, default True
        Log a warning when the horizon ends after the last stored event (labels would be truncated).

    Returns
    -------
    pandas.DataFrame
        ``platform, user_id, future_spend, future_net_spend, future_purchase, future_n_purchases``.

    Raises
    ------
    LeakageError
        If ``horizon_days`` is not positive (the window would not lie strictly after ``as_of``).
    """
    ts = to_timestamp(as_of)
    try:
        h = float(horizon_days)
    except (TypeError, ValueError):
        raise LeakageError(f"horizon_days must be a positive number of days; got {horizon_days!r}.") from None
    if not (math.isfinite(h) and h > 0):
        raise LeakageError(f"horizon_days={horizon_days!r}: the label window (as_of, as_of + horizon] must lie "
                           "strictly after as_of; use a positive, finite number of days.")
    plats = _platforms(platforms)
    _check_table(con, table)
    if warn_censored:
        last = con.execute(f"SELECT MAX(ts) FROM {table}").fetchone()[0]
        end = ts + pd.Timedelta(days=h)
        if last is not None and pd.Timestamp(last) < end:
            logger.warning("label horizon ends at %s but the last event is at %s: labels are censored",
                           end, last)
    return con.execute(label_sql(as_of=ts, horizon_days=h, platforms=plats, table=table)).df()

