"""Point-in-time features (computed as of a cut-off) and labels (strictly after it).

>>> from buyerscore.features import FEATURE_NAMES, describe
>>> describe("recency_days"), describe("spend_30d", lang="zh")
('Days since the last purchase', '近30天购买金额')
"""

from buyerscore.features.build import build_features, build_labels
from buyerscore.features.definitions import (
           DEFAULT_WINDOWS,
           FEATURE_NAMES,
           FEATURES,
           FeatureDef,
           feature_names,
)
from buyerscore.features.registry import FeatureSpec, describe, get, register, unit
from buyerscore.features.sql import feature_sql, label_sql

LABEL_NAMES: tuple[str, ...] = ("future_spend", "future_net_spend", "future_purchase", "future_n_purchases")

__all__ = ["DEFAULT_WINDOWS", "FEATURES", "FEATURE_NAMES", "LABEL_NAMES", "FeatureDef", "FeatureSpec", "build_features",
           "build_labels", "describe", "feature_names", "feature_sql", "get", "label_sql", "register", "unit"]
