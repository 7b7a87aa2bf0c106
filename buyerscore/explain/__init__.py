"""Explanations, fairness, monitoring and reports."""
