"""Read a text: token view (surprise, cache, reads), thresholds, KV readout, memory vs quality."""
from __future__ import annotations

from typing import Optional

import streamlit as st

from app.drawing import tables, viewdata
from app.drawing.text import md
from app.drawing.token_view import token_in_word
from app.engine import models, results, store
from app.session import links, state, text_store
from app.session.state import reads_head, reads_label
from app.settings import METRICS, TAU_GRID, tau_label
from app.settings.presets import PRESETS
from app.widgets import chart_view, clickview, inputs, page, panels

ss = st.session_state


def restore_from_url(bundle: models.Bundle) -> None:
    """First run of a session: the query parameters reopen a shared view."""
    if ss.params_loaded:
        return
    ss.params_loaded = True
    view = links.parse_params(st.query_params.to_dict(), bundle.cfg.n_layers, bundle.cfg.n_heads)
    if view.preset:
        ss.text, ss.preset = PRESETS[view.preset], view.preset
    elif view.text_hash:
        text = text_store.recall_text(view.text_hash)
        if text is None:
            ss.notices = ["This link points to a pasted text that is not stored on this server (texts are kept "
                          "for a limited time, and some servers keep none); paste the text again."]
        else:
            ss.text, ss.preset = text, None
    if view.tau is not None:
        ss.tau_index = min(range(len(TAU_GRID)), key=lambda i: abs(TAU_GRID[i] - view.tau))
    ss.layer, ss.metric, ss.head, ss.token = view.layer, view.metric, view.head, view.token
    state.set_reads(view.reads)
    if view.token is not None:                 # the link chose the token: no first-view choice
        ss.first_view_for = store.text_key(ss.text)


def first_view(bundle: models.Bundle, entry: results.TextEntry, text: str) -> None:
    """Once per text: show the layer and token where the cache is seen at work, chosen by
    measurement at the global threshold (results.first_view), unless the user or a link chose."""
    key = store.text_key(text)
    if ss.get("first_view_for") == key:
        return
    ss.first_view_for = key
    L = bundle.cfg.n_layers
    pick = results.first_view(results.result_for(bundle, entry, results.grid_taus(bundle, state.tau()),
                                                 layers=tuple(range(L))))
    if pick is not None:
        ss.layer = ss.w_layer = pick.layer
        ss.token = ss.w_token = pick.query
        state.set_reads(pick.head)


def link_key(text: str):
    """The stored text's key for links (None for a preset, or when this server keeps no texts);
    stored once per text and session, not on every slider move."""
    if ss.preset:
        return None
    key = store.text_key(text)
    if ss.get("link_key", (None,))[0] != key:
        ss.link_key = (key, text_store.remember_text(text))
    return ss.link_key[1]


def save_to_url(text: str) -> None:
    key = link_key(text)
    if not ss.preset and key is None:
        st.caption("This server does not keep pasted texts, so a link to this view opens the default text.")
    view = links.ViewState(preset=ss.preset, text_hash=key,
                           tau=state.tau(), layer=ss.layer, metric=ss.metric, head=ss.head,
                           token=ss.token, reads=reads_head())
    params = links.to_params(view)
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)


def controls(bundle: models.Bundle, options, narrow: bool) -> tuple:
    """The threshold and view choices here (stacked when `narrow`: beside the text), and the
    per-layer thresholds and display options folded in the container `options` (further down
    the page); returns the per-layer thresholds."""
    cfg = bundle.cfg
    if narrow:
        page.tau_slider()
        row = st.columns([1, 1])
        c = [None, row[0], st.container(), row[1]]
    else:
        c = st.columns([3, 1, 2, 1])
        with c[0]:
            page.tau_slider()
    with c[1]:
        page.synced(st.selectbox, "Layer", "w_layer", "layer", options=list(range(cfg.n_layers)),
               format_func=lambda l: f"layer {l + 1}")
    with c[2]:
        page.synced(st.selectbox, "Colour by", "w_metric", "metric", options=list(METRICS),
               format_func=METRICS.get)
    with c[3]:
        page.synced(st.selectbox, "Head", "w_head", "head", options=list(range(cfg.n_heads)),
               format_func=lambda h: f"head {h + 1}", disabled=ss.metric != "head")
    with options, st.expander("Per-layer thresholds and display options"):
        cols = st.columns(cfg.n_layers)
        taus = []
        for l, col in enumerate(cols):
            with col:
                i = st.select_slider(f"Layer {l + 1}", options=[-1, *range(len(TAU_GRID))], key=f"w_over_{l}",
                                     value=-1, format_func=lambda i: "global" if i < 0 else tau_label(TAU_GRID[i]))
            taus.append(state.tau() if i < 0 else TAU_GRID[i])
        d = st.columns(4)
        d[0].radio("Cache marks", ["chosen layer", "count of layers"], key="w_marks", horizontal=True)
        with d[1]:
            page.synced(st.radio, "Colour scale", "w_scale_mode", "scale_mode", options=list(viewdata.SCALE_MODES),
                          horizontal=True, format_func=viewdata.SCALE_MODES.get,
                          help="spread: each colour holds about the same share of this layer's tokens (edges in "
                               "the legend); fixed: the same range for every layer and text. Every page uses it.")
        with d[2]:
            page.synced(st.radio, "Palette", "w_scale", "palette", options=["viridis", "cividis"], horizontal=True)
        page.synced(d[3].radio, "Reads", "w_reads", "reads",
                      options=[reads_label(h) for h in (None, *range(cfg.n_heads))], horizontal=True)
    return tuple(taus)


