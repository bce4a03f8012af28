"""One session's view, in st.session_state: its keys and defaults, and the typed accessors every
page reads them by (one `tau()`, one `text()`), so no page assumes a value another page set.

Widget keys (w_*) are the widgets' own; the plain keys below outlive a page switch (Streamlit
forgets the state of widgets that are not drawn: app.widgets.page.synced copies them here).
"""
from __future__ import annotations

from typing import Optional

import streamlit as st

from app.settings import DEFAULT_TAU_INDEX, TAU_GRID
from app.settings.presets import DEFAULT_PRESET, PRESETS

READS_MEAN = "averaged over heads"          # the Reads choice that shows the heads' mean

DEFAULTS = {
    "text": PRESETS[DEFAULT_PRESET],   # the text every page reads (not a widget key)
    "preset": DEFAULT_PRESET,          # None once the user edits the text
    "tau_index": None,                 # position on the threshold slider (None: the default threshold)
    "layer": 0,
    "metric": "min",
    "head": 0,
    "token": None,
    "reads": READS_MEAN,               # whose reads are drawn, on every page (see reads_head)
    "palette": "viridis",              # the colour scale every page uses (see colour_scale)
    "scale_mode": "spread",
    "notices": [],
    "params_loaded": False,
    "presenting": False,               # presenter mode (the "presenter" toggle)
}

PRESENTER_CHART_SCALE = 1.5      # chart fonts are in pixels, not rem, so presenter mode scales them itself
PRESENTER_DIAGRAM_SCALE = 1.3


def init_state() -> None:
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = list(value) if isinstance(value, list) else value


def text() -> str:
    """The text every page reads."""
    return st.session_state.get("text", DEFAULTS["text"])


def tau_index() -> int:
    """The threshold's position on TAU_GRID (the slider's stop), the default until one is chosen."""
    i = st.session_state.get("tau_index")
    return DEFAULT_TAU_INDEX if i is None else int(i)


def tau() -> float:
    """The threshold every page uses: one value, in every layer, from TAU_GRID."""
    return TAU_GRID[tau_index()]


def presenting() -> bool:
    return bool(st.session_state.get("presenting"))


def chart_scale() -> float:
    """Font scale for the Plotly charts (titles, ticks, legends, annotations)."""
    return PRESENTER_CHART_SCALE if presenting() else 1.0


def diagram_scale() -> float:
    """Font scale of the layer diagram."""
    return PRESENTER_DIAGRAM_SCALE if presenting() else 1.0


def token_size() -> str:
    """Font size of a token view."""
    return "1.2rem" if presenting() else "0.95rem"


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
