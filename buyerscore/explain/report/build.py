"""Build the HTML report from a plain :class:`ReportInputs`.

Every section in :data:`SECTIONS` is always present (``<section id="...">``): it shows its plot or
table when the inputs it needs are given, and otherwise says ``not available: <why>``.  Plots are
plotly figures; plotly.js is embedded once in the page, so the file works offline (no CDN, no
network request).  Tables are plain HTML.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from buyerscore import __version__

logger = logging.getLogger(__name__)

#: (id, title) of every section, in page order.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("roc", "ROC curve"),
    ("ks", "KS (separation of goods and bads)"),
    ("calibration", "Calibration"),
    ("score-distribution", "Score and grade distribution"),
    ("lift", "Decile lift"),
    ("scorecard", "Scorecard table"),
    ("shap", "Feature contributions"),
    ("power", "Purchasing power: Gini and lift"),
    ("tiers", "Spend tier mix"),
    ("anomaly", "Anomaly summary"),
    ("fairness", "Fairness"),
    ("drift", "Drift"),
)


@dataclass
class ReportInputs:
    """What the report can show; every field is optional (its sections then say why they are empty).

    Attributes
    ----------
    title : str
        Page title.
    y_true : array-like of 0/1, optional
        Observed outcome of the credit model (1 = bad).
    proba : array-like, optional
        Predicted probability of default (same rows as ``y_true``).
    score : array-like, optional
        Scorecard points (higher = safer).
    grade : array-like, optional
        Grade labels (A-E).
    scorecard_table : DataFrame, optional
        ``CreditScorecard.scorecard_table()`` (feature, bin, points, ...).
    shap : DataFrame, optional
        Per-row, per-feature contributions (SHAP values or points lost); columns = features.
    contribution_unit : str, optional
        What one unit of ``shap`` is (``"points lost"`` for a scorecard, ``"log-odds of default (SHAP)"``
        for the tree models); the contribution axes and the section say it.
    shap_values : DataFrame, optional
        The feature values of the same rows (colours the summary plot).
    spend_true, spend_pred : array-like, optional
        Actual and predicted future spend (purchasing power).
    tiers : array-like, optional
        Predicted spend tiers (``high``/``mid``/``low``); ``tiers_true`` the actual ones.
    anomaly_scores : array-like, optional
        Anomaly scores in [0, 1]; ``anomaly_threshold`` the flag threshold; ``anomaly_table`` the top
        flagged users (e.g. ``AnomalyDetector.score_frame``); ``anomaly_drivers`` the number of flagged users
        per first reason (columns ``feature``, ``flagged_users``), drawn as a bar chart.
    fairness : DataFrame, optional
        ``FairnessReport.by_group``; ``fairness_summary`` the per-attribute summary frame;
        ``fairness_notes`` its notes (small groups left out, undefined rates, derived attributes);
        ``fairness_di_threshold`` the disparate-impact ratio below which a group is flagged (0.8).
    drift : DataFrame, optional
        ``DriftReport.table``; ``drift_verdict`` its verdict; ``drift_reasons`` the reasons for it.
    evaluated_on : dict, optional
        Section id -> which rows its numbers come from (e.g. ``"300 held-out applicants, not used in
        fitting"`` or ``"the detector's own training users (in-sample)"``), shown at the top of that section so
        that held-out and in-sample numbers are not mistaken for one another.
    notes : dict, optional
        Section id -> text shown when that section's inputs are missing (overrides the default reason).
    metadata : dict, optional
        Shown in the header (model kind, as_of, data hash, ...).
    """

    title: str = "buyerscore model report"
    y_true: Any = None
    proba: Any = None
    score: Any = None
    grade: Any = None
    scorecard_table: pd.DataFrame | None = None
    shap: pd.DataFrame | None = None
    shap_values: pd.DataFrame | None = None
    contribution_unit: str | None = None
    spend_true: Any = None
    spend_pred: Any = None
    tiers: Any = None
    tiers_true: Any = None
    anomaly_scores: Any = None
    anomaly_threshold: float | None = None
    anomaly_table: pd.DataFrame | None = None
    anomaly_drivers: pd.DataFrame | None = None
    fairness: pd.DataFrame | None = None
    fairness_summary: pd.DataFrame | None = None
    fairness_notes: list[str] | None = None
    fairness_di_threshold: float | None = None
    drift: pd.DataFrame | None = None
    drift_verdict: str | None = None
    drift_reasons: list[str] | None = None
    evaluated_on: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


class _Unavailable(Exception):
    """Raised by a section renderer to say why it cannot be drawn."""


def _arr(v: Any, name: str, *, float_: bool = True) -> np.ndarray:
    if v is None:
        raise _Unavailable(f"no {name} given")
    a = np.asarray(v, dtype=float if float_ else object).ravel()
    if a.size == 0:
        raise _Unavailable(f"{name} is empty")
    return a


def _labels(inp: ReportInputs) -> tuple[np.ndarray, np.ndarray]:
    y = _arr(inp.y_true, "labels (y_true)")
    p = _arr(inp.proba, "predicted probabilities (proba)")
    if y.size != p.size:
        raise _Unavailable(f"y_true has {y.size} rows but proba has {p.size}")
    ok = ~np.isnan(y) & ~np.isnan(p)
    y, p = y[ok], p[ok]
    if np.unique(y).size < 2:
        raise _Unavailable("labels hold a single class, so discrimination cannot be measured")
    return y, p


def _fig_html(fig: Any, div_id: str, height: int = 380) -> str:
    fig.update_layout(template="plotly_white", height=height, margin={"l": 50, "r": 20, "t": 40, "b": 45})
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def without_identifiers(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``df`` without the columns that identify a person (``user_id``, ``email``, ``name``, ...; see
    :mod:`buyerscore.explain._identifiers`) and the names of those dropped: the report is shared more
    widely than the scores, so it carries no ids.

    >>> without_identifiers(pd.DataFrame({"user_id": ["u1"], "email": ["a@b.c"], "anomaly_score": [0.9]}))[1]
    ['user_id', 'email']
    """
    from buyerscore.explain._identifiers import is_identifier

    dropped = [str(c) for c in df.columns if is_identifier(c)]
    return df.drop(columns=dropped), dropped


def cell_text(v: Any) -> str:
    """A table cell as text: lists (e.g. ``groups_left_out``) as ``a, b`` (empty: blank), not ``['a', 'b']``.

    >>> cell_text(["<25", "50+"]), cell_text([]), cell_text(3)
    ('<25, 50+', '', '3')
    """
    if isinstance(v, (list, tuple, np.ndarray)):
        return ", ".join(str(x) for x in v)
    return str(v)


def _thin(n: int, keep: tuple[int, ...] = (), max_points: int = 1000) -> np.ndarray:
    """At most about ``max_points`` indices of a curve of ``n`` points (first, last and ``keep`` included): a
    curve over every row would put every row into the page, so the file grows with the data."""
    if n <= max_points:
        return np.arange(n)
    idx = np.unique(np.r_[np.linspace(0, n - 1, max_points).round().astype(int), np.asarray(keep, dtype=int)])
    return idx


def _hist(values: np.ndarray, edges: np.ndarray, name: str, **kw: Any) -> Any:
    """A histogram counted here (``np.histogram``) and drawn as bars, so the page holds the counts, not the
    raw values."""
    import plotly.graph_objects as go

    counts, e = np.histogram(values[~np.isnan(values)], bins=edges)
    return go.Bar(x=(e[:-1] + e[1:]) / 2, y=counts, width=np.diff(e), name=name,
                  customdata=np.c_[e[:-1], e[1:]],
                  hovertemplate="[%{customdata[0]:.4g}, %{customdata[1]:.4g}): %{y:,}<extra>" + name + "</extra>",
                  **kw)


def _notes_html(items: list[str] | None, lead: str) -> str:
    if not items:
        return ""
    lis = "".join(f"<li>{html.escape(str(t))}</li>" for t in items)
    return f"<p>{html.escape(lead)}</p><ul class='notes'>{lis}</ul>"


def _table_html(df: pd.DataFrame, max_rows: int = 60, cls: str = "tbl") -> str:
    shown = df.head(max_rows)
    more = f"<p class='muted'>showing {max_rows} of {len(df)} rows</p>" if len(df) > max_rows else ""

    def cell(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else f"{v:,.4g}"
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else ""
        return html.escape(cell_text(v))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in shown.itertuples(index=False))
    # a wide table scrolls inside its card instead of running past it
    return (f"<div class='tblwrap'><table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
            f"</table></div>{more}")


# ---------------------------------------------------------------------------------------------- sections
def _roc(inp: ReportInputs) -> str:
    import plotly.graph_objects as go
    from sklearn.metrics import roc_curve

    from buyerscore.models.metrics import auc

    y, p = _labels(inp)
    fpr, tpr, _ = roc_curve(y, p)
    j = _thin(fpr.size)
    fig = go.Figure([go.Scatter(x=fpr[j], y=tpr[j], mode="lines", name=f"model (AUC {auc(y, p):.3f})"),
                     go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="random", line={"dash": "dot"})])
    fig.update_layout(title="ROC", xaxis_title="false positive rate (goods rejected)",
                      yaxis_title="true positive rate (bads caught)")
    return f"<p>AUC <b>{auc(y, p):.3f}</b>, Gini <b>{2 * auc(y, p) - 1:.3f}</b> on {y.size:,} rows.</p>" + \
        _fig_html(fig, "fig-roc")


