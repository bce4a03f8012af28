"""One session's view, in st.session_state: every key the app uses (class Key), their defaults,
and the typed accessors every page reads and sets them by (one `tau()`, one `text()`), so no
page assumes a value another page set. Only this module touches st.session_state
(tests/app/test_session_keys.py holds that).

Widget keys (W_*) are the widgets' own, passed as `key=`; the plain keys outlive a page switch
(Streamlit forgets the state of widgets that are not drawn: `sync`/`seed_widget` copy them).
"""
from __future__ import annotations

from typing import Any, Optional

import streamlit as st

from app.settings import DEFAULT_TAU_INDEX, TAU_GRID
from app.settings.presets import DEFAULT_PRESET, PRESETS

READS_MEAN = "averaged over heads"          # the Reads choice that shows the heads' mean


class Key:
    """The name of every session key, each once."""

    # the view every page shares
    TEXT, PRESET, TAU_INDEX = "text", "preset", "tau_index"
    LAYER, METRIC, HEAD, TOKEN = "layer", "metric", "head", "token"
    READS, PALETTE, SCALE_MODE, PRESENTING = "reads", "palette", "scale_mode", "presenting"
    MARKS, LAYER_TAUS = "marks", "layer_taus"
    # the text's input and what was said about it
    NOTICES, UPLOAD_NOTICES, INPUT_CHARS = "notices", "upload_notices", "input_chars"
    # the Read page: the link read once, the view chosen once per text, the link's stored text
    LINK_LOADED, FIRST_VIEW_FOR, LINK_KEY = "params_loaded", "first_view_for", "link_key"
    # pages' own working state
    STEP_TAPE, STEP_TIMER, CURVE_STAGE, RECALL_DONE = "step_tape", "step_timer", "curve_stage", "recall_done"
    LAB_TRAINER, LAB_POLLING = "lab_trainer", "lab_polling"
    TOUR, TOUR_PRESET, TOUR_OFFERED, TOUR_DECLINED, TOUR_GOTO = (
        "tour", "tour_preset", "tour_offered", "tour_declined", "tour_goto")
    # widgets whose value the app reads or sets through the session
    W_TEXT, W_PRESET, W_UPLOAD, W_PRESENTER = "w_text", "w_preset", "w_upload", "presenter"
    W_OPTIONS = "w_options"              # the Read page's folded options (drawn only when open)
    W_TAU, W_TAU_STEP = "w_tau", "w_tau_step"
    W_LAYER, W_LAYER_HOW, W_LAYER_STEP = "w_layer", "w_layer_how", "w_layer_step"
    W_METRIC, W_HEAD, W_TOKEN, W_MARKS = "w_metric", "w_head", "w_token", "w_marks"
    W_SCALE_MODE, W_PALETTE, W_READS = "w_scale_mode", "w_scale", "w_reads"
    W_VIEW, W_VIEW_HOW = "w_view", "w_view_how"
    W_PAIRS, W_LENGTH, W_SEED, W_RECALL_N, W_TARGET = "w_pairs", "w_length", "w_seed", "w_recall_n", "w_target"
    W_LAB_SEED, W_LAB_TAU, W_LAB_SPEED = "w_lab_seed", "w_lab_tau", "w_lab_speed"


KEYS = frozenset(v for k, v in vars(Key).items() if k.isupper())
TAU_SLIDERS = (Key.W_TAU, Key.W_TAU_STEP)
RECALL_WIDGETS = (Key.W_PAIRS, Key.W_LENGTH, Key.W_SEED, Key.W_RECALL_N, Key.W_TARGET)

DEFAULTS = {
    Key.TEXT: PRESETS[DEFAULT_PRESET],   # the text every page reads (not a widget key)
    Key.PRESET: DEFAULT_PRESET,          # None once the user edits the text
    Key.TAU_INDEX: None,                 # position on the threshold slider (None: the default threshold)
    Key.LAYER: 0,
    Key.METRIC: "min",
    Key.HEAD: 0,
    Key.TOKEN: None,
    Key.READS: READS_MEAN,               # whose reads are drawn, on every page (see reads_head)
    Key.PALETTE: "viridis",              # the colour scale every page uses (see colour_scale)
    Key.SCALE_MODE: "spread",
    Key.NOTICES: [],
    Key.LINK_LOADED: False,
    Key.PRESENTING: False,               # presenter mode (the "presenter" toggle)
    Key.MARKS: "chosen layer",           # the Read page's cache marks (or "count of layers")
    Key.LAYER_TAUS: {},                  # per-layer threshold overrides, layer -> grid index
    Key.UPLOAD_NOTICES: [],
    Key.FIRST_VIEW_FOR: None,            # the text whose first view was chosen (app.session.page_state)
    Key.LINK_KEY: (None, None),
    Key.STEP_TAPE: None, Key.STEP_TIMER: False, Key.CURVE_STAGE: None, Key.RECALL_DONE: None,
    Key.LAB_TRAINER: None, Key.LAB_POLLING: False,
    Key.TOUR: None, Key.TOUR_PRESET: None, Key.TOUR_OFFERED: False, Key.TOUR_DECLINED: False, Key.TOUR_GOTO: None,
}
# Widgets' defaults where the app reads them before (or without) the widget: never put in the
# session by init_state, since a widget key there would be taken as the widget's value.
WIDGET_DEFAULTS = {Key.W_LAB_SEED: 0, Key.W_LAB_TAU: 0.0}

