"""Anomaly and fraud detection over behaviour features, and documented anomaly injection for evaluation.

>>> from buyerscore.models.anomaly import AnomalyDetector, inject_anomalies  # doctest: +SKIP
"""

from buyerscore.models.anomaly.detector import DETECTORS, AnomalyDetector
from buyerscore.models.anomaly.inject import ANOMALY_TYPES, InjectionResult, inject_anomalies

__all__ = ["ANOMALY_TYPES", "DETECTORS", "AnomalyDetector", "InjectionResult", "inject_anomalies"]
