"""Explanations, fairness, monitoring and reports.

* :mod:`buyerscore.explain.reason_codes`: the one reason-code layer (``top_reasons``, ``global_importance``);
* :mod:`buyerscore.explain.fairness`: fairness audit by protected group and threshold mitigation (fairlearn);
* :mod:`buyerscore.explain.monitoring`: PSI drift, performance decay and the retrain verdict;
* :mod:`buyerscore.explain.report`: the self-contained offline HTML report.

The reason-code layer is re-exported here; the other modules are imported on use (fairlearn and plotly
are only loaded when needed).
"""

from buyerscore.explain.reason_codes import ReasonCode, global_importance, reasons_frame, top_reasons

__all__ = ["ReasonCode", "global_importance", "reasons_frame", "top_reasons"]
