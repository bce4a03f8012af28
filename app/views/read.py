"""Read a text: token view (surprise, cache, reads), thresholds, KV readout, memory vs quality."""
from __future__ import annotations

from typing import Optional

import streamlit as st

from app.drawing import tables, viewdata
from app.drawing.text import md
from app.drawing.token_view import token_in_word
from app.engine import models, results, store
from app.session import links, page_state, state, text_store
from app.session.state import Key, reads_head, reads_label
from app.settings import METRICS, TAU_GRID, tau_label
from app.settings.presets import PRESETS
from app.widgets import chart_view, clickview, inputs, page, panels

def restore_from_url(bundle: models.Bundle) -> None:
    """First run of a session: the query parameters reopen a shared view."""
    if page_state.link_loaded():
        return
    page_state.set_link_loaded()
    view = links.parse_params(st.query_params.to_dict(), bundle.cfg.n_layers, bundle.cfg.n_heads)
    if view.preset:
        state.set_text(PRESETS[view.preset], view.preset)
    elif view.text_hash:
        text = text_store.recall_text(view.text_hash)
        if text is None:
            state.set_notices(["This link points to a pasted text that is not stored on this server (texts are kept "
                          "for a limited time, and some servers keep none); paste the text again."])
        else:
            state.set_text(text, None)
    if view.tau is not None:
        state.set_tau_index(min(range(len(TAU_GRID)), key=lambda i: abs(TAU_GRID[i] - view.tau)))
    state.set_link_view(view.layer, view.metric, view.head, view.token)
    state.set_reads(view.reads)
    if view.token is not None:                 # the link chose the token: no first-view choice
        page_state.set_first_view_for(store.text_key(state.text()))


def first_view(bundle: models.Bundle, entry: results.TextEntry, text: str) -> None:
    """Once per text: show the layer and token where the cache is seen at work, chosen by
    measurement at the global threshold (results.first_view), unless the user or a link chose."""
    key = store.text_key(text)
    if page_state.first_view_for() == key:
        return
    page_state.set_first_view_for(key)
    L = bundle.cfg.n_layers
    pick = results.first_view(results.result_for(bundle, entry, results.grid_taus(bundle, state.tau()),
                                                 layers=tuple(range(L))))
    if pick is not None:
        state.set_view(pick.layer, pick.query, widgets=(Key.W_LAYER, Key.W_TOKEN))
        state.set_reads(pick.head)


def link_key(text: str):
    """The stored text's key for links (None for a preset, or when this server keeps no texts);
    stored once per text and session, not on every slider move."""
    if state.preset():
        return None
    key = store.text_key(text)
    if page_state.link_key()[0] != key:
        page_state.set_link_key(key, text_store.remember_text(text))
    return page_state.link_key()[1]


def save_to_url(text: str) -> None:
    key = link_key(text)
    if not state.preset() and key is None:
        st.caption("This server does not keep pasted texts, so a link to this view opens the default text.")
    view = links.ViewState(preset=state.preset(), text_hash=key,
                           tau=state.tau(), layer=state.layer(), metric=state.metric(), head=state.head(),
                           token=state.token(), reads=reads_head())
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
        page.synced(st.selectbox, "Layer", Key.W_LAYER, Key.LAYER, options=list(range(cfg.n_layers)),
               format_func=lambda l: f"layer {l + 1}")
    with c[2]:
        page.synced(st.selectbox, "Colour by", Key.W_METRIC, Key.METRIC, options=list(METRICS),
               format_func=METRICS.get)
    with c[3]:
        page.synced(st.selectbox, "Head", Key.W_HEAD, Key.HEAD, options=list(range(cfg.n_heads)),
               format_func=lambda h: f"head {h + 1}", disabled=state.metric() != "head")
    with options:
        folded = st.expander("Per-layer thresholds and display options", key=Key.W_OPTIONS, on_change="rerun")
    if folded.open:          # drawn only when open: eight widgets the first view need not wait for
        more_options(cfg, folded)
    return tuple(state.tau() if state.layer_override(l) < 0 else TAU_GRID[state.layer_override(l)]
                 for l in range(cfg.n_layers))


