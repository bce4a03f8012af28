"""Step through: play the text token by token and watch the KV cache fill (for talks).

Each step runs ham_core.model.decode.step, the compact-cache form a deployed HAM runs: the RNN state
is updated, the token is routed by its surprise, and a routed token's (k, v) is appended to the
layer's cache. The current token's attention reads come from the whole-text analysis at the
same thresholds (the three forms of the computation agree to float tolerance).
"""
from __future__ import annotations

import streamlit as st

from app.drawing import charts, tables, viewdata
from app.drawing.text import md
from app.drawing.token_view import BAR_CSS, CSS, TokenCell, bins_legend, render_bars, render_view, token_label
from app.engine import models, results
from app.engine.stepper import Tape
from app.session import page_state, state
from app.session.state import Key
from app.settings import tau_label
from app.widgets import page

SPEEDS = {"1 token/s": 1.0, "2 tokens/s": 2.0, "5 tokens/s": 5.0, "10 tokens/s": 10.0}


OPENING = 16          # a new tape opens this many tokens in at most: the first sentence, read


def opening(tokens: list) -> int:
    """Tokens a new tape has read when the page opens: up to the end of the first sentence
    (at most OPENING), so the page opens on coloured text, not on a grey one at 0 of 0."""
    for i, t in enumerate(tokens[:OPENING]):
        if any(mark in t for mark in ".!?\n"):
            return i + 1
    return min(len(tokens), OPENING)


def tape_for(bundle: models.Bundle, ids: list, tau: float, key: tuple, tokens: list) -> Tape:
    """This session's tape for the text and threshold (a new one when either changes)."""
    tape = page_state.step_tape()
    if tape is None or tape.key != key:
        tape = Tape(bundle.model, ids, tau, key)
        tape.forward(opening(tokens))
        page_state.set_step_tape(tape)
    return tape


def draw(bundle: models.Bundle, r: results.TextResult, tape: Tape, layer: int, size: str, scale: float,
         colours: tuple) -> None:
    """One frame of the player. Everything shown comes from one snapshot of the tape; a token
    has the colour it has on the Read page (the whole text's scale, `colours`: palette, mode)."""
    tape.tick()
    f = tape.frame()
    cur = f.current
    head = state.reads_head()
    reads = r.reads(cur, layer, head)[0] if cur is not None else {}
    bins = viewdata.surprise_bins(r, layer, *colours)
    rule = bundle.cfg.head_rule
    combined = f.layer_surprise                             # [position, L]: what τ is compared with
    cells = []
    for i, text in enumerate(r.tokens):
        if i < f.position:
            s, c = float(combined[i, layer]), bool(f.cached[i, layer])
            cells.append(TokenCell(text, s, int(c), f"#{i} surprise {s:.3f}, cached: {c}", read=reads.get(i)))
        else:
            cells.append(TokenCell(text, None, 0, f"#{i} not read yet"))
    st.html(f"<style>{CSS}</style>"
            + bins_legend(bins, cache_label=f"in layer {layer + 1}'s cache", show_reads=cur is not None, prefix="step")
            + render_view(cells, bins=bins, selected=cur, prefix="step", font_size=size))
    c = st.columns(4)
    sizes = f.cache_sizes()
    c[0].metric("Tokens read", f"{f.position} / {f.total}")
    c[1].metric(f"KV cache, layer {layer + 1}", f"{sizes[layer]} of {f.position} tokens",
                help="tokens in each layer's cache: " + " · ".join(f"layer {l + 1}: {n}" for l, n in enumerate(sizes)))
    c[2].metric("KV bytes", charts.fmt_bytes(f.kv_bytes))
    c[3].metric("RNN state (fixed)", charts.fmt_bytes(r.state_bytes))
    left, right = st.columns([1, 1] if scale > 1 else [3, 2])          # presenter type needs room for the table
    with left:
        st.plotly_chart(charts.cache_fill_figure(f.sizes.tolist(), f.position, f.total, font_scale=scale), key="fill",
                        config={"displayModeBar": False})
    with right:
        if cur is not None:
            surprise, cached = f.surprise[cur], f.cached[cur]
            st.markdown(f"**Current token \\#{cur} {md(token_label(r.tokens[cur]))}**")
            st.caption(f"RNN surprise per head (h1, h2, …), the layer's {rule} over heads (what τ is compared "
                       "with), and whether the token entered that layer's cache.")
            st.table([{"layer": l + 1, **{f"h{h + 1}": f"{surprise[l, h]:.2f}" for h in range(surprise.shape[1])},
                       rule: f"{combined[cur, l]:.2f}", "cached": "yes" if cached[l] else "no"}
                      for l in range(surprise.shape[0])], hide_index=True)
            labels, weights = tables.reads_labels(r, reads, limit=6)
            if weights:
                st.html(f"<style>{BAR_CSS}</style>"
                        + render_bars(labels, weights, title=f"Reads, layer {layer + 1}, {state.reads_label(head)}",
                                      prefix="step-reads"))
            else:
                st.caption(f"Token #{cur} read nothing from layer {layer + 1}'s cache.")
    if f.playing is False and page_state.step_timer():
        page_state.set_step_timer(False)
        st.rerun(scope="app")              # stop the timer: the fragment is redefined without it


