"""The one definition of every behaviour feature: name, SQL expression, description and unit.

:mod:`buyerscore.features.sql` turns :data:`FEATURES` into the SQL query, and every feature is
registered in :mod:`buyerscore.features.registry` (English and Chinese text, unit) from here,
so the query, the column list and the reason-code texts cannot drift apart.

Expressions are written over the intermediate columns of the query's stages (see
``buyerscore/features/sql.py``): ``{asof}`` is the cut-off as Unix seconds, ``{w}`` the window in
days.  Conventions (docs/features.md has the full table):

* counts are 0 when nothing happened; ratios and means are NULL (NaN) when undefined
  (no denominator), so "no data" never looks like a real zero;
* money sums ignore purchases with unknown amount (Taobao has none): such purchases count in
  frequency, not in spend; ``monetary_sum`` is NULL for a user whose purchases all lack amounts;
* days are fractional days (86,400 s); windows are ``(as_of - w days, as_of]``.

>>> [f.name for f in FEATURES][:3]
['recency_days', 'days_since_last_event', 'tenure_days']
>>> feature_names((30,))[-3:]
['spend_30d', 'purchase_trend_30d', 'spend_trend_30d']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from buyerscore.features.registry import FeatureSpec, register

DEFAULT_WINDOWS: tuple[int, ...] = (7, 30, 90, 365)


@dataclass(frozen=True)
class FeatureDef:
    """One feature (or one windowed family when ``windowed``; its name then contains ``{w}``)."""

    name: str
    expr: str
    description: str
    unit: str
    description_zh: str
    kind: Literal["count", "real"] = "real"
    windowed: bool = False

    def spec(self) -> FeatureSpec:
        return FeatureSpec(self.name, self.description, self.unit, self.description_zh)


def _ratio(num: str, den: str) -> str:
    return f"CASE WHEN {den} > 0 THEN CAST({num} AS DOUBLE) / {den} END"


def _trend(cur: str, prev: str) -> str:
    return f"CASE WHEN {cur} + {prev} = 0 THEN 0.0 ELSE CAST({cur} - {prev} AS DOUBLE) / ({cur} + {prev}) END"


def _entropy(clogc: str) -> str:
    # Shannon entropy in bits from N = n_events and sum(c * ln c) over the buckets:
    # H = ln N - sum(c ln c) / N, divided by ln 2 (no window function needed)
    return f"GREATEST(0.0, (LN(n_events) - {clogc} / n_events) / LN(2))"


F = FeatureDef
FEATURES: tuple[FeatureDef, ...] = (
    # --- recency, tenure ------------------------------------------------------------------------
    F("recency_days", "({asof} - last_purchase_t) / 86400.0",
      "Days since the last purchase", "days", "距上次购买的天数"),
    F("days_since_last_event", "({asof} - last_t) / 86400.0",
      "Days since the last event of any kind", "days", "距最近一次行为的天数"),
    F("tenure_days", "({asof} - first_t) / 86400.0",
      "Days since the first recorded event (account age)", "days", "自首次行为以来的天数（账龄）"),
    # --- frequency ------------------------------------------------------------------------------
    F("n_events", "n_events", "Events of any kind", "events", "全部行为次数", "count"),
    F("n_purchases", "n_purchases", "Purchase events (order lines), priced or not", "purchases",
      "购买次数（订单行）", "count"),
    F("n_orders", "COALESCE(n_orders, 0)", "Distinct orders (a purchase line without order id is its own order)",
      "orders", "订单数", "count"),
    F("n_purchase_days", "COALESCE(n_purchase_days, 0)", "Distinct days with a purchase", "days",
      "有购买的天数", "count"),
    # --- monetary -------------------------------------------------------------------------------
    F("monetary_sum", "CASE WHEN n_purchases = 0 THEN 0.0 ELSE spend END",
      "Total purchase amount (gross, known amounts only)", "currency", "累计购买金额（毛额）"),
    F("monetary_mean", "order_value_mean", "Mean order value (orders with a known amount)", "currency",
      "平均订单金额"),
    F("monetary_max", "order_value_max", "Largest order value", "currency", "最大订单金额"),
    F("net_spend", "CASE WHEN n_purchases = 0 THEN 0.0 ELSE spend END - COALESCE(refund_amount, 0)",
      "Purchase amount minus refunded amount", "currency", "净消费金额（扣除退款）"),
    # --- inter-purchase time ----------------------------------------------------------------------
    F("ipt_mean_days", "ipt_mean", "Mean gap between consecutive purchase days", "days", "平均购买间隔天数"),
    F("ipt_std_days", "ipt_std", "Standard deviation of the gaps between purchase days", "days",
      "购买间隔天数的标准差"),
    # --- breadth, basket ----------------------------------------------------------------------------
    F("distinct_items", "COALESCE(n_items, 0)", "Distinct items purchased", "items", "购买过的不同商品数", "count"),
    F("distinct_categories", "COALESCE(n_categories, 0)", "Distinct categories purchased", "categories",
      "购买过的不同品类数", "count"),
    F("basket_size_mean", "basket_size", "Mean units per order", "units", "平均每单件数"),
    # --- funnel ---------------------------------------------------------------------------------
    F("n_views", "n_views", "Product views", "views", "浏览次数", "count"),
    F("n_carts", "n_carts", "Add-to-cart events", "carts", "加购次数", "count"),
    F("n_favorites", "n_favorites", "Favourite / wish-list events", "events", "收藏次数", "count"),
    F("view_to_cart_rate", _ratio("n_carts", "n_views"), "Add-to-cart events per view", "ratio",
      "加购/浏览比"),
    F("cart_to_purchase_rate", _ratio("n_purchases", "n_carts"), "Purchases per add-to-cart event", "ratio",
      "购买/加购比"),
    F("view_to_purchase_rate", _ratio("n_purchases", "n_views"), "Purchases per view", "ratio", "购买/浏览比"),
    F("cart_abandonment_rate", _ratio("n_abandoned_items", "n_carted_items"),
      "Share of carted items never purchased", "share", "加购后未购买的商品占比"),
    # --- refunds --------------------------------------------------------------------------------
    F("refund_count", "n_refunds", "Refund / cancellation events", "refunds", "退款次数", "count"),
    F("refund_amount", "COALESCE(refund_amount, 0.0)", "Total refunded amount", "currency", "累计退款金额"),
    F("refund_rate", _ratio("n_refunds", "n_purchases"), "Refunds per purchase", "ratio", "退款率（次数）"),
    F("refund_amount_share", "CASE WHEN spend > 0 THEN COALESCE(refund_amount, 0.0) / spend END",
      "Refunded amount as a share of purchase amount", "share", "退款金额占购买金额比例"),
    # --- reviews --------------------------------------------------------------------------------
    F("review_count", "n_reviews", "Reviews written", "reviews", "评价次数", "count"),
    F("rating_mean", "rating_mean", "Mean star rating given", "stars", "平均评分"),
    F("review_sentiment_mean", "sentiment_mean",
      "Mean sentiment of review texts (lexicon, -1 negative to +1 positive)", "score", "评价文本平均情感得分"),
    # --- payments -------------------------------------------------------------------------------
    F("installment_share", _ratio("n_instalment_payments", "n_payments"),
      "Share of payments split into more than one instalment", "share", "分期付款占比"),
    F("installments_mean", "installments_mean", "Mean number of instalments per payment", "instalments",
      "平均分期期数"),
    # --- activity rhythm --------------------------------------------------------------------------
    F("active_days", "active_days", "Distinct days with any event", "days", "活跃天数", "count"),
    F("hour_entropy", _entropy("hour_clogc"), "Entropy of the hour-of-day of events (0 = always the same hour)",
      "bits", "行为时段分布熵"),
    F("weekday_entropy", _entropy("weekday_clogc"), "Entropy of the weekday of events (0 = always the same weekday)",
      "bits", "行为星期分布熵"),
    # --- windows --------------------------------------------------------------------------------
    F("events_{w}d", "events_w{w}", "Events in the last {w} days", "events", "近{w}天行为次数", "count", True),
    F("purchases_{w}d", "purchases_w{w}", "Purchases in the last {w} days", "purchases", "近{w}天购买次数",
      "count", True),
    F("spend_{w}d", "CASE WHEN purchases_w{w} = 0 THEN 0.0 ELSE spend_w{w} END",
      "Purchase amount in the last {w} days", "currency", "近{w}天购买金额", windowed=True),
    F("purchase_trend_{w}d", _trend("purchases_w{w}", "purchases_p{w}"),
      "Change in purchases, last {w} days vs the {w} days before (-1 to +1)", "ratio",
      "近{w}天购买次数相对前{w}天的变化（-1到1）", windowed=True),
    F("spend_trend_{w}d", _trend("CASE WHEN purchases_w{w} = 0 THEN 0.0 ELSE spend_w{w} END",
                                 "CASE WHEN purchases_p{w} = 0 THEN 0.0 ELSE spend_p{w} END"),
      "Change in spend, last {w} days vs the {w} days before (-1 to +1)", "ratio",
      "近{w}天消费金额相对前{w}天的变化（-1到1）", windowed=True),
)
"""Every behaviour feature, in output order (windowed families expand per window, window-major)."""


def expand(windows: Sequence[int] = DEFAULT_WINDOWS) -> list[tuple[str, str, FeatureDef]]:
    """``(name, expression-with-{asof}, definition)`` of every output column for ``windows``."""
    fixed = [(f.name, f.expr, f) for f in FEATURES if not f.windowed]
    win = [(f.name.format(w=w), f.expr.replace("{w}", str(w)), f)
           for w in windows for f in FEATURES if f.windowed]
    return fixed + win


def feature_names(windows: Sequence[int] = DEFAULT_WINDOWS) -> list[str]:
    """Output feature columns (after ``platform, user_id``) for ``windows``."""
    return [name for name, _, _ in expand(windows)]


FEATURE_NAMES: tuple[str, ...] = tuple(feature_names())
"""Feature columns for the default windows (7, 30, 90, 365 days)."""

for _f in FEATURES:
    register(_f.spec())
for _name, _desc, _unit, _zh in (
    ("future_spend", "Gross purchase amount in the label horizon", "currency", "未来窗口内购买金额（毛额）"),
    ("future_net_spend", "Purchase minus refund amount in the label horizon", "currency", "未来窗口内净消费金额"),
    ("future_purchase", "1 if the user purchases in the label horizon", "flag", "未来窗口内是否购买"),
    ("future_n_purchases", "Purchase events in the label horizon", "purchases", "未来窗口内购买次数"),
):
    register(FeatureSpec(_name, _desc, _unit, _zh))
