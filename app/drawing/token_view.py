"""The token view as plain HTML: pure functions, no Streamlit, so tests can snapshot them.

Every piece of user text goes through `html.escape` (text and tooltips alike), and invisible
or direction-changing characters are shown as visible marks, so a paste can neither run a
script nor reorder the view. Element ids are `<prefix>-t<index>`: deterministic. Colours come
from `app.drawing.colours.Bins`; the text is black on every colour.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Optional, Sequence

from app.drawing.colours import TEXT, Bins, fixed_bins
from app.drawing.colours import fmt as edge_text

READ_COLOUR = (216, 27, 96)   # magenta: attention reads (rings and arcs), apart from every palette
CACHE_COLOUR = "#c2410c"      # burnt orange: the cached-token frame and the layer-count bar

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
    tooltip: str = ""                        # plain text; escaped when rendered ("" -> no title)
    read: Optional[float] = None             # attention weight from the selected token
    extra: dict = field(default_factory=dict)


CONTINUATION = "\u25e6"      # a token holding only the last bytes of a character shown in the token before


def token_label(text: str) -> str:
    """A token's text for a label or tooltip: quoted and visible on one line, never escape codes."""
    if text == "":
        return f"{CONTINUATION} (the rest of the character before)"
    return "'" + visible_text(text).replace("\n", "").replace("\t", "") + "'"


def word_of(tokens: Sequence[str], i: int) -> tuple[int, int]:
    """[start, end) of the tokens that make up the word token i is part of: neighbours joined with
    no space or punctuation between them, so " Or", "l", "a", "ith" are one word, "Orlaith"."""
    joins = lambda a, b: bool(a) and bool(b) and a[-1].isalnum() and b[0].isalnum()  # noqa: E731
    start, end = i, i + 1
    while start > 0 and joins(tokens[start - 1], tokens[start]):
        start -= 1
    while end < len(tokens) and joins(tokens[end - 1], tokens[end]):
        end += 1
    return start, end


def word_text(tokens: Sequence[str], i: int) -> str:
    """The word token i is part of, as written (see word_of)."""
    start, end = word_of(tokens, i)
    return "".join(tokens[start:end]).strip()


def token_in_word(tokens: Sequence[str], i: int) -> str:
    """Token i's label, with the word it is a piece of: "' V' (in “Vandermeer”)"."""
    piece, word = token_label(tokens[i]), word_text(tokens, i)
    return piece if not word or word == tokens[i].strip() else f"{piece} (in “{word}”)"


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


def word_starts(tokens: Sequence[str]) -> list[Optional[int]]:
    """For each token, the index of the first piece of its word when the word has several pieces
    (see word_of), else None: [T]."""
    out: list[Optional[int]] = [None] * len(tokens)
    i = 0
    while i < len(tokens):
        start, end = word_of(tokens, i)
        if end - start > 1:
            out[start:end] = [start] * (end - start)
        i = end
    return out


def token_span(i: int, cell: TokenCell, *, bins: Bins, selected: Optional[int], count_mode: bool,
               n_layers: int, prefix: str, max_read: float, word: Optional[int] = None,
               selected_word: Optional[int] = None) -> str:
    """One token as a <span>; all text escaped. Cached: a thick frame (one layer) or a bar under
    the token as long as the share of layers that cached it (count mode). `word`: the first piece
    of the word this token is a piece of (None: a word of one token), kept as data-w so the
    page's script marks a clicked word's pieces together; `selected_word`: the selected token's."""
    style = [f"background:rgb{bins.colour(cell.value)}"]
    classes = ["ham-tok"]
    if cell.cached and count_mode:
        classes.append("ham-layers")
        style.append(f"--ham-n:{min(cell.cached / max(n_layers, 1), 1.0):.3f}")
    elif cell.cached:
        classes.append("ham-cached")
    if selected is not None and i == selected:
        classes.append("ham-selected")
    elif word is not None and word == selected_word:
        classes.append("ham-word")            # another piece of the selected word
    if cell.read is not None and cell.read > 0:
        classes.append("ham-read")
        alpha = 0.35 + 0.65 * (cell.read / max_read if max_read > 0 else 1.0)
        style.append(f"outline-color:rgba{READ_COLOUR + (round(alpha, 3),)}")
    attrs = [f'id="{prefix}-t{i}"', f'class="{" ".join(classes)}"', f'data-i="{i}"', f'style="{";".join(style)}"']
    if word is not None:
        attrs.append(f'data-w="{word}"')
    if cell.tooltip:
        attrs.append(f'title="{html.escape(cell.tooltip, quote=True)}"')
    if cell.read is not None:
        attrs.append(f'data-read="{cell.read:.4f}"')
    return f"<span {' '.join(attrs)}>{html.escape(visible_text(cell.text), quote=True)}</span>"


