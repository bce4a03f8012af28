"""The Read page's panels drawn with Streamlit: the headline figures and the KV readout, what the
cache bought and the selected token's reads (their HTML: app.drawing.tables)."""
from __future__ import annotations

from typing import Optional

import streamlit as st

from app.drawing.tables import READOUT_CSS, STRIP_CSS, bought_html, bought_sentence, kv_html, reads_labels
from app.drawing.charts import fmt_bytes
from app.drawing.text import md
from app.drawing.token_view import BAR_CSS, render_bars, token_in_word
from app.engine.result_types import TextResult
from app.session.state import presenting, reads_label


def page_css() -> None:
    """The panels' styles, sent once per run as their own element: unchanged from run to run, so
    the browser keeps them (a <style> inside each panel made it restyle the page on every move)."""
    st.html(f"<style>{BAR_CSS}{READOUT_CSS}{STRIP_CSS}</style>")


def show_readout(r: TextResult) -> None:
    """Headline figures (total KV bytes and %, the fixed RNN state, loss), then the per-layer KV
    table. Presenter mode's larger type puts the figures three to a row, so none is cut short."""
    L, T = r.cached.shape
    figures = [
        ("KV cache (all layers)", fmt_bytes(r.kv_bytes_peak),
         f"peak keys and values over the {L} layers; a full cache of these {T:,} tokens: {fmt_bytes(r.kv_bytes_full)}"),
        ("of a full cache", f"{100 * r.kv_fraction:.1f}%", None),
        ("RNN state (fixed)", fmt_bytes(r.state_bytes), "does not grow with the text"),
        ("loss", f"{r.loss:.3f} nats" if r.loss == r.loss else "–", f"mean next-token loss; perplexity {r.perplexity:.2f}"),
    ]
    per_row = 2 if presenting() else len(figures)
    for start in range(0, len(figures), per_row):
        for col, (label, value, help) in zip(st.columns(per_row), figures[start:start + per_row]):
            col.metric(label, value, help=help)
    st.html(kv_html(r))


def show_bought(r: TextResult, full: TextResult, none: TextResult) -> None:
    st.markdown(bought_sentence(r, full, none))
    st.html(bought_html(r, full, none))


def show_reads(r: TextResult, token: int, layer: int, reads: dict, sink: float, head: Optional[int]) -> None:
    who = reads_label(head)
    st.markdown(f"**Token \\#{token} {md(token_in_word(r.tokens, token))} reads, layer {layer + 1}, {who}**")
    if not reads:
        st.info("This token read nothing from the cache here: no earlier token is cached in this layer "
                "(or all its attention went to the sink).")
        return
    labels, weights = reads_labels(r, reads)
    st.html(render_bars(labels, weights, prefix="ham-reads"))
    st.caption(f"Sink (read nothing): {sink:.1%} of the attention. The {len(weights)} largest reads are listed.")
