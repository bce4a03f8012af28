"""Pieces of the read view built from a TextResult: token cells, the KV readout, the reads.

Functions named `*_cells`, `tooltip` and `csv_text` are pure (tests call them); the `show_*`
functions draw with Streamlit.
"""
from __future__ import annotations

import csv
import io
import math
from typing import Optional

import numpy as np
import streamlit as st

from app import charts
from app.common import md
from app.results import TextResult, tau_label
from app.token_view import BAR_CSS, TokenCell, bucket_counts, render_bars, render_legend, render_view, token_label

LM_RANGE = (0.0, 12.0)       # nats; colour scale range for next-token surprisal
SURPRISE_RANGE = (0.0, 1.0)  # surprise lies in [0, 2]; 1 = "no idea", above 1 is rare, so the scale tops out at 1


def metric_values(r: TextResult, metric: str, layer: int, head: int) -> tuple[np.ndarray, float, float, str]:
    """Values to colour by, their range and a legend label."""
    if metric == "lm":
        return r.lm_surprisal, *LM_RANGE, "next-token surprisal (nats)"
    if metric == "head":
        return r.surprise[layer, :, head], *SURPRISE_RANGE, f"RNN surprise, layer {layer + 1} head {head + 1}"
    return r.layer_surprise[layer], *SURPRISE_RANGE, f"RNN surprise, layer {layer + 1} (min over heads)"


def _num(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def tooltips(r: TextResult, layer: int) -> list[str]:
    """The hover text of every token for `layer` (built once per result and layer while memory allows)."""
    def build() -> list[str]:
        heads = r.surprise[layer].tolist()
        mins, lm = r.layer_surprise[layer].tolist(), r.lm_surprisal.tolist()
        cached = r.cached.T.tolist()
        return [
            f"#{i} {token_label(tok)}\n"
            f"RNN surprise, layer {layer + 1}: {_num(mins[i])} (heads: {', '.join(_num(v) for v in heads[i])})\n"
            f"next-token surprisal: {_num(lm[i])} nats\n"
            f"in KV cache of layers: {', '.join(str(l + 1) for l, c in enumerate(cached[i]) if c) or 'none'}"
            for i, tok in enumerate(r.tokens)
        ]

    return r.memo(("tips", layer), build)


def view_cells(r: TextResult, metric: str, layer: int, head: int, count_mode: bool,
               reads: Optional[dict] = None) -> list[TokenCell]:
    values = metric_values(r, metric, layer, head)[0].tolist()
    marks = (r.cached.sum(0) if count_mode else r.cached[layer]).tolist()
    tips, reads = tooltips(r, layer), reads or {}
    return [TokenCell(text=t, value=None if math.isnan(values[i]) else values[i], cached=int(marks[i]),
                      tooltip=tips[i], read=reads.get(i))
            for i, t in enumerate(r.tokens)]


def view_html(r: TextResult, *, metric: str, layer: int, head: int, count_mode: bool, scale: str,
              selected: Optional[int], reads: Optional[dict], font_size: str = "0.95rem") -> str:
    _, vmin, vmax, label = metric_values(r, metric, layer, head)
    cells = view_cells(r, metric, layer, head, count_mode, reads)
    cache_label = "cached (superscript: in how many layers)" if count_mode else f"in layer {layer + 1}'s KV cache"
    legend = render_legend(label, vmin, vmax, scale=scale, cache_label=cache_label, show_reads=selected is not None)
    return legend + render_view(cells, vmin=vmin, vmax=vmax, scale=scale, selected=selected,
                                count_mode=count_mode, font_size=font_size)


def show_readout(r: TextResult) -> None:
    """KV-cache size (tokens, % of full, bytes) beside the fixed RNN state, plus quality."""
    L, T = r.cached.shape
    c = st.columns(5)
    c[0].metric("KV cache", f"{int(r.kv_tokens.sum()):,} tokens", help=f"peak keys over {L} layers; full = {L * T:,}")
    c[1].metric("of a full cache", f"{100 * r.kv_fraction:.1f}%")
    c[2].metric("KV bytes", charts.fmt_bytes(r.kv_bytes_peak), help=f"full cache: {charts.fmt_bytes(r.kv_bytes_full)}")
    c[3].metric("RNN state (fixed)", charts.fmt_bytes(r.state_bytes), help="does not grow with the text")
    c[4].metric("loss", f"{r.loss:.3f} nats" if r.loss == r.loss else "–",
                help=f"mean next-token loss; perplexity {r.perplexity:.2f}")
    per_layer = " · ".join(f"layer {l + 1}: {int(r.kv_tokens[l])} (τ {tau_label(r.tau[l])})" for l in range(L))
    st.caption(f"Cached tokens per layer (of {T:,}): {per_layer}. Perplexity {r.perplexity:.2f}.")


def reads_labels(r: TextResult, reads: dict, limit: int = 10) -> tuple[list[str], list[float]]:
    items = list(reads.items())[:limit]
    return [f"#{i} {token_label(r.tokens[i])}" for i, _ in items], [w for _, w in items]


def show_reads(r: TextResult, token: int, layer: int, reads: dict, sink: float, head: Optional[int]) -> None:
    who = "averaged over heads" if head is None else f"head {head + 1}"
    st.markdown(f"**Token \\#{token} {md(token_label(r.tokens[token]))} reads, layer {layer + 1}, {who}**")
    if not reads:
        st.info("This token read nothing from the cache here: no earlier token is cached in this layer "
                "(or all its attention went to the sink).")
        return
    labels, weights = reads_labels(r, reads)
    st.html(f"<style>{BAR_CSS}</style>" + render_bars(labels, weights, prefix="ham-reads"))
    st.caption(f"Sink (read nothing): {sink:.1%} of the attention. The 10 largest reads are listed.")


def show_counts(r: TextResult, metric: str, layer: int, head: int, scale: str) -> None:
    """GLTR-style count chart: tokens per colour bucket of the current metric."""
    values, vmin, vmax, label = metric_values(r, metric, layer, head)
    labels, counts, colours = bucket_counts(values.tolist(), vmin, vmax, scale)
    st.html(f"<style>{BAR_CSS}</style>" + render_bars(labels, counts, title=f"Tokens per colour: {label}",
                                                     colours=colours, fmt="{:d}", prefix="ham-counts"))


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
