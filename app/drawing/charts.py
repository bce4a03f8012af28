"""What every chart shares, and the small ones: the layout (type size, wrapped titles, the
legend at the foot), the policies' colours, bytes in words, the step-through's cache fill and
the recall lab's accuracy, and a figure as HTML or PNG. Pure functions of plain numbers, no
Streamlit, no model. The Read page's memory-vs-quality chart: app.drawing.memory_chart.

Rows may be dicts or objects with the fields policy, tau, kv_fraction, kv_bytes_peak and loss
(ham_core.analysis.sweep's rows); `field` reads either.
"""
from __future__ import annotations

import math
import textwrap
from typing import Iterable, Mapping, Optional, Sequence

# Imported here, whole, before any figure is built: plotly looks pandas up in sys.modules without
# importing it, so a figure built in one session's thread while another thread (the start-up
# warm-up, or a first table) is still importing pandas met a half-initialised module
# (AttributeError: partially initialized module 'pandas' has no attribute 'Series').
import pandas  # noqa: F401
import plotly.graph_objects as go

POLICY_STYLE = {   # colour-blind-safe (Okabe-Ito) colours and distinct markers
    "ham": ("HAM surprise", "#0072B2", "circle"),
    "random": ("random", "#E69F00", "square"),
    "window": ("recent window", "#009E73", "diamond"),
    "sinks": ("sinks + window", "#CC79A7", "triangle-up"),
    "hola": ("HOLA residual", "#D55E00", "x"),
}


def field(row, name, default=None):
    """A row's value `name`, whether the row is a dict or an object."""
    if isinstance(row, Mapping):
        return row.get(name, default)
    return getattr(row, name, default)


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GB"


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))


FONT = 12                        # base font size (px) of every chart; presenter mode scales it


TITLE_WIDTH = 720                # px a chart title may take on one line before it wraps (a chart is ~750-900 wide)


def wrap_title(title: str, size: float) -> str:
    """A long title broken into lines (Plotly never wraps one) at `size` px per character."""
    per_line = max(20, int(TITLE_WIDTH / (0.55 * size)))
    return "<br>".join(textwrap.wrap(title, per_line)) if len(title) > per_line else title


def layout(fig: go.Figure, title: str, xtitle: str, ytitle: str, height: int = 380,
            font_scale: float = 1.0) -> go.Figure:
    f = font_scale
    title = wrap_title(title, 1.15 * FONT * f)
    lines = title.count("<br>")
    # The legend sits at the foot of the figure, below the x axis's title, in as many rows as its
    # names need at this size (so larger type pushes the plot up instead of overlapping it).
    names = [t.name for t in fig.data if t.name and t.showlegend is not False]
    rows = max(1, math.ceil(sum(0.55 * FONT * f * len(n) + 40 for n in names) / TITLE_WIDTH))
    legend_px = rows * 1.7 * FONT * f
    fig.update_layout(title=dict(text=title, font=dict(size=round(1.15 * FONT * f))), xaxis_title=xtitle,
                      yaxis_title=ytitle, height=round(height * f + 18 * lines * f + legend_px),
                      font=dict(size=round(FONT * f)),
                      margin=dict(l=round(50 * f), r=20, t=round((50 + 18 * lines) * f), b=round(50 * f + legend_px)),
                      legend=dict(orientation="h", yref="container", y=0, yanchor="bottom",
                                  font=dict(size=round(FONT * f))),
                      hoverlabel=dict(font=dict(size=round(FONT * f))), hovermode="closest")
    # Streamlit's chart theme sizes ticks and axis titles itself (from the page's root size, not
    # the figure's font), so they are set here, where presenter mode can scale them.
    for axis in (fig.update_xaxes, fig.update_yaxes):
        axis(tickfont=dict(size=round(FONT * f)), title_font=dict(size=round(FONT * f)))
    return fig


def cache_fill_figure(sizes: Sequence[Sequence[int]], position: int, total: int, *, font_scale: float = 1.0) -> go.Figure:
    """Step-through: KV cache size per layer after each token read so far."""
    fig = go.Figure()
    for layer, ys in enumerate(zip(*sizes) if sizes else []):
        fig.add_trace(go.Scatter(x=list(range(1, len(ys) + 1)), y=list(ys), mode="lines",
                                 name=f"layer {layer + 1}"))
    fig.add_trace(go.Scatter(x=[0, total], y=[0, total], mode="lines", name="full cache",
                             line=dict(color="#999999", dash="dot")))
    fig.update_xaxes(range=[0, max(total, 1)])
    fig.update_yaxes(range=[0, max(total, 1)])
    return layout(fig, f"KV cache after {position} of {total} tokens", "tokens read", "tokens in cache", 300,
                   font_scale=font_scale)


def recall_figure(rows: Iterable, *, font_scale: float = 1.0) -> go.Figure:
    """Recall lab: accuracy vs KV cache % for each policy. Rows: policy, kv_fraction, accuracy."""
    by_policy: dict[str, list] = {}
    for r in rows:
        by_policy.setdefault(str(field(r, "policy")), []).append(r)
    fig = go.Figure()
    for policy, pts in by_policy.items():
        pts = sorted(pts, key=lambda r: float(field(r, "kv_fraction")))
        name, colour, symbol = POLICY_STYLE.get(policy, (policy, "#555555", "circle"))
        fig.add_trace(go.Scatter(
            x=[100 * float(field(r, "kv_fraction")) for r in pts], y=[100 * float(field(r, "accuracy")) for r in pts],
            mode="lines+markers", name=name, line=dict(color=colour), marker=dict(symbol=symbol, size=8, color=colour),
            hovertemplate=f"<b>{name}</b><br>KV cache %{{x:.1f}}%<br>accuracy %{{y:.1f}}%<extra></extra>"))
    fig.update_xaxes(range=[-3, 103], ticksuffix="%")
    fig.update_yaxes(range=[-3, 103], ticksuffix="%")
    return layout(fig, "Recall accuracy vs KV cache", "KV cache (% of full)", "recall accuracy", font_scale=font_scale)


def figure_html(fig) -> str:
    """A standalone HTML file with plotly.js inlined (works offline; no CDN). fig: a Figure or its dict."""
    return go.Figure(fig).to_html(include_plotlyjs=True, full_html=True)


def figure_png(fig) -> Optional[bytes]:
    """PNG bytes via kaleido when it is installed and works; None otherwise. fig: a Figure or its dict."""
    try:
        return go.Figure(fig).to_image(format="png", scale=2)
    except Exception:     # kaleido missing or no browser for it: the caller offers HTML instead
        return None
