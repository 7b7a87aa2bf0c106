"""Service settings, validated at start-up, and API-key handling (keys are only ever stored hashed)."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from buyerscore.events.schema import LIMIT_CEILING, MAX_AMOUNT, MAX_QUANTITY, MIN_NONZERO_AMOUNT

KEYS_ENV = "BUYERSCORE_API_KEY_HASHES"
"""Environment variable with comma-separated SHA-256 hex digests of the accepted API keys."""
KEYS_FILE_ENV = "BUYERSCORE_API_KEYS_FILE"
"""Environment variable naming a keys file (one SHA-256 hex digest per line, ``#`` comments)."""
_HEX64 = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$")

DEFAULT_MAX_AMOUNT = MAX_AMOUNT
"""Default largest accepted event ``amount``, shared with file ingestion (see ``buyerscore.events.schema``)."""
DEFAULT_MAX_QUANTITY = MAX_QUANTITY
"""Default largest accepted event ``quantity`` (units of one order line)."""
DEFAULT_FUTURE_TOLERANCE_S = 86_400.0
"""Default allowed lead of an event ``ts`` over the server's clock: one day."""


def hash_key(key: str) -> str:
    """SHA-256 hex digest of an API key (what the keys file stores).

    >>> hash_key("secret")[:16]
    '2bb80d537b1da3e3'
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh random API key and its hash: show the key once, store only the hash."""
    key = "bsk_" + secrets.token_urlsafe(32)
    return key, hash_key(key)


def parse_key_hashes(text: str, *, source: str) -> frozenset[str]:
    """Parse hashes separated by newlines or commas; ``#`` starts a comment. Raises on a non-hash."""
    out = set()
    for lineno, line in enumerate(text.replace(",", "\n").splitlines(), start=1):
        item = line.split("#", 1)[0].strip().lower()
        if not item:
            continue
        m = _HEX64.match(item)
        if not m:
            raise ValueError(f"{source}: entry {lineno} is not a SHA-256 hex digest (64 hex characters); store "
                             "hashes, not keys: create one with 'buyerscore serve-key --keys-file FILE'.")
        out.add(m.group(1))
    return frozenset(out)


def load_key_hashes(keys_file: Path | None) -> frozenset[str]:
    """Accepted key hashes from ``keys_file``, ``$BUYERSCORE_API_KEYS_FILE`` and ``$BUYERSCORE_API_KEY_HASHES``."""
    hashes: set[str] = set()
    files = [p for p in (keys_file, os.environ.get(KEYS_FILE_ENV)) if p]
    for f in files:
        p = Path(f)
        if not p.exists():
            raise FileNotFoundError(f"API keys file {p} does not exist; create it with "
                                    f"'buyerscore serve-key --keys-file {p}'.")
        hashes |= parse_key_hashes(p.read_text(encoding="utf-8"), source=str(p))
    env = os.environ.get(KEYS_ENV)
    if env:
        hashes |= parse_key_hashes(env, source=KEYS_ENV)
    return frozenset(hashes)


def key_matches(key: str | None, hashes: frozenset[str]) -> bool:
    """Constant-time check of a presented key against the stored hashes."""
    if not key:
        return False
    h = hash_key(key)
    ok = False
    for stored in hashes:
        ok |= hmac.compare_digest(h, stored)
    return ok


class ServeSettings(BaseModel):
    """Everything the service needs; invalid values fail at start-up, naming the field.

    Parameters
    ----------
    registry : Path
        Model registry folder; the promoted bundle is served and re-read when the pointer changes.
    db : Path
        DuckDB event store (created if absent); ``POST /v1/events`` commits to it.
    api_key_hashes : frozenset of str
        SHA-256 digests of accepted keys.  Empty is refused unless ``allow_anonymous``.
    allow_anonymous : bool
        Serve without keys (local experiments only).
    max_body_bytes : int
        Requests with a larger body get 413.
    max_events_per_request : int
        ``POST /v1/events`` and ``POST /v1/score`` batch limit (422 above).
    max_amount : float
        Largest ``amount`` of one event (currency units) that ``POST /v1/events`` and ``POST /v1/score``
        accept; a larger one (and a non-zero one below :data:`MIN_NONZERO_AMOUNT`) is a field-level 422.
        With it, sums and ratios of amounts in the features stay finite (a sum of 10^12-sized amounts
        would need more than 10^290 events to overflow).
    max_quantity : float
        Largest ``quantity`` of one event accepted (422 above), for the same reason.  Both limits can be
        set up to :data:`LIMIT_CEILING`.
    future_tolerance_s : float
        How far after the server's clock an event's ``ts`` may lie (clock skew between systems, time
        zones sent as naive UTC); later events are a field-level 422.  Events dated in the future
        would count as "recent" activity until that date.
    reload_interval_s : float
        How often the promoted-version pointer is checked (hot reload).
    feature_staleness_s : float
        How long online features computed for "now" are reused when no new event arrived.
    reason_k : int
        Reason codes per section.
    warm_interval_s : float
        Every this many seconds, features and scores of all users are rebuilt as of "now" in one offline
        query in the background (0 = never; each user is then built on first request).
    warm_max_users : int
        Skip the bulk warm-up above this many users (memory bound).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    registry: Path
    db: Path = Path("buyerscore.duckdb")
    api_key_hashes: frozenset[str] = frozenset()
    allow_anonymous: bool = False
    max_body_bytes: int = Field(default=1_000_000, gt=0)
    max_events_per_request: int = Field(default=10_000, gt=0)
    max_amount: float = Field(default=DEFAULT_MAX_AMOUNT, ge=MIN_NONZERO_AMOUNT, le=LIMIT_CEILING)
    max_quantity: float = Field(default=DEFAULT_MAX_QUANTITY, gt=0, le=LIMIT_CEILING)
    future_tolerance_s: float = Field(default=DEFAULT_FUTURE_TOLERANCE_S, ge=0, le=366 * 86_400,
                                      allow_inf_nan=False)
    reload_interval_s: float = Field(default=2.0, ge=0)
    feature_staleness_s: float = Field(default=60.0, ge=0)
    reason_k: int = Field(default=4, ge=0, le=20)
    warm_interval_s: float = Field(default=0.0, ge=0)
    warm_max_users: int = Field(default=200_000, ge=0)

    @field_validator("api_key_hashes")
    @classmethod
    def _hex(cls, v: frozenset[str]) -> frozenset[str]:
        bad = [h for h in v if not _HEX64.match(h)]
        if bad:
            raise ValueError(f"{len(bad)} api_key_hashes entries are not SHA-256 hex digests")
        return v

    @model_validator(mode="after")
    def _keys_or_anonymous(self) -> ServeSettings:
        if not self.api_key_hashes and not self.allow_anonymous:
            raise ValueError("no API keys configured: give --keys-file FILE (or $BUYERSCORE_API_KEY_HASHES), "
                             "or --allow-anonymous for local experiments")
        return self
