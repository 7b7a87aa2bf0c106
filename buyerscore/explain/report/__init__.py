"""One self-contained, offline HTML report of a model's quality, explanations, fairness and stability.

>>> from buyerscore.explain.report import ReportInputs, build_report  # doctest: +SKIP
"""

from buyerscore.explain.report.build import SECTIONS, ReportInputs, build_report, render_report
from buyerscore.explain.report.io import inputs_from_registry, load_inputs, save_inputs

__all__ = ["SECTIONS", "ReportInputs", "build_report", "inputs_from_registry", "load_inputs", "render_report",
           "save_inputs"]