def body() -> None:
    opened = page.page_text("Step through", "Play the text one token at a time: each token updates the RNN state, "
                            "and only the ones the RNN failed to predict are appended to the KV cache.")
    if opened is None:
        return
    bundle, text = opened
    c = st.columns([3, 1, 1])
    with c[0]:
        page.tau_slider(Key.W_TAU_STEP)
    with c[1]:
        page.synced(st.selectbox, "Layer", Key.W_LAYER_STEP, Key.LAYER, options=list(range(bundle.cfg.n_layers)),
                      format_func=lambda l: f"layer {l + 1}")
    with c[2]:
        speed = st.selectbox("Speed", list(SPEEDS), index=1, key="w_speed")
    tau = state.tau()
    entry = results.text_entry(bundle, text)
    r = results.result_for(bundle, entry, results.grid_taus(bundle, tau))
    if r.notice:
        st.warning(r.notice)
    ids = results.read_ids(entry)
    tape = tape_for(bundle, ids, tau, entry.key + (tau,), r.tokens)
    # The callbacks are the tape's own methods: a click changes the tape without touching the
    # session (see app.engine.stepper for why that matters).
    b = st.columns(5)
    # Icons from the font Streamlit ships (media-control characters such as U+23EE are missing
    # from common system fonts and showed as empty boxes).
    b[0].button("Reset", key="w_reset", icon=":material/first_page:", on_click=tape.rewind)
    b[1].button("Back", key="w_back", icon=":material/chevron_left:", on_click=tape.back)
    b[2].button("Pause" if tape.playing else "Play", key="w_play", type="primary",
                icon=":material/pause:" if tape.playing else ":material/play_arrow:", on_click=tape.toggle_play)
    b[3].button("Step", key="w_step", icon=":material/chevron_right:", on_click=tape.forward, args=(1,))
    b[4].button("+10", key="w_step10", icon=":material/fast_forward:", on_click=tape.forward, args=(10,))
    st.caption(f"τ = {tau_label(tau)} in every layer. What the current token reads is taken from reading the whole "
               "text at the same τ, which gives the same numbers.")
    page_state.set_step_timer(tape.playing)
    layer, size, scale = state.layer(), state.token_size(), state.chart_scale()
    colours = state.colour_scale()

    @st.fragment(run_every=1.0 / SPEEDS[speed] if tape.playing else None)
    def player() -> None:
        page.guard(lambda: draw(bundle, r, tape, layer, size, scale, colours))   # a fragment rerun skips the page's guard

    player()


page.guard(body)
