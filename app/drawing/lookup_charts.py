"""Figures of the "Learning to look up" page: pure functions of a run's logged steps (LabStep),
no Streamlit, no model. The loss curve, one line per head (gate, temperature), the cache share,
and one example's reads: arcs from a query to the keys it reads, and every query's reads as a grid.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence

import plotly.graph_objects as go

from app.drawing.charts import layout

HEAD_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7")   # Okabe-Ito, as the other charts
RIGHT_KEY = "#009E73"
QUERY = "#D55E00"


def _current_line(fig: go.Figure, step: Optional[int]) -> None:
    if step is not None:
        fig.add_vline(x=step, line=dict(color="#888", width=1, dash="dot"))


def loss_figure(steps: Sequence, chance: float, *, current: Optional[int] = None, jump: Optional[int] = None,
                total: Optional[int] = None, font_scale: float = 1.0) -> go.Figure:
    """Second-reading loss per logged step, with chance (ln vocab: what no lookup can beat) and
    the jump marked."""
    fig = go.Figure(go.Scatter(x=[s.step for s in steps], y=[s.loss for s in steps], mode="lines",
                               name="loss of the second reading", line=dict(color=HEAD_COLOURS[0], width=2.5)))
    fig.add_hline(y=chance, line=dict(color="#888", dash="dash"),
                  annotation_text=f"chance, ln 32 = {chance:.2f}: no lookup", annotation_position="top right")
    if jump is not None:
        fig.add_vline(x=jump, line=dict(color=RIGHT_KEY, width=2),
                      annotation_text=f"jump at step {jump}", annotation_position="top left")
    _current_line(fig, current)
    fig.update_yaxes(range=[0, chance * 1.15])
    if total:
        fig.update_xaxes(range=[0, total])
    return layout(fig, "Loss: a plateau, then a jump when a lookup forms", "training step", "nats per symbol",
                   height=330, font_scale=font_scale)


def heads_figure(steps: Sequence, field: str, title: str, ytitle: str, *, current: Optional[int] = None,
                 total: Optional[int] = None, y_range: Optional[List[float]] = None,
                 font_scale: float = 1.0) -> go.Figure:
    """One line per head of a per-head field of LabStep (attn_gate, temperature)."""
    fig = go.Figure()
    n_heads = len(getattr(steps[0], field)) if steps else 0
    for h in range(n_heads):
        fig.add_trace(go.Scatter(x=[s.step for s in steps], y=[getattr(s, field)[h] for s in steps], mode="lines",
                                 name=f"head {h + 1}", line=dict(color=HEAD_COLOURS[h % len(HEAD_COLOURS)], width=2)))
    _current_line(fig, current)
    if y_range:
        fig.update_yaxes(range=y_range)
    if total:
        fig.update_xaxes(range=[0, total])
    return layout(fig, title, "training step", ytitle, height=260, font_scale=font_scale)


def cache_share_figure(steps: Sequence, *, current: Optional[int] = None, total: Optional[int] = None,
                       font_scale: float = 1.0) -> go.Figure:
    fig = go.Figure(go.Scatter(x=[s.step for s in steps], y=[100 * s.cache_share for s in steps], mode="lines",
                               name="tokens cached", line=dict(color="#555", width=2)))
    _current_line(fig, current)
    fig.update_yaxes(range=[-5, 105])
    if total:
        fig.update_xaxes(range=[0, total])
    return layout(fig, "Share of tokens the threshold lets into the cache", "training step", "% of tokens",
                   height=260, font_scale=font_scale)


def _arc(x0: float, x1: float, height: float, n: int = 24) -> tuple[list, list]:
    """Points of a half-ellipse from x0 to x1 rising to `height`."""
    xs, ys = [], []
    for i in range(n + 1):
        a = math.pi * i / n
        xs.append((x0 + x1) / 2 - (x1 - x0) / 2 * math.cos(a))
        ys.append(height * math.sin(a))
    return xs, ys


def reads_arcs_figure(symbols: Sequence[str], weights: Sequence[int], query: int, right: int, *,
                      head: int, font_scale: float = 1.0) -> go.Figure:
    """The reads of one query: an arc to each key it can see, as opaque and wide as its weight
    (percent); the right key and the query are marked. weights [query + 1]."""
    fig = go.Figure()
    top = max(weights) if weights else 0
    groups: dict = {}          # arcs of like weight share one trace (a browser redraws a live view often)
    for key, w in enumerate(weights):
        if w > 0:
            groups.setdefault((key == right, min(4, w // 20)), []).append(key)
    for (is_right, level), keys in sorted(groups.items()):
        xs, ys = [], []
        for key in keys:
            ax, ay = _arc(key, query, 1 + (query - key) / 6)
            xs += ax + [None]
            ys += ay + [None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", showlegend=False,
                                 line=dict(color=RIGHT_KEY if is_right else HEAD_COLOURS[head % 4],
                                           width=0.7 + 1.5 * level), opacity=0.25 + 0.75 * level / 4))
    fig.add_trace(go.Scatter(x=list(range(len(weights))), y=[0.0] * len(weights), mode="markers", showlegend=False,
                             marker=dict(size=10, opacity=0), hoverinfo="text",
                             text=[f"query #{query} reads key #{k} ({symbols[k]}): {w}%"
                                   for k, w in enumerate(weights)]))
    colours = [QUERY if i == query else RIGHT_KEY if i == right else "#333" for i in range(len(symbols))]
    fig.add_trace(go.Scatter(x=list(range(len(symbols))), y=[-0.6] * len(symbols), mode="text", text=list(symbols),
                             textfont=dict(size=round(15 * font_scale), color=colours), showlegend=False,
                             hovertext=[f"#{i} {s}" for i, s in enumerate(symbols)], hoverinfo="text"))
    half = len(symbols) // 2
    fig.add_vline(x=half - 0.5, line=dict(color="#aaa", dash="dot"),
                  annotation_text="second reading →", annotation_position="top right")
    fig.update_xaxes(showticklabels=False, range=[-1, len(symbols)], showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, range=[-1.3, 1 + len(symbols) / 6 + 0.5])
    title = (f"Head {head + 1}: what the query #{query} ({symbols[query]}, orange) reads — the right key is "
             f"#{right} ({symbols[right]}, green), the symbol that came next the first time (the short convolution "
             f"lets a lookup land there or a key or two later); "
             f"its largest read {top}%")
    return layout(fig, title, "", "", height=300, font_scale=font_scale)


def reads_grid_figure(symbols: Sequence[str], weights: Sequence[Sequence[int]], *, head: int,
                      font_scale: float = 1.0) -> go.Figure:
    """Every query of the second reading (rows) by every key (columns), weight in percent; the
    right keys lie on one diagonal. weights [half][half + i + 1]."""
    half = len(weights)
    z = [list(row) + [None] * (2 * half - len(row)) for row in weights]
    fig = go.Figure(go.Heatmap(z=z, x=list(range(2 * half)), y=list(range(half, 2 * half)), zmin=0, zmax=100,
                               colorscale="Blues", colorbar=dict(title="%"),
                               hovertemplate="query #%{y} reads key #%{x}: %{z}%<extra></extra>"))
    fig.add_trace(go.Scatter(x=[q - half + 1 for q in range(half, 2 * half)], y=list(range(half, 2 * half)),
                             mode="markers", name="the right key", hoverinfo="skip",
                             marker=dict(symbol="circle-open", color=RIGHT_KEY, size=7)))
    fig.update_yaxes(autorange="reversed")
    return layout(fig, f"Head {head + 1}: every query of the second reading and what it reads", "key position",
                   "query position", height=330, font_scale=font_scale)
