"""The token view as plain HTML: pure functions, no Streamlit, so tests can snapshot them.

Every piece of user text goes through `html.escape` (text and tooltips alike), and invisible
or direction-changing characters are shown as visible marks, so a paste can neither run a
script nor reorder the view. Element ids are `<prefix>-t<index>`: deterministic.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Optional, Sequence

from plotly.colors import sequential

SCALES = {"viridis": sequential.Viridis, "cividis": sequential.Cividis}
READ_COLOUR = (216, 27, 96)   # magenta ring for attention reads: stands out on viridis/cividis

# Characters that would hide text or flip its direction: shown by name instead.
_INVISIBLE = {
    0x200B: "ZWSP", 0x200C: "ZWNJ", 0x200D: "ZWJ", 0x200E: "LRM", 0x200F: "RLM",
    0x202A: "LRE", 0x202B: "RLE", 0x202C: "PDF", 0x202D: "LRO", 0x202E: "RLO",
    0x2066: "LRI", 0x2067: "RLI", 0x2068: "FSI", 0x2069: "PDI", 0xFEFF: "BOM",
}


@dataclass
class TokenCell:
    """What the view needs for one token."""

    text: str
    value: Optional[float]                   # metric for the colour (None: no value, grey)
    cached: int = 0                          # 1/0 for one layer, or how many layers cached it
    tooltip: str = ""                        # plain text; escaped when rendered
    read: Optional[float] = None             # attention weight from the selected token
    extra: dict = field(default_factory=dict)


def _hex_to_rgb(colour: str) -> tuple[int, int, int]:
    colour = colour.lstrip("#")
    return tuple(int(colour[i:i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


_STOPS = {name: [_hex_to_rgb(c) for c in colours] for name, colours in SCALES.items()}


def colour_for(value: Optional[float], vmin: float, vmax: float, scale: str = "viridis") -> tuple[int, int, int]:
    """Linear interpolation on the named colour-blind-safe scale; None or NaN gives grey."""
    if value is None or value != value:
        return (200, 200, 200)
    stops = _STOPS.get(scale) or _STOPS["viridis"]
    span = vmax - vmin if vmax > vmin else 1.0
    x = min(max((value - vmin) / span, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(x), len(stops) - 2)
    f = x - i
    return tuple(round(a + (b - a) * f) for a, b in zip(stops[i], stops[i + 1]))  # type: ignore[return-value]


def text_colour(rgb: tuple[int, int, int]) -> str:
    """Black or white, whichever reads better on `rgb` (relative luminance, WCAG)."""
    def lin(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(c) for c in rgb)
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "#000000" if luminance > 0.179 else "#ffffff"


CONTINUATION = "\u25e6"      # a token holding only the last bytes of a character shown in the token before


def token_label(text: str) -> str:
    """A token's text for a label or tooltip: quoted and visible on one line, never escape codes."""
    if text == "":
        return f"{CONTINUATION} (the rest of the character before)"
    return "'" + visible_text(text).replace("\n", "").replace("\t", "") + "'"


def visible_text(text: str) -> str:
    """Token text made visible (not yet escaped): newline as a return mark plus the break,
    control characters as control pictures, bidi and zero-width marks by name."""
    if text == "":
        return CONTINUATION
    out = []
    for ch in text:
        o = ord(ch)
        if ch == "\n":
            out.append("\u21b5\n")
        elif ch == "\t":
            out.append("\u2192\t")
        elif o < 0x20:
            out.append(chr(0x2400 + o))
        elif o == 0x7F:
            out.append("\u2421")
        elif o in _INVISIBLE:
            out.append(f"\u27e8{_INVISIBLE[o]}\u27e9")
        else:
            out.append(ch)
    return "".join(out)


def token_span(i: int, cell: TokenCell, *, vmin: float, vmax: float, scale: str,
               selected: Optional[int], count_mode: bool, prefix: str, max_read: float) -> str:
    """One token as a <span>; all text escaped."""
    bg = colour_for(cell.value, vmin, vmax, scale)
    style = [f"background:rgb{bg}", f"color:{text_colour(bg)}"]
    classes = ["ham-tok"]
    if cell.cached:
        classes.append("ham-cached")
    if selected is not None and i == selected:
        classes.append("ham-selected")
    if cell.read is not None and cell.read > 0:
        classes.append("ham-read")
        alpha = 0.35 + 0.65 * (cell.read / max_read if max_read > 0 else 1.0)
        style.append(f"outline-color:rgba{READ_COLOUR + (round(alpha, 3),)}")
    badge = ""
    if cell.cached and count_mode:
        badge = f'<sup class="ham-count">{int(cell.cached)}</sup>'
    attrs = [
        f'id="{prefix}-t{i}"',
        f'class="{" ".join(classes)}"',
        f'data-i="{i}"',
        f'style="{";".join(style)}"',
        f'title="{html.escape(cell.tooltip, quote=True)}"',
    ]
    if cell.read is not None:
        attrs.append(f'data-read="{cell.read:.4f}"')
    return f"<span {' '.join(attrs)}>{html.escape(visible_text(cell.text), quote=True)}{badge}</span>"


