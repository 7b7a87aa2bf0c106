"""Typed request and response bodies of the API (they generate the OpenAPI spec)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

Scalar = StrictStr | StrictInt | StrictFloat | None
"""A JSON string, number or null, taken as given (row checks follow); ``true``/``false`` are refused, not 1/0."""
UserId = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=r"^[^/]*$")] | StrictInt | None
"""A user id as ``GET /v1/users/{user_id}/score`` can address it: at most 200 characters, no ``/``."""
Number = Annotated[StrictFloat | None, Field(allow_inf_nan=False)]
"""A finite JSON number or null; ``true``/``false`` are refused (pydantic's lax float took them as 1.0 / 0.0)."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventIn(_Body):
    """One behaviour event with the canonical field names.

    Values are taken as given and validated row by row exactly like file ingestion: a bad
    value rejects the row (with a reason), it does not fail the request.
    """

    event_id: str | None = Field(default=None, max_length=200)
    user_id: UserId = Field(default=None, description="Required; pseudonymous shopper id (at most 200 characters, "
                                                         "no '/', so that GET /v1/users/{user_id}/score can address "
                                                         "it).")
    ts: Scalar = Field(default=None, description="Required; ISO 8601 (naive = UTC) or Unix seconds/ms; at most the "
                                                  "server's clock plus its tolerance (default: 1 day) ahead.")
    event_type: Scalar = Field(default=None, description="Required; view, click, cart, favorite, purchase, "
                                                          "refund, review, payment or repayment.")
    platform: Scalar = None
    item_id: Scalar = None
    category: Scalar = None
    quantity: Scalar = Field(default=None, description="Units; at most the server's max_quantity (default 1e6).")
    amount: Scalar = Field(default=None, description="Money in currency units: 0, or from 1e-8 up to the server's "
                                                     "max_amount (default 1e12).")
    currency: Scalar = None
    order_id: Scalar = None
    rating: Scalar = None
    text: str | None = Field(default=None, max_length=10_000)
    installments: Scalar = None


class EventsRequest(_Body):
    events: list[EventIn] = Field(..., min_length=1, description="Events to store (at most the server's limit).")
    platform: str = Field(default="default", min_length=1, max_length=100,
                          description="Platform for events without one.")


class RejectOut(BaseModel):
    index: int = Field(..., description="0-based position of the event in the request.")
    reason: str
    detail: str


class EventsResponse(BaseModel):
    batch_id: str
    read: int
    accepted: int
    rejected: int
    inserted: int
    already_present: int
    conflicts: int = Field(0, description="Events whose event_id was stored before with other content: the stored "
                                          "version was kept (events are immutable; send a correction as a new "
                                          "event with its own id).")
    by_reason: dict[str, int]
    rejects: list[RejectOut]
    durable: bool = Field(True, description="Accepted events are committed to the store.")


class ReasonOut(BaseModel):
    feature: str
    contribution: float = Field(..., description="> 0: pushes toward the adverse outcome.")
    value: float | str | None = Field(..., description="The user's value of the feature (null = missing).")
    text: str


class InputWarningOut(BaseModel):
    """An input the model never saw in training; the section was still scored (an unseen category is
    scored like an unknown one, a number beyond the training range like the outermost values), but the
    score deserves a look: a typo or a unit change gets an arbitrary score."""

    model: str = Field(..., description="Model kind that raised it (credit, power_spend, ...).")
    feature: str = Field(..., description="Input feature.")
    value: float | str | None = Field(..., description="The value sent.")
    issue: Literal["unseen_category", "below_training_range", "above_training_range"]
    message: str = Field(..., description="What is odd about the value, with the training categories or range.")


def _warnings() -> Any:
    return Field(default_factory=list, description="Inputs of this section's models that lie outside what they "
                                                   "saw in training (empty when there are none).")


class PowerOut(BaseModel):
    expected_spend: float | None = Field(None, description="Expected spend in the forecast horizon.")
    tier: str | None = Field(None, description="high, mid or low.")
    probabilities: dict[str, float] | None = Field(None, description="P(tier) for high, mid, low.")
    reasons: list[ReasonOut] = []
    warnings: list[InputWarningOut] = _warnings()


class CreditOut(BaseModel):
    pd: float | None = Field(..., description="Probability of default.")
    score: float | None = Field(..., description="Scorecard points (higher = safer).")
    grade: str | None = None
    reasons: list[ReasonOut] = []
    warnings: list[InputWarningOut] = _warnings()


class AnomalyOut(BaseModel):
    score: float | None = Field(..., description="Anomaly score in [0, 1].")
    flag: bool
    reasons: list[ReasonOut] = []
    warnings: list[InputWarningOut] = _warnings()


class ScoreResponse(BaseModel):
    user_id: str | None
    platform: str | None
    as_of: datetime | None = Field(None, description="Cut-off of the behaviour features (UTC).")
    model_version: str
    power: PowerOut | None = None
    credit: CreditOut | None = None
    anomaly: AnomalyOut | None = None
    unavailable: dict[str, str] = Field(default_factory=dict,
                                        description="Model section -> why it was not scored.")


class ScoreRequest(_Body):
    """Score without storing: give either ``features`` or raw ``events`` (of one user)."""

    features: dict[str, Number | Annotated[str, Field(max_length=200)]] | None = Field(
        None, description="Feature name -> value (null = unknown; strings for categorical credit predictors). "
                          "Models whose features are all present are scored.", max_length=2000)
    events: list[EventIn] | None = Field(None, min_length=1, description="Raw events of one user.")
    as_of: datetime | None = Field(None, description="Feature cut-off for events (default: now, UTC).")
    user_id: str | None = Field(None, max_length=200)
    platform: str | None = Field(None, max_length=100)


class HealthOut(BaseModel):
    status: Literal["ok"]
    model_version: str
    models: list[str]
    uptime_s: float


class ErrorOut(BaseModel):
    detail: Any