PRESENTER_CHART_SCALE = 1.5      # chart fonts are in pixels, not rem, so presenter mode scales them itself
PRESENTER_DIAGRAM_SCALE = 1.3


def init_state() -> None:
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = list(value) if isinstance(value, list) else value


def value(key: str, default: Any = None) -> Any:
    """A key's value (its default when unset); app.session's own, as `put` is."""
    return st.session_state.get(key, DEFAULTS.get(key, WIDGET_DEFAULTS.get(key, default)))


def put(**values: Any) -> None:
    """Set keys given by their Key attribute name: put(TOKEN=3, W_TOKEN=3)."""
    for name, value in values.items():
        st.session_state[getattr(Key, name)] = value


# Widgets whose value lives in a plain key (app.widgets.page.synced) or is read as is.
def sync(widget: str, target: str) -> None:
    """Copy a widget's value to the plain key that outlives it (a widget's on_change)."""
    st.session_state[target] = st.session_state[widget]


def seed_widget(widget: str, target: str) -> None:
    """A widget drawn anew starts at its plain key's value."""
    if widget not in st.session_state:
        st.session_state[widget] = st.session_state[target]


def widget_value(widget: str, default: Any = None) -> Any:
    """A widget's current value (a click may arrive without the other widgets' states)."""
    return st.session_state.get(widget, default)


def take(key: str) -> Any:
    """A key's value, dropping the key (a one-time message between runs)."""
    return st.session_state.pop(key, None)


def forget(*keys: str) -> None:
    """Drop keys (a widget dropped starts again at its default)."""
    for key in keys:
        st.session_state.pop(key, None)


# The text.
def text() -> str:
    """The text every page reads."""
    return value(Key.TEXT)


def preset() -> Optional[str]:
    """The preset shown (None: the user's own text)."""
    return value(Key.PRESET)


def set_text(value: str, preset_name: Optional[str], box: bool = False) -> None:
    """The text every page reads, and the preset it is (None: the user's own); box: the text
    box and the preset box show it too."""
    put(TEXT=value, PRESET=preset_name)
    if box:
        put(W_TEXT=value, W_PRESET=preset_name)


def set_box(value: str, preset_box: str) -> None:
    """What the text box and the preset box show."""
    put(W_TEXT=value, W_PRESET=preset_box)


def seed_boxes(own: str) -> None:
    """The text box and the preset box, drawn anew, show the text (own: the preset box's choice
    for the user's own text)."""
    seed_widget(Key.W_TEXT, Key.TEXT)
    if Key.W_PRESET not in st.session_state:
        st.session_state[Key.W_PRESET] = preset() if preset() in PRESETS else own


def box_text() -> str:
    return value(Key.W_TEXT)


def preset_box() -> Optional[str]:
    return value(Key.W_PRESET)


def uploaded():
    """The file in the upload box (None: none)."""
    return value(Key.W_UPLOAD)


def input_chars(default: int) -> int:
    """The most characters the text input reads (set by the page that draws it)."""
    return value(Key.INPUT_CHARS, default)


def set_input_chars(n: int) -> None:
    put(INPUT_CHARS=n)


def notices() -> list:
    """What the page says about the text (a link's text not found, ...)."""
    return value(Key.NOTICES)


def upload_notices() -> list:
    """What was said about the last paste or upload (cut, not UTF-8, ...), until the next one."""
    return value(Key.UPLOAD_NOTICES)


def set_notices(page: Optional[list] = None, upload: Optional[list] = None) -> None:
    if page is not None:
        put(NOTICES=page)
    if upload is not None:
        put(UPLOAD_NOTICES=upload)


