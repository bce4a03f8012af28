"""Plotly figure builders: pure functions of plain numbers, no Streamlit, no model.

Sweep rows may be dicts or objects with the fields policy, tau, kv_fraction, kv_bytes_peak and
loss (ham_core.analysis.sweep's rows); `_get` reads either.
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


FONT = 12                        # base font size (px) of every chart; presenter mode scales it


TITLE_WIDTH = 720                # px a chart title may take on one line before it wraps (a chart is ~750-900 wide)


def wrap_title(title: str, size: float) -> str:
    """A long title broken into lines (Plotly never wraps one) at `size` px per character."""
    per_line = max(20, int(TITLE_WIDTH / (0.55 * size)))
    return "<br>".join(textwrap.wrap(title, per_line)) if len(title) > per_line else title


def _layout(fig: go.Figure, title: str, xtitle: str, ytitle: str, height: int = 380,
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


def paired_noise(a: Sequence[float], b: Sequence[float]) -> float:
    """Two standard errors of the mean of the per-token differences a - b (NaNs skipped): how
    far apart two mean losses on this text must be before the difference means anything."""
    d = [x - y for x, y in zip(a, b) if x == x and y == y]
    if len(d) < 2:
        return float("inf")
    mean = sum(d) / len(d)
    var = sum((x - mean) ** 2 for x in d) / (len(d) - 1)
    return 2 * math.sqrt(var / len(d))


def range_sentence(losses: Sequence[float], noise: Optional[float] = None) -> str:
    """The y-axis span in plain words: 'the whole range is 0.0036 nats/token = 0.08% of the loss'."""
    ys = [y for y in losses if y == y]
    if not ys:
        return ""
    span, mid = max(ys) - min(ys), max(ys)
    out = f"the whole range is {span:.4f} nats/token = {100 * span / mid:.2g}% of the loss"
    if noise is not None and math.isfinite(noise):
        out += f"; differences under ±{noise:.4f} are noise on this text"
    return out


def equal_memory_sentence(rows: Iterable, tau: float, noise: Optional[float] = None) -> Optional[str]:
    """What the policies at the slider's threshold say, measured on this text: which keeps the
    loss lowest at HAM's memory, and by how much (None until the other policies are computed)."""
    at = {str(_get(r, "policy", "ham")): r for r in rows
          if _get(r, "tau") is not None and abs(float(_get(r, "tau")) - tau) < 1e-9}
    if "ham" not in at or len(at) < 2:
        return None
    label = lambda p: POLICY_STYLE.get(p, (p,))[0]  # noqa: E731
    order = sorted(at, key=lambda p: float(_get(at[p], "loss")))
    best, ham = order[0], float(_get(at["ham"], "loss"))
    kv = float(_get(at["ham"], "kv_fraction"))
    if best == "ham":
        other = order[1]
        diff = float(_get(at[other], "loss")) - ham
        verdict = f"HAM's picks give the lowest loss, {diff:.4f} nats/token below the next ({label(other)})"
    else:
        diff = ham - float(_get(at[best], "loss"))
        verdict = f"{label(best)} gives the lowest loss, {diff:.4f} nats/token below HAM"
    if noise is not None and noise == noise and diff < noise:
        verdict += ", within the noise"
    sentence = f"At τ {tau:.2f} every policy keeps {kv:.0%} of the full cache; {verdict}."
    if best in ("window", "sinks"):
        sentence += (" Here the most recent tokens are what the model uses; on longer texts where names recur far "
                     "apart, HAM's picks pull ahead (assets/MODEL_CARD.md, the names set).")
    return sentence


