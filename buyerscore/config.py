"""One typed configuration for the whole system.

Load it from a TOML file with :func:`load_config`; every section has defaults, so an
empty file (or no file) is a valid configuration.  Unknown keys are errors, so a typo
fails at start-up instead of being ignored.

Example ``buyerscore.toml``::

    [store]
    db = "buyerscore.duckdb"

    [features]
    windows = [7, 30, 90, 365]

    [credit]
    pdo = 20
    base_score = 600
    base_odds = 50
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from buyerscore.events.schema import LIMIT_CEILING, MAX_AMOUNT, MAX_QUANTITY, MIN_NONZERO_AMOUNT


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreConfig(_Section):
    db: Path = Path("buyerscore.duckdb")
    threads: int | None = Field(default=None, ge=1, description="DuckDB threads; None = all cores.")


class FeatureConfig(_Section):
    windows: tuple[int, ...] = (7, 30, 90, 365)
    horizon_days: int = Field(default=90, gt=0, description="Label window length after the cut-off.")

    @field_validator("windows")
    @classmethod
    def _positive_sorted(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(w <= 0 for w in v):
            raise ValueError(f"windows must be positive day counts; got {list(v)}")
        return tuple(sorted(set(v)))


class CreditConfig(_Section):
    model: Literal["scorecard", "gbm", "forest", "ensemble"] = "scorecard"
    members: tuple[Literal["gbm", "forest", "scorecard"], ...] = Field(
        default=("gbm", "forest"), min_length=1,
        description="members of model = 'ensemble' (CreditEnsemble presets)")
    pdo: float = Field(default=20.0, gt=0)
    base_score: float = 600.0
    base_odds: float = Field(default=50.0, gt=0, description="good:bad odds at base_score")
    dataset: str | None = "german_credit"
    target: str = "label"

    @field_validator("members")
    @classmethod
    def _distinct(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError(f"credit.members must not repeat a name; got {list(v)}")
        return v


class PowerConfig(_Section):
    horizon_days: int = Field(default=90, gt=0)
    tier_quantiles: tuple[float, float] = (0.5, 0.9)


class AnomalyConfig(_Section):
    contamination: float = Field(default=0.02, gt=0, lt=0.5)


class ServeConfig(_Section):
    """``buyerscore serve --config``: these values apply unless the matching flag is given."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    api_keys_file: Path | None = None
    max_body_bytes: int = Field(default=1_000_000, gt=0)
    max_amount: float = Field(default=MAX_AMOUNT, ge=MIN_NONZERO_AMOUNT, le=LIMIT_CEILING,
                              description="Largest event amount accepted.")
    max_quantity: float = Field(default=MAX_QUANTITY, gt=0, le=LIMIT_CEILING,
                                description="Largest event quantity accepted.")
    future_tolerance_s: float = Field(default=86_400.0, ge=0, le=366 * 86_400,
                                      description="Seconds an event may lie after the server's clock.")


class BuyerscoreConfig(_Section):
    """Root configuration object."""

    store: StoreConfig = StoreConfig()
    features: FeatureConfig = FeatureConfig()
    credit: CreditConfig = CreditConfig()
    power: PowerConfig = PowerConfig()
    anomaly: AnomalyConfig = AnomalyConfig()
    serve: ServeConfig = ServeConfig()


def load_config(path: str | Path | None = None) -> BuyerscoreConfig:
    """Read a TOML configuration file; ``None`` gives the defaults.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    pydantic.ValidationError
        If a key is unknown or a value is out of range; the message names the key.
    """
    if path is None:
        return BuyerscoreConfig()
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"Config file {p} does not exist; create it or omit --config to use defaults.")
    with p.open("rb") as fh:
        data = tomllib.load(fh)
    return BuyerscoreConfig.model_validate(data)