# The threshold.
def tau_index() -> int:
    """The threshold's position on TAU_GRID (the slider's stop), the default until one is chosen."""
    i = value(Key.TAU_INDEX)
    return DEFAULT_TAU_INDEX if i is None else int(i)


def tau() -> float:
    """The threshold every page uses: one value, in every layer, from TAU_GRID."""
    return TAU_GRID[tau_index()]


def set_tau_index(i: int, sliders: bool = False) -> None:
    """sliders: the threshold sliders show it too (a tour step moving the threshold)."""
    put(TAU_INDEX=i)
    if sliders:
        for key in TAU_SLIDERS:
            st.session_state[key] = i


# Layer, token and what colours them.
def layer() -> int:
    return value(Key.LAYER)


def token() -> Optional[int]:
    """The selected token (None: the page picks one)."""
    return value(Key.TOKEN)


def set_view(layer_: Optional[int] = None, token_: Optional[int] = None, widgets: tuple[str, ...] = ()) -> None:
    """Select a layer and/or token (None leaves it); `widgets`: widget keys (Key.W_LAYER*,
    Key.W_TOKEN) that show the new value too."""
    for value, key in ((layer_, Key.LAYER), (token_, Key.TOKEN)):
        if value is not None:
            st.session_state[key] = value
    for w in widgets:
        st.session_state[w] = token_ if w == Key.W_TOKEN else layer_


def unselect_token() -> None:
    """No token selected: the page picks one (a new text)."""
    put(TOKEN=None)


def choose_view_again() -> None:
    """No token selected and no first view chosen: the page chooses where the cache is at work
    (a tour step)."""
    put(TOKEN=None, W_TOKEN=None, FIRST_VIEW_FOR=None)


def token_box() -> Optional[int]:
    """The Read page's token number box."""
    return value(Key.W_TOKEN)


def set_token_box(i: int) -> None:
    put(W_TOKEN=i)


def metric() -> str:
    return value(Key.METRIC)


def set_metric(value: str) -> None:
    put(METRIC=value, W_METRIC=value)


def head() -> int:
    return value(Key.HEAD)


def set_link_view(layer_: int, metric_: str, head_: int, token_: Optional[int]) -> None:
    """The view a link names."""
    put(LAYER=layer_, METRIC=metric_, HEAD=head_, TOKEN=token_)


def count_marks() -> bool:
    """Whether the Read page marks the count of layers caching a token (not the chosen layer's)."""
    return value(Key.MARKS) == "count of layers"


def layer_override(layer_: int) -> int:
    """The grid index of a layer's own threshold (-1: the global one)."""
    return value(Key.LAYER_TAUS).get(layer_, -1)


def seed_layer_override(layer_: int, widget: str) -> None:
    """A per-layer threshold widget drawn anew (its expander opened) starts at the layer's override."""
    if widget not in st.session_state:
        st.session_state[widget] = layer_override(layer_)


def set_layer_override(layer_: int, widget: str) -> None:
    """A per-layer threshold widget's on_change: its value outlives the folded widget."""
    st.session_state[Key.LAYER_TAUS] = {**value(Key.LAYER_TAUS), layer_: st.session_state[widget]}


def presenting() -> bool:
    return bool(value(Key.PRESENTING))


def chart_scale() -> float:
    """Font scale for the Plotly charts (titles, ticks, legends, annotations)."""
    return PRESENTER_CHART_SCALE if presenting() else 1.0


def diagram_scale() -> float:
    """Font scale of the layer diagram."""
    return PRESENTER_DIAGRAM_SCALE if presenting() else 1.0


def token_size() -> str:
    """Font size of a token view."""
    return "1.2rem" if presenting() else "0.95rem"


def reads_label(head_: Optional[int]) -> str:
    """The Reads choice showing one head's reads (None: the heads' mean)."""
    return READS_MEAN if head_ is None else f"head {head_ + 1}"


def reads_head() -> Optional[int]:
    """The head whose reads every page draws (None: the heads' mean): one choice, so the Read
    page and How it works quote the same attention for the same token and layer."""
    choice = value(Key.READS)
    return None if choice == READS_MEAN else int(choice.split()[-1]) - 1


def set_reads(head_: Optional[int]) -> None:
    """Whose reads are drawn; the Reads radio, drawn only in the open options, starts from it."""
    put(READS=reads_label(head_))
    forget(Key.W_READS)


def colour_scale() -> tuple[str, str]:
    """(palette, mode) of the colour scale, chosen on the Read page and used by every page."""
    return value(Key.PALETTE), value(Key.SCALE_MODE)
