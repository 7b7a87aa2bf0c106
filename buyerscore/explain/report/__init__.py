"""One self-contained, offline HTML report of a model's quality, explanations, fairness and stability.

>>> from buyerscore.explain.report import ReportInputs, build_report  # doctest: +SKIP

Wiring (e.g. at the end of ``buyerscore demo``)::

    inputs = merge_inputs(credit_inputs(model, X_test, y_test), power_inputs(spend, pred),
                          anomaly_inputs(detector, F), fairness_inputs(audit), drift_inputs(drift))
    build_report(inputs, "report.html")          # or save_inputs(inputs, "registry/report_inputs")
"""

from buyerscore.explain.report.assemble import (
    anomaly_inputs,
    credit_inputs,
    drift_inputs,
    fairness_inputs,
    merge_inputs,
    power_inputs,
)
from buyerscore.explain.report.build import SECTIONS, ReportInputs, build_report, render_report
from buyerscore.explain.report.io import inputs_from_registry, load_inputs, save_inputs

__all__ = ["SECTIONS", "ReportInputs", "anomaly_inputs", "build_report", "credit_inputs", "drift_inputs",
           "fairness_inputs", "inputs_from_registry", "load_inputs", "merge_inputs", "power_inputs", "render_report",
           "save_inputs"]