def _ks(inp: ReportInputs) -> str:
    import plotly.graph_objects as go

    from buyerscore.models.metrics import ks

    y, p = _labels(inp)
    order = np.argsort(-p, kind="mergesort")
    ys = y[order]
    share = np.arange(1, y.size + 1) / y.size
    cb = np.cumsum(ys) / ys.sum()
    cg = np.cumsum(1 - ys) / (1 - ys).sum()
    k = ks(y, p)
    i = int(np.argmax(cb - cg))
    j = _thin(y.size, keep=(i,))
    fig = go.Figure([go.Scatter(x=share[j], y=cb[j], name="cumulative bads"),
                     go.Scatter(x=share[j], y=cg[j], name="cumulative goods"),
                     go.Scatter(x=[share[i], share[i]], y=[cg[i], cb[i]], name=f"KS {k:.3f}", mode="lines+markers")])
    fig.update_layout(title="KS", xaxis_title="share of population, riskiest first", yaxis_title="cumulative share")
    return f"<p>KS <b>{k:.3f}</b> at the riskiest {share[i]:.0%} of the population.</p>" + _fig_html(fig, "fig-ks")


def _calibration(inp: ReportInputs) -> str:
    import plotly.graph_objects as go

    from buyerscore.models.metrics import brier, expected_calibration_error

    y, p = _labels(inp)
    q = pd.qcut(pd.Series(p), 10, duplicates="drop", labels=False)
    t = pd.DataFrame({"p": p, "y": y, "q": q}).groupby("q").agg(pred=("p", "mean"), obs=("y", "mean"), n=("y", "size"))
    hi = float(max(t["pred"].max(), t["obs"].max()))
    fig = go.Figure([go.Scatter(x=t["pred"], y=t["obs"], mode="lines+markers", name="model",
                                text=[f"n={n}" for n in t["n"]]),
                     go.Scatter(x=[0, hi], y=[0, hi], mode="lines", name="perfect", line={"dash": "dot"})])
    fig.update_layout(title="Calibration (deciles of predicted PD)", xaxis_title="mean predicted PD",
                      yaxis_title="observed bad rate")
    return (f"<p>Brier <b>{brier(y, p):.4f}</b>, expected calibration error "
            f"<b>{expected_calibration_error(y, p):.4f}</b>.</p>" + _fig_html(fig, "fig-calibration"))


