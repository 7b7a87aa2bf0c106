"""Serving: the HTTP scoring service (``api``), online features (``online``) and batch scoring (``batch``).

All paths score through :meth:`buyerscore.pipeline.ScoringPipeline.score_frame`.
"""
