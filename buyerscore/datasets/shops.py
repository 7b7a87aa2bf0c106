"""Behaviour-log adapters: CDNOW, UCI Online Retail, Ta Feng, Olist (partial), Taobao UserBehavior.

Each reader turns the original public file into canonical raw events (column names of
:data:`buyerscore.events.schema.EVENT_COLUMNS`, values not yet validated) so that they go
through exactly the same validation as a user's file.  ``event_id`` is ``<dataset>:<line>``
(the 1-based data line of the original file), so every original line is one event, exact
duplicate lines included, and re-loading is idempotent.  Timestamps without a zone are
taken as UTC.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from buyerscore.datasets._base import ORIGINAL_NAMES, DatasetFrames, DatasetSpec, is_excel, resolve

CDNOW_FILE = "cdnow/cdnow_master.csv.gz"
CDNOW_SAMPLE_FILE = "cdnow/cdnow_sample.csv.gz"
RETAIL_FILE = "uci_online_retail/online_retail.csv.gz"
TAFENG_FILE = "ta_feng/ta_feng_all_months_merged.csv.gz"
OLIST_PAYMENTS_FILE = "olist/olist_order_payments_dataset.csv.gz"
OLIST_CLASSIFIED_FILE = "olist/olist_classified_public_dataset.csv.gz"
TAOBAO_FILE = "taobao_user_behavior_sample/taobao_userbehavior_first_users.csv.gz"

RETAIL_XLSX = "uci_online_retail/Online Retail.xlsx"
"""UCI's original workbook (one sheet, a header row, InvoiceDate as Excel datetimes, CustomerID as numbers)."""
RETAIL_COLUMNS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID",
                  "Country")

ORIGINAL_NAMES.update({
    CDNOW_FILE: ("cdnow/CDNOW_master.txt",),
    CDNOW_SAMPLE_FILE: ("cdnow/CDNOW_sample.txt",),
    RETAIL_FILE: (RETAIL_XLSX,),
    TAOBAO_FILE: ("taobao_user_behavior_sample/UserBehavior.csv",),
})


def _ids(prefix: str, n: int) -> pd.Series:
    """``<prefix>:<line>`` for data lines 1..n."""
    return f"{prefix}:" + pd.Series(np.arange(1, n + 1)).astype("string")


def _ts(text: pd.Series, fmt: str) -> pd.Series:
    """Parse with the file's documented format; values that do not parse stay as text (validation rejects them)."""
    parsed = pd.to_datetime(text, format=fmt, errors="coerce")
    if parsed.notna().all():
        return parsed
    return parsed.astype(object).where(parsed.notna(), text)


def _read(path: Path | io.StringIO) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8-sig")


def _is_txt(path: Path) -> bool:
    return path.name.lower().removesuffix(".gz").endswith(".txt")


def _cdnow(path: Path, platform: str, rel: str) -> DatasetFrames:
    if _is_txt(path):  # Fader & Hardie's / lifetimes' whitespace-separated text, no header
        names = (["customer_id", "customer_id_master"] if platform == "cdnow_sample" else ["customer_id"]) + \
            ["date", "number_of_cds", "dollar_value"]
        raw = pd.read_csv(path, sep=r"\s+", header=None, names=names, dtype=str)
    else:
        raw = _read(path)
    ev = pd.DataFrame({
        "event_id": _ids(platform, len(raw)),
        "user_id": raw["customer_id"],
        "ts": _ts(raw["date"], "%Y%m%d"),
        "event_type": "purchase",
        "platform": platform,
        "quantity": raw["number_of_cds"],
        "amount": raw["dollar_value"],
        "currency": "USD",
    })
    return DatasetFrames(events=ev, source_rows={rel: len(raw)})


def read_cdnow(data_dir: Path) -> DatasetFrames:
    """CDNOW master (Fader & Hardie): one purchase event per line, amount in USD."""
    return _cdnow(resolve(data_dir, CDNOW_FILE, "cdnow"), "cdnow", CDNOW_FILE)


def read_cdnow_sample(data_dir: Path) -> DatasetFrames:
    """The 2,357-customer 1/10 CDNOW sample used in the published BG/NBD fits."""
    return _cdnow(resolve(data_dir, CDNOW_SAMPLE_FILE, "cdnow_sample"), "cdnow_sample",
                  CDNOW_SAMPLE_FILE)