def headline(loss: float, kv_fraction: float, none_loss: float, full_loss: float, rows: Iterable = (),
             tau: Optional[float] = None) -> str:
    """What the chart says at the current threshold, in a sentence to read aloud: the share of a
    full cache's gain over the RNN alone that HAM gets with its share of the memory, and (when
    the other policies are computed) what the best of them gets with the same memory."""
    gain = none_loss - full_loss
    if not (gain == gain and loss == loss) or gain <= 0:
        return f"With {kv_fraction:.0%} of a full cache's memory, the loss is {loss:.3f} nats per token."
    out = f"With {kv_fraction:.0%} of a full cache's memory, HAM gets {(none_loss - loss) / gain:.0%} of what a full cache gains"
    at = {str(_get(r, "policy", "ham")): float(_get(r, "loss")) for r in rows
          if tau is not None and _get(r, "tau") is not None and abs(float(_get(r, "tau")) - tau) < 1e-9}
    others = {p: y for p, y in at.items() if p != "ham"}
    if others:
        best = min(others, key=others.get)
        out += (f"; the best other choice of the same number of tokens ({POLICY_STYLE.get(best, (best,))[0]}) "
                f"gets {(none_loss - others[best]) / gain:.0%}")
    return out + "."


MIN_TOKENS = 32                  # below this the page does not weigh memory against quality


def cache_verdict(full_loss: float, none_loss: float, noise: float, n_tokens: int) -> Optional[str]:
    """None when the cache's effect on this text can be measured; otherwise the sentence the page
    shows instead of a curve of noise."""
    if n_tokens < MIN_TOKENS:
        return (f"This text has {n_tokens} tokens: too short for a cache to matter (the RNN's state holds "
                f"all of it), so no memory-vs-quality curve is drawn. Paste at least {MIN_TOKENS} tokens.")
    gap = none_loss - full_loss
    if not (gap == gap and noise == noise) or abs(gap) > noise:
        return None
    return (f"On this text the cache makes no measurable difference: a full cache and no cache differ by "
            f"{gap:+.4f} nats/token, inside the noise of ±{noise:.4f} (two standard errors of the per-token "
            f"difference over {n_tokens:,} tokens), so a curve between them would only draw noise. A longer "
            "text that repeats rare names or facts gives the cache something to do.")


def _ends(rows: list) -> tuple[Optional[object], Optional[object]]:
    """The HAM curve's RNN-only (0%) and full-cache (100%) rows, when the sweep has them."""
    ham = sorted((r for r in rows if str(_get(r, "policy", "ham")) == "ham"), key=lambda r: float(_get(r, "kv_fraction")))
    none = ham[0] if ham and float(_get(ham[0], "kv_fraction")) < 1e-9 else None
    full = ham[-1] if ham and float(_get(ham[-1], "kv_fraction")) > 0.999 else None
    return none, full


OUTLIER_REACH = 0.25   # another policy's point this far (x the span of HAM's curve and the ends) beyond it is off the scale


