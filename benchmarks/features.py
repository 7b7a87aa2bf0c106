"""Benchmark: point-in-time features with buyerscore (DuckDB SQL) vs a plain pandas groupby implementation.

Command (the committed result was produced by exactly this)::

    python benchmarks/features.py --events 10000000

Smoke mode (a few seconds, used by tests/test_features_benchmark.py)::

    python benchmarks/features.py --events 200000 --out-dir /tmp/bench

What it does, in one run:

1. generates about ``--events`` synthetic events (:func:`buyerscore.testing.synthetic.generate_n_events`),
2. stores them in a DuckDB file with the canonical ``events`` schema,
3. times :func:`buyerscore.features.build_features` (DuckDB limited to ``--threads`` threads, default 2),
4. times :func:`pandas_features` below, the approach of the original design sketches: load the events into
   one pandas DataFrame (by default the same rows read back from the store, plain columns; reading is not
   timed) and compute the same features with vectorised ``groupby`` (single-threaded, as pandas is),
5. checks that both agree on every feature for a sample of users (``--check-users``),
6. prints both times, the ratio and the peak memory of each phase (resident set size sampled every
   10 ms with psutil, above the level before the phase) and writes ``benchmarks/results/features.json`` and
   ``features.md`` (or into ``--out-dir``).

Only the feature computation is timed: generating data, writing the DuckDB file and handing the frame to
pandas are not.  The DuckDB time includes reading the events from the store file and returning the pandas
frame.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import duckdb
import numpy as np
import pandas as pd
import psutil

from buyerscore.events.schema import EVENT_COLUMNS
from buyerscore.features import build_features, feature_names
from buyerscore.features.sentiment import load_lexicon
from buyerscore.testing.synthetic import generate_n_events

RESULTS = Path(__file__).parent / "results"
WINDOWS = (7, 30, 90, 365)
AS_OF = "2024-10-01"


# --- the pandas implementation ------------------------------------------------------------------------

def _entropy(counts: pd.Series, keys: list[str]) -> pd.Series:
    tot = counts.groupby(level=keys, observed=True).transform("sum")
    p = counts / tot
    return (0.0 - (p * np.log(p)).groupby(level=keys, observed=True).sum()) / np.log(2)


def pandas_features(ev: pd.DataFrame, *, as_of: str, windows: tuple[int, ...] = WINDOWS) -> pd.DataFrame:
    """The features of :func:`buyerscore.features.build_features`, computed with pandas groupby."""
    keys = ["uk"]
    asof_ts = pd.Timestamp(as_of)
    e = ev[ev["ts"] <= asof_ts]
    plat, usr = e["platform"].astype("category"), e["user_id"].astype("category")
    n_u = len(usr.cat.categories)
    e = e.assign(uk=plat.cat.codes.to_numpy(np.int64) * n_u + usr.cat.codes.to_numpy(np.int64))
    asof = (asof_ts - pd.Timestamp("1970-01-01")) / pd.Timedelta(seconds=1)
    t = (e["ts"] - pd.Timestamp("1970-01-01")).dt.total_seconds()
    e = e.assign(t=t, d=np.floor(t / 86400))
    e = e.assign(h=np.floor((e["t"] - e["d"] * 86400) / 3600))
    et = e["event_type"].astype(str)
    is_ = {k: (et == k).to_numpy() for k in ("purchase", "view", "cart", "favorite", "refund", "review", "payment")}

    def by(df: pd.DataFrame) -> Any:
        return df.groupby(keys, observed=True, sort=True)

    base = by(e).agg(n_events=("t", "size"), first_t=("t", "min"), last_t=("t", "max"))
    idx = base.index
    pur = e[is_["purchase"]]
    pg = by(pur).agg(n_purchases=("t", "size"), last_purchase_t=("t", "max"),
                     n_items=("item_id", "nunique"), n_categories=("category", "nunique"))
    pg["spend"] = by(pur)["amount"].sum(min_count=1)
    base = base.join(pg)
    for k in ("view", "cart", "favorite", "refund", "review", "payment"):
        base[f"n_{k}s"] = by(e[is_[k]]).size().reindex(idx)
    ref = e[is_["refund"]]
    base["refund_amount"] = by(ref)["amount"].sum(min_count=1).reindex(idx)
    rv = e[is_["review"]]
    base["rating_mean"] = by(rv)["rating"].mean().reindex(idx)
    pay = e[is_["payment"]]
    base["n_instalment_payments"] = by(pay[(pay["installments"].fillna(0) > 1).to_numpy(bool)]).size().reindex(idx)
    base["installments_mean"] = by(pay)["installments"].mean().reindex(idx)
    for c in ("n_purchases", "n_items", "n_categories", "n_views", "n_carts", "n_favorites", "n_refunds",
              "n_reviews", "n_payments", "n_instalment_payments"):
        base[c] = base[c].fillna(0)
    for w in windows:
        lo, lo2 = asof - w * 86400, asof - 2 * w * 86400
        cur, prev = e[e["t"] > lo], e[(e["t"] > lo2) & (e["t"] <= lo)]
        cp, pp = cur[cur["event_type"] == "purchase"], prev[prev["event_type"] == "purchase"]
        base[f"events_w{w}"] = by(cur).size().reindex(idx).fillna(0)
        base[f"purchases_w{w}"] = by(cp).size().reindex(idx).fillna(0)
        base[f"spend_w{w}"] = by(cp)["amount"].sum(min_count=1).reindex(idx)
        base[f"purchases_p{w}"] = by(pp).size().reindex(idx).fillna(0)
        base[f"spend_p{w}"] = by(pp)["amount"].sum(min_count=1).reindex(idx)

    # orders
    codes = pur["order_id"].cat.codes.to_numpy() if hasattr(pur["order_id"], "cat") else None
    oid = np.where(codes >= 0, codes, -np.arange(1, len(pur) + 1)) if codes is not None else \
        pur["order_id"].fillna(pur["event_id"])
    orders = pur.assign(oid=oid, units=pur["quantity"].fillna(1)).groupby(keys + ["oid"], observed=True).agg(
        value=("amount", "sum"), n_priced=("amount", "count"), units=("units", "sum"))
    orders.loc[orders["n_priced"] == 0, "value"] = np.nan
    os_ = orders.groupby(level=keys, observed=True).agg(n_orders=("units", "size"), order_value_mean=("value", "mean"),
                                                         order_value_max=("value", "max"),
                                                         basket_size=("units", "mean"))
    base = base.join(os_)
    # inter-purchase gaps
    pdays = pur[keys + ["d"]].drop_duplicates().sort_values(keys + ["d"])
    pdays["gap"] = pdays.groupby(keys, observed=True)["d"].diff()
    gs = by(pdays).agg(n_purchase_days=("d", "size"), ipt_mean=("gap", "mean"), ipt_std=("gap", "std"))
    base = base.join(gs)
    # rhythm
    cells = e.groupby(keys + ["d", "h"], observed=True).size().rename("c").reset_index()
    base["hour_entropy"] = _entropy(cells.groupby(keys + ["h"], observed=True)["c"].sum(), keys)
    cells["wd"] = cells["d"] + 3 - 7 * np.floor((cells["d"] + 3) / 7)
    base["weekday_entropy"] = _entropy(cells.groupby(keys + ["wd"], observed=True)["c"].sum(), keys)
    base["active_days"] = cells.groupby(keys, observed=True)["d"].nunique()
    # cart abandonment
    ci = e[(is_["cart"] | is_["purchase"]) & e["item_id"].notna().to_numpy()]
    ci = ci.assign(carted=(ci["event_type"] == "cart").astype(int), bought=(ci["event_type"] == "purchase").astype(int))
    items = ci.groupby(keys + ["item_id"], observed=True)[["carted", "bought"]].max()
    items["abandoned"] = items["carted"] * (1 - items["bought"])
    cs = items.groupby(level=keys, observed=True)[["carted", "abandoned"]].sum()
    base["n_carted_items"], base["n_abandoned_items"] = cs["carted"], cs["abandoned"]
    # review sentiment
    lex = load_lexicon()
    rt = rv[rv["text"].notna()]
    if len(rt):
        toks = rt["text"].astype(str).str.lower().str.split(r"[\W\d_]+", regex=True).explode()
        sc = toks.map(lex)
        per_review = sc.groupby(level=0).mean().fillna(0.0)
        rt = rt.assign(s=per_review.reindex(rt.index).to_numpy())
        base["sentiment_mean"] = by(rt)["s"].mean()
    else:
        base["sentiment_mean"] = np.nan

    # final features (same expressions as buyerscore/features/definitions.py)
    b = base

    def ratio(num: pd.Series, den: pd.Series) -> pd.Series:
        return (num / den).where(den > 0)

    def trend(cur: pd.Series, prev: pd.Series) -> pd.Series:
        s = cur + prev
        return ((cur - prev) / s).where(s != 0, 0.0).where(s.notna())

    spend0 = b["spend"].where(b["n_purchases"] > 0, 0.0)
    out = pd.DataFrame(index=idx)
    out["recency_days"] = (asof - b["last_purchase_t"]) / 86400.0
    out["days_since_last_event"] = (asof - b["last_t"]) / 86400.0
    out["tenure_days"] = (asof - b["first_t"]) / 86400.0
    out["n_events"] = b["n_events"]
    out["n_purchases"] = b["n_purchases"]
    out["n_orders"] = b["n_orders"].fillna(0)
    out["n_purchase_days"] = b["n_purchase_days"].fillna(0)
    out["monetary_sum"] = spend0
    out["monetary_mean"] = b["order_value_mean"]
    out["monetary_max"] = b["order_value_max"]
    out["net_spend"] = spend0 - b["refund_amount"].fillna(0)
    out["ipt_mean_days"] = b["ipt_mean"]
    out["ipt_std_days"] = b["ipt_std"]
    out["distinct_items"] = b["n_items"]
    out["distinct_categories"] = b["n_categories"]
    out["basket_size_mean"] = b["basket_size"]
    out["n_views"], out["n_carts"], out["n_favorites"] = b["n_views"], b["n_carts"], b["n_favorites"]
    out["view_to_cart_rate"] = ratio(b["n_carts"], b["n_views"])
    out["cart_to_purchase_rate"] = ratio(b["n_purchases"], b["n_carts"])
    out["view_to_purchase_rate"] = ratio(b["n_purchases"], b["n_views"])
    out["cart_abandonment_rate"] = ratio(b["n_abandoned_items"], b["n_carted_items"])
    out["refund_count"] = b["n_refunds"]
    out["refund_amount"] = b["refund_amount"].fillna(0.0)
    out["refund_rate"] = ratio(b["n_refunds"], b["n_purchases"])
    out["refund_amount_share"] = (b["refund_amount"].fillna(0.0) / b["spend"]).where(b["spend"] > 0)
    out["review_count"] = b["n_reviews"]
    out["rating_mean"] = b["rating_mean"]
    out["review_sentiment_mean"] = b["sentiment_mean"]
    out["installment_share"] = ratio(b["n_instalment_payments"], b["n_payments"])
    out["installments_mean"] = b["installments_mean"]
    out["active_days"] = b["active_days"]
    out["hour_entropy"] = b["hour_entropy"]
    out["weekday_entropy"] = b["weekday_entropy"]
    for w in windows:
        cur_s = b[f"spend_w{w}"].where(b[f"purchases_w{w}"] > 0, 0.0)
        prev_s = b[f"spend_p{w}"].where(b[f"purchases_p{w}"] > 0, 0.0)
        out[f"events_{w}d"] = b[f"events_w{w}"]
        out[f"purchases_{w}d"] = b[f"purchases_w{w}"]
        out[f"spend_{w}d"] = cur_s
        out[f"purchase_trend_{w}d"] = trend(b[f"purchases_w{w}"], b[f"purchases_p{w}"])
        out[f"spend_trend_{w}d"] = trend(cur_s, prev_s)
    uk = out.index.to_numpy()
    out = out.reset_index(drop=True)
    out.insert(0, "user_id", np.asarray(usr.cat.categories)[uk % n_u].astype(str))
    out.insert(0, "platform", np.asarray(plat.cat.categories)[uk // n_u].astype(str))
    out = out.sort_values(["platform", "user_id"], ignore_index=True)
    return out[["platform", "user_id", *feature_names(windows)]]


# --- measurement ------------------------------------------------------------------------------------

class PeakRSS:
    """Peak resident set size of this process while the block runs (sampled every 10 ms), in MiB above
    the level at entry."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = 0
        self.base = 0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self) -> Self:
        self.base = self.peak = self.proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def delta_mib(self) -> float:
        return (self.peak - self.base) / 2**20


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float, float]:
    """Result, wall seconds, peak RSS above start (MiB) and CPU seconds (user + system, all threads)."""
    proc = psutil.Process()
    with PeakRSS() as mem:
        c0 = proc.cpu_times()
        t0 = time.perf_counter()
        res = fn()
        dt = time.perf_counter() - t0
        c1 = proc.cpu_times()
    return res, dt, mem.delta_mib, (c1.user - c0.user) + (c1.system - c0.system)


