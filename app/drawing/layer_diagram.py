"""The HAM layer as an SVG diagram: the seven steps as boxes, each with the live numbers of one
token, small bars per head, and a sentence in words. Drawn here (no library, no CDN); a pure
function of app.drawing.layer_steps' values, so tests can read it.

The RNN path (steps 1-4) runs down the left, the cache path (5-6) down the right, and both
meet in step 7. Every piece of text goes through html.escape. Each box carries its numbers in
data- attributes (id "how-step-N"), which is what the browser test compares with the analysis.
"""
from __future__ import annotations

import html
import json
import textwrap
from typing import Optional, Sequence

from app.drawing.layer_steps import Step, TokenLayer, output, steps
from app.drawing.token_view import token_label

WIDTH = 900
RNN, CACHE, MIX = "#0072B2", "#CC79A7", "#555555"        # Okabe-Ito: the two paths, and where they meet
CACHED, NOT_CACHED, READ = "#009E73", "#999999", "#D81B60"
GAP = 26                                                    # between rows (room for the arrows)


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


class _Canvas:
    """Collects SVG pieces; sizes are in viewBox units, fonts scaled by `scale`."""

    def __init__(self, scale: float):
        self.s = scale
        self.parts: list[str] = []

    def text(self, x: float, y: float, body: str, size: float, *, weight: str = "normal", style: str = "normal",
             fill: str = "currentColor", anchor: str = "start", opacity: float = 1.0) -> None:
        self.parts.append(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size * self.s:.1f}" font-weight="{weight}" '
                          f'font-style="{style}" fill="{fill}" fill-opacity="{opacity}" text-anchor="{anchor}">'
                          f"{_esc(body)}</text>")

    def lines(self, x: float, y: float, width: float, body: str, size: float, **kw) -> float:
        """Wrapped text from y (its first baseline); returns the y after the last line."""
        chars = max(12, int(width / (0.53 * size * self.s)))
        for line in textwrap.wrap(body, chars) or [""]:
            self.text(x, y, line, size, **kw)
            y += 1.3 * size * self.s
        return y

    def arrow(self, x1: float, y1: float, x2: float, y2: float, colour: str, label: str = "") -> None:
        self.parts.append(f'<path d="M{x1:.1f},{y1:.1f} L{x2:.1f},{y2:.1f}" stroke="{colour}" stroke-width="2" '
                          f'fill="none" marker-end="url(#how-arrow)"/>')
        if label:
            self.text(x1 + 6, (y1 + y2) / 2 + 4, label, 11, fill=colour)

    def bars(self, x: float, y: float, width: float, values: Sequence[float], vmax: float, colour: str,
             labels: Sequence[str], mark: Optional[float] = None) -> float:
        """One small bar per value (its label on the left, the number on the right); an optional
        vertical mark (tau). Returns the y below the bars."""
        row = 16 * self.s
        name_w = (0.56 * 11.5 * max(map(len, labels)) + 8) * self.s
        value_w = 44 * self.s
        track = width - name_w - value_w
        for h, v in enumerate(values):
            top = y + h * row
            self.text(x, top + 0.78 * row, labels[h], 11.5, opacity=0.75)
            self.parts.append(f'<rect x="{x + name_w:.1f}" y="{top + 2:.1f}" width="{track:.1f}" height="{row - 4:.1f}" '
                              f'fill="{colour}" fill-opacity="0.12" rx="2"/>')
            fill = max(0.0, min(float(v) / vmax, 1.0)) * track
            self.parts.append(f'<rect x="{x + name_w:.1f}" y="{top + 2:.1f}" width="{fill:.1f}" height="{row - 4:.1f}" '
                              f'fill="{colour}" rx="2"/>')
            self.text(x + name_w + track + 5, top + 0.78 * row, f"{float(v):.2f}", 11.5)
        if mark is not None and mark <= vmax:
            mx = x + name_w + track * mark / vmax
            self.parts.append(f'<path d="M{mx:.1f},{y - 3:.1f} V{y + len(values) * row + 3:.1f}" stroke="currentColor" '
                              f'stroke-width="1.5" stroke-dasharray="4 3"/>')
            self.text(mx, y - 5, f"τ {mark:.2f}", 11, anchor="middle")
        return y + len(values) * row + 10 * self.s


def _box(c: _Canvas, step: Step, x: float, y: float, w: float, colour: str, draw_bars=None,
         fill_opacity: float = 0.06) -> float:
    """A step's box; returns its bottom. `draw_bars(c, x, y, w) -> y` adds per-head bars."""
    pad = 10 * c.s
    start = len(c.parts)
    yy = y + pad + 13 * c.s
    c.text(x + pad, yy, f"{step.number}. {step.title}", 15, weight="bold", fill=colour)
    yy = c.lines(x + pad, yy + 19 * c.s, w - 2 * pad, step.values, 13)
    if draw_bars is not None:
        yy = draw_bars(c, x + pad, yy + 4 * c.s, w - 2 * pad)
    yy = c.lines(x + pad, yy + 12 * c.s, w - 2 * pad, step.words, 12.5, style="italic", opacity=0.85)
    bottom = yy - 4 * c.s + pad
    data = _esc(json.dumps(step.data, separators=(",", ":")))
    c.parts.insert(start, f'<g id="how-step-{step.number}" class="how-step" data-values="{data}">'
                          f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{bottom - y:.1f}" rx="8" '
                          f'fill="{colour}" fill-opacity="{fill_opacity}" stroke="{colour}" stroke-width="1.6"/>')
    c.parts.append("</g>")
    return bottom


