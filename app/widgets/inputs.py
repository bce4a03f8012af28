"""The text the pages read: presets, a text area and a .txt upload, all feeding the text every page reads (app.session.state.text)."""
from __future__ import annotations

from contextlib import nullcontext

import streamlit as st

from app.engine import texts
from app.session import state
from app.session.state import Key
from app.settings.presets import PRESETS

OWN = "(your own text)"
# The upload box as small as a button: its drop-zone text (size limit, file type) is in the label.
INPUT_CSS = (f'.st-key-{Key.W_UPLOAD} [data-testid="stFileUploaderDropzoneInstructions"]{{display:none}}'
             f'.st-key-{Key.W_UPLOAD} section{{padding:0.35rem;min-height:0}}')


def _pick_preset() -> None:
    name = state.preset_box()
    if name in PRESETS:
        state.set_text(PRESETS[name], name)
        state.set_box(PRESETS[name], name)
        state.unselect_token()
        state.set_notices(page=[], upload=[])
    else:
        state.set_text(state.text(), None)


def _edit_text() -> None:
    # The box has no max_chars: the browser would drop a longer paste without a word. The paste
    # is cut here instead, to what the token limit can use, and the box shows what is read.
    text, notices = texts.cut_text(state.box_text(), state.input_chars(texts.MAX_CHARS))
    match = [n for n, t in PRESETS.items() if t == text]
    state.set_text(text, match[0] if match else None)
    state.set_box(text, match[0] if match else OWN)
    state.unselect_token()
    state.set_notices(page=[], upload=notices)


def _upload() -> None:
    file = state.uploaded()
    if file is None:
        return
    cleaned = texts.decode_upload(file.getvalue(), state.input_chars(texts.MAX_UPLOAD_BYTES))
    state.set_notices(page=[], upload=cleaned.notices)
    if not cleaned.empty:
        state.set_text(cleaned.text, None)
        state.set_box(cleaned.text, OWN)
        state.unselect_token()


def text_input(max_chars: int = texts.MAX_CHARS) -> texts.CleanText:
    """Draw the input widgets; return the cleaned current text (at most `max_chars`, what the
    token limit can use) and its notices, each once."""
    state.set_input_chars(max_chars)
    state.seed_boxes(OWN)
    preset = state.preset()
    # One row, so the text itself is on the first screen: in presenter mode the row is folded
    # away under the text's name (the class sees the text, the teacher opens it to change it).
    name = preset if preset in PRESETS else "your own text"
    fold = st.expander(f"Text: {name} (change, paste or upload)") if state.presenting() else nullcontext()
    with fold:
        st.html(f"<style>{INPUT_CSS}</style>")
        c = st.columns([2, 4, 1.3], vertical_alignment="bottom")
        c[0].selectbox("Text", [OWN, *PRESETS], key=Key.W_PRESET, on_change=_pick_preset,
                       help="Short texts written for this app; each shows a different kind of memory.")
        c[1].text_area("…or paste your own (Ctrl+Enter reads it)", key=Key.W_TEXT, height=68, on_change=_edit_text,
                       help="Paste anything; press Ctrl+Enter (or click outside) to read it.")
        c[2].file_uploader("…or a .txt file", type=["txt"], key=Key.W_UPLOAD, on_change=_upload,
                           help="A text file of up to 5 MB; the app reads as much of it as its token limit can use.")
    cleaned = texts.clean_text(state.text(), max_chars)
    # what was said about the last paste or upload (cut, not UTF-8, ...), until the next one
    cleaned.notices[:0] = [n for n in state.upload_notices() if n not in cleaned.notices]
    return cleaned
