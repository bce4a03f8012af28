"""Figures of the Architectures page: pure functions of plain numbers, no Streamlit, no model.

Rows are ham_core.analysis.compare's {"model", "kv_fraction", "loss"} (or "accuracy", the
recall task's); curves are keys held
against position, one list per architecture.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import plotly.graph_objects as go

from app.drawing.charts import layout

ARCHITECTURE_STYLE = {   # the Okabe-Ito colours of app.drawing.charts, one per architecture
    "transformer": ("Transformer (every token)", "#000000", "star"),
    "gdn": ("GDN (RNN, no cache)", "#D55E00", "square"),
    "window": ("window hybrid (last W tokens)", "#009E73", "diamond"),
    "ham": ("HAM (surprising tokens)", "#0072B2", "circle"),
}


# What a row's number is: (title, y-axis label, factor to the axis, hover after the cache).
MEASURES = {
    "loss": ("Each architecture trained for its memory: loss against KV cache", "loss (nats / token)", 1.0,
             "%{y:.3f} nats/token"),
    "accuracy": ("The recall task, each architecture trained for it: accuracy against KV cache",
                 "recall accuracy (% of queries right)", 100.0, "%{y:.1f}% right"),
}


def architectures_quality_figure(rows: Iterable[Mapping], *, measure: str = "loss",
                                 font_scale: float = 1.0) -> go.Figure:
    """Loss (or, measure="accuracy", recall accuracy) against KV cache: the Transformer a point
    at 100%, GDN a point at 0, the window and HAM curves over the fractions they were read at."""
    title, y_label, factor, hover = MEASURES[measure]
    fig = go.Figure()
    rows = list(rows)
    for name, (label, colour, marker) in ARCHITECTURE_STYLE.items():
        mine = sorted((r for r in rows if r["model"] == name), key=lambda r: r["kv_fraction"])
        if not mine:
            continue
        fig.add_trace(go.Scatter(
            x=[100 * r["kv_fraction"] for r in mine], y=[factor * r[measure] for r in mine], name=label,
            mode="lines+markers" if len(mine) > 1 else "markers",
            line=dict(color=colour), marker=dict(color=colour, symbol=marker, size=12 if len(mine) == 1 else 9),
            hovertemplate="%{x:.1f}% of a full cache: " + hover + "<extra>" + label + "</extra>"))
    return layout(fig, title, "KV cache (% of a full cache)", y_label, font_scale=font_scale)


def cache_position_figure(curves: Mapping[str, Sequence[int]], fraction: float, *,
                          font_scale: float = 1.0) -> go.Figure:
    """Keys held after each token (all layers): the Transformer's diagonal, GDN flat at 0, the
    window flat at W, HAM growing where the text is new."""
    fig = go.Figure()
    for name, (label, colour, _) in ARCHITECTURE_STYLE.items():
        if name in curves:
            ys = list(curves[name])
            fig.add_trace(go.Scatter(x=list(range(1, len(ys) + 1)), y=ys, name=label, mode="lines",
                                     line=dict(color=colour, width=3 if name == "ham" else 2),
                                     hovertemplate="after token %{x}: %{y} keys<extra>" + label + "</extra>"))
    return layout(fig, f"KV cache while reading this text (window and HAM at {fraction:.0%} of a full cache)",
                   "tokens read", "keys in the KV cache (all layers)", font_scale=font_scale)


UNLEARNED = 0.5      # accuracy with a full cache below which a model has not learned the lookup


def recall_in_words(rows: Iterable[Mapping], fraction: float = 0.25) -> str:
    """What the recall chart shows, in a sentence to read aloud: each architecture's accuracy, the
    window and HAM at the reading nearest `fraction` of a full cache."""
    rows = list(rows)
    said = []
    for name, how in (("ham", "HAM"), ("window", "the window hybrid"), ("gdn", "GDN, with no cache at all,"),
                      ("transformer", "the Transformer, which keeps every token,")):
        mine = [r for r in rows if r["model"] == name]
        if mine:
            r = min(mine, key=lambda r: abs(r["kv_fraction"] - fraction))
            cache = f" (with {r['kv_fraction']:.0%} of a full cache)" if name in ("ham", "window") else ""
            said.append(f"{how} {r['accuracy']:.0%}{cache}")
    if not said:
        return ""
    listed = said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1]
    sentence = (f"Share of queries answered right: {listed}. The pairs are new information that a small RNN "
                "state cannot hold, so what counts is what the cache keeps: HAM keeps the tokens its RNN could "
                "not predict, the window only the most recent ones.")
    # A hybrid that fails with a full cache never learned the lookup: its curve is about its
    # training, and the sentence above would blame its cache for it.
    for name, how in (("window", "The window hybrid"), ("ham", "HAM")):
        full = [r for r in rows if r["model"] == name and r["kv_fraction"] >= 0.99]
        if full and full[0]["accuracy"] < UNLEARNED:
            sentence += (f" {how} gets only {full[0]['accuracy']:.0%} even with a full cache: its training never "
                         "taught it this lookup, so its curve shows how it was trained, not what its cache can hold.")
    return sentence