def diagram(s: TokenLayer, font_scale: float = 1.0) -> str:
    """The SVG of one HAM layer at one token (font_scale > 1 for presenter mode)."""
    c = _Canvas(font_scale)
    st = steps(s)
    margin, mid = 10, WIDTH / 2
    left_w, right_x, right_w = mid - margin - 12, mid + 12, WIDTH - mid - 12 - margin
    y = 24 * c.s
    c.text(margin, y, f"Token #{s.index} {token_label(s.text)} in layer {s.layer + 1} of {s.n_layers}", 16,
           weight="bold")
    y += 14 * c.s
    c.arrow(mid, y, mid, y + GAP - 4, MIX, "x: the token's input to the layer")
    y += GAP
    def heads(values, vmax, colour, name, mark=None):
        labels = [f"{name} {h + 1}" for h in range(len(values))]
        return lambda cv, x, yy, w: cv.bars(x, yy, w, values, vmax, colour, labels, mark)

    b1 = _box(c, st[0], margin, y, left_w, RNN)
    b2 = _box(c, st[1], right_x, y, right_w, RNN, heads(s.alpha, 1.0, RNN, "α, head"))
    y = max(b1, b2) + GAP
    c.arrow(margin + left_w / 2, b1, margin + left_w / 2, y - 2, RNN, "q, k, v")
    c.arrow(right_x + right_w / 2, b2, right_x + right_w / 2, y - 2, RNN, "α, β")
    b3 = _box(c, st[2], margin, y, WIDTH - 2 * margin, RNN, heads(s.surprise, 2.0, RNN, "head", s.tau))
    y = b3 + GAP
    c.arrow(margin + left_w / 2, b3, margin + left_w / 2, y - 2, RNN, "error v − αSᵀk")
    c.arrow(right_x + right_w / 2, b3, right_x + right_w / 2, y - 2, CACHE, "surprise, heads combined")
    route = CACHED if s.cached else NOT_CACHED
    b4 = _box(c, st[3], margin, y, left_w, RNN)
    b5 = _box(c, st[4], right_x, y, right_w, route,
              lambda cv, x, yy, w: cv.bars(x, yy, w, [s.routing_surprise], 2.0, route, [s.rule], s.tau),
              fill_opacity=0.14)
    y5 = b5 + GAP
    c.arrow(right_x + right_w / 2, b5, right_x + right_w / 2, y5 - 2, CACHE,
            "k, v into the cache" if s.cached else "not stored")
    shown = s.reads[:3]
    b6 = _box(c, st[5], right_x, y5, right_w, CACHE,
              (lambda cv, x, yy, w: cv.bars(x, yy, w, [wt for _, _, wt in shown] + [s.sink], 1.0, READ,
                                            [f"#{i}" for i, _, _ in shown] + ["sink"])) if shown else None)
    y = max(b4, b6) + GAP
    c.arrow(margin + left_w / 2, b4, margin + left_w / 2, y - 2, RNN, "o^R = Sᵀq")
    c.arrow(right_x + right_w / 2, b6, right_x + right_w / 2, y - 2, CACHE, "o^A")
    half = lambda w: w / 2 - 10 * c.s  # noqa: E731
    b7 = _box(c, st[6], margin, y, WIDTH - 2 * margin, MIX,
              lambda cv, x, yy, w: max(cv.bars(x, yy, half(w), s.gate_rnn, 1.0, RNN,
                                               [f"g^R, head {h + 1}" for h in range(s.heads)]),
                                       cv.bars(x + w - half(w), yy, half(w), s.gate_attn, 1.0, CACHE,
                                               [f"g^A, head {h + 1}" for h in range(s.heads)])))
    y = b7 + GAP
    c.arrow(mid, b7, mid, y - 2, MIX)
    values, words = output(s)
    y = c.lines(margin, y + 12 * c.s, WIDTH - 2 * margin, values, 13, weight="bold")
    y = c.lines(margin, y, WIDTH - 2 * margin, words, 11.5, style="italic", opacity=0.8)
    height = y + 8
    defs = (f'<defs><marker id="how-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
            f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{MIX}"/></marker></defs>')
    return (f'<svg id="how-diagram" class="how-diagram" viewBox="0 0 {WIDTH} {height:.0f}" width="100%" role="img" '
            f'aria-label="The HAM layer, step by step, for the selected token" '
            f'style="max-width:{WIDTH * font_scale:.0f}px;font-family:sans-serif;font-variant-numeric:tabular-nums">'
            + defs + "".join(c.parts) + "</svg>")
