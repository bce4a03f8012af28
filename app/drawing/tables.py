"""The Read page's panels as HTML and text, built from TextResults: the KV readout, what the
cache bought, the selected token's reads (one layer, and all layers side by side), the colour
counts and the per-token CSV. Pure functions (tests call them); app.widgets.panels shows them.
"""
from __future__ import annotations

import csv
import html
import io
import math
from typing import TYPE_CHECKING, Optional, Sequence

from app.drawing.charts import fmt_bytes
from app.drawing.colours import Bins
from app.drawing.token_view import CACHE_COLOUR, READ_COLOUR, render_bars, token_label
from app.settings import tau_label

if TYPE_CHECKING:
    from app.engine.result_types import TextResult


LM_RANGE = (0.0, 12.0)       # nats; the fixed colour range of next-token surprisal
SURPRISE_RANGE = (0.0, 1.0)  # surprise lies in [0, 2]; a calibrated layer's typical token reads 0.5, above 1 is rare


def _num(x: Optional[float], digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def kv_rows(r: TextResult) -> list[dict]:
    """The KV readout per layer: cached tokens of T (never more than T: a layer holds each token
    at most once), % of a full cache and bytes; then the total over layers in bytes and %."""
    L, T = r.cached.shape
    rows = [dict(layer=f"layer {l + 1}", tau=tau_label(r.tau[l]), tokens=int(r.kv_tokens[l]), of=T,
                 share=int(r.kv_tokens[l]) / T, bytes=int(r.kv_bytes_layers[l])) for l in range(L)]
    rows.append(dict(layer="all layers", tau="", tokens=None, of=T, share=r.kv_fraction, bytes=int(r.kv_bytes_peak)))
    return rows


def totals(full: TextResult, r: TextResult, none: TextResult) -> list[dict]:
    """Loss, perplexity and KV bytes with no cache, at the current thresholds and with a full cache."""
    return [dict(name=name, loss=x.loss, perplexity=x.perplexity, kv_bytes=int(x.kv_bytes_peak), share=x.kv_fraction)
            for name, x in (("no cache (RNN only)", none), ("current thresholds", r), ("full cache (Transformer-like)", full))]


READOUT_CSS = """
.ham-readout{display:flex;flex-wrap:wrap;gap:0.6rem 2rem;font-size:0.85rem;margin:0.2rem 0 0.6rem 0}
.ham-readout table{border-collapse:collapse}
.ham-readout th,.ham-readout td{padding:1px 0.55rem;text-align:right;font-variant-numeric:tabular-nums;
 border-bottom:1px solid rgba(128,128,128,0.25)}
.ham-readout th:first-child,.ham-readout td:first-child{text-align:left}
.ham-readout caption{text-align:left;font-weight:600;padding-bottom:0.2rem}
.ham-readout .ham-now{font-weight:700}
#ham-counts .ham-bar-label{flex-basis:50%}
.ham-share{display:inline-block;height:0.6rem;background:#c2410c;border-radius:2px;vertical-align:middle;margin-right:0.3rem}
"""


def _row(cells: list, cls: str = "", tag: str = "td") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<tr{attr}>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>"


def kv_html(r: TextResult) -> str:
    """The KV readout table: per layer its threshold, cached tokens of T, % of full and bytes."""
    e = html.escape
    kv = [_row(["", "τ", "cached tokens", "of a full cache", "bytes"], tag="th")]
    for row in kv_rows(r):
        tokens = "" if row["tokens"] is None else f"{row['tokens']:,} of {row['of']:,}"
        bar = f'<span class="ham-share" style="width:{2.5 * row["share"]:.2f}rem"></span>{100 * row["share"]:.1f}%'
        kv.append(_row([e(row["layer"]), e(row["tau"]), tokens, bar, e(fmt_bytes(row["bytes"]))],
                       "ham-now" if row["tokens"] is None else ""))
    return f'<div class="ham-readout"><table id="ham-kv"><caption>KV cache per layer</caption>{"".join(kv)}</table></div>'


def bought_html(r: TextResult, full: TextResult, none: TextResult) -> str:
    """What the cache bought: loss, perplexity and KV bytes with no cache, now and with a full cache."""
    e = html.escape
    cells = totals(full, r, none)
    rows = [_row(["", *(e(c["name"]) for c in cells)], tag="th"),
            _row(["loss (nats/token)", *(_num(c["loss"], 4) for c in cells)]),
            _row(["perplexity", *(_num(c["perplexity"], 2) for c in cells)]),
            _row(["KV cache", *(e(f"{fmt_bytes(c['kv_bytes'])} ({100 * c['share']:.0f}%)") for c in cells)])]
    return (f'<div class="ham-readout"><table id="ham-bought"><caption>What the cache bought on this text'
            f'</caption>{"".join(rows)}</table></div>')


def bought_sentence(r: TextResult, full: TextResult, none: TextResult) -> str:
    """The gain in one sentence: what the cache bought now, at what share of a full cache's memory,
    against what a full cache buys."""
    now, most = none.loss - r.loss, none.loss - full.loss
    if now != now:
        return "A one-token text: there is nothing to predict, so nothing for the cache to buy."
    return (f"At these thresholds the cache bought {now:+.4f} nats/token (perplexity {none.perplexity:.2f} → "
            f"{r.perplexity:.2f}) with {100 * r.kv_fraction:.1f}% of a full cache's memory; a full cache buys "
            f"{most:+.4f}. Colour the text by \"What the cache bought\" to see where.")


def reads_labels(r: TextResult, reads: dict, limit: int = 10) -> tuple[list[str], list[float]]:
    items = list(reads.items())[:limit]
    return [f"#{i} {token_label(r.tokens[i])}" for i, _ in items], [w for _, w in items]


STRIP_CSS = """
.ham-strips{font-size:0.8rem;margin:0.2rem 0 0.8rem 0}
.ham-strips-title{font-weight:600;margin-bottom:0.2rem}
.ham-strip-row{margin:0 0 0.35rem 0}
.ham-strip{position:relative;display:block;width:100%;height:26px;background:rgba(128,128,128,0.12);border-radius:2px}
.ham-strip>span{position:absolute;display:block}
.ham-strip-text{font-family:ui-monospace,monospace;white-space:pre-wrap;overflow-wrap:anywhere}
"""


def _runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """(start, length) of each run of True."""
    out, start = [], None
    for i, f in enumerate([*flags, False]):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((start, i - start))
            start = None
    return out


def multiples_html(r: TextResult, query: int, per_layer: Sequence[tuple[dict, float]]) -> str:
    """All layers at a glance for one token: per layer a strip of the whole text (orange: cached
    in that layer; magenta bars: what the token read, height by weight; black: the token), and
    its largest reads in words. per_layer: (reads {key: weight}, sink) for each layer."""
    T = len(r.tokens)
    top = max([w for reads, _ in per_layer for w in reads.values()] or [1.0])
    pct = lambda x: f"{100 * x / T:.3f}%"  # noqa: E731 - a position along the text
    bar = max(1.0, T / 150)
    rows = []
    for layer, (reads, sink) in enumerate(per_layer):
        # Plain positioned spans, not SVG (the page's HTML sanitiser drops SVG); the cached runs
        # are one gradient, so a strip stays a handful of elements however long the text.
        stops = ",".join(f"transparent {pct(s)},{CACHE_COLOUR} {pct(s)},{CACHE_COLOUR} {pct(s + n)},transparent {pct(s + n)}"
                         for s, n in _runs(r.cached[layer].tolist()))
        cached = (f'<span class="ham-strip-cache" style="left:0;right:0;bottom:0;height:5px;'
                  f'background:linear-gradient(90deg,{stops or "transparent 0,transparent 100%"})"></span>')
        marks = "".join(f'<span class="ham-strip-read" style="left:{pct(k - bar / 2)};width:{pct(bar)};bottom:6px;'
                        f'height:{19 * w / top:.1f}px;background:rgb{READ_COLOUR}"></span>' for k, w in reads.items())
        here = f'<span style="left:{pct(query - bar / 2)};width:{pct(bar)};top:0;height:26px;background:#000"></span>'
        words = " · ".join(f"#{k} {html.escape(token_label(r.tokens[k]))} {w:.0%}" for k, w in list(reads.items())[:3])
        label = (f"layer {layer + 1} · {int(r.kv_tokens[layer]):,} cached · sink {sink:.0%}"
                 + (f" · {words}" if words else " · read nothing"))
        rows.append(f'<div class="ham-strip-row" id="ham-strip-{layer}"><div class="ham-strip">{cached}{marks}{here}</div>'
                    f'<span class="ham-strip-text">{label}</span></div>')
    title = f"Token #{query} in every layer (the whole text, left to right)"
    return (f'<div class="ham-strips" id="ham-strips"><div class="ham-strips-title">'
            f'{html.escape(title)}</div>{"".join(rows)}</div>')


def counts_html(bins: Bins, values: Sequence[float]) -> str:
    """GLTR-style count chart: how many tokens each colour of the view holds."""
    counts = bins.counts(values)
    colours = [f"rgb{c}" for c in bins.colours]
    return render_bars(bins.ranges(), counts, title=f"Tokens per colour: {bins.label}",
                                                     colours=colours, fmt="{:d}", prefix="ham-counts")


def csv_text(r: TextResult) -> str:
    """Per-token table: text, offsets, surprisal, surprise per layer (min and per head), cache."""
    L, T, H = r.surprise.shape
    out = io.StringIO()
    w = csv.writer(out)
    head = ["index", "token", "start", "end", "next_token_surprisal_nats"]
    for l in range(L):
        head += [f"L{l + 1}_surprise_min"] + [f"L{l + 1}_h{h + 1}_surprise" for h in range(H)] + [f"L{l + 1}_cached"]
    w.writerow(head)
    for i in range(T):
        text = r.tokens[i]
        if text[:1] in ("=", "+", "-", "@"):     # keep spreadsheets from reading it as a formula
            text = "'" + text
        row = [i, text, r.starts[i], r.ends[i], "" if math.isnan(r.lm_surprisal[i]) else f"{r.lm_surprisal[i]:.4f}"]
        for l in range(L):
            row += [f"{r.layer_surprise[l, i]:.4f}"] + [f"{r.surprise[l, i, h]:.4f}" for h in range(H)]
            row += [int(r.cached[l, i])]
        w.writerow(row)
    return out.getvalue()
