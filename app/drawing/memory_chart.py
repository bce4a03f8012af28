"""The Read page's chart of memory against quality, and what it says in words: HAM's curve over
the thresholds, the other policies at equal memory, the two ends every policy shares (no cache,
full cache), the noise band and the current threshold's star. Pure functions of plain numbers
(the rows of app.drawing.charts), no Streamlit, no model.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping, Optional, Sequence

import plotly.graph_objects as go

from app.drawing.charts import FONT, POLICY_STYLE, field, fmt_bytes, layout, perplexity, wrap_title


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
    at = {str(field(r, "policy", "ham")): r for r in rows
          if field(r, "tau") is not None and abs(float(field(r, "tau")) - tau) < 1e-9}
    if "ham" not in at or len(at) < 2:
        return None
    label = lambda p: POLICY_STYLE.get(p, (p,))[0]  # noqa: E731
    order = sorted(at, key=lambda p: float(field(at[p], "loss")))
    best, ham = order[0], float(field(at["ham"], "loss"))
    kv = float(field(at["ham"], "kv_fraction"))
    if best == "ham":
        other = order[1]
        diff = float(field(at[other], "loss")) - ham
        verdict = f"HAM's picks give the lowest loss, {diff:.4f} nats/token below the next ({label(other)})"
    else:
        diff = ham - float(field(at[best], "loss"))
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
    at = {str(field(r, "policy", "ham")): float(field(r, "loss")) for r in rows
          if tau is not None and field(r, "tau") is not None and abs(float(field(r, "tau")) - tau) < 1e-9}
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
    ham = sorted((r for r in rows if str(field(r, "policy", "ham")) == "ham"), key=lambda r: float(field(r, "kv_fraction")))
    none = ham[0] if ham and float(field(ham[0], "kv_fraction")) < 1e-9 else None
    full = ham[-1] if ham and float(field(ham[-1], "kv_fraction")) > 0.999 else None
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
        by_policy.setdefault(str(field(r, "policy", "ham")), []).append(r)
    fig = go.Figure()
    f = font_scale
    all_y, names = [], set()
    for policy, pts in by_policy.items():
        if policy != "ham":                       # every policy starts at RNN only and ends at full cache
            pts = [p for p in (none, *pts, full) if p is not None]
        pts = sorted(pts, key=lambda r: float(field(r, "kv_fraction")))
        name, colour, symbol = POLICY_STYLE.get(policy, (policy, "#555555", "circle"))
        names.add(name)
        xs = [100 * float(field(r, "kv_fraction")) for r in pts]
        ys = [float(field(r, "loss")) for r in pts]
        all_y += ys
        custom = [[fmt_bytes(float(field(r, "kv_bytes_peak", 0))), perplexity(y),
                   "" if field(r, "tau") is None else f"{float(field(r, 'tau')):.3g}"] for r, y in zip(pts, ys)]
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
            y = float(field(row, "loss"))
            fig.add_trace(go.Scatter(
                x=[100 * float(field(row, "kv_fraction"))], y=[y], mode="markers", name=f"{label}: {y:.3f} nats",
                marker=dict(symbol="circle-open", size=round(16 * f), color=colour, line=dict(width=2.5)),
                hovertemplate=f"<b>{label}</b><br>loss %{{y:.4f}} nats/token<br>perplexity {perplexity(y):.2f}<extra></extra>"))
    band = None
    if noise is not None and math.isfinite(noise) and none is not None:
        base = float(field(none, "loss"))
        band = (base - noise, base + noise)
        fig.add_hrect(y0=band[0], y1=band[1], fillcolor="#888888", opacity=0.18, line_width=0)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name="noise: within ±2 s.e. of RNN only",
                                 marker=dict(symbol="square", size=round(14 * f), color="rgba(136,136,136,0.35)"),
                                 hoverinfo="skip"))
    core = [float(field(r, "loss")) for r in by_policy.get("ham", [])] + [float(field(r, "loss")) for r in (none, full) if r]
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
    return layout(fig, title, "KV cache (% of a full cache)", "loss (nats / token)", font_scale=f)


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
        customdata=[[fmt_bytes(float(current.get("kv_bytes_peak", 0))), perplexity(loss)]],
        hovertemplate=("<b>current</b><br>KV cache %{x:.1f}% of full (%{customdata[0]})"
                       "<br>loss %{y:.4f} nats/token<br>perplexity %{customdata[1]:.2f}<extra></extra>"))


def with_current(base: dict, current: Mapping, font_scale: float = 1.0, title: Optional[str] = None) -> dict:
    """The figure dict `base` (memory_quality_figure(...) without a current point, .to_dict())
    plus the current point, with the y-axis widened if the point lies outside it. `base` is left
    as it is: a page keeps one per text and adds only the star on a slider move (building the
    whole figure again cost more than anything else the page does per move)."""
    spec = dict(base["layout"])
    lo, hi = spec.get("yaxis", {}).get("range", [math.inf, -math.inf])
    y = float(current["loss"])
    if not lo <= y <= hi and y == y:
        inner = [v for v in (lo, hi, y) if math.isfinite(v)]
        spec["yaxis"] = {**spec.get("yaxis", {}), "range": _y_range(inner)}
    if title is not None:            # the headline, which moves with the threshold
        wrapped = wrap_title(title, 1.15 * FONT * font_scale)
        spec["title"] = {**spec.get("title", {}), "text": wrapped}
        top = round((50 + 18 * wrapped.count("<br>")) * font_scale)      # the plot keeps its height
        was = spec.get("margin", {}).get("t", top)
        spec["margin"] = {**spec.get("margin", {}), "t": top}
        spec["height"] = spec.get("height", 0) + top - was
    return {"data": [*base["data"], _star(current, font_scale)], "layout": spec}


def checked_figure(spec: dict) -> go.Figure:
    """The figure of a spec whose parts plotly has checked already (with_current's: a kept figure
    built by plotly, plus the star), without checking it again: st.plotly_chart checks a dict in
    full (70-100 ms a threshold move, most of it plotly's template), but not a Figure. plotly
    builds its own figures this way (its `_validate` flag); a test holds the result the same."""
    return go.Figure(spec, _validate=False)