def memory_quality_figure(rows: Iterable, current: Optional[Mapping] = None, title: str = "Memory vs quality",
                          *, noise: Optional[float] = None, font_scale: float = 1.0) -> go.Figure:
    """x = peak KV cache as % of a full cache (bytes on hover), y = loss in nats/token
    (perplexity on hover). One curve per policy, each joined to the two points every policy
    shares: RNN only (0%) and full cache (100%), which are labelled; the current slider point
    (dict with kv_fraction, kv_bytes_peak, loss) as a star. `noise` (nats, e.g. paired_noise)
    draws a band around the RNN-only loss: points inside it are not distinguishable from having
    no cache on this text; the y-axis is never narrower than that band. The axis spans HAM's
    curve, the ends, the band and the points near them; a point further off is marked at the
    edge (value on hover), so one spike does not flatten every curve."""
    rows = list(rows)
    none, full = _ends(rows)
    by_policy: dict[str, list] = {}
    for r in rows:
        by_policy.setdefault(str(_get(r, "policy", "ham")), []).append(r)
    fig = go.Figure()
    f = font_scale
    all_y, names = [], set()
    for policy, pts in by_policy.items():
        if policy != "ham":                       # every policy starts at RNN only and ends at full cache
            pts = [p for p in (none, *pts, full) if p is not None]
        pts = sorted(pts, key=lambda r: float(_get(r, "kv_fraction")))
        name, colour, symbol = POLICY_STYLE.get(policy, (policy, "#555555", "circle"))
        names.add(name)
        xs = [100 * float(_get(r, "kv_fraction")) for r in pts]
        ys = [float(_get(r, "loss")) for r in pts]
        all_y += ys
        custom = [[fmt_bytes(float(_get(r, "kv_bytes_peak", 0))), _ppl(y),
                   "" if _get(r, "tau") is None else f"{float(_get(r, 'tau')):.3g}"] for r, y in zip(pts, ys)]
        fig.add_trace(go.Scatter(
            x=xs, y=ys, mode="lines+markers", name=name, customdata=custom,
            line=dict(color=colour, width=3 if policy == "ham" else 2, dash="solid" if policy == "ham" else "dot"),
            marker=dict(symbol=symbol, size=round(8 * f), color=colour),
            hovertemplate=(f"<b>{name}</b><br>KV cache %{{x:.1f}}% of full (%{{customdata[0]}})"
                           "<br>loss %{y:.4f} nats/token<br>perplexity %{customdata[1]:.2f}"
                           + ("<br>τ = %{customdata[2]}" if policy == "ham" else "") + "<extra></extra>"),
        ))
    # Nothing is written inside the plot: the two shared ends, the noise band and any point off
    # the scale are named in the legend, which Plotly lays out without overlaps, so no label can
    # cover another or the star.
    for row, label, colour in ((none, "RNN only (no cache)", "#555555"), (full, "full cache (Transformer-like)", "#000000")):
        if row is not None:
            y = float(_get(row, "loss"))
            fig.add_trace(go.Scatter(
                x=[100 * float(_get(row, "kv_fraction"))], y=[y], mode="markers", name=f"{label}: {y:.3f} nats",
                marker=dict(symbol="circle-open", size=round(16 * f), color=colour, line=dict(width=2.5)),
                hovertemplate=f"<b>{label}</b><br>loss %{{y:.4f}} nats/token<br>perplexity {_ppl(y):.2f}<extra></extra>"))
    band = None
    if noise is not None and math.isfinite(noise) and none is not None:
        base = float(_get(none, "loss"))
        band = (base - noise, base + noise)
        fig.add_hrect(y0=band[0], y1=band[1], fillcolor="#888888", opacity=0.18, line_width=0)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="noise: within ±2 s.e. of RNN only",
                                 marker=dict(symbol="square", size=round(14 * f), color="rgba(136,136,136,0.35)"),
                                 hoverinfo="skip"))
    core = [float(_get(r, "loss")) for r in by_policy.get("ham", [])] + [float(_get(r, "loss")) for r in (none, full) if r]
    if current is not None:
        core.append(float(current["loss"]))
        fig.add_trace(_star(current, f))
    core = [y for y in core + list(band or ()) if math.isfinite(y)]
    all_y = [y for y in all_y if math.isfinite(y)]
    if core or all_y:
        lo, hi = (min(core), max(core)) if core else (min(all_y), max(all_y))
        reach = OUTLIER_REACH * (hi - lo)
        lo, hi = _y_range(core + [y for y in all_y if lo - reach <= y <= hi + reach])
        fig.update_yaxes(range=[lo, hi])
        _mark_off_scale(fig, names, lo, hi, f)
    fig.update_xaxes(range=[-3, 103], ticksuffix="%")
    return _layout(fig, title, "KV cache (% of a full cache)", "loss (nats / token)", font_scale=f)


def _mark_off_scale(fig: go.Figure, names: set, lo: float, hi: float, f: float) -> None:
    """Points of the curves `names` outside [lo, hi] drawn at the edge they left by, with their
    value on hover."""
    off = [(x, y, trace.name) for trace in fig.data if trace.name in names
           for x, y in zip(trace.x, trace.y) if y is not None and math.isfinite(y) and not lo <= y <= hi]
    if off:
        fig.add_trace(go.Scatter(
            x=[x for x, _, _ in off], y=[hi if y > hi else lo for _, y, _ in off], mode="markers",
            name=f"off the scale ({len(off)}; hover for the value)", cliponaxis=False,
            marker=dict(symbol=["triangle-up" if y > hi else "triangle-down" for _, y, _ in off], size=round(12 * f),
                        color="#444444"),
            customdata=[[n, y] for _, y, n in off],
            hovertemplate="<b>%{customdata[0]}</b> off the scale<br>KV cache %{x:.1f}%<br>loss %{customdata[1]:.4f} "
                          "nats/token<extra></extra>"))


