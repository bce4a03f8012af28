"""What every page is built with: the error guard, the sidebar (presenter toggle, the model in
use), presenter type, widgets whose value outlives a page switch, the threshold slider, and the
opening every text page shares (`page_text`)."""
from __future__ import annotations

import logging
import traceback
from pathlib import Path
from typing import Callable, Optional

import streamlit as st

from app.drawing.text import md
from app.engine import models
from app.engine.models import Bundle, HAMInputError
from app.session import state
from app.session.state import Key
from app.settings import ROOT, TAU_GRID, tau_label

log = logging.getLogger("ham_lab")

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


def presenter_css() -> None:
    st.markdown(f"<style>{COMPACT_CSS}{NO_CUT_CSS}{PRESENTER_CSS if state.presenting() else ''}</style>",
                unsafe_allow_html=True)


def _where(path) -> str:
    """A model folder as the teacher would find it: relative to the project when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _model_line(name: str, folder, n_params: int, cfg) -> str:
    """'**Model** assets/lm: 4.3M parameters · 4 layers × 4 heads of 64' (markdown)."""
    return (f"**{name}** {md(_where(folder))}: {models.format_params(n_params)} parameters · "
            f"{cfg.n_layers} layers × {cfg.n_heads} heads of {cfg.head_dim}")


def _language_model() -> None:
    try:
        b = models.get_bundle()
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


def _model_facts(b: Bundle) -> None:
    device = b.device if b.loaded or not b.trained else "known once the model has loaded (a few seconds)"
    st.markdown(f"{_model_line('Model', models.model_dir(), b.n_params, b.cfg)}  \n**Device** {device}  \n"
                f"**Token limit** {models.max_tokens(b.cfg):,} tokens per text")


def _recall_model() -> None:
    try:
        model, task, trained = models.get_recall_bundle()
    except HAMInputError as exc:
        st.error(f"The recall model could not be loaded: {exc}")
        return
    name = "Recall model" + ("" if trained else " (untrained stand-in)")
    st.markdown(f"{_model_line(name, models.recall_dir(), model.num_parameters(), model.cfg)}  \n"
                f"**Trained on** {task.get('n_pairs', '?')} pairs in {task.get('length', '?')} tokens  \n"
                f"**Device** {models.device_name(model)}")


def sidebar(page: str = "read") -> None:
    """Presenter toggle and the model the current page uses (the recall lab has its own)."""
    with st.sidebar:
        # A plain session key behind the toggle: a run that switches page before the sidebar is
        # drawn (a tour step) would otherwise drop the toggle's state and the larger type with it.
        synced(st.toggle, "Presenter mode (larger type)", Key.W_PRESENTER, Key.PRESENTING)
        guard(_recall_model if page == "recall" else _language_model)
        st.caption("Light or dark: ⋮ menu (top right) → Settings.")
    presenter_css()


def synced(fn, label, key, target, **kw):
    """A widget whose value lives in a plain session key, so it survives page switches
    (Streamlit forgets the state of widgets that are not drawn). key, target: Key names."""
    state.seed_widget(key, target)
    return fn(label, key=key, on_change=state.sync, args=(key, target), **kw)


def tau_slider(key: str = Key.W_TAU):
    """The global threshold, on the grid the sweep computed (shared by all pages)."""
    state.set_tau_index(state.tau_index())
    return synced(st.select_slider, "Threshold τ: cache a token when its surprise ≥ τ", key, Key.TAU_INDEX,
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


def page_text(title: str, caption: str) -> Optional[tuple[Bundle, str]]:
    """A page's opening: its title and caption, the language model, and the text every page reads;
    None (with a line saying where to paste one) when there is no text."""
    st.title(title)
    st.caption(caption)
    bundle = models.get_bundle()
    text = state.text()
    if not text.strip():
        st.info("There is no text yet: paste one on the Read page or pick a preset there.")
        return None
    return bundle, text
