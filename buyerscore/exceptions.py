"""Exceptions raised by buyerscore.

Every exception subclasses a built-in so that callers can catch either the precise
buyerscore error or the generic Python one.  Messages say what failed, where (file,
column, row, value) and what to do.
"""

from __future__ import annotations

from sklearn.exceptions import NotFittedError as _SkNotFittedError


class BuyerscoreError(Exception):
    """Base class of all buyerscore errors."""


class SchemaError(BuyerscoreError, ValueError):
    """Input data does not have the columns or types buyerscore needs.

    Raised for unusable input as a whole (a missing required column, an unknown
    format).  Row-level problems never raise: bad rows are quarantined as rejects.
    """


class UnreadableInputError(BuyerscoreError, OSError):
    """A file could not be opened or parsed at all."""


class DatasetNotFoundError(BuyerscoreError, FileNotFoundError):
    """A public dataset file is missing from the data directory."""


class StrictModeError(BuyerscoreError, RuntimeError):
    """Raised by ``--strict`` ingestion when at least one row was rejected."""


class NotFittedError(BuyerscoreError, _SkNotFittedError):
    """An estimator was used before ``fit``; a subclass of scikit-learn's ``NotFittedError`` (itself a
    ``ValueError`` and an ``AttributeError``), so ``except sklearn.exceptions.NotFittedError`` catches it."""


class LeakageError(BuyerscoreError, ValueError):
    """Data from after the cut-off would enter a feature, or a label from before it."""


class ModelInputError(BuyerscoreError, ValueError):
    """Scoring input does not match the features a model was trained on."""
