"""How it works: the HAM layer as a diagram (docs/DESIGN.md section 2), its seven steps as boxes
with the live numbers of the token clicked in the text, each explained in a sentence (the same
as text below it), plus a short glossary."""
from __future__ import annotations

import streamlit as st

from app.drawing import viewdata
from app.drawing.layer_diagram import diagram
from app.drawing.layer_steps import TokenLayer, default_token, steps
from app.drawing.text import md
from app.engine import models, results
from app.session import state
from app.session.state import Key
from app.settings import tau_label
from app.widgets import clickview, page

GLOSSARY = {
    "Surprise": "How badly the RNN predicted a token's value from its memory: the cosine distance "
                "1 − cos(prediction, value), from 0 (predicted exactly) to 2 (exactly wrong). A layer's "
                "surprise is the minimum over its heads, read in the layer's own units: times a scale that "
                "puts the layer's typical token at 0.5 (capped at 2), so one threshold caches a like share "
                "of every layer.",
    "KV cache": "The keys and values attention can read back exactly. A Transformer keeps every token; "
                "HAM keeps only the surprising ones, so the cache grows with new information, not length.",
    "Threshold (τ)": "How surprised the RNN must be before a token is cached. 0 caches everything "
                     "(Transformer-like); above 2 nothing (a pure RNN). Each layer may have its own.",
    "Policy": "A rule for which tokens to keep at a given memory: HAM's surprise, random, the most recent "
              "window, sinks + window (StreamingLLM), or HOLA's largest residual.",
    "RNN state": "A fixed d × d matrix per head that summarises everything read so far; it never grows.",
    "Next-token surprisal": "−log p(token) in nats under the whole model: how unexpected the token was "
                            "as the next word (GLTR-style); the mean over a text is the loss.",
}


def pick_token(i: int) -> None:
    state.set_view(token_=i)


def token_layer(bundle: models.Bundle, entry: results.TextEntry, r: results.TextResult, t: int, l: int) -> TokenLayer:
    """The numbers of token t in layer l, from the analysis at the current thresholds."""
    cfg, T = bundle.cfg, len(r.tokens)
    values = results.step_values(bundle, entry, tuple(r.tau))
    head = state.reads_head()                 # the Read page's choice, so both quote the same reads
    reads, sink = r.reads(t, l, head)
    return TokenLayer(
        index=t, text=r.tokens[t], layer=l, n_layers=cfg.n_layers, head_dim=cfg.head_dim, conv_size=cfg.conv_size,
        tau=float(r.tau[l]), surprise=r.surprise[l, t], cached=bool(r.cached[l, t]),
        alpha=values["alpha"][l, t], beta=values["beta"][l, t], v_norm=values["v_norm"][l, t],
        gate_rnn=values["gate_rnn"][l, t], gate_attn=values["gate_attn"][l, t],
        reads=[(i, r.tokens[i], w) for i, w in reads.items()], sink=sink, layer_cached=int(r.kv_tokens[l]),
        n_tokens=T, state_bytes=r.state_bytes // cfg.n_layers,
        next_text=r.tokens[t + 1] if t + 1 < T else None,
        next_surprisal=float(r.lm_surprisal[t + 1]) if t + 1 < T else None,
        loss=None if r.loss != r.loss else float(r.loss), scale=cfg.layer_surprise_scale(l), head=head,
        rule=cfg.head_rule, routing=float(r.layer_surprise[l, t]))


def body() -> None:
    opened = page.page_text("How it works", "One HAM layer, step by step, with the live numbers of one token. Click "
                            "a token in the text to follow it through the layer; the RNN path runs down the left, "
                            "the cache path down the right.")
    if opened is None:
        return
    bundle, text = opened
    cfg = bundle.cfg
    entry = results.text_entry(bundle, text)
    tau = state.tau()
    r = results.result_for(bundle, entry, results.grid_taus(bundle, tau))
    T = len(r.tokens)
    if state.token() is None or not 0 <= state.token() < T:
        # No token chosen yet: the one where the cache is seen at work (chosen by measurement,
        # as the Read page's first view does), else the last cached word of the layer.
        pick = results.first_view(r)
        if pick is not None:
            state.set_view(pick.layer, pick.query, widgets=(Key.W_LAYER_HOW,))
            state.set_reads(pick.head)
        else:
            state.set_view(token_=default_token(r.tokens, r.cached[state.layer()].tolist()))
    c = st.columns([1, 3])
    with c[0]:
        page.synced(st.selectbox, "Layer", Key.W_LAYER_HOW, Key.LAYER, options=list(range(cfg.n_layers)),
                      format_func=lambda l: f"layer {l + 1}")
    l, t = state.layer(), state.token()
    head = state.reads_head()
    c[1].caption(f"τ = {tau_label(r.tau[l])} in every layer (move it on the Read page). Layer {l + 1} keeps "
                 f"{int(r.kv_tokens[l])} of {T:,} tokens; marked tokens are in its cache. Reads shown: "
                 f"{state.reads_label(head)} (choose on the Read page).")
    with st.container(height=220 if T > 150 else "content", key="how_text"):
        palette, mode = state.colour_scale()       # the Read page's scale: one colour per token
        data, _ = viewdata.view_data(r, metric="min", layer=l, head=0, count_mode=False, scale=palette,
                                     mode=mode, selected=t, read_map=r.read_map(l, state.reads_head()), none=None,
                                     shown=lambda ids: results.shown_tokens(bundle, ids),
                                     font_size=state.token_size())
        clickview.show(data, key=Key.W_VIEW_HOW, on_click=pick_token)
    s = token_layer(bundle, entry, r, t, l)
    # st.html sanitises SVG away; this markup is ours, with every piece of text escaped
    # (app.drawing.layer_diagram), so it is shown as it is.
    st.markdown(diagram(s, font_scale=state.diagram_scale()), unsafe_allow_html=True)
    with st.expander("The seven steps as text"):
        for step in steps(s):
            st.markdown(f"**{step.number}. {step.title}** — {md(step.words)}")
            st.markdown(f":blue-badge[live] {md(step.values)}")
    st.subheader("Glossary")
    for term, meaning in GLOSSARY.items():
        st.markdown(f"**{term}** — {meaning}")


page.guard(body)
