"""Every ``>>>`` example in the package's docstrings runs and prints what it says."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import buyerscore

PKG_DIR = Path(buyerscore.__file__).parent


def _modules_with_examples() -> list[str]:
    out = []
    for info in pkgutil.walk_packages([str(PKG_DIR)], prefix="buyerscore."):
        rel = info.name.split(".")[1:]
        path = PKG_DIR.joinpath(*rel)
        src = path / "__init__.py" if info.ispkg else path.with_suffix(".py")
        if src.exists() and ">>> " in src.read_text(encoding="utf-8"):
            out.append(info.name)
    return sorted(out)


MODULES = _modules_with_examples()


def test_examples_are_found() -> None:
    # the scan itself must work: these modules are known to carry examples
    assert {"buyerscore.models.credit.scorecard", "buyerscore.models.credit.gbm", "buyerscore.events.validate",
            "buyerscore.serving.batch"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module: str) -> None:
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:  # an optional extra that this environment does not install
        pytest.skip(f"{module} needs an optional dependency: {exc}")
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0, f"{res.failed} of {res.attempted} docstring example(s) of {module} failed"