def pick_token(i: int) -> None:
    ss.token = ss.w_token = i


def token_panel(bundle: models.Bundle, r: results.TextResult, none: Optional[results.TextResult], left, right) -> None:
    """The token view and what it says in `left`; the selected token's reads and the colour
    counts in `right` (containers)."""
    T, L = len(r.tokens), r.cached.shape[0]
    if ss.token is None or ss.token >= T:
        ss.token = max([i for i, t in enumerate(r.tokens) if t.strip()] or [T - 1])
    if ss.get("w_token") is None or ss.w_token >= T or ss.w_token != ss.token:
        ss.w_token = ss.token
    head = reads_head()
    m = r.read_map(ss.layer, head)
    with left:
        data, bins = viewdata.view_data(
            r, metric=ss.metric, layer=ss.layer, head=ss.head, count_mode=ss.get("w_marks") == "count of layers",
            scale=ss.palette, mode=ss.scale_mode, selected=ss.token,
            read_map=m, none=none, shown=lambda ids: results.shown_tokens(bundle, ids),
            font_size=state.token_size())
        clickview.show(data, key="w_view", on_click=pick_token)
        st.markdown(viewdata.describe_selection(r, ss.token, ss.layer, m))
        st.caption("Hover over any token to see its reads and the model's guesses there; click one to keep them.")
        # A number box, not a slider over every token: a 1,024-option slider is re-sent and
        # re-drawn on every threshold move (tens of ms in the browser) for no new information.
        st.number_input(f"Selected token: \\#{ss.token} {md(token_in_word(r.tokens, ss.token))} (click one in the text, or type "
                        f"its number, 0-{T - 1})", min_value=0, max_value=T - 1, step=1, key="w_token",
                        on_change=page.sync, args=("w_token", "token"))
    with right:
        panels.show_reads(r, ss.token, ss.layer, viewdata.selected_reads(m, ss.token), m.sink[ss.token], head)
        st.html(tables.multiples_html(r, ss.token, [r.reads(ss.token, layer, head) for layer in range(L)]))
        values, _ = viewdata.metric_values(r, ss.metric, ss.layer, ss.head, none)
        st.html(tables.counts_html(bins, values.tolist()))


def body() -> None:
    st.title("Read a text")
    if not state.presenting():           # on a projector the legend says it; the text needs the room
        st.caption("Colour: how surprised the RNN was. Frame: the token entered the KV cache. Arc: what a "
                   "token's attention read (hover over a token; click to keep it).")
    bundle = models.get_bundle()
    restore_from_url(bundle)
    cleaned = inputs.text_input(models.input_chars(bundle))
    for note in ss.notices + cleaned.notices:
        st.warning(note)
    if cleaned.empty:
        # No text, no link to one: the address bar (and "Copy link") must not still name the last.
        if st.query_params.to_dict():
            st.query_params.clear()
        st.info("Paste some text above, upload a .txt, or pick a preset to begin: the model will show "
                "which tokens surprised it and which ones it kept in its KV cache.")
        return
    threshold_view(bundle, cleaned.text)


@st.fragment
def threshold_view(bundle: models.Bundle, text: str) -> None:
    """Everything a threshold, layer or token choice changes. A fragment: moving a slider
    reruns (and re-sends to the browser) only this part, not the text box above it. A fragment
    rerun does not pass through the page's guard, so it has its own."""
    page.guard(lambda: _threshold_view(bundle, text))


def _threshold_view(bundle: models.Bundle, text: str) -> None:
    panels.page_css()
    entry = results.text_entry(bundle, text)
    with st.spinner("Reading the text…"):
        first_view(bundle, entry, text)
    # On the first screen: the chart's headline, the text with its cache and reads, and beside it
    # the threshold and view choices; in presenter mode the text takes the whole width and the
    # choices follow it. The figures, the options and the chart come after (filled later).
    presenting = state.presenting()
    top, headline = st.container(), st.empty()
    if presenting:
        view, side = st.container(), st.container()
    else:
        view, side = st.columns([3, 2])
    figures, options = st.container(), st.container()
    with side:
        taus = controls(bundle, options, narrow=not presenting)
        right = st.container()
    layers, off = (ss.layer,), results.grid_taus(bundle, TAU_GRID[-1])
    with view, st.spinner("Reading the text…"):
        r = results.result_for(bundle, entry, taus, ss.token, layers)     # the view first; the rest below
        # No cache's per-token losses (what the cache bought, in the tooltips) when already at
        # hand; the first view of a new text does not wait for them unless their colours are asked.
        none = results.stored_result(bundle, entry, off)
        if none is None and ss.metric == "bought":
            none = results.result_for(bundle, entry, off, ss.token, layers)
    if r.notice:
        top.warning(r.notice)
    token_panel(bundle, r, none, view, right)
    with figures:
        st.caption(f"{len(r.tokens):,} tokens read (limit {models.max_tokens(bundle.cfg):,}).")
        panels.show_readout(r)
    save_to_url(text)
    chart_view.curves_part(bundle, entry, r, headline)


page.guard(body)
