"""SQL text of the point-in-time feature and label queries, generated from one definition.

The query is plain SQL (CTEs, ``CASE``, ``COUNT(DISTINCT)``, ``LAG`` and ``SUM() OVER``) so the same
text runs on DuckDB and, later, on Spark SQL.  Only two expressions differ between engines and live
in :class:`Dialect`: seconds since the epoch of a timestamp, and splitting review text into one row
per word.  Every date computation is done on epoch seconds (days = ``FLOOR(t / 86400)``, hour and
weekday by arithmetic), so no engine-specific date function is needed.

The first stage keeps only ``ts <= as_of`` (and the requested platforms); nothing after the
cut-off can reach a feature.

>>> q = feature_sql(as_of="2024-01-31", windows=(30,))
>>> "ts <= TIMESTAMP '2024-01-31 00:00:00'" in q
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from buyerscore.features.definitions import DEFAULT_WINDOWS, expand
from buyerscore.features.sentiment import TOKEN_PATTERN, load_lexicon


@dataclass(frozen=True)
class Dialect:
    """The few expressions that differ between SQL engines (``{x}`` is the argument)."""

    name: str
    epoch_seconds: str
    explode_tokens: str
    materialized: str = ""
    """Keyword before the body of a small CTE that several stages reuse, so it is computed once."""
    inlined: str = ""
    """Keyword before the body of the wide event CTE, so each stage scans the table with its own filter
    instead of copying all events once (measured faster on DuckDB)."""
    real: str = "{x}"
    """A decimal literal as a number that averages like DuckDB's (Spark keeps ``0.65`` a DECIMAL, whose
    AVG rounds to 6 decimals)."""


DIALECTS: dict[str, Dialect] = {
    "duckdb": Dialect("duckdb", "epoch({x})",
                      "unnest(regexp_split_to_array(lower({x}), '" + TOKEN_PATTERN + "'))", "MATERIALIZED ",
                      "NOT MATERIALIZED "),
    # unix_micros keeps the microseconds as DuckDB's epoch() does (unix_timestamp() would truncate to whole
    # seconds); the cast accepts TIMESTAMP_NTZ too (the same instant in the session's UTC time zone)
    "spark": Dialect("spark", "CAST(unix_micros(CAST({x} AS TIMESTAMP)) AS DOUBLE) / CAST(1000000 AS DOUBLE)",
                     "explode(split(lower({x}), '" + TOKEN_PATTERN.replace("\\", "\\\\") + "'))",
                     real="CAST({x} AS DOUBLE)"),
}


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def timestamp_literal(ts: pd.Timestamp) -> str:
    return f"TIMESTAMP '{ts.strftime('%Y-%m-%d %H:%M:%S.%f').removesuffix('.000000')}'"


def to_timestamp(value: object, name: str = "as_of") -> pd.Timestamp:
    """Parse a cut-off to a naive UTC timestamp (aware values are converted to UTC)."""
    if value is None:
        raise TypeError(f"{name} is required (a date or timestamp); got None.")
    try:
        ts = pd.Timestamp(value)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{name}={value!r} is not a date or timestamp; use e.g. '2024-01-31'.") from exc
    if ts is pd.NaT:
        raise ValueError(f"{name}={value!r} is not a date or timestamp; use e.g. '2024-01-31'.")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def epoch_of(ts: pd.Timestamp) -> float:
    return (ts - pd.Timestamp("1970-01-01")) / pd.Timedelta(seconds=1)


def _platform_filter(platforms: Sequence[str] | None) -> str:
    if not platforms:
        return ""
    return " AND platform IN (" + ", ".join(_q(p) for p in platforms) + ")"


def _lexicon_values(d: Dialect) -> str:
    rows = ", ".join(f"({_q(w)}, {d.real.replace('{x}', repr(s))})" for w, s in sorted(load_lexicon().items()))
    return f"SELECT word, score FROM (VALUES {rows}) AS lx(word, score)"


def _num(x: float) -> str:
    return repr(float(x))


def feature_sql(
    *, as_of: object, windows: Sequence[int] = DEFAULT_WINDOWS, platforms: Sequence[str] | None = None,
    dialect: str = "duckdb", table: str = "events",
) -> str:
    """The feature query: one row per ``(platform, user_id)`` with >= 1 event at or before ``as_of``.

    Parameters
    ----------
    as_of : date-like
        Cut-off; only events with ``ts <= as_of`` are read.
    windows : sequence of int
        Window lengths in days for the windowed families.
    platforms : sequence of str, optional
        Restrict to these platforms.
    dialect : {"duckdb", "spark"}
        Engine the text is written for.
    table : str
        Name of the canonical events table.

    Returns
    -------
    str
        The SQL query.
    """
    d = DIALECTS[dialect]
    ts = to_timestamp(as_of)
    asof = _num(epoch_of(ts))
    t = d.epoch_seconds.replace("{x}", "ts")
    keys = "platform, user_id"
    on = lambda a, b: f"{a}.platform = {b}.platform AND {a}.user_id = {b}.user_id"

    win_aggs = []
    for w in windows:
        lo, lo2 = _num(epoch_of(ts) - w * 86400), _num(epoch_of(ts) - 2 * w * 86400)
        cur, prev = f"t > {lo}", f"t > {lo2} AND t <= {lo}"
        win_aggs += [
            f"COUNT(CASE WHEN {cur} THEN 1 END) AS events_w{w}",
            f"COUNT(CASE WHEN event_type = 'purchase' AND {cur} THEN 1 END) AS purchases_w{w}",
            f"SUM(CASE WHEN event_type = 'purchase' AND {cur} THEN amount END) AS spend_w{w}",
            f"COUNT(CASE WHEN event_type = 'purchase' AND {prev} THEN 1 END) AS purchases_p{w}",
            f"SUM(CASE WHEN event_type = 'purchase' AND {prev} THEN amount END) AS spend_p{w}",
        ]
    win_sql = "".join(",\n    " + a for a in win_aggs)
    features = ",\n  ".join(
        f"CAST({expr.replace('{asof}', asof)} AS {'BIGINT' if f.kind == 'count' else 'DOUBLE'}) AS {name}"
        for name, expr, f in expand(windows))
    tokens = d.explode_tokens.replace("{x}", "text")
    m = d.materialized
    return f"""WITH ev AS {d.inlined}(
  SELECT platform, user_id, event_id, event_type, item_id, category, quantity, amount, order_id, rating, text,
         installments, t, FLOOR(t / 86400) AS d
  FROM (SELECT *, {t} AS t FROM {table} WHERE ts <= {timestamp_literal(ts)}{_platform_filter(platforms)}) src
),
agg AS (
  SELECT {keys},
    COUNT(*) AS n_events, MIN(t) AS first_t, MAX(t) AS last_t,
    COUNT(CASE WHEN event_type = 'purchase' THEN 1 END) AS n_purchases,
    MAX(CASE WHEN event_type = 'purchase' THEN t END) AS last_purchase_t,
    SUM(CASE WHEN event_type = 'purchase' THEN amount END) AS spend,
    COUNT(CASE WHEN event_type = 'view' THEN 1 END) AS n_views,
    COUNT(CASE WHEN event_type = 'cart' THEN 1 END) AS n_carts,
    COUNT(CASE WHEN event_type = 'favorite' THEN 1 END) AS n_favorites,
    COUNT(CASE WHEN event_type = 'refund' THEN 1 END) AS n_refunds,
    SUM(CASE WHEN event_type = 'refund' THEN amount END) AS refund_amount,
    COUNT(CASE WHEN event_type = 'review' THEN 1 END) AS n_reviews,
    AVG(CASE WHEN event_type = 'review' THEN CAST(rating AS DOUBLE) END) AS rating_mean,
    COUNT(CASE WHEN event_type = 'payment' THEN 1 END) AS n_payments,
    COUNT(CASE WHEN event_type = 'payment' AND installments > 1 THEN 1 END) AS n_instalment_payments,
    AVG(CASE WHEN event_type = 'payment' THEN CAST(installments AS DOUBLE) END) AS installments_mean{win_sql}
  FROM ev GROUP BY {keys}
),
orders AS (
  SELECT {keys}, SUM(amount) AS order_value, SUM(COALESCE(quantity, 1)) AS order_units
  FROM ev WHERE event_type = 'purchase' GROUP BY {keys}, COALESCE(order_id, event_id)
),
pstats AS (
  SELECT {keys}, COUNT(DISTINCT item_id) AS n_items, COUNT(DISTINCT category) AS n_categories
  FROM ev WHERE event_type = 'purchase' GROUP BY {keys}
),
ostats AS (
  SELECT {keys}, COUNT(*) AS n_orders, AVG(order_value) AS order_value_mean, MAX(order_value) AS order_value_max,
         AVG(CAST(order_units AS DOUBLE)) AS basket_size
  FROM orders GROUP BY {keys}
),
pdays AS (SELECT DISTINCT {keys}, d FROM ev WHERE event_type = 'purchase'),
gaps AS (SELECT {keys}, d - LAG(d) OVER (PARTITION BY {keys} ORDER BY d) AS gap FROM pdays),
gstats AS (
  SELECT {keys}, COUNT(*) AS n_purchase_days, AVG(gap) AS ipt_mean, STDDEV_SAMP(gap) AS ipt_std
  FROM gaps GROUP BY {keys}
),
cells AS {m}(SELECT {keys}, FLOOR(t / 3600) AS hr, COUNT(*) AS c FROM ev GROUP BY {keys}, FLOOR(t / 3600)),
hours AS (
  SELECT {keys}, SUM(c * LN(c)) AS hour_clogc
  FROM (SELECT {keys}, SUM(c) AS c FROM cells GROUP BY {keys}, hr - 24 * FLOOR(hr / 24)) x GROUP BY {keys}
),
wdays AS (
  SELECT {keys}, SUM(c * LN(c)) AS weekday_clogc
  FROM (SELECT {keys}, SUM(c) AS c FROM cells
        GROUP BY {keys}, FLOOR(hr / 24) + 3 - 7 * FLOOR((FLOOR(hr / 24) + 3) / 7)) x
  GROUP BY {keys}
),
days AS (SELECT {keys}, COUNT(DISTINCT FLOOR(hr / 24)) AS active_days FROM cells GROUP BY {keys}),
citems AS (
  SELECT {keys}, item_id, MAX(CASE WHEN event_type = 'cart' THEN 1 ELSE 0 END) AS carted,
         MAX(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS bought
  FROM ev WHERE event_type IN ('cart', 'purchase') AND item_id IS NOT NULL GROUP BY {keys}, item_id
),
cstats AS (
  SELECT {keys}, SUM(carted) AS n_carted_items, SUM(carted * (1 - bought)) AS n_abandoned_items
  FROM citems GROUP BY {keys}
),
lex AS ({_lexicon_values(d)}),
rtok AS (SELECT {keys}, event_id, {tokens} AS token FROM ev WHERE event_type = 'review' AND text IS NOT NULL),
rsent AS (
  SELECT r.platform, r.user_id, r.event_id, COALESCE(AVG(l.score), 0.0) AS s
  FROM rtok r LEFT JOIN lex l ON r.token = l.word GROUP BY r.platform, r.user_id, r.event_id
),
rstats AS (SELECT {keys}, AVG(s) AS sentiment_mean FROM rsent GROUP BY {keys})
SELECT a.platform, a.user_id,
  {features}
FROM agg a
LEFT JOIN pstats ps ON {on('a', 'ps')}
LEFT JOIN ostats o ON {on('a', 'o')}
LEFT JOIN gstats g ON {on('a', 'g')}
LEFT JOIN hours he ON {on('a', 'he')}
LEFT JOIN wdays we ON {on('a', 'we')}
LEFT JOIN days dy ON {on('a', 'dy')}
LEFT JOIN cstats cs ON {on('a', 'cs')}
LEFT JOIN rstats rs ON {on('a', 'rs')}
ORDER BY a.platform, a.user_id
"""


def label_sql(
    *, as_of: object, horizon_days: float, platforms: Sequence[str] | None = None, table: str = "events",
) -> str:
    """The label query: future spend and purchase flag in ``(as_of, as_of + horizon]`` for every user with
    >= 1 event at or before ``as_of`` (the rows of :func:`feature_sql`); users without future events get 0."""
    ts = to_timestamp(as_of)
    end = ts + pd.Timedelta(days=horizon_days)
    pf = _platform_filter(platforms)
    keys = "platform, user_id"
    return f"""WITH pop AS (
  SELECT DISTINCT {keys} FROM {table} WHERE ts <= {timestamp_literal(ts)}{pf}
),
fut AS (
  SELECT {keys},
    SUM(CASE WHEN event_type = 'purchase' THEN amount END) AS spend,
    SUM(CASE WHEN event_type = 'refund' THEN amount END) AS refunds,
    COUNT(CASE WHEN event_type = 'purchase' THEN 1 END) AS n_purchases
  FROM {table}
  WHERE ts > {timestamp_literal(ts)} AND ts <= {timestamp_literal(end)}{pf}
  GROUP BY {keys}
)
SELECT p.platform, p.user_id,
  CAST(COALESCE(f.spend, 0.0) AS DOUBLE) AS future_spend,
  CAST(COALESCE(f.spend, 0.0) - COALESCE(f.refunds, 0.0) AS DOUBLE) AS future_net_spend,
  CAST(CASE WHEN COALESCE(f.n_purchases, 0) > 0 THEN 1 ELSE 0 END AS INTEGER) AS future_purchase,
  CAST(COALESCE(f.n_purchases, 0) AS BIGINT) AS future_n_purchases
FROM pop p LEFT JOIN fut f ON p.platform = f.platform AND p.user_id = f.user_id
ORDER BY p.platform, p.user_id
"""
