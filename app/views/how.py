"""How it works: the seven steps of a HAM layer (docs/DESIGN.md section 2), each with one sentence
and a live value from the current text, plus a short glossary."""
from __future__ import annotations

import streamlit as st

from app import charts, common, engine, results
from app.results import TAU_GRID, tau_label
from app.token_view import token_label

ss = st.session_state

GLOSSARY = {
    "Surprise": "How badly the RNN predicted a token's value from its memory: the cosine distance "
                "1 − cos(prediction, value), from 0 (predicted exactly) to 2 (exactly wrong). A layer's "
                "surprise is the minimum over its heads.",
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


def fmt(values) -> str:
    return ", ".join(f"{float(v):.3f}" for v in values)


def body() -> None:
    st.title("How it works")
    st.caption("One HAM layer, step by step, with numbers from the current text. Pick a token and a layer.")
    bundle = engine.get_bundle()
    text = ss.text
    if not text.strip():
        st.info("There is no text yet: paste one on the Read page or pick a preset there.")
        return
    cfg = bundle.cfg
    entry = results.text_entry(bundle, text)
    tau = TAU_GRID[ss.tau_index if ss.tau_index is not None else TAU_GRID.index(results.DEFAULT_TAU)]
    taus = results.grid_taus(bundle, tau)
    r = results.result_for(bundle, entry, taus)
    T = len(r.tokens)
    c = st.columns([3, 1])
    if ss.token is None or ss.token >= T:
        ss.token = T - 1
    with c[0]:
        common.synced(st.select_slider, "Token", "w_token_how", "token", options=list(range(T)),
                      format_func=lambda i: f"#{i} {token_label(r.tokens[i])}")
    with c[1]:
        common.synced(st.selectbox, "Layer", "w_layer_how", "layer", options=list(range(cfg.n_layers)),
                      format_func=lambda l: f"layer {l + 1}")
    t, l = ss.token, ss.layer
    steps = results.step_values(bundle, entry, taus)
    gates = {name: values[l] for name, values in steps.items()}
    surprise = r.surprise[l, t]
    routed = bool(r.cached[l, t])
    reads, sink = r.reads(t, l)
    top = list(reads.items())[:3]
    nxt = r.lm_surprisal[t + 1] if t + 1 < T else float("nan")
    per_key = r.kv_bytes_full // max(T * cfg.n_layers, 1)
    steps = [
        ("Projections",
         f"Token #{t} {token_label(r.tokens[t])} becomes a query q, key k and value v in each of {cfg.n_heads} heads "
         f"({cfg.head_dim} numbers each), after a width-{cfg.conv_size} causal convolution and SiLU; q and k are "
         "scaled to unit length.",
         f"‖k‖ per head: {fmt(gates['k_norm'][t])} · ‖v‖ per head: {fmt(gates['v_norm'][t])}"),
        ("Gates",
         "Each head decides how much of its memory to keep (decay α, between 0 and 1) and how strongly to "
         "write this token (β).",
         f"α per head: {fmt(gates['alpha'][t])} · β per head: {fmt(gates['beta'][t])}"),
        ("Prediction and surprise",
         "The RNN state predicts the value of this key, p = Sᵀk; the surprise is 1 − cos(p, v): 0 when it "
         "predicted the value exactly, 1 when it had no idea.",
         f"surprise per head: {fmt(surprise)}"),
        ("RNN update",
         "The state decays by α and moves towards the value by β times the prediction error (the gated delta "
         "rule), so the same error that measures surprise also trains the memory.",
         f"state per layer: {cfg.n_heads} × {cfg.head_dim} × {cfg.head_dim} numbers = "
         f"{charts.fmt_bytes(r.state_bytes // cfg.n_layers)}, the same after {T:,} tokens"),
        ("Routing",
         "The layer's surprise is the minimum over heads; if it reaches τ the token's key and value enter "
         "the KV cache (decided before the token is read, from the old state).",
         f"min surprise {surprise.min():.3f} {'≥' if routed else '<'} τ = {tau_label(r.tau[l])} → "
         f"{'cached' if routed else 'not cached'}; layer {l + 1} caches {int(r.kv_tokens[l])} of {T} tokens "
         f"({charts.fmt_bytes(int(r.kv_tokens[l]) * per_key)})"),
        ("Selective attention",
         "The query reads the cached tokens with softmax weights; an extra 'sink' lets a head read nothing.",
         ("reads " + ", ".join(f"#{i} {token_label(r.tokens[i])} ({w:.2f})" for i, w in top) if top else "reads nothing")
         + f" · sink {sink:.2f}"),
        ("Combination",
         "Gated, normalised RNN and attention outputs are mixed and projected back; after the last layer the "
         "model predicts the next token.",
         f"next token {token_label(r.tokens[t + 1])}: surprisal {nxt:.2f} nats" if t + 1 < T
         else f"text loss {r.loss:.3f} nats/token (perplexity {r.perplexity:.1f})"),
    ]
    for n, (title, sentence, live) in enumerate(steps, 1):
        with st.container(border=True):
            st.markdown(f"**{n}. {title}** — {common.md(sentence)}")
            st.markdown(f":blue-badge[live] {common.md(live)}")
    st.subheader("Glossary")
    for term, meaning in GLOSSARY.items():
        st.markdown(f"**{term}** — {meaning}")


common.guard(body)