def more_options(cfg, where) -> None:
    """The per-layer thresholds and display options, in the open expander `where`. Each value lives
    in a plain key (page.synced), so closing the expander keeps it."""
    with where:
        for l, col in enumerate(st.columns(cfg.n_layers)):
            key = f"w_over_{l}"
            state.seed_layer_override(l, key)
            col.select_slider(f"Layer {l + 1}", options=[-1, *range(len(TAU_GRID))], key=key,
                              on_change=state.set_layer_override, args=(l, key),
                              format_func=lambda i: "global" if i < 0 else tau_label(TAU_GRID[i]))
        d = st.columns(4)
        page.synced(d[0].radio, "Cache marks", Key.W_MARKS, Key.MARKS, options=["chosen layer", "count of layers"],
                    horizontal=True)
        with d[1]:
            page.synced(st.radio, "Colour scale", Key.W_SCALE_MODE, Key.SCALE_MODE, options=list(viewdata.SCALE_MODES),
                          horizontal=True, format_func=viewdata.SCALE_MODES.get,
                          help="spread: each colour holds about the same share of this layer's tokens (edges in "
                               "the legend); fixed: the same range for every layer and text. Every page uses it.")
        with d[2]:
            page.synced(st.radio, "Palette", Key.W_PALETTE, Key.PALETTE, options=["viridis", "cividis"], horizontal=True)
        page.synced(d[3].radio, "Reads", Key.W_READS, Key.READS,
                      options=[reads_label(h) for h in (None, *range(cfg.n_heads))], horizontal=True)


def pick_token(i: int) -> None:
    state.set_view(token_=i, widgets=(Key.W_TOKEN,))


def token_panel(bundle: models.Bundle, r: results.TextResult, none: Optional[results.TextResult], left, right) -> None:
    """The token view and what it says in `left`; the selected token's reads and the colour
    counts in `right` (containers)."""
    T, L = len(r.tokens), r.cached.shape[0]
    if state.token() is None or state.token() >= T:
        state.set_view(token_=max([i for i, t in enumerate(r.tokens) if t.strip()] or [T - 1]))
    token, layer = state.token(), state.layer()
    if state.token_box() != token:
        state.set_token_box(token)
    metric, head_shown = state.metric(), state.head()
    palette, mode = state.colour_scale()
    head = reads_head()
    m = r.read_map(layer, head)
    with left:
        data, bins = viewdata.view_data(
            r, metric=metric, layer=layer, head=head_shown, count_mode=state.count_marks(),
            scale=palette, mode=mode, selected=token,
            read_map=m, none=none, shown=lambda ids: results.shown_tokens(bundle, ids),
            font_size=state.token_size())
        clickview.show(data, key=Key.W_VIEW, on_click=pick_token)
        st.markdown(viewdata.describe_selection(r, token, layer, m))
        st.caption("Hover over any token to see its reads and the model's guesses there; click one to keep them.")
        # A number box, not a slider over every token: a 1,024-option slider is re-sent and
        # re-drawn on every threshold move (tens of ms in the browser) for no new information.
        st.number_input(f"Selected token: \\#{token} {md(token_in_word(r.tokens, token))} (click one in the text, or type "
                        f"its number, 0-{T - 1})", min_value=0, max_value=T - 1, step=1, key=Key.W_TOKEN,
                        on_change=state.sync, args=(Key.W_TOKEN, Key.TOKEN))
    with right:
        panels.show_reads(r, token, layer, viewdata.selected_reads(m, token), m.sink[token], head)
        st.html(tables.multiples_html(r, token, [r.reads(token, l, head) for l in range(L)]))
        values, _ = viewdata.metric_values(r, metric, layer, head_shown, none)
        st.html(tables.counts_html(bins, values.tolist()))


def body() -> None:
    st.title("Read a text")
    if not state.presenting():           # on a projector the legend says it; the text needs the room
        st.caption("Colour: how surprised the RNN was. Frame: the token entered the KV cache. Arc: what a "
                   "token's attention read (hover over a token; click to keep it).")
    bundle = models.get_bundle()
    restore_from_url(bundle)
    cleaned = inputs.text_input(models.input_chars(bundle))
    for note in state.notices() + cleaned.notices:
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
    layers, off = (state.layer(),), results.grid_taus(bundle, TAU_GRID[-1])
    with view, st.spinner("Reading the text…"):
        r = results.result_for(bundle, entry, taus, state.token(), layers)     # the view first; the rest below
        # No cache's per-token losses (what the cache bought, in the tooltips) when already at
        # hand; the first view of a new text does not wait for them unless their colours are asked.
        none = results.stored_result(bundle, entry, off)
        if none is None and state.metric() == "bought":
            none = results.result_for(bundle, entry, off, state.token(), layers)
    if r.notice:
        top.warning(r.notice)
    token_panel(bundle, r, none, view, right)
    with figures:
        st.caption(f"{len(r.tokens):,} tokens read (limit {models.max_tokens(bundle.cfg):,}).")
        panels.show_readout(r)
    save_to_url(text)
    chart_view.curves_part(bundle, entry, r, headline)


page.guard(body)
