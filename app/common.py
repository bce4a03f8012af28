"""What every page shares: session defaults, the sidebar, presenter type, and an error guard."""
from __future__ import annotations

import logging
import traceback
from typing import Callable, Optional

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
    "reads": "averaged over heads",     # whose reads are drawn, on every page (see reads_head)
    "palette": "viridis",               # the colour scale every page uses (see colour_scale)
    "scale_mode": "spread",
    "notices": [],
    "params_loaded": False,
    "presenting": False,               # presenter mode (the "presenter" toggle)
}


def init_state() -> None:
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = list(value) if isinstance(value, list) else value


PRESENTER_CHART_SCALE = 1.5      # chart fonts are in pixels, not rem, so presenter mode scales them itself
PRESENTER_DIAGRAM_SCALE = 1.3

# Always: a metric's value and label, and a button's label, wrap instead of being cut with an
# ellipsis (at presenter sizes, or in narrow columns, they would lose their ends).
# Always: the page starts near the top (Streamlit leaves 6rem for its header, whose one menu sits
# at the right) and titles are one modest line, so the text itself is on the first screen.
COMPACT_CSS = ('[data-testid="stMainBlockContainer"]{padding-top:2.6rem !important}'
               'h1{font-size:2rem !important;padding:0 0 0.3rem 0 !important}')
NO_CUT_CSS = ('[data-testid="stMetricValue"] .stMarkdownEllipsis, [data-testid="stMetricLabel"] .stMarkdownEllipsis,'
              '[data-testid="stMetricValue"] p, [data-testid="stMetricLabel"] p, button .stMarkdownEllipsis, button p'
              '{white-space:normal !important;overflow:visible !important;text-overflow:clip !important}')
# Presenter mode: every text in rem grows with the root size; the token views and headings are
# sized explicitly; metric values are held to a size that fits five across at 1280 pixels.
PRESENTER_CSS = ("html{font-size:130%}.ham-view{--ham-size:1.2rem !important}h1{font-size:2.4rem !important}"
                 '[data-testid="stMetricValue"]{font-size:1.9rem !important}'
                 '[data-testid="stMainBlockContainer"]{padding-left:1.5rem !important;padding-right:1.5rem !important;'
                 'max-width:100% !important}')


def presenting() -> bool:
    return bool(st.session_state.get("presenting"))


def chart_scale() -> float:
    """Font scale for the Plotly charts (titles, ticks, legends, annotations)."""
    return PRESENTER_CHART_SCALE if presenting() else 1.0


def token_size() -> str:
    """Font size of a token view."""
    return "1.2rem" if presenting() else "0.95rem"


def presenter_css() -> None:
    st.markdown(f"<style>{COMPACT_CSS}{NO_CUT_CSS}{PRESENTER_CSS if presenting() else ''}</style>",
                unsafe_allow_html=True)


def _where(path) -> str:
    """A model folder as the teacher would find it: relative to the project when inside it."""
    from pathlib import Path

    path = Path(path).resolve()
    root = Path(__file__).resolve().parent.parent
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _model_line(name: str, folder, n_params: int, cfg) -> str:
    """'**Model** assets/lm: 4.3M parameters · 4 layers × 4 heads of 64' (markdown)."""
    return (f"**{name}** {md(_where(folder))}: {engine.format_params(n_params)} parameters · "
            f"{cfg.n_layers} layers × {cfg.n_heads} heads of {cfg.head_dim}")


def _language_model() -> None:
    try:
        b = engine.get_bundle()
    except HAMInputError as exc:
        st.error(f"The model could not be loaded: {exc}")
        return
    if b.load_error:
        st.error(f"The model could not be loaded: {b.load_error}")
        return
    if b.loaded or not b.trained:
        _model_facts(b)
    else:     # the first view came from shipped results: say where it runs once the model is in
        st.fragment(run_every=2.0)(_model_facts)(b)
    if not b.trained:
        st.warning(b.notice)


def _model_facts(b: "engine.Bundle") -> None:
    device = b.device if b.loaded or not b.trained else "known once the model has loaded (a few seconds)"
    st.markdown(f"{_model_line('Model', engine.model_dir(), b.n_params, b.cfg)}  \n**Device** {device}  \n"
                f"**Token limit** {engine.max_tokens(b.cfg):,} tokens per text")


def _recall_model() -> None:
    from ham_core.model.dispatch import device_label

    try:
        model, task, trained = engine.get_recall_bundle()
    except HAMInputError as exc:
        st.error(f"The recall model could not be loaded: {exc}")
        return
    name = "Recall model" + ("" if trained else " (untrained stand-in)")
    st.markdown(f"{_model_line(name, engine.recall_dir(), model.num_parameters(), model.cfg)}  \n"
                f"**Trained on** {task.get('n_pairs', '?')} pairs in {task.get('length', '?')} tokens  \n"
                f"**Device** {device_label(model.device)}")


def sidebar(page: str = "read") -> None:
    """Presenter toggle and the model the current page uses (the recall lab has its own)."""
    with st.sidebar:
        # A plain session key behind the toggle: a run that switches page before the sidebar is
        # drawn (a tour step) would otherwise drop the toggle's state and the larger type with it.
        synced(st.toggle, "Presenter mode (larger type)", "presenter", "presenting")
        guard(_recall_model if page == "recall" else _language_model)
        st.caption("Light or dark: ⋮ menu (top right) → Settings.")
    presenter_css()


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


READS_MEAN = "averaged over heads"          # the Reads choice that shows the heads' mean


def reads_label(head: Optional[int]) -> str:
    """The Reads choice showing one head's reads (None: the heads' mean)."""
    return READS_MEAN if head is None else f"head {head + 1}"


def reads_head() -> Optional[int]:
    """The head whose reads every page draws (None: the heads' mean): one choice, so the Read
    page and How it works quote the same attention for the same token and layer."""
    choice = st.session_state.get("reads", READS_MEAN)
    return None if choice == READS_MEAN else int(choice.split()[-1]) - 1


def set_reads(head: Optional[int]) -> None:
    st.session_state.reads = st.session_state.w_reads = reads_label(head)


def colour_scale() -> tuple[str, str]:
    """(palette, mode) of the colour scale, chosen on the Read page and used by every page."""
    return st.session_state.get("palette", "viridis"), st.session_state.get("scale_mode", "spread")


def tau_slider(key: str = "w_tau"):
    """The global threshold, on the grid the sweep computed (shared by all pages)."""
    from app.results import DEFAULT_TAU, TAU_GRID, tau_label

    if st.session_state.tau_index is None:
        st.session_state.tau_index = TAU_GRID.index(DEFAULT_TAU)
    return synced(st.select_slider, "Threshold τ: cache a token when its surprise ≥ τ", key, "tau_index",
                  options=list(range(len(TAU_GRID))), format_func=lambda i: tau_label(TAU_GRID[i]),
                  help="The RNN's surprise at a token decides: 0 caches every token (Transformer-like); above 2 "
                       "nothing (a pure RNN).")


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
