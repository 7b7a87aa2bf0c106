"""The canonical data model: behaviour events, applicants and user attributes.

This module is the single source of truth for field names, types, units and allowed
values; ``docs/data-model.md`` is written from it (``buyerscore schema --markdown``).

Behaviour events
    One row per event.  ``ts`` is UTC.  Money is in the event's ``currency`` (ISO 4217),
    always non-negative: a refund is an event of type ``refund`` with a positive amount.
Applicants
    One row per credit applicant (or account) with a binary ``label`` (1 = bad / default)
    and an ``as_of`` date; they meet behaviour features on ``(user_id, as_of)``.
Users
    Optional attributes per user (age band, sex, region) used for fairness audits only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pandas as pd


class EventType(StrEnum):
    """Allowed values of ``event_type``."""

    VIEW = "view"
    CLICK = "click"
    CART = "cart"
    FAVORITE = "favorite"
    PURCHASE = "purchase"
    REFUND = "refund"
    REVIEW = "review"
    PAYMENT = "payment"
    REPAYMENT = "repayment"


EVENT_TYPES: tuple[str, ...] = tuple(e.value for e in EventType)
EVENT_TYPE_MEANINGS: dict[str, str] = {
    "view": "the shopper saw a product page (Taobao 'pv')",
    "click": "the shopper clicked a product, ad or recommendation",
    "cart": "an item was put in the basket",
    "favorite": "an item was saved to a wish list (Taobao 'fav')",
    "purchase": "an item or order was bought; amount = line total if known",
    "refund": "money went back to the shopper (return, cancellation); amount positive",
    "review": "the shopper rated and/or reviewed an order or item (rating, text)",
    "payment": "the shopper paid (e.g. an order paid in installments); amount required",
    "repayment": "the shopper repaid credit (instalment or loan); amount required",
}
"""One line per event type, as in docs/data-model.md."""
MONEY_EVENTS: frozenset[str] = frozenset({"refund", "payment", "repayment"})
"""Event types that must carry a non-negative ``amount``.  Purchases should have one too, but a
clickstream log may not know prices (Taobao), so a purchase without amount is accepted as
"amount unknown" and counts in purchase frequency, not in monetary features."""


@dataclass(frozen=True)
class Field:
    """One column of a canonical table."""

    name: str
    dtype: str  # DuckDB type
    required: bool
    description: str
    unit: str = ""
    allowed: str = ""


EVENT_FIELDS: tuple[Field, ...] = (
    Field("event_id", "VARCHAR", False,
          "Unique id of the event. If absent it is derived deterministically (first 20 hex digits of the SHA-1 of "
          "the other canonical fields), so exact duplicate rows collide: within a file the later one is rejected "
          "as DUPLICATE_EVENT, across files it is skipped as already present."),
    Field("user_id", "VARCHAR", True, "Pseudonymous id of the shopper on its platform (never an e-mail or name)."),
    Field("ts", "TIMESTAMP", True,
          "When the event happened, stored as naive UTC. Text is read as ISO 8601 (offsets honoured; naive values "
          "are UTC unless the mapping sets a timezone), or with the mapping's timestamp_format. Numbers are Unix "
          "time: seconds (< 1e11), milliseconds (< 1e14), microseconds (< 1e17) or nanoseconds; 8-digit numbers "
          "19000101..21001231 are YYYYMMDD dates.", "UTC timestamp", "1970-01-01 < ts < 2100-01-01"),
    Field("event_type", "VARCHAR", True, "What happened (see the table below); case and spaces are ignored.", "",
          ", ".join(EVENT_TYPES)),
    Field("platform", "VARCHAR", False, "Shop or platform the event comes from; defaults to 'default'."),
    Field("item_id", "VARCHAR", False, "Product / SKU id."),
    Field("category", "VARCHAR", False, "Product category id or name."),
    Field("quantity", "DOUBLE", False, "Units involved (items bought, refunded, carted).", "units", ">= 0"),
    Field("amount", "DOUBLE", False,
          "Money value of the event: the line total (unit price x quantity), never a unit price; required for "
          "refund, payment, repayment; optional for purchase (a clickstream may not know prices).",
          "units of currency", ">= 0"),
    Field("currency", "VARCHAR", False, "ISO 4217 code of amount.", "", "3 letters, e.g. USD, GBP, TWD, BRL"),
    Field("order_id", "VARCHAR", False, "Order the event belongs to (purchases, refunds, payments, reviews)."),
    Field("rating", "INTEGER", False, "Star rating of a review.", "stars", "1..5"),
    Field("text", "VARCHAR", False, "Review text (any language); only derived sentiment enters features."),
    Field("installments", "INTEGER", False, "Number of instalments a payment is split into.", "count", ">= 0"),
)
EVENT_COLUMNS: tuple[str, ...] = tuple(f.name for f in EVENT_FIELDS)
REQUIRED_EVENT_COLUMNS: tuple[str, ...] = tuple(f.name for f in EVENT_FIELDS if f.required)

APPLICANT_FIELDS: tuple[Field, ...] = (
    Field("user_id", "VARCHAR", True, "Applicant / account id."),
    Field("as_of", "TIMESTAMP", True,
          "Date the application was scored; features must be computed as of it, the label observed after it.",
          "UTC timestamp"),
    Field("label", "INTEGER", True, "Outcome after as_of: 1 = bad (default, serious delinquency), 0 = good.",
          "", "0, 1"),
    Field("dataset", "VARCHAR", True, "Source dataset or portfolio name."),
)
"""Fixed columns of an applicant table; dataset-specific predictors follow them."""

USER_FIELDS: tuple[Field, ...] = (
    Field("user_id", "VARCHAR", True, "Shopper id, as in events."),
    Field("platform", "VARCHAR", True, "Platform, as in events."),
    Field("age_band", "VARCHAR", False, "Age group, e.g. '25-29'. Sensitive: auditing only."),
    Field("sex", "VARCHAR", False, "Sex as recorded by the source. Sensitive: auditing only."),
    Field("region", "VARCHAR", False, "Coarse residence area (postcode prefix or district), never an address."),
)

TS_MIN = pd.Timestamp("1970-01-01")
"""Timestamps at or before this (the Unix epoch, a common placeholder) are rejected as BAD_TIMESTAMP."""
TS_MAX = pd.Timestamp("2100-01-01")
"""Timestamps at or after this are rejected as BAD_TIMESTAMP."""

MAX_AMOUNT = 1e12
"""Default largest ``amount`` of one event: above any real single order in any currency (10^12 Vietnamese
dong is about 40 million US dollars), far below where sums of amounts could overflow.  Larger amounts are
rejected as AMOUNT_OUT_OF_RANGE (``validate_events(max_amount=...)`` and the API's ``--max-amount`` raise it)."""
MAX_QUANTITY = 1e6
"""Default largest ``quantity`` of one event (units of one order line); larger: QUANTITY_OUT_OF_RANGE."""
MIN_NONZERO_AMOUNT = 1e-8
"""Smallest accepted non-zero ``amount`` (a satoshi): smaller ones are rounding noise, and a ratio such as
``refund_amount_share`` (refunds / spend) over a spend of 1e-320 would overflow to infinity."""
LIMIT_CEILING = 1e18
"""Highest ``max_amount`` / ``max_quantity`` that can be configured (sums of accepted values stay finite)."""

REJECT_REASONS: dict[str, str] = {
    "MALFORMED_ROW": "the line could not be split into the header's columns (CSV) or is not a JSON object (JSON lines)",
    "MISSING_REQUIRED": "a required field (user_id, ts or event_type) is empty",
    "PERSONAL_ID": "user_id is an e-mail address: personal data, not a pseudonymous id (pseudonymize it with the "
                   "mapping's 'pseudonymize: [user_id]'); the address is not stored, not even in the reject",
    "BAD_TIMESTAMP": "ts could not be parsed as a date/time, or lies outside 1970-01-01 .. 2100-01-01 (exclusive)",
    "UNKNOWN_EVENT_TYPE": "event_type is not one of " + ", ".join(EVENT_TYPES),
    "BAD_NUMBER": "quantity, amount, rating or installments is not a finite number",
    "MISSING_AMOUNT": "a refund, payment or repayment has no amount",
    "NEGATIVE_AMOUNT": "amount is negative (record refunds as event_type=refund with a positive amount)",
    "NEGATIVE_QUANTITY": "quantity is negative",
    "AMOUNT_OUT_OF_RANGE": "amount is above the limit (default 1e12 per event) or a non-zero amount below 1e-8 "
                           "(check the unit or a misplaced decimal point)",
    "QUANTITY_OUT_OF_RANGE": "quantity is above the limit (default 1e6 per event)",
    "RATING_OUT_OF_RANGE": "rating is not an integer from 1 to 5",
    "BAD_INSTALLMENTS": "installments is not a non-negative integer",
    "BAD_CURRENCY": "currency is not a 3-letter code",
    "DUPLICATE_EVENT": "an earlier row in the same batch has the same event_id (given or derived)",
}
"""Reason codes of rejected rows; each rejected row has exactly one (the first that applies, in this order)."""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(fields: tuple[Field, ...]) -> str:
    """Render fields as a Markdown table (used to write docs/data-model.md)."""
    lines = ["| field | type | required | unit | allowed | meaning |", "|---|---|---|---|---|---|"]
    for f in fields:
        lines.append(f"| `{f.name}` | {f.dtype} | {'yes' if f.required else 'no'} | {_cell(f.unit)} | "
                     f"{_cell(f.allowed)} | {_cell(f.description)} |")
    return "\n".join(lines)


def data_model_markdown() -> str:
    """The whole data model as Markdown."""
    reasons = "\n".join(f"| `{k}` | {_cell(v)} |" for k, v in REJECT_REASONS.items())
    types = "\n".join(f"| `{k}` | {_cell(v)} |" for k, v in EVENT_TYPE_MEANINGS.items())
    return (
        "# buyerscore data model\n\n"
        "Generated from `buyerscore/events/schema.py` by `buyerscore schema --markdown`; do not edit by hand.\n\n"
        "## Behaviour events (table `events`)\n\n"
        "One row per event. The store adds `batch_id` (the ingest batch that inserted the row).\n\n"
        + markdown_table(EVENT_FIELDS) + "\n\n"
        "Money events (" + ", ".join(sorted(MONEY_EVENTS)) + ") must have an amount. "
        "Amounts are never negative: refunds and cancellations are `refund` events with a positive amount.\n\n"
        "### Event types\n\n| event_type | meaning |\n|---|---|\n" + types + "\n\n"
        "## Applicants (tables `applicants_<dataset>`)\n\n" + markdown_table(APPLICANT_FIELDS) + "\n\n"
        "Dataset-specific predictor columns follow these fixed columns under their original names.\n\n"
        "## Users (table `users`)\n\n" + markdown_table(USER_FIELDS) + "\n\n"
        "## Rejects (table `rejects`)\n\n"
        "Every row that fails validation is kept: `batch_id`, `source` (file or `dataset:<name>`), `row_number` "
        "(1-based data row in the source; the header and blank lines are not counted), `reason` (exactly one code, "
        "the first that applies in the order below), `detail` (the offending field and value) and `raw` (the "
        "original row as JSON, with the file's own column names and values, for the columns that were read: the "
        "canonical ones and those the mapping names; a column no field is read from, such as an e-mail address, is "
        "left out).\n\n"
        "| reason | meaning |\n|---|---|\n" + reasons + "\n\n"
        "## Ingest batches (table `ingest_batches`)\n\n"
        "One row per committed batch: `batch_id` (SHA-1 of the file's bytes, the mapping and the default platform), "
        "`source`, `ingested_at` (UTC) and `summary` (the JSON printed by `buyerscore ingest --json`). Events, rejects "
        "and this row are committed in one transaction.\n"
    )