def _score_distribution(inp: ReportInputs) -> str:
    import plotly.graph_objects as go

    parts = []
    if inp.score is not None:
        s = _arr(inp.score, "scores")
        fig = go.Figure()
        y = None if inp.y_true is None else np.asarray(inp.y_true, dtype=float).ravel()
        edges = np.histogram_bin_edges(s[~np.isnan(s)], bins=40)
        if y is not None and y.size == s.size and np.unique(y[~np.isnan(y)]).size == 2:
            fig.add_trace(_hist(s[y == 0], edges, "goods", opacity=0.6))
            fig.add_trace(_hist(s[y == 1], edges, "bads", opacity=0.6))
            fig.update_layout(barmode="overlay")
        else:
            fig.add_trace(_hist(s, edges, "all"))
        fig.update_layout(title="Score distribution", xaxis_title="points", yaxis_title="applicants")
        parts.append(_fig_html(fig, "fig-score"))
    if inp.grade is not None:
        g = pd.Series(_arr(inp.grade, "grades", float_=False)).astype(str)
        vc = g.value_counts().sort_index()
        fig = go.Figure([go.Bar(x=vc.index.tolist(), y=vc.to_numpy(), name="applicants")])
        fig.update_layout(title="Grade mix", xaxis_title="grade", yaxis_title="applicants")
        parts.append(_fig_html(fig, "fig-grade"))
        if inp.y_true is not None and len(np.asarray(inp.y_true).ravel()) == len(g):
            t = pd.DataFrame({"grade": g, "bad": np.asarray(inp.y_true, dtype=float).ravel()}).groupby("grade").agg(
                n=("bad", "size"), bad_rate=("bad", "mean")).reset_index()
            parts.append(_table_html(t))
    if not parts:
        raise _Unavailable("no scores or grades given")
    return "".join(parts)