CSS = """
.ham-view{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:var(--ham-size,0.95rem);
 line-height:2.1;white-space:pre-wrap;overflow-wrap:anywhere;unicode-bidi:isolate;direction:ltr;text-align:left}
.ham-tok{padding:1px 1px;margin:0 1px 0 0;border-radius:3px;unicode-bidi:isolate;cursor:pointer;
 outline:0 solid transparent;outline-offset:1px}
.ham-tok:hover{outline:2px solid #888}
.ham-cached{box-shadow:inset 0 -4px 0 0 #ff7f0e;text-decoration:none}
.ham-count{font-size:0.6em;margin-left:1px;font-weight:700}
.ham-read{outline-width:3px;outline-style:solid}
.ham-selected{outline:3px dashed #d81b60 !important;outline-offset:2px}
.ham-legend{display:flex;flex-wrap:wrap;gap:0.9rem;align-items:center;font-size:0.85rem;margin:0.3rem 0 0.6rem 0}
.ham-bar{display:inline-block;width:160px;height:12px;border-radius:2px;vertical-align:middle;margin:0 0.3rem}
.ham-key{display:inline-block;padding:0 0.35rem;border-radius:3px;background:#ddd;color:#000}
"""


def render_view(cells: Sequence[TokenCell], *, vmin: float, vmax: float, scale: str = "viridis",
                selected: Optional[int] = None, count_mode: bool = False, prefix: str = "ham",
                font_size: str = "0.95rem") -> str:
    """The whole token view: a <div> of spans (no <style>; see `CSS`)."""
    reads = [c.read for c in cells if c.read is not None]
    max_read = max(reads) if reads else 0.0
    spans = "".join(
        token_span(i, c, vmin=vmin, vmax=vmax, scale=scale, selected=selected,
                   count_mode=count_mode, prefix=prefix, max_read=max_read)
        for i, c in enumerate(cells)
    )
    return f'<div class="ham-view" id="{prefix}-view" style="--ham-size:{font_size}">{spans}</div>'


def render_legend(label: str, vmin: float, vmax: float, *, scale: str = "viridis", cache_label: str = "in KV cache",
                  show_reads: bool = False, prefix: str = "ham") -> str:
    """Colour bar with its range, and keys for the cache mark, the selection and the reads."""
    stops = ",".join(SCALES.get(scale, SCALES["viridis"]))
    parts = [
        f'<span><b>{html.escape(label)}</b> {vmin:.2f}'
        f'<span class="ham-bar" style="background:linear-gradient(90deg,{stops})"></span>{vmax:.2f}</span>',
        f'<span><span class="ham-key ham-cached">tok</span> {html.escape(cache_label)}</span>',
    ]
    if show_reads:
        parts.append('<span><span class="ham-key ham-selected">tok</span> selected</span>')
        parts.append('<span><span class="ham-key ham-read" style="outline-color:rgb(216,27,96)">tok</span>'
                     ' read by attention (ring strength = weight)</span>')
    return f'<div class="ham-legend" id="{prefix}-legend">{"".join(parts)}</div>'


def page(body: str) -> str:
    """A complete standalone HTML document (for export and for the tests)."""
    return f"<!doctype html><html><head><meta charset='utf-8'><style>{CSS}</style></head><body>{body}</body></html>"


def render_bars(labels: Sequence[str], values: Sequence[float], *, title: str = "", colours: Optional[Sequence[str]] = None,
                fmt: str = "{:.3f}", prefix: str = "ham-bars") -> str:
    """A small horizontal bar chart in plain HTML (labels escaped): cheap to redraw on every
    slider move, unlike a Plotly figure."""
    top = max([v for v in values if v == v] or [0.0]) or 1.0
    rows = []
    for i, (label, v) in enumerate(zip(labels, values)):
        colour = colours[i] if colours else f"rgb{READ_COLOUR}"
        width = 0.0 if v != v else 100.0 * max(v, 0.0) / top
        rows.append(f'<div class="ham-bar-row"><span class="ham-bar-label">{html.escape(label)}</span>'
                    f'<span class="ham-bar-track"><span class="ham-bar-fill" style="width:{width:.1f}%;background:{colour}">'
                    f'</span></span><span class="ham-bar-value">{html.escape(fmt.format(v))}</span></div>')
    head = f'<div class="ham-bars-title">{html.escape(title)}</div>' if title else ""
    return f'<div class="ham-bars" id="{prefix}">{head}{"".join(rows)}</div>'


BAR_CSS = """
.ham-bars{font-size:0.85rem;margin:0.2rem 0 0.8rem 0}
.ham-bars-title{font-weight:600;margin-bottom:0.3rem}
.ham-bar-row{display:flex;align-items:center;gap:0.4rem;margin:2px 0}
.ham-bar-label{flex:0 0 38%;overflow:hidden;text-overflow:ellipsis;white-space:pre;font-family:ui-monospace,monospace}
.ham-bar-track{flex:1 1 auto;height:0.9rem;background:rgba(128,128,128,0.15);border-radius:2px}
.ham-bar-fill{display:block;height:100%;border-radius:2px}
.ham-bar-value{flex:0 0 3.5rem;text-align:right;font-variant-numeric:tabular-nums}
"""
CSS = CSS + BAR_CSS


def bucket_counts(values: Sequence[float], vmin: float, vmax: float, scale: str = "viridis",
                  n: int = 8) -> tuple[list[str], list[int], list[str]]:
    """GLTR-style count chart data: how many tokens fall in each colour bucket of the scale
    (values above vmax count in the top bucket)."""
    step = (vmax - vmin) / n
    counts = [0] * n
    for v in values:
        if v == v and v is not None:
            counts[min(max(int((v - vmin) / step), 0), n - 1)] += 1
    labels = [f"{vmin + k * step:.2f}–{vmin + (k + 1) * step:.2f}" + ("+" if k == n - 1 else "") for k in range(n)]
    colours = [f"rgb{colour_for(vmin + (k + 0.5) * step, vmin, vmax, scale)}" for k in range(n)]
    return labels, counts, colours