CSS = f"""
.ham-view{{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:var(--ham-size,0.95rem);
 line-height:2.0;white-space:pre-wrap;overflow-wrap:anywhere;unicode-bidi:isolate;direction:ltr;text-align:left;
 color:rgb{TEXT}}}
.ham-tok{{padding:2px 1px;margin:0 1px 0 0;border-radius:3px;
 unicode-bidi:isolate;cursor:pointer;outline:0 solid transparent;outline-offset:2px;color:rgb{TEXT}}}
.ham-tok:hover,.ham-hover{{outline:2px solid #555}}
.ham-cached{{box-shadow:inset 0 0 0 2px {CACHE_COLOUR},inset 0 -5px 0 0 {CACHE_COLOUR}}}
.ham-layers{{position:relative}}
.ham-layers::after{{content:"";position:absolute;left:0;bottom:-5px;height:4px;border-radius:2px;
 width:calc(var(--ham-n) * 100%);background:{CACHE_COLOUR}}}
.ham-read{{outline-width:3px;outline-style:solid}}
.ham-selected{{outline:3px dashed rgb{READ_COLOUR} !important;outline-offset:3px}}
.ham-word{{outline:2px dashed rgba{READ_COLOUR + (0.7,)};outline-offset:3px}}
.ham-legend{{display:flex;flex-wrap:wrap;gap:0.3rem 0.9rem;align-items:center;font-size:0.8rem;margin:0.1rem 0 0.4rem 0}}
.ham-swatches{{display:inline-flex;flex-wrap:wrap;gap:0;vertical-align:middle}}
.ham-swatch{{display:inline-block;padding:0 0.3rem;font-size:0.72rem;color:rgb{TEXT};
 font-variant-numeric:tabular-nums}}
.ham-swatch.ham-tau{{box-shadow:inset 0 -3px 0 rgb{READ_COLOUR}}}
.ham-note{{flex-basis:100%;font-size:0.8rem;opacity:0.85}}
.ham-key{{display:inline-block;padding:0 0.35rem;border-radius:4px;background:#e8e8e8;color:#000;
 border:2px solid transparent}}
"""


def render_view(cells: Sequence[TokenCell], *, bins: Optional[Bins] = None, vmin: float = 0.0, vmax: float = 1.0,
                scale: str = "viridis", selected: Optional[int] = None, count_mode: bool = False, n_layers: int = 1,
                prefix: str = "ham", font_size: str = "0.95rem") -> str:
    """The whole token view: a <div> of spans (no <style>; see `CSS`). Colours from `bins`, or
    without them 8 equal steps from vmin to vmax."""
    bins = bins or fixed_bins(vmin, vmax, "", scale)
    reads = [c.read for c in cells if c.read is not None]
    max_read = max(reads) if reads else 0.0
    words = word_starts([c.text for c in cells])
    selected_word = words[selected] if selected is not None and 0 <= selected < len(cells) else None
    spans = "".join(
        token_span(i, c, bins=bins, selected=selected, count_mode=count_mode, n_layers=n_layers,
                   prefix=prefix, max_read=max_read, word=words[i], selected_word=selected_word)
        for i, c in enumerate(cells)
    )
    return f'<div class="ham-view" id="{prefix}-view" style="--ham-size:{font_size}">{spans}</div>'


def bins_legend(bins: Bins, *, cache_label: str = "in KV cache", show_reads: bool = False,
                mark: Optional[float] = None, mark_label: str = "", count_mode: bool = False,
                prefix: str = "ham", note: bool = True) -> str:
    """The colour key (a bar of the colours, each with its lower edge; its range on hover), how
    the scale was chosen (`note`; else legend_note puts it elsewhere), and keys for the cache
    mark, the selection and the reads. `mark` underlines the colour holding that value (the
    threshold)."""
    marked = bins.index(mark) if mark is not None else None
    shown = [r if k == 0 else edge_text(bins.edges[k]) for k, r in enumerate(bins.ranges())]
    swatches = "".join(
        f'<span class="ham-swatch{" ham-tau" if k == marked else ""}" style="background:rgb{c}" '
        f'title="{html.escape(r)}">{html.escape(text)}</span>'
        for k, (c, r, text) in enumerate(zip(bins.colours, bins.ranges(), shown)))
    cache_key = ('<span class="ham-key ham-layers" style="--ham-n:0.5">tok</span>' if count_mode
                 else '<span class="ham-key ham-cached">tok</span>')
    parts = [f'<span><b>{html.escape(bins.label)}</b> <span class="ham-swatches">{swatches}</span></span>',
             f'<span>{cache_key} {html.escape(cache_label)}</span>']
    if show_reads:
        parts.append('<span><span class="ham-key ham-selected">tok</span> selected</span>')
        parts.append(f'<span><span class="ham-key ham-read" style="outline-color:rgb{READ_COLOUR}">tok</span>'
                     ' what it read (arc)</span>')
    if note:
        parts.append(legend_note(bins, mark, mark_label))
    return f'<div class="ham-legend" id="{prefix}-legend">{"".join(parts)}</div>'


def legend_note(bins: Bins, mark: Optional[float] = None, mark_label: str = "") -> str:
    """How the colour scale was chosen, in words (and what the underline marks)."""
    marked = bins.index(mark) if mark is not None else None
    text = bins.note + (f"; {mark_label}" if mark_label and marked is not None else "")
    return f'<span class="ham-note">{html.escape(text)}</span>'


def render_legend(label: str, vmin: float, vmax: float, *, scale: str = "viridis", cache_label: str = "in KV cache",
                  show_reads: bool = False, prefix: str = "ham") -> str:
    """The legend of a fixed scale from vmin to vmax (pages without data-chosen bins)."""
    return bins_legend(fixed_bins(vmin, vmax, label, scale), cache_label=cache_label, show_reads=show_reads,
                       prefix=prefix)


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
