"""Model families of buyerscore (scikit-learn-contract estimators) and their metrics.

Sub-packages: :mod:`buyerscore.models.credit` (scorecard and GBM probability of default),
:mod:`buyerscore.models.purchasing_power`, :mod:`buyerscore.models.anomaly`.
:mod:`buyerscore.models.metrics` holds AUC, KS, Gini, Brier, log loss, ECE, lift and PSI.
"""
