"""Defects found by reading the report on real data: page size, histogram bins, invisible dots, raw list
cells, 0/1 flags, and which rows (held-out or in-sample) each section shows."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from buyerscore.explain.report import ReportInputs, load_inputs, merge_inputs, render_report, save_inputs

_DTYPES = {"f8": "<f8", "f4": "<f4", "i1": "<i1", "i2": "<i2", "i4": "<i4", "i8": "<i8", "u1": "<u1", "u2": "<u2",
           "u4": "<u4", "u8": "<u8"}


def _decode(v: object) -> object:
    """Plotly's typed arrays (``{"dtype": "f8", "bdata": ...}``) as numpy arrays, recursively."""
    if isinstance(v, dict) and "bdata" in v and "dtype" in v:
        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=_DTYPES[v["dtype"]])
        return a.reshape(v["shape"]) if "shape" in v and isinstance(v["shape"], list) else a
    if isinstance(v, dict):
        return {k: _decode(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_decode(x) for x in v]
    return v


def figure(text: str, div_id: str) -> list[dict]:
    """The traces the page hands to ``Plotly.newPlot`` for the figure ``div_id``."""
    m = re.search(r'Plotly\.newPlot\(\s*"' + re.escape(div_id) + r'",\s*', text)
    assert m, f"{div_id} not in the page"
    data, _ = json.JSONDecoder().raw_decode(text, m.end())
    return _decode(data)


def section(text: str, sid: str) -> str:
    return text.split(f"<section id='{sid}'>")[1].split("</section>")[0]


def _without_plotlyjs(text: str) -> str:
    return re.sub(r"<script type='text/javascript'>.*?</script></head>", "", text, count=1, flags=re.DOTALL)


def test_large_populations_do_not_grow_the_page() -> None:
    """Histograms hold counts and curves at most ~1,000 points: was every score of every user in the page
    (23,570 CDNOW users: 318 KB for the anomaly histogram alone, growing with the data)."""
    rng = np.random.default_rng(0)
    n = 200_000
    y = (rng.random(n) < 0.1).astype(float)
    p = np.clip(0.1 + 0.2 * (y - 0.1) + rng.normal(0, 0.1, n), 0.001, 0.999)
    spend = rng.lognormal(3, 1.5, n) * (rng.random(n) < 0.3)
    inp = ReportInputs(y_true=y, proba=p, score=600 - 50 * np.log(p / (1 - p)), spend_true=spend,
                       spend_pred=spend * rng.lognormal(0, 1, n), anomaly_scores=rng.random(n), anomaly_threshold=0.98)
    text = render_report(inp)
    body = _without_plotlyjs(text)
    assert len(body) < 400_000, len(body)
    # the thinned curves still start and end where the full ones do, and the KS gap is drawn where it is
    gini = figure(text, "fig-power-gini")[0]
    assert len(gini["x"]) <= 1002 and gini["x"][-1] == 1.0 and np.isclose(gini["y"][-1], 1.0)
    cb, _cg, gap = figure(text, "fig-ks")
    k = float(gap["y"][1] - gap["y"][0])
    assert f"KS <b>{k:.3f}</b>" in section(text, "ks") and gap["x"][0] in set(cb["x"].tolist())
    score_bars = figure(text, "fig-score")
    assert sum(int(np.sum(t["y"])) for t in score_bars) == n  # goods + bads histogram: every row counted


def test_anomaly_histogram_bins_are_even_from_0_to_1() -> None:
    """Automatic bins put half-width bins at 0 and 1, which looked like too few users at both ends."""
    s = (np.arange(5000) + 0.5) / 5000  # evenly spread, as the scores of the training users are
    bars = figure(render_report(ReportInputs(anomaly_scores=s, anomaly_threshold=0.98)), "fig-anomaly")[0]
    assert bars["type"] == "bar"
    np.testing.assert_allclose(bars["x"], np.arange(0.01, 1.0, 0.02))
    assert (np.asarray(bars["y"]) == 100).all()


def _near_white(color: str) -> bool:
    if color.startswith("#"):
        rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    else:
        rgb = [float(x) for x in re.findall(r"[\d.]+", color)[:3]]
    return min(rgb) > 225


def test_shap_dots_of_categorical_features_are_visible() -> None:
    """A scorecard's categorical features (most of German credit) have no rank; their dots were coloured
    0.5 on RdBu_r, i.e. white on the white page, so the rows looked empty."""
    rng = np.random.default_rng(0)
    n = 300
    values = pd.DataFrame({"duration": rng.integers(4, 72, n).astype(float),
                           "purpose": rng.choice(["car (new)", "radio/television", "business"], n)})
    shap = pd.DataFrame({"duration": values["duration"] / 3, "purpose": rng.choice([0.0, 5.0, 12.0], n)})
    text = render_report(ReportInputs(shap=shap, shap_values=values))
    traces = figure(text, "fig-shap-summary")
    assert sum(len(t["x"]) for t in traces) == 2 * n  # every row of both features is drawn
    for t in traces:
        marker = t["marker"]
        colors = ([c for _, c in marker["colorscale"]] if "colorscale" in marker else [marker["color"]])
        assert not any(_near_white(c) for c in colors if isinstance(c, str)), colors
    grey = [t for t in traces if isinstance(t["marker"]["color"], str)]
    assert len(grey) == 1 and len(grey[0]["x"]) == n  # the categorical feature, drawn grey
    assert "category" in grey[0]["name"]


def test_list_cells_and_anomaly_flags_read_as_words(tmp_path: Path) -> None:
    """``groups_left_out`` showed as ``[]`` / ``['<25']`` and the anomaly table's flag as 1."""
    summary = pd.DataFrame({"attribute": ["age_band", "sex"], "disparate_impact_ratio": [0.61, 0.92],
                            "groups_left_out": [["<25", "75+"], []]})
    by_group = pd.DataFrame({"attribute": ["age_band"], "group": ["25-34"], "n": [116]})
    table = pd.DataFrame({"rank": [1, 2], "anomaly_score": [0.999, 0.998], "flagged": np.array([1, 1], dtype=np.int64),
                          "reasons": ["a", "b"]})
    inp = ReportInputs(fairness=by_group, fairness_summary=summary, anomaly_scores=[0.1, 0.999, 0.998],
                       anomaly_threshold=0.98, anomaly_table=table)
    for text in (render_report(inp), render_report(load_inputs(save_inputs(inp, tmp_path / "in")))):
        fair = section(text, "fairness")
        assert "[" not in fair and "<td>&lt;25, 75+</td>" in fair
        anomaly = section(text, "anomaly")
        assert "<td>1</td><td>0.999</td><td>yes</td>" in anomaly


def test_each_section_says_which_rows_it_shows(tmp_path: Path) -> None:
    """Held-out and in-sample numbers sat side by side with nothing to tell them apart (the anomaly
    section's 2 % flagged is the detector's own training users, by construction)."""
    a = ReportInputs(y_true=[0, 1, 0, 1], proba=[0.1, 0.8, 0.3, 0.6],
                     evaluated_on={"roc": "4 held-out applicants, not used in fitting"})
    b = ReportInputs(anomaly_scores=[0.2, 0.99], anomaly_threshold=0.98,
                     evaluated_on={"anomaly": "the detector's training users (in-sample)"})
    merged = merge_inputs(a, b)
    assert set(merged.evaluated_on) == {"roc", "anomaly"}
    back = load_inputs(save_inputs(merged, tmp_path / "in"))
    assert back.evaluated_on == merged.evaluated_on
    text = render_report(back)
    assert "Rows: 4 held-out applicants, not used in fitting" in section(text, "roc")
    assert "Rows: the detector&#x27;s training users (in-sample)" in section(text, "anomaly")
    assert "Rows:" not in section(text, "ks")  # not given for KS: nothing claimed


def test_scorecard_bars_name_their_bins_and_points() -> None:
    """The per-feature points charts hid every bin name (hover only) and had no y unit; long category lists
    are shortened on the axis, and bins whose short names collide stay separate bars."""
    from buyerscore.explain.report.build import _scorecard_figure

    table = pd.DataFrame({
        "feature": ["purpose"] * 3 + ["age"] * 2,
        "label": ["A40, A41, A42, A43, A44", "A40, A41, A42, A45", "Missing", "[-inf, 30.00)", "[30.00, inf)"],
        "points": [10.0, 25.0, 0.0, 5.0, 20.0], "count": [100, 50, 5, 60, 95]})
    text = _scorecard_figure(table)
    traces = figure(text, "fig-scorecard")
    purpose = next(t for t in traces if "purpose" in t["hovertemplate"])
    assert list(purpose["x"]) == [0, 1, 2] and purpose["customdata"][0] == "A40, A41, A42, A43, A44"
    m = re.search(r'Plotly\.newPlot\(\s*"fig-scorecard",\s*', text)
    assert m
    dec = json.JSONDecoder()
    _, end = dec.raw_decode(text, m.end())
    layout, _ = dec.raw_decode(text, end + text[end:].index("{"))
    ticks = [layout[k].get("ticktext") for k in sorted(layout) if k.startswith("xaxis")]
    assert ["A40, A41, A42,…", "A40, A41, A42,…", "Missing"] in ticks and ["[-inf, 30.00)", "[30.00, inf)"] in ticks
    assert layout["yaxis"]["title"]["text"] == "points"