def _lift(inp: ReportInputs) -> str:
    import plotly.graph_objects as go

    from buyerscore.models.metrics import lift_table

    y, p = _labels(inp)
    t = lift_table(y, p)
    fig = go.Figure([go.Bar(x=t["bin"].astype(int), y=t["lift"], name="lift"),
                     go.Scatter(x=t["bin"].astype(int), y=t["cum_lift"], name="cumulative lift", mode="lines+markers")])
    fig.update_layout(title="Lift by decile (1 = riskiest)", xaxis_title="decile", yaxis_title="bad rate / overall")
    return _fig_html(fig, "fig-lift") + _table_html(t[["bin", "n", "bads", "bad_rate", "gain", "lift", "cum_lift"]])


def _scorecard_figure(table: pd.DataFrame, max_features: int = 12) -> str:
    """Points per bin, one small bar chart per feature (the widest points ranges first): the shape a
    risk analyst checks (monotone points, special and missing bins in grey)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from buyerscore.models.credit.scorecard import BASE_ROW

    t = table[table["feature"] != BASE_ROW]
    if "count" in t.columns:
        t = t[~(pd.to_numeric(t["count"], errors="coerce").fillna(1) == 0)]  # bins never seen in training
    if t.empty or "points" not in t.columns:
        return ""
    spread = t.groupby("feature", sort=False)["points"].agg(lambda v: float(np.ptp(v)))
    feats = spread.sort_values(ascending=False, kind="stable").index[:max_features].tolist()
    cols = min(3, len(feats))
    rows = -(-len(feats) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=feats, horizontal_spacing=0.07,
                        vertical_spacing=min(0.3, 0.55 / rows))
    label_col = "label" if "label" in t.columns else "bin"
    for i, f in enumerate(feats):
        g = t[t["feature"] == f]
        labels = g[label_col].astype(str).tolist()
        grey = [lab.startswith("special") or lab == "Missing" for lab in labels]
        pos = list(range(len(labels)))  # bars at positions: shortened labels that collide stay separate bars
        r, c = i // cols + 1, i % cols + 1
        fig.add_trace(go.Bar(x=pos, y=g["points"], customdata=labels,
                             marker_color=["#9e9e9e" if x else "#1f77b4" for x in grey], showlegend=False,
                             hovertemplate="%{customdata}: %{y:.1f} points<extra>" + f + "</extra>"), row=r, col=c)
        fig.update_xaxes(tickvals=pos, ticktext=[_short(lab) for lab in labels], tickangle=-40,
                         tickfont={"size": 9}, row=r, col=c)
    fig.update_yaxes(title_text="points", col=1)
    fig.update_annotations(font_size=12)
    note = (f"<p>Points per bin (higher = safer; grey: special and missing bins; bin names are shortened on the "
            f"axis, hover for the whole bin), {len(feats)} of {t['feature'].nunique()} features, widest points "
            "range first.</p>")
    html_fig = _fig_html(fig, "fig-scorecard", height=max(420, 300 * rows))
    return note + html_fig


def _short(label: str, n: int = 16) -> str:
    """A bin name short enough for a small chart's axis: ``[-inf, 0.30)`` stays, a long category list is cut.

    >>> _short("[-inf, 0.30)"), _short("A40, A41, A42, A43, A44")
    ('[-inf, 0.30)', 'A40, A41, A42,…')
    """
    return label if len(label) <= n else label[: n - 1].rstrip() + "…"


def _scorecard(inp: ReportInputs) -> str:
    if inp.scorecard_table is None or len(inp.scorecard_table) == 0:
        raise _Unavailable("no scorecard table given (only a points scorecard, CreditScorecard, has one)")
    return _scorecard_figure(inp.scorecard_table) + _table_html(inp.scorecard_table, max_rows=200)


def _shap(inp: ReportInputs) -> str:
    import plotly.graph_objects as go

    from buyerscore.explain.reason_codes import global_importance

    if inp.shap is None or len(inp.shap) == 0:
        raise _Unavailable("no per-feature contributions given")
    gi = global_importance(inp.shap).head(15)
    unit = inp.contribution_unit or "contribution"
    fig = go.Figure([go.Bar(x=gi["mean_abs_contribution"][::-1], y=gi["feature"][::-1], orientation="h",
                            name="mean |contribution|")])
    fig.update_layout(title="Global importance: mean |contribution|", xaxis_title=f"mean |{unit}|",
                      height=max(380, 24 * len(gi)))
    parts = [f"<p>Unit: {html.escape(unit)}.</p>" if inp.contribution_unit else "", _fig_html(fig, "fig-shap-bar")]
    # beeswarm-like summary: one dot per row and feature (jittered up and down so that piled-up dots show),
    # coloured blue (low) to red (high) by the feature's within-column rank; a feature whose values are not
    # numbers (a category) has no rank and is drawn grey.  No white in the scale: a white dot on the white
    # page cannot be seen.
    sample = inp.shap.sample(n=min(len(inp.shap), 1000), random_state=0)
    feats = gi["feature"].head(10).tolist()[::-1]
    jitter = np.random.default_rng(0).uniform(-0.3, 0.3, len(sample))
    xs: list[float] = []
    ys: list[float] = []
    cs: list[float] = []
    gx: list[float] = []
    gy: list[float] = []
    for k, f in enumerate(feats):
        v = sample[f].to_numpy(dtype=float)
        vals = None
        if inp.shap_values is not None and f in inp.shap_values.columns:
            raw = inp.shap_values.loc[sample.index, f]
            if pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_bool_dtype(raw):
                vals = pd.to_numeric(raw, errors="coerce").rank(pct=True)
        if vals is None:
            gx.extend(v.tolist())
            gy.extend((k + jitter).tolist())
            continue
        known = vals.notna().to_numpy()
        xs.extend(v[known].tolist())
        ys.extend((k + jitter[known]).tolist())
        cs.extend(vals[known].tolist())
        gx.extend(v[~known].tolist())
        gy.extend((k + jitter[~known]).tolist())
    traces = []
    if xs:
        traces.append(go.Scatter(x=xs, y=ys, mode="markers", name="value rank (blue low, red high)",
                                 marker={"color": cs, "colorscale": _BLUE_RED, "cmin": 0, "cmax": 1, "size": 5,
                                         "opacity": 0.6, "showscale": True,
                                         "colorbar": {"title": "value rank", "x": 1.02}}))
    if gx:
        traces.append(go.Scatter(x=gx, y=gy, mode="markers", name="category or missing (no rank)",
                                 marker={"color": _GREY, "size": 5, "opacity": 0.6}))
    fig2 = go.Figure(traces)
    fig2.update_layout(title="Contribution per row (> 0 pushes toward the adverse outcome)",
                       xaxis_title=unit, height=max(380, 34 * len(feats) + 120),
                       legend={"orientation": "h", "y": -0.2})
    fig2.update_yaxes(tickvals=list(range(len(feats))), ticktext=feats, range=[-0.6, len(feats) - 0.4])
    parts.append(_fig_html(fig2, "fig-shap-summary"))
    parts.append(_table_html(gi[["feature", "mean_abs_contribution", "share", "description"]]))
    return "".join(parts)


def _power(inp: ReportInputs) -> str:
    import plotly.graph_objects as go

    from buyerscore.models.purchasing_power.metrics import (
        decile_calibration,
        normalized_gini,
        top_decile_capture,
    )

    a = _arr(inp.spend_true, "actual spend (spend_true)")
    p = _arr(inp.spend_pred, "predicted spend (spend_pred)")
    if a.size != p.size:
        raise _Unavailable(f"spend_true has {a.size} rows but spend_pred has {p.size}")
    order = np.argsort(-p, kind="stable")
    cum = np.cumsum(a[order]) / max(a.sum(), 1e-12)
    best = np.cumsum(np.sort(a)[::-1]) / max(a.sum(), 1e-12)
    share = np.arange(1, a.size + 1) / a.size
    j = _thin(a.size)
    fig = go.Figure([go.Scatter(x=share[j], y=cum[j], name="model"), go.Scatter(x=share[j], y=best[j], name="perfect"),
                     go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="random", line={"dash": "dot"})])
    fig.update_layout(title="Cumulative share of actual spend, highest predicted first",
                      xaxis_title="share of customers", yaxis_title="share of spend")
    t = decile_calibration(a, p)
    overall = a.mean() if a.mean() else np.nan
    t["lift"] = t["mean_actual"] / overall
    fig2 = go.Figure([go.Bar(x=t["decile"], y=t["lift"], name="lift")])
    fig2.update_layout(title="Spend lift by decile of prediction (1 = highest)", xaxis_title="decile",
                       yaxis_title="mean actual / overall mean")
    return (f"<p>Normalised Gini <b>{normalized_gini(a, p):.3f}</b>, top-decile capture "
            f"<b>{top_decile_capture(a, p):.3f}</b> on {a.size:,} customers.</p>"
            + _fig_html(fig, "fig-power-gini") + _fig_html(fig2, "fig-power-lift") + _table_html(t))


def _tiers(inp: ReportInputs) -> str:
    import plotly.graph_objects as go

    t = pd.Series(_arr(inp.tiers, "spend tiers", float_=False)).astype(str)
    order = [x for x in ("high", "mid", "low") if x in set(t)] + sorted(set(t) - {"high", "mid", "low"})
    vc = t.value_counts().reindex(order)
    fig = go.Figure([go.Bar(x=order, y=vc.to_numpy(), name="predicted")])
    parts = []
    if inp.tiers_true is not None and len(np.asarray(inp.tiers_true).ravel()) == len(t):
        tt = pd.Series(np.asarray(inp.tiers_true).ravel()).astype(str)
        fig.add_bar(x=order, y=tt.value_counts().reindex(order).fillna(0).to_numpy(), name="actual")
        ct = pd.crosstab(tt.rename("actual"), t.rename("predicted")).reindex(index=order, columns=order).fillna(0)
        parts.append("<p>Actual (rows) vs predicted (columns) tiers:</p>" + _table_html(ct.reset_index()))
    fig.update_layout(title="Tier mix", xaxis_title="tier", yaxis_title="customers", barmode="group")
    return _fig_html(fig, "fig-tiers") + "".join(parts)


def _anomaly(inp: ReportInputs) -> str:
    import plotly.graph_objects as go

    s = _arr(inp.anomaly_scores, "anomaly scores")
    thr = inp.anomaly_threshold
    # 50 bins of width 0.02 from 0 to 1 (automatic bins put half-width bins at both ends, which look like dips)
    edges = np.linspace(min(0.0, float(np.nanmin(s))), max(1.0, float(np.nanmax(s))), 51)
    fig = go.Figure([_hist(s, edges, "users")])
    if thr is not None:
        fig.add_vline(x=float(thr), line_dash="dash", line_color="red")
    fig.update_layout(title="Anomaly score distribution (dashed: flag threshold)", xaxis_title="anomaly score",
                      yaxis_title="users")
    if thr is not None:
        flagged = int((s >= thr).sum())
        head = (f"<p>{s.size:,} users scored; <b>{flagged:,}</b> flagged at threshold {thr:.3f} "
                f"({flagged / s.size:.1%}). A score is about the share of training users less unusual than the "
                "user, so scores of a population like the training one spread evenly from 0 to 1; a pile-up "
                "near 1 means more unusual users than in training.</p>")
    else:
        head = f"<p>{s.size:,} users scored.</p>"
    tab = ""
    drivers = ""
    drv = inp.anomaly_drivers
    if drv is not None and len(drv):  # what the flags are about: each flagged user's first reason
        d = drv.sort_values("flagged_users", ascending=False).head(15)[::-1]
        bar = go.Figure([go.Bar(x=d["flagged_users"].to_numpy(), y=d["feature"].astype(str).tolist(),
                                orientation="h")])
        bar.update_layout(title=f"First reason of the {int(drv['flagged_users'].sum()):,} flagged users",
                          xaxis_title="flagged users", height=max(260, 28 * len(d) + 120))
        drivers = _fig_html(bar, "fig-anomaly-reasons")
    if inp.anomaly_table is not None and len(inp.anomaly_table):
        shown, dropped = without_identifiers(inp.anomaly_table)
        if "flagged" in shown.columns and pd.to_numeric(shown["flagged"], errors="coerce").isin([0, 1]).all():
            shown = shown.assign(flagged=shown["flagged"].astype(bool))  # 0/1 from score_frame reads "yes"
        why = (f" ({', '.join(dropped)} left out: the report carries no personal identifiers; "
               "<code>buyerscore anomaly score --out</code> lists them)") if dropped else ""
        tab = f"<p>Most unusual users and why{why}:</p>" + _table_html(shown, max_rows=20)
    return head + _fig_html(fig, "fig-anomaly") + drivers + tab


def _fairness(inp: ReportInputs) -> str:
    if inp.fairness is None or len(inp.fairness) == 0:
        raise _Unavailable("no fairness audit given (needs sensitive attributes and labels)")
    parts = []
    if inp.fairness_summary is not None and len(inp.fairness_summary):
        di = 0.8 if inp.fairness_di_threshold is None else inp.fairness_di_threshold
        parts.append(f"<p>Per attribute (disparate impact ratio below {di:g} is flagged):</p>"
                     + _table_html(inp.fairness_summary))
    parts.append("<p>Per group:</p>" + _table_html(inp.fairness, max_rows=100))
    parts.append(_notes_html(inp.fairness_notes, "Notes:"))
    return "".join(parts)


def _drift(inp: ReportInputs) -> str:
    if inp.drift is None or len(inp.drift) == 0:
        raise _Unavailable("no drift comparison given (needs a reference and a current population)")
    v = f"<p>Verdict: <b class='verdict'>{html.escape(inp.drift_verdict)}</b></p>" if inp.drift_verdict else ""
    return (v + _notes_html(inp.drift_reasons, "Because:")
            + _table_html(inp.drift.sort_values("psi", ascending=False), max_rows=80))


_BLUE_RED = [[0.0, "#2166ac"], [0.5, "#9467bd"], [1.0, "#b2182b"]]
_GREY = "#7f7f7f"


RENDERERS: dict[str, Callable[[ReportInputs], str]] = {
    "roc": _roc, "ks": _ks, "calibration": _calibration, "score-distribution": _score_distribution, "lift": _lift,
    "scorecard": _scorecard, "shap": _shap, "power": _power, "tiers": _tiers, "anomaly": _anomaly,
    "fairness": _fairness, "drift": _drift,
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2733;background:#f6f8fa}
header{background:#1d3557;color:#fff;padding:18px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;opacity:.85;font-size:13px}nav{padding:8px 28px;background:#e9eef4;font-size:13px}
nav a{margin-right:12px;color:#1d3557}main{padding:8px 28px 40px}
section{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:12px 18px;margin:14px 0}
section h2{font-size:17px;margin:4px 0 8px}.na{color:#8a6d3b;background:#fcf8e3;padding:8px;border-radius:4px}
div.tblwrap{overflow-x:auto;max-width:100%}table.tbl{border-collapse:collapse;font-size:12px;margin:8px 0}table.tbl th,table.tbl td{border:1px solid #dde3ea;
padding:3px 7px;text-align:right}table.tbl th{background:#f0f3f7}table.tbl td:first-child{text-align:left}
.muted{color:#6b7785;font-size:12px}.rows{color:#44546a;font-size:13px;font-style:italic;margin:0 0 6px}.verdict{color:#b22222}
"""


