"""The feature registry: every feature has a name, a one-line description and a unit.

Reason codes and reports read their human text from here.  Feature families register
their specs at import time; columns of applicant tables can be registered the same way.

>>> register(FeatureSpec("example_feature", "An example", "days", "示例"))
>>> describe("example_feature"), describe("example_feature", lang="zh"), describe("unknown_col")
('An example', '示例', 'unknown_col')
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class FeatureSpec:
    """Metadata of one feature (or of a pattern of windowed features, see :func:`describe`)."""

    name: str
    description: str
    unit: str = ""
    description_zh: str = ""


REGISTRY: dict[str, FeatureSpec] = {}


def register(spec: FeatureSpec) -> None:
    """Add or replace a feature's metadata."""
    REGISTRY[spec.name] = spec


def get(name: str) -> FeatureSpec | None:
    """Spec of ``name``; windowed names like ``spend_30d`` fall back to the pattern ``spend_{w}d``."""
    if name in REGISTRY:
        return REGISTRY[name]
    m = re.search(r"_(\d+)d(?=_|$)", name)
    if m:
        pattern = name[: m.start()] + "_{w}d" + name[m.end():]
        spec = REGISTRY.get(pattern)
        if spec is not None:
            w = m.group(1)
            return FeatureSpec(name, spec.description.replace("{w}", w), spec.unit,
                               spec.description_zh.replace("{w}", w))
    return None


def describe(name: str, lang: str = "en") -> str:
    """Human text of a feature in ``lang`` ('en' or 'zh'); the name itself when unknown."""
    spec = get(name)
    if spec is None:
        return name
    if lang == "zh" and spec.description_zh:
        return spec.description_zh
    return spec.description


def unit(name: str) -> str:
    """Unit of a feature (``"days"``, ``"currency"``, ...); empty when unknown."""
    spec = get(name)
    return spec.unit if spec else ""


def names() -> list[str]:
    """Registered names (windowed families appear as patterns such as ``spend_{w}d``)."""
    return sorted(REGISTRY)
