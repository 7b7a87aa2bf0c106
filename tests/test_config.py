"""The typed config: credit ensemble members (validated at load, used by the serving trainer)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from buyerscore.config import BuyerscoreConfig, CreditConfig, load_config


def test_credit_members_default_and_validation(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert CreditConfig().members == ("gbm", "forest")
    path = tmp_path / "c.toml"
    path.write_text('[credit]\nmodel = "ensemble"\nmembers = ["gbm", "forest", "scorecard"]\n')
    assert load_config(path).credit.members == ("gbm", "forest", "scorecard")
    for bad, msg in ((["gbm", "gbm"], "must not repeat"), (["svm"], "gbm', 'forest' or 'scorecard"),
                     ([], "at least 1")):
        with pytest.raises(ValidationError, match=msg):
            CreditConfig(model="ensemble", members=bad)


def test_serving_trainer_builds_the_configured_ensemble(data_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from buyerscore.datasets import load_dataset
    from buyerscore.events.store import EventStore
    from buyerscore.models.credit import CreditScorecard
    from buyerscore.serving.train import train_credit

    cfg = BuyerscoreConfig(credit=CreditConfig(model="ensemble", members=("scorecard",)))
    with EventStore(tmp_path / "s.duckdb") as store:
        load_dataset("german_credit", store, data_dir)
        models, name = train_credit(store, cfg)
    ens = models["credit"].model
    assert name == "german_credit" and list(ens.members_) == ["scorecard"]
    assert isinstance(ens.members_["scorecard"], CreditScorecard) and models["credit"].metrics["auc"] > 0.7