def read_online_retail(data_dir: Path) -> DatasetFrames:
    """UCI Online Retail: lines are purchases; cancellations (InvoiceNo 'C…') and negative quantities
    are refunds with positive quantity and amount.  Lines without CustomerID are kept by validation as
    rejects (MISSING_REQUIRED); negative prices ('Adjust bad debt') as NEGATIVE_AMOUNT."""
    path = resolve(data_dir, RETAIL_FILE, "online_retail")
    if is_excel(path):  # UCI's Online Retail.xlsx: the sheet as the CSV form's text
        from buyerscore.datasets._formats import sheet_as_csv

        raw = _read(sheet_as_csv(path, "online_retail", RETAIL_COLUMNS, fix=(
            "use UCI's 'Online Retail.xlsx' as downloaded (one sheet whose first row is the header "
            f"{', '.join(RETAIL_COLUMNS)}), or save that sheet as CSV: {RETAIL_FILE.removesuffix('.gz')}.")))
    else:
        raw = _read(path)
    qty = pd.to_numeric(raw["Quantity"], errors="coerce")
    price = pd.to_numeric(raw["UnitPrice"], errors="coerce")
    refund = raw["InvoiceNo"].str.startswith("C").fillna(False) | (qty < 0)
    amount = (qty.abs() * price).round(2)
    amount = amount.where(price >= 0, qty.abs() * price)  # keep the sign so validation can reject it
    cust = raw["CustomerID"].str.replace(r"\.0$", "", regex=True)
    ev = pd.DataFrame({
        "event_id": _ids("online_retail", len(raw)),
        "user_id": cust,
        "ts": _ts(raw["InvoiceDate"], "%Y-%m-%d %H:%M:%S"),
        "event_type": np.where(refund, "refund", "purchase"),
        "platform": "online_retail",
        "item_id": raw["StockCode"],
        "quantity": qty.abs(),
        "amount": amount.where(qty.notna() & price.notna(), raw["UnitPrice"]),
        "currency": "GBP",
        "order_id": raw["InvoiceNo"],
    })
    users = (pd.DataFrame({"user_id": cust, "platform": "online_retail", "region": raw["Country"]})
             .dropna(subset=["user_id"]).drop_duplicates("user_id", keep="last"))
    return DatasetFrames(events=ev, users=users, source_rows={RETAIL_FILE: len(raw)})


def read_ta_feng(data_dir: Path) -> DatasetFrames:
    """Ta Feng grocery: one purchase per line item; amount = SALES_PRICE (the line total, NT$),
    order_id = customer + day (the basket); AGE_GROUP and PIN_CODE become user attributes."""
    raw = _read(resolve(data_dir, TAFENG_FILE, "ta_feng"))
    day = pd.to_datetime(raw["TRANSACTION_DT"], format="%m/%d/%Y", errors="coerce")
    ev = pd.DataFrame({
        "event_id": _ids("ta_feng", len(raw)),
        "user_id": raw["CUSTOMER_ID"],
        "ts": _ts(raw["TRANSACTION_DT"], "%m/%d/%Y"),
        "event_type": "purchase",
        "platform": "ta_feng",
        "item_id": raw["PRODUCT_ID"],
        "category": raw["PRODUCT_SUBCLASS"],
        "quantity": raw["AMOUNT"],
        "amount": raw["SALES_PRICE"],
        "currency": "TWD",
        "order_id": raw["CUSTOMER_ID"] + "_" + day.dt.strftime("%Y%m%d").fillna("NA"),
    })
    users = (pd.DataFrame({"user_id": raw["CUSTOMER_ID"], "platform": "ta_feng", "age_band": raw["AGE_GROUP"],
                           "region": raw["PIN_CODE"]})
             .drop_duplicates("user_id", keep="last"))
    return DatasetFrames(events=ev, users=users, source_rows={TAFENG_FILE: len(raw)})


