"""Purchasing power: future-spend forecasts, value tiers and the BG/NBD × Gamma-Gamma baseline.

* :class:`SpendForecaster` – expected spend in ``(cutoff, cutoff + horizon]`` (two-part model or Tweedie
  LightGBM, chosen on validation; never negative), with reason codes;
* :class:`SpendTier` – high / mid / low purchasing power with calibrated probabilities;
* :class:`ProbabilisticCLV` – BG/NBD purchase counts × Gamma-Gamma spend per purchase;
* :class:`SequenceSpendModel` – a GRU over each user's daily activity (needs the ``[deep]`` extra);
* :mod:`~buyerscore.models.purchasing_power.inputs` – point-in-time model inputs from the event store;
* :mod:`~buyerscore.models.purchasing_power.metrics` – normalised Gini, top-decile capture and friends.
"""

from __future__ import annotations

from buyerscore.models.purchasing_power.clv import ProbabilisticCLV
from buyerscore.models.purchasing_power.forecaster import SpendForecaster, SpendTier
from buyerscore.models.purchasing_power.inputs import (
    daily_sequences,
    power_features,
    rfm_summary,
    spend_labels,
)
from buyerscore.models.purchasing_power.sequence import SequenceSpendModel

__all__ = [
    "ProbabilisticCLV",
    "SequenceSpendModel",
    "SpendForecaster",
    "SpendTier",
    "daily_sequences",
    "power_features",
    "rfm_summary",
    "spend_labels",
]