def compare(a: pd.DataFrame, b: pd.DataFrame, users: np.ndarray) -> dict[str, Any]:
    """Compare two feature frames on ``users``; returns the columns that differ (rtol 1e-9)."""
    x = a.set_index(["platform", "user_id"]).loc[users]
    y = b.set_index(["platform", "user_id"]).loc[users]
    bad = {}
    for c in x.columns:
        xa, ya = x[c].to_numpy(float), y[c].to_numpy(float)
        ok = np.isclose(xa, ya, rtol=1e-9, atol=1e-9, equal_nan=True)
        if not ok.all():
            bad[c] = int((~ok).sum())
    return {"checked_users": len(users), "columns": x.shape[1], "same_users": bool(len(a) == len(b)),
            "mismatching_columns": bad, "agree": bool(not bad and len(a) == len(b))}


def run(events: int, *, seed: int = 0, threads: int = 2, check_users: int = 2000,
        out_dir: Path = RESULTS, write: bool = True, pandas_input: str = "store") -> dict[str, Any]:
    t0 = time.perf_counter()
    data = generate_n_events(events, seed=seed, with_event_id=False)
    ev = data.events
    gen_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect(os.path.join(tmp, "bench.duckdb"))
        con.execute(f"SET threads = {threads}")
        from buyerscore.events.store import DDL
        con.execute(DDL)
        con.register("_ev", ev)
        cols = ", ".join("'e' || CAST(ROW_NUMBER() OVER () AS VARCHAR)" if c == "event_id" else
                         f"CAST({c} AS VARCHAR)" if str(ev[c].dtype) == "category" else c for c in EVENT_COLUMNS)
        t0 = time.perf_counter()
        con.execute(f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) SELECT {cols} FROM _ev")
        con.unregister("_ev")
        con.execute("CHECKPOINT")
        load_s = time.perf_counter() - t0
        n_events = con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        feats_db, db_s, db_mib, db_cpu = timed(lambda: build_features(con, as_of=AS_OF, windows=WINDOWS))
        if pandas_input == "store":  # the same rows, as pandas reads them from the store (plain columns)
            del data, ev
            ev = con.execute(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events").df()
        con.close()
    feats_pd, pd_s, pd_mib, pd_cpu = timed(lambda: pandas_features(ev, as_of=AS_OF, windows=WINDOWS))
    rng = np.random.default_rng(seed)
    keys = feats_db[["platform", "user_id"]].to_numpy()
    pick = keys[rng.choice(len(keys), size=min(check_users, len(keys)), replace=False)]
    agreement = compare(feats_db, feats_pd, pd.MultiIndex.from_arrays([pick[:, 0], pick[:, 1]]))
    result = {
        "benchmark": "features",
        "command": "python benchmarks/features.py " + " ".join(sys.argv[1:]) if __name__ == "__main__" else
        f"run(events={events})",
        "events_requested": events, "events": int(n_events), "users": len(feats_db),
        "features": int(feats_db.shape[1] - 2), "windows": list(WINDOWS), "as_of": AS_OF,
        "pandas_input": pandas_input, "duckdb_threads": threads, "duckdb_seconds": round(db_s, 3), "pandas_seconds": round(pd_s, 3),
        "speedup_vs_pandas": round(pd_s / db_s, 2),
        "duckdb_cpu_seconds": round(db_cpu, 2), "pandas_cpu_seconds": round(pd_cpu, 2),
        "duckdb_peak_rss_mib": round(db_mib, 1), "pandas_peak_rss_mib": round(pd_mib, 1),
        "process_max_rss_mib": round(psutil.Process().memory_info().rss / 2**20, 1),
        "generate_seconds": round(gen_s, 2), "store_load_seconds": round(load_s, 2),
        "agreement": agreement,
        "goals": {"speedup_at_least_10x": bool(pd_s / db_s >= 10), "duckdb_under_30s": bool(db_s < 30)},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "duckdb": duckdb.__version__, "pandas": pd.__version__,
                    "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None},
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if write:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "features.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        (out_dir / "features.md").write_text(markdown(result), encoding="utf-8")
    return result


def markdown(r: dict[str, Any]) -> str:
    a = r["agreement"]
    return f"""# Feature benchmark: buyerscore (DuckDB SQL) vs pandas groupby

Command: `{r['command']}` ({r['date_utc']}, {r['machine']['cpu_count']} CPUs visible, load average
{r['machine']['load_average']}; DuckDB {r['machine']['duckdb']}, pandas {r['machine']['pandas']}).

| | buyerscore (DuckDB, {r['duckdb_threads']} threads) | pandas groupby (1 thread) |
|---|---|---|
| wall time (s) | {r['duckdb_seconds']} | {r['pandas_seconds']} |
| CPU time, user + system, all threads (s) | {r['duckdb_cpu_seconds']} | {r['pandas_cpu_seconds']} |
| peak RSS above start (MiB) | {r['duckdb_peak_rss_mib']} | {r['pandas_peak_rss_mib']} |

* {r['events']:,} synthetic events, {r['users']:,} users, {r['features']} features (windows {r['windows']}),
  as of {r['as_of']}.
* Speed-up: **{r['speedup_vs_pandas']}x** (goal >= 10x: {'met' if r['goals']['speedup_at_least_10x'] else 'NOT met'});
  DuckDB time goal < 30 s: {'met' if r['goals']['duckdb_under_30s'] else 'NOT met'}.
* Agreement on {a['checked_users']:,} sampled users x {a['columns']} features: {'all equal (rtol 1e-9)' if a['agree']
  else 'DIFFERENCES: ' + json.dumps(a['mismatching_columns'])}.
* Not timed: generating the events ({r['generate_seconds']} s) and writing them to the DuckDB file
  ({r['store_load_seconds']} s). The DuckDB time includes reading the store and building the pandas result frame.
* pandas input: `{r['pandas_input']}` (`store`: the same rows read from the store into one DataFrame with plain
  columns, not timed; `categorical`: the generator's frame with categorical id columns, pandas' fastest path).
  The pandas code is vectorised groupby (no per-user Python loop) and runs on one thread.
"""


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=10_000_000, help="approximate number of synthetic events")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="DuckDB threads")
    ap.add_argument("--check-users", type=int, default=2000, help="users compared between the two implementations")
    ap.add_argument("--pandas-input", choices=["store", "categorical"], default="store",
                    help="pandas gets the events as read from the store (plain columns, default) or the generator's "
                         "frame with categorical id columns")
    ap.add_argument("--out-dir", type=Path, default=RESULTS, help="where features.json and features.md go")
    args = ap.parse_args(argv)
    r = run(args.events, seed=args.seed, threads=args.threads, check_users=args.check_users, out_dir=args.out_dir,
            pandas_input=args.pandas_input)
    print(f"events {r['events']:,}  users {r['users']:,}  features {r['features']}")
    print(f"buyerscore/DuckDB ({r['duckdb_threads']} threads): {r['duckdb_seconds']:.2f} s "
          f"(CPU {r['duckdb_cpu_seconds']:.1f} s), "
          f"peak +{r['duckdb_peak_rss_mib']:.0f} MiB")
    print(f"pandas groupby: {r['pandas_seconds']:.2f} s (CPU {r['pandas_cpu_seconds']:.1f} s), peak +{r['pandas_peak_rss_mib']:.0f} MiB")
    print(f"speed-up {r['speedup_vs_pandas']:.1f}x; agreement: {r['agreement']['agree']} "
          f"{r['agreement']['mismatching_columns'] or ''}")
    print(f"wrote {args.out_dir / 'features.json'} and features.md")
    return r


if __name__ == "__main__":
    main()
