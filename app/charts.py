"""Plotly figure builders: pure functions of plain numbers, no Streamlit, no model.

Sweep rows may be dicts or objects with the fields policy, tau, kv_fraction, kv_bytes_peak and
loss (ham_core.analysis.sweep's rows); `_get` reads either.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping, Optional, Sequence

import plotly.graph_objects as go

POLICY_STYLE = {   # colour-blind-safe (Okabe-Ito) colours and distinct markers
    "ham": ("HAM surprise", "#0072B2", "circle"),
    "random": ("random", "#E69F00", "square"),
    "window": ("recent window", "#009E73", "diamond"),
    "sinks": ("sinks + window", "#CC79A7", "triangle-up"),
    "hola": ("HOLA residual", "#D55E00", "x"),
}


def _get(row, name, default=None):
    if isinstance(row, Mapping):
        return row.get(name, default)
    return getattr(row, name, default)


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GB"


def _ppl(loss: float) -> float:
    return math.exp(min(loss, 50.0))


def _layout(fig: go.Figure, title: str, xtitle: str, ytitle: str, height: int = 380) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=xtitle, yaxis_title=ytitle, height=height,
                      margin=dict(l=50, r=20, t=50, b=45), legend=dict(orientation="h", y=-0.22),
                      hovermode="closest")
    return fig


def memory_quality_figure(rows: Iterable, current: Optional[Mapping] = None,
                          title: str = "Memory vs quality") -> go.Figure:
    """x = peak KV cache as % of a full cache (bytes on hover), y = loss in nats/token
    (perplexity on hover). One curve per policy; full-cache and RNN-only labelled; the current
    slider point (dict with kv_fraction, kv_bytes_peak, loss, tau) as a star."""
    by_policy: dict[str, list] = {}
    for r in rows:
        by_policy.setdefault(str(_get(r, "policy", "ham")), []).append(r)
    fig = go.Figure()
    for policy, pts in by_policy.items():
        pts = sorted(pts, key=lambda r: float(_get(r, "kv_fraction")))
        name, colour, symbol = POLICY_STYLE.get(policy, (policy, "#555555", "circle"))
        xs = [100 * float(_get(r, "kv_fraction")) for r in pts]
        ys = [float(_get(r, "loss")) for r in pts]
        custom = [[fmt_bytes(float(_get(r, "kv_bytes_peak", 0))), _ppl(y),
                   "" if _get(r, "tau") is None else f"{float(_get(r, 'tau')):.3g}"] for r, y in zip(pts, ys)]
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines+markers", name=name, customdata=custom,
            line=dict(color=colour, width=3 if policy == "ham" else 2, dash="solid" if policy == "ham" else "dot"),
            marker=dict(symbol=symbol, size=8, color=colour),
            hovertemplate=(f"<b>{name}</b><br>KV cache %{{x:.1f}}% of full (%{{customdata[0]}})"
                           "<br>loss %{y:.3f} nats/token<br>perplexity %{customdata[1]:.2f}"
                           + ("<br>τ = %{customdata[2]}" if policy == "ham" else "") + "<extra></extra>"),
        ))
        if policy == "ham" and pts:
            for r, label in ((pts[-1], "full cache"), (pts[0], "RNN only")):
                frac = float(_get(r, "kv_fraction"))
                if (label == "full cache" and frac > 0.999) or (label == "RNN only" and frac < 1e-9):
                    fig.add_annotation(x=100 * frac, y=float(_get(r, "loss")), text=label, showarrow=True,
                                       arrowhead=2, ax=-40 if label == "full cache" else 40, ay=-30)
    if current is not None:
        loss = float(current["loss"])
        fig.add_trace(go.Scatter(
            x=[100 * float(current["kv_fraction"])], y=[loss], mode="markers", name="current threshold",
            marker=dict(symbol="star", size=18, color="#000000", line=dict(color="#ffffff", width=1.5)),
            customdata=[[fmt_bytes(float(current.get("kv_bytes_peak", 0))), _ppl(loss)]],
            hovertemplate=("<b>current</b><br>KV cache %{x:.1f}% of full (%{customdata[0]})"
                           "<br>loss %{y:.3f} nats/token<br>perplexity %{customdata[1]:.2f}<extra></extra>"),
        ))
    fig.update_xaxes(range=[-3, 103], ticksuffix="%")
    return _layout(fig, title, "KV cache (% of a full cache)", "loss (nats / token)")


def cache_fill_figure(sizes: Sequence[Sequence[int]], position: int, total: int) -> go.Figure:
    """Step-through: KV cache size per layer after each token read so far."""
    fig = go.Figure()
    for layer, ys in enumerate(zip(*sizes) if sizes else []):
        fig.add_trace(go.Scatter(x=list(range(1, len(ys) + 1)), y=list(ys), mode="lines",
                                 name=f"layer {layer + 1}"))
    fig.add_trace(go.Scatter(x=[0, total], y=[0, total], mode="lines", name="full cache",
                             line=dict(color="#999999", dash="dot")))
    fig.update_xaxes(range=[0, max(total, 1)])
    fig.update_yaxes(range=[0, max(total, 1)])
    return _layout(fig, f"KV cache after {position} of {total} tokens", "tokens read", "tokens in cache", 300)


def recall_figure(rows: Iterable) -> go.Figure:
    """Recall lab: accuracy vs KV cache % for each policy. Rows: policy, kv_fraction, accuracy."""
    by_policy: dict[str, list] = {}
    for r in rows:
        by_policy.setdefault(str(_get(r, "policy")), []).append(r)
    fig = go.Figure()
    for policy, pts in by_policy.items():
        pts = sorted(pts, key=lambda r: float(_get(r, "kv_fraction")))
        name, colour, symbol = POLICY_STYLE.get(policy, (policy, "#555555", "circle"))
        fig.add_trace(go.Scatter(
            x=[100 * float(_get(r, "kv_fraction")) for r in pts], y=[100 * float(_get(r, "accuracy")) for r in pts],
            mode="lines+markers", name=name, line=dict(color=colour), marker=dict(symbol=symbol, size=8, color=colour),
            hovertemplate=f"<b>{name}</b><br>KV cache %{{x:.1f}}%<br>accuracy %{{y:.1f}}%<extra></extra>"))
    fig.update_xaxes(range=[-3, 103], ticksuffix="%")
    fig.update_yaxes(range=[-3, 103], ticksuffix="%")
    return _layout(fig, "Recall accuracy vs KV cache", "KV cache (% of full)", "recall accuracy")


def figure_html(fig: go.Figure) -> str:
    """A standalone HTML file with plotly.js inlined (works offline; no CDN)."""
    return fig.to_html(include_plotlyjs=True, full_html=True)


def figure_png(fig: go.Figure) -> Optional[bytes]:
    """PNG bytes via kaleido when it is installed and works; None otherwise."""
    try:
        return fig.to_image(format="png", scale=2)
    except Exception:     # kaleido missing or no browser for it: the caller offers HTML instead
        return None