def _y_range(ys: Sequence[float]) -> list:
    """The loss axis over the curves that matter (HAM's, the two ends, the star, the noise band);
    another policy's point far outside it is marked at the edge instead of squashing the rest."""
    lo, hi = min(ys), max(ys)
    pad = 0.08 * (hi - lo) if hi > lo else 0.01
    return [lo - pad, hi + 2.5 * pad]


def _star(current: Mapping, font_scale: float) -> dict:
    """The current slider point (kv_fraction, kv_bytes_peak, loss) as a trace: a black star."""
    loss = float(current["loss"])
    return dict(
        type="scatter", x=[100 * float(current["kv_fraction"])], y=[loss], mode="markers", name="current threshold",
        marker=dict(symbol="star", size=round(18 * font_scale), color="#000000", line=dict(color="#ffffff", width=1.5)),
        customdata=[[fmt_bytes(float(current.get("kv_bytes_peak", 0))), _ppl(loss)]],
        hovertemplate=("<b>current</b><br>KV cache %{x:.1f}% of full (%{customdata[0]})"
                       "<br>loss %{y:.4f} nats/token<br>perplexity %{customdata[1]:.2f}<extra></extra>"))


def with_current(base: dict, current: Mapping, font_scale: float = 1.0, title: Optional[str] = None) -> dict:
    """The figure dict `base` (memory_quality_figure(...) without a current point, .to_dict())
    plus the current point, with the y-axis widened if the point lies outside it. `base` is left
    as it is: a page keeps one per text and adds only the star on a slider move (building the
    whole figure again cost more than anything else the page does per move)."""
    layout = dict(base["layout"])
    lo, hi = layout.get("yaxis", {}).get("range", [math.inf, -math.inf])
    y = float(current["loss"])
    if not lo <= y <= hi and y == y:
        inner = [v for v in (lo, hi, y) if math.isfinite(v)]
        layout["yaxis"] = {**layout.get("yaxis", {}), "range": _y_range(inner)}
    if title is not None:            # the headline, which moves with the threshold
        wrapped = wrap_title(title, 1.15 * FONT * font_scale)
        layout["title"] = {**layout.get("title", {}), "text": wrapped}
        top = round((50 + 18 * wrapped.count("<br>")) * font_scale)      # the plot keeps its height
        was = layout.get("margin", {}).get("t", top)
        layout["margin"] = {**layout.get("margin", {}), "t": top}
        layout["height"] = layout.get("height", 0) + top - was
    return {"data": [*base["data"], _star(current, font_scale)], "layout": layout}


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
    return _layout(fig, f"KV cache after {position} of {total} tokens", "tokens read", "tokens in cache", 300,
                   font_scale=font_scale)


def recall_figure(rows: Iterable, *, font_scale: float = 1.0) -> go.Figure:
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
    return _layout(fig, "Recall accuracy vs KV cache", "KV cache (% of full)", "recall accuracy", font_scale=font_scale)


def figure_html(fig) -> str:
    """A standalone HTML file with plotly.js inlined (works offline; no CDN). fig: a Figure or its dict."""
    return go.Figure(fig).to_html(include_plotlyjs=True, full_html=True)


def figure_png(fig) -> Optional[bytes]:
    """PNG bytes via kaleido when it is installed and works; None otherwise. fig: a Figure or its dict."""
    try:
        return go.Figure(fig).to_image(format="png", scale=2)
    except Exception:     # kaleido missing or no browser for it: the caller offers HTML instead
        return None