def render_report(inputs: ReportInputs) -> str:
    """The report as one HTML string (plotly.js embedded once; no external resources)."""
    from plotly.offline import get_plotlyjs

    body: list[str] = []
    status: dict[str, str] = {}
    for sid, title in SECTIONS:
        try:
            content = RENDERERS[sid](inputs)
            status[sid] = "ok"
            if inputs.evaluated_on.get(sid):
                content = (f"<p class='rows'>Rows: {html.escape(str(inputs.evaluated_on[sid]))}</p>" + content)
        except _Unavailable as exc:
            why = inputs.notes.get(sid, str(exc))
            content = f"<p class='na'>not available: {html.escape(why)}</p>"
            status[sid] = f"not available: {why}"
        except Exception as exc:  # noqa: BLE001 - a broken input must not lose the rest of the report
            logger.warning("report section %s failed: %s", sid, exc)
            content = f"<p class='na'>not available: could not be drawn ({html.escape(type(exc).__name__)}: " \
                      f"{html.escape(str(exc)[:200])})</p>"
            status[sid] = f"error: {exc}"
        body.append(f"<section id='{sid}'><h2>{html.escape(title)}</h2>{content}</section>")
    meta = {"generated": datetime.now(UTC).isoformat(timespec="seconds"), "buyerscore": __version__,
            **inputs.metadata}
    meta_txt = " · ".join(f"{html.escape(str(k))}: {html.escape(str(v))}" for k, v in meta.items())
    nav = "".join(f"<a href='#{sid}'>{html.escape(t.split(':')[0].split(' (')[0])}</a>" for sid, t in SECTIONS)
    status_json = html.escape(json.dumps(status))
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(inputs.title)}</title><style>{_CSS}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        f"<header><h1>{html.escape(inputs.title)}</h1><p>{meta_txt}</p></header><nav>{nav}</nav>"
        f"<main data-sections='{status_json}'>{''.join(body)}</main></body></html>"
    )


def build_report(inputs: ReportInputs, path: str | Path) -> Path:
    """Write the report to ``path`` (one self-contained HTML file) and return the path.

    Examples
    --------
    >>> import tempfile
    >>> p = build_report(ReportInputs(y_true=[0, 1, 0, 1], proba=[.1, .8, .3, .6]),
    ...                  Path(tempfile.mkdtemp()) / "r.html")
    >>> text = p.read_text(encoding="utf-8")
    >>> all(f"<section id='{sid}'>" in text for sid, _ in SECTIONS), "not available: no scorecard table" in text
    (True, True)
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    doc = render_report(inputs)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(p)
    logger.info("report written to %s (%d KB)", p, len(doc) // 1024)
    return p
