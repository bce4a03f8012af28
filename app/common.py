"""What every page shares: session defaults, the sidebar, presenter type, and an error guard."""
from __future__ import annotations

import logging
import traceback
from typing import Callable

import streamlit as st

from app import engine
from app.presets import DEFAULT_PRESET, PRESETS
from ham_core.errors import HAMInputError

log = logging.getLogger("ham_lab")

DEFAULTS = {
    "text": PRESETS[DEFAULT_PRESET],   # the text every page reads (not a widget key)
    "preset": DEFAULT_PRESET,          # None once the user edits the text
    "tau_index": None,                 # position on the threshold slider (None: middle)
    "layer": 0,
    "metric": "min",
    "head": 0,
    "token": None,
    "notices": [],
    "params_loaded": False,
}


def init_state() -> None:
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = list(value) if isinstance(value, list) else value


def presenter_css() -> None:
    if st.session_state.get("presenter"):
        st.markdown("<style>html{font-size:130%}.ham-view{--ham-size:1.35rem !important}"
                    "h1{font-size:3rem !important}</style>", unsafe_allow_html=True)


def sidebar() -> None:
    with st.sidebar:
        st.toggle("Presenter mode (larger type)", key="presenter")
        guard(_model_facts)
    presenter_css()


def _model_facts() -> None:
    try:
        b = engine.get_bundle()
    except HAMInputError as exc:
        st.error(f"The model could not be loaded: {exc}")
        return
    cfg = b.cfg
    st.markdown(
        f"**Model** {engine.format_params(b.n_params)} parameters · {cfg.n_layers} layers × "
        f"{cfg.n_heads} heads of {cfg.head_dim}  \n**Device** {b.device}  \n"
        f"**Token limit** {engine.max_tokens(cfg):,} tokens per text"
    )
    if not b.trained:
        st.warning(b.notice)
    st.caption("Light / dark theme: ⋮ menu → Settings (both themes come from .streamlit/config.toml).")


def md(text: str) -> str:
    """Escape user text for st.markdown (which never renders raw HTML, but does render markdown)."""
    return "".join("\\" + ch if ch in "\\`*_{}[]()<>#+-.!|~$" else ch for ch in text)


def _sync(widget: str, target: str) -> None:
    st.session_state[target] = st.session_state[widget]


def synced(fn, label, key, target, **kw):
    """A widget whose value lives in a plain session key, so it survives page switches
    (Streamlit forgets the state of widgets that are not drawn)."""
    if key not in st.session_state:
        st.session_state[key] = st.session_state[target]
    return fn(label, key=key, on_change=_sync, args=(key, target), **kw)


def tau_slider(key: str = "w_tau"):
    """The global threshold, on the grid the sweep computed (shared by all pages)."""
    from app.results import DEFAULT_TAU, TAU_GRID, tau_label

    if st.session_state.tau_index is None:
        st.session_state.tau_index = TAU_GRID.index(DEFAULT_TAU)
    return synced(st.select_slider, "Threshold τ (cache a token when the RNN's surprise ≥ τ)", key, "tau_index",
                  options=list(range(len(TAU_GRID))), format_func=lambda i: tau_label(TAU_GRID[i]),
                  help="0 caches every token (Transformer-like); above 2 nothing (pure RNN).")


def guard(body: Callable[[], None]) -> None:
    """Run a page; bad input becomes a one-line message, anything else a short apology
    (the traceback goes to the server log, never to the audience)."""
    try:
        body()
    except HAMInputError as exc:
        st.error(str(exc))
    except Exception as exc:  # noqa: BLE001 - the page must keep working for the next input
        log.error("page failed: %s", traceback.format_exc())
        st.error(f"Something went wrong while drawing this view ({type(exc).__name__}). "
                 "Try another text or threshold; the details are in the server log.")
