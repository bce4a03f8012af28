"""Step through: play the text token by token and watch the KV cache fill (for talks).

Each step runs ham_core.decode.step, the compact-cache form a deployed HAM runs: the RNN state
is updated, the token is routed by its surprise, and a routed token's (k, v) is appended to the
layer's cache. The current token's attention reads come from the whole-text analysis at the
same thresholds (the three forms of the computation agree to float tolerance).
"""
from __future__ import annotations

import streamlit as st

from app import charts, common, engine, panels, results
from app.panels import SURPRISE_RANGE
from app.results import TAU_GRID, tau_label
from app.state import text_hash
from app.token_view import BAR_CSS, CSS, TokenCell, render_bars, render_legend, render_view
from ham_core import decode

ss = st.session_state
SPEEDS = {"1 token/s": 1.0, "2 tokens/s": 2.0, "5 tokens/s": 5.0, "10 tokens/s": 10.0}


def reset(bundle: engine.Bundle, ids: list, tau: float, key: tuple) -> None:
    ss.step_key, ss.step_ids = key, ids
    ss.step_mem = decode.start(bundle.model, tau)
    ss.step_log, ss.step_sizes, ss.playing = [], [], False


def advance(bundle: engine.Bundle, n: int = 1) -> None:
    for _ in range(n):
        pos = ss.step_mem.position
        if pos >= len(ss.step_ids):
            ss.playing = False
            return
        out = decode.step(bundle.model, ss.step_mem, ss.step_ids[pos])
        ss.step_log.append((out.surprise.float().cpu().numpy(), out.cached.cpu().numpy()))
        ss.step_sizes.append(ss.step_mem.cache_sizes())


def back(bundle: engine.Bundle, tau: float) -> None:
    """One token back: replay from the start (the state cannot be un-updated)."""
    target = max(ss.step_mem.position - 1, 0)
    reset(bundle, ss.step_ids, tau, ss.step_key)
    advance(bundle, target)


def toggle_play() -> None:
    ss.playing = not ss.playing and ss.step_mem.position < len(ss.step_ids)


def step_n(bundle: engine.Bundle, n: int) -> None:
    ss.playing = False
    advance(bundle, n)


def draw(bundle: engine.Bundle, r: results.TextResult) -> None:
    if ss.playing and ss.step_mem.position < len(ss.step_ids):
        advance(bundle)
    pos, T, L = ss.step_mem.position, len(ss.step_ids), bundle.cfg.n_layers
    layer = ss.layer
    cur = pos - 1
    reads = r.reads(cur, layer)[0] if cur >= 0 else {}
    cells = []
    for i, text in enumerate(r.tokens):
        if i < pos:
            surprise, cached = ss.step_log[i]
            cells.append(TokenCell(text, float(surprise[layer].min()), int(cached[layer]),
                                   f"#{i} surprise {surprise[layer].min():.3f}, cached: {bool(cached[layer])}",
                                   read=reads.get(i)))
        else:
            cells.append(TokenCell(text, None, 0, f"#{i} not read yet"))
    st.html(f"<style>{CSS}</style>"
            + render_legend(f"RNN surprise, layer {layer + 1}", *SURPRISE_RANGE, cache_label=f"in layer {layer + 1}'s cache",
                            show_reads=cur >= 0)
            + render_view(cells, vmin=SURPRISE_RANGE[0], vmax=SURPRISE_RANGE[1], selected=cur if cur >= 0 else None, prefix="step",
                          font_size="1.35rem" if ss.get("presenter") else "0.95rem"))
    c = st.columns(4)
    sizes = ss.step_mem.cache_sizes()
    c[0].metric("Tokens read", f"{pos} / {T}")
    c[1].metric("KV cache", f"{sum(sizes)} tokens", help=" · ".join(f"layer {l + 1}: {n}" for l, n in enumerate(sizes)))
    c[2].metric("KV bytes", charts.fmt_bytes(ss.step_mem.kv_bytes()))
    c[3].metric("RNN state (fixed)", charts.fmt_bytes(r.state_bytes))
    left, right = st.columns([3, 2])
    with left:
        st.plotly_chart(charts.cache_fill_figure(ss.step_sizes, pos, T), key="fill", config={"displayModeBar": False})
    with right:
        if cur >= 0:
            surprise, cached = ss.step_log[cur]
            st.markdown(f"**Current token \\#{cur} {common.md(repr(r.tokens[cur]))}**")
            st.dataframe([{"layer": l + 1, **{f"head {h + 1}": round(float(surprise[l, h]), 3)
                                              for h in range(surprise.shape[1])},
                           "min": round(float(surprise[l].min()), 3), "cached": "yes" if cached[l] else "no"}
                          for l in range(L)], hide_index=True)
            labels, weights = panels.reads_labels(r, reads, limit=6)
            if weights:
                st.html(f"<style>{BAR_CSS}</style>"
                        + render_bars(labels, weights, title=f"Reads, layer {layer + 1}", prefix="step-reads"))
            else:
                st.caption(f"Token #{cur} read nothing from layer {layer + 1}'s cache.")
    if ss.playing and pos >= T:
        ss.playing = False
        st.rerun(scope="app")              # stop the timer: the fragment is redefined without it


def body() -> None:
    st.title("Step through")
    st.caption("Play the text one token at a time: each token updates the RNN state, and only the ones "
               "the RNN failed to predict are appended to the KV cache.")
    bundle = engine.get_bundle()
    text = ss.text
    if not text.strip():
        st.info("There is no text yet: paste one on the Read page or pick a preset there.")
        return
    c = st.columns([3, 1, 1])
    with c[0]:
        common.tau_slider("w_tau_step")
    with c[1]:
        common.synced(st.selectbox, "Layer", "w_layer_step", "layer", options=list(range(bundle.cfg.n_layers)),
                      format_func=lambda l: f"layer {l + 1}")
    with c[2]:
        speed = st.selectbox("Speed", list(SPEEDS), index=1, key="w_speed")
    tau = TAU_GRID[ss.tau_index]
    store = results.store_for(bundle, text)
    r = results.result_for(bundle, store, results.grid_taus(bundle, tau))
    if r.notice:
        st.warning(r.notice)
    ids = results.read_ids(bundle, store).tolist()
    key = (bundle.key, text_hash(text), tau)
    if ss.get("step_key") != key:
        reset(bundle, ids, tau, key)
    b = st.columns(5)
    b[0].button("⏮ Reset", key="w_reset", on_click=reset, args=(bundle, ids, tau, key))
    b[1].button("◀ Back", key="w_back", on_click=back, args=(bundle, tau))
    b[2].button("⏸ Pause" if ss.playing else "▶ Play", key="w_play", type="primary", on_click=toggle_play)
    b[3].button("Step ▶", key="w_step", on_click=step_n, args=(bundle, 1))
    b[4].button("+10 ▶▶", key="w_step10", on_click=step_n, args=(bundle, 10))
    st.caption(f"τ = {tau_label(tau)} in every layer · reads shown from the whole-text analysis at the same τ.")
    every = 1.0 / SPEEDS[speed] if ss.playing else None

    def player() -> None:
        draw(bundle, r)

    st.fragment(run_every=every)(player)()


common.guard(body)
