"""One router per resource: events, scores, operations (health, metrics)."""
