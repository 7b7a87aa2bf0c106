"""Raw rows -> validated canonical events (+ rejects with reasons) -> the DuckDB store."""

from buyerscore.events.io import ColumnMapping, read_raw
from buyerscore.events.schema import EVENT_COLUMNS, EVENT_TYPES, REJECT_REASONS, EventType
from buyerscore.events.store import EventStore, IngestSummary
from buyerscore.events.validate import ValidationResult, validate_events

__all__ = ["EVENT_COLUMNS", "EVENT_TYPES", "REJECT_REASONS", "ColumnMapping", "EventStore", "EventType",
           "IngestSummary", "ValidationResult", "read_raw", "validate_events"]
