"""buyerscore: judge e-commerce shoppers from behaviour logs.

Purchasing power, credit, anomaly scores with reason codes, fairness and drift audits,
served from one package.  The data flows ``events -> validated events -> point-in-time
features -> models -> explanations/reports -> serving``; sub-packages are named after
those stages.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