def read_olist(data_dir: Path) -> DatasetFrames:
    """Olist (the files available): the labelled v1 order file gives one purchase and one review event per
    order (the file has no customer key, so ``user_id`` is ``order:<id>``; Olist gives every order its own
    customer_id anyway).  The payments file has no timestamps, so it cannot become events: it is stored
    as the side table ``order_payments`` (order_id, sequence, type, installments, amount)."""
    cls = _read(resolve(data_dir, OLIST_CLASSIFIED_FILE, "olist")).iloc[:, 1:]  # first column: unnamed row index
    uid = "order:" + cls["id"]
    purchases = pd.DataFrame({
        "event_id": "olist:purchase:" + cls["id"], "user_id": uid, "ts": cls["order_purchase_timestamp"],
        "event_type": "purchase", "platform": "olist", "category": cls["product_category_name"],
        "quantity": cls["order_items_qty"], "amount": cls["order_products_value"], "currency": "BRL",
        "order_id": cls["id"],
    })
    reviews = pd.DataFrame({
        "event_id": "olist:review:" + cls["id"], "user_id": uid, "ts": cls["review_creation_date"],
        "event_type": "review", "platform": "olist", "category": cls["product_category_name"],
        "order_id": cls["id"], "rating": cls["review_score"],
        "text": cls["review_comment_title"].fillna("").str.cat(cls["review_comment_message"].fillna(""), sep=" ")
        .str.strip().replace("", pd.NA),
    })
    pay = pd.read_csv(resolve(data_dir, OLIST_PAYMENTS_FILE, "olist"))
    payments = pd.DataFrame({
        "order_id": pay["order_id"].astype(str), "payment_sequential": pay["payment_sequential"],
        "payment_type": pay["payment_type"].astype(str), "installments": pay["payment_installments"],
        "amount": pay["payment_value"], "currency": "BRL", "platform": "olist",
    })
    users = pd.DataFrame({"user_id": uid, "platform": "olist", "region": cls["customer_state"]})
    return DatasetFrames(events=pd.concat([purchases, reviews], ignore_index=True), users=users,
                         side_tables={"order_payments": payments},
                         source_rows={OLIST_CLASSIFIED_FILE: len(cls), OLIST_PAYMENTS_FILE: len(pay)})


_TAOBAO_TYPES = {"pv": "view", "fav": "favorite", "cart": "cart", "buy": "purchase"}


def read_taobao(data_dir: Path) -> DatasetFrames:
    """Taobao UserBehavior sample: pv/fav/cart/buy -> view/favorite/cart/purchase; Unix-second
    timestamps; no prices, so purchases have no amount."""
    path = resolve(data_dir, TAOBAO_FILE, "taobao")
    if path.name.lower().startswith("userbehavior"):  # Tianchi's original file has no header row
        raw = pd.read_csv(path, header=None, names=["user_id", "item_id", "category_id", "behavior_type", "timestamp"],
                          dtype=str, keep_default_na=False, na_values=[""])
    else:
        raw = _read(path)
    ev = pd.DataFrame({
        "event_id": _ids("taobao", len(raw)), "user_id": raw["user_id"], "ts": raw["timestamp"],
        "event_type": raw["behavior_type"].map(_TAOBAO_TYPES).fillna(raw["behavior_type"]),
        "platform": "taobao", "item_id": raw["item_id"], "category": raw["category_id"],
    })
    return DatasetFrames(events=ev, source_rows={TAOBAO_FILE: len(raw)})


SPECS = (
    DatasetSpec("cdnow", "events", (CDNOW_FILE,), 69_659,
                "CDNOW master: purchases of 23,570 customers, 1997-01 to 1998-06 (USD).", read_cdnow, platform="cdnow"),
    DatasetSpec("cdnow_sample", "events", (CDNOW_SAMPLE_FILE,), 6_919,
                "CDNOW 1/10 sample (2,357 customers) of the published BG/NBD fits.", read_cdnow_sample,
                platform="cdnow_sample"),
    DatasetSpec("online_retail", "events", (RETAIL_FILE,), 541_909,
                "UCI Online Retail 2010-12..2011-12 (GBP): purchases; cancellations/negative quantities as refunds.",
                read_online_retail, platform="online_retail"),
    DatasetSpec("ta_feng", "events", (TAFENG_FILE,), 817_741,
                "Ta Feng grocery 2000-11..2001-02 (NT$): line items as purchases; age group and area as user attributes.",
                read_ta_feng, sensitive=("age_band",), platform="ta_feng"),
    DatasetSpec("olist", "events", (OLIST_CLASSIFIED_FILE, OLIST_PAYMENTS_FILE), 3_584,
                "Olist (partial): 3,584 orders with review text and rating; payments with installments as a side table.",
                read_olist, platform="olist"),
    DatasetSpec("taobao", "events", (TAOBAO_FILE,), 84_287,
                "Taobao UserBehavior, complete histories of 814 users: view/favorite/cart/purchase (no prices).",
                read_taobao, platform="taobao"),
)
