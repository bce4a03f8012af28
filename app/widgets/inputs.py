"""The text the pages read: presets, a text area and a .txt upload, all feeding st.session_state.text."""
from __future__ import annotations

from contextlib import nullcontext

import streamlit as st

from app.engine import texts
from app.settings.presets import PRESETS

OWN = "(your own text)"
# The upload box as small as a button: its drop-zone text (size limit, file type) is in the label.
INPUT_CSS = ('.st-key-w_upload [data-testid="stFileUploaderDropzoneInstructions"]{display:none}'
             '.st-key-w_upload section{padding:0.35rem;min-height:0}')


def _pick_preset() -> None:
    name = st.session_state.w_preset
    if name in PRESETS:
        st.session_state.text = PRESETS[name]
        st.session_state.preset = name
        st.session_state.w_text = PRESETS[name]
        st.session_state.token = None
        st.session_state.notices = st.session_state.upload_notices = []
    else:
        st.session_state.preset = None


def _edit_text() -> None:
    # The box has no max_chars: the browser would drop a longer paste without a word. The paste
    # is cut here instead, to what the token limit can use, and the box shows what is read.
    text, notices = texts.cut_text(st.session_state.w_text, st.session_state.get("input_chars", texts.MAX_CHARS))
    st.session_state.text = st.session_state.w_text = text
    match = [n for n, t in PRESETS.items() if t == st.session_state.w_text]
    st.session_state.preset = match[0] if match else None
    st.session_state.w_preset = match[0] if match else OWN
    st.session_state.token = None
    st.session_state.notices, st.session_state.upload_notices = [], notices


def _upload() -> None:
    file = st.session_state.get("w_upload")
    if file is None:
        return
    cleaned = texts.decode_upload(file.getvalue(), st.session_state.get("input_chars", texts.MAX_UPLOAD_BYTES))
    st.session_state.upload_notices = cleaned.notices
    st.session_state.notices = []
    if not cleaned.empty:
        st.session_state.text = st.session_state.w_text = cleaned.text
        st.session_state.preset = None
        st.session_state.w_preset = OWN
        st.session_state.token = None


def text_input(max_chars: int = texts.MAX_CHARS) -> texts.CleanText:
    """Draw the input widgets; return the cleaned current text (at most `max_chars`, what the
    token limit can use) and its notices, each once."""
    ss = st.session_state
    ss.input_chars = max_chars
    if "w_text" not in ss:
        ss.w_text = ss.text
    if "w_preset" not in ss:
        ss.w_preset = ss.preset if ss.preset in PRESETS else OWN
    # One row, so the text itself is on the first screen: in presenter mode the row is folded
    # away under the text's name (the class sees the text, the teacher opens it to change it).
    name = ss.preset if ss.preset in PRESETS else "your own text"
    fold = st.expander(f"Text: {name} (change, paste or upload)") if ss.get("presenting") else nullcontext()
    with fold:
        st.html(f"<style>{INPUT_CSS}</style>")
        c = st.columns([2, 4, 1.3], vertical_alignment="bottom")
        c[0].selectbox("Text", [OWN, *PRESETS], key="w_preset", on_change=_pick_preset,
                       help="Short texts written for this app; each shows a different kind of memory.")
        c[1].text_area("…or paste your own (Ctrl+Enter reads it)", key="w_text", height=68, on_change=_edit_text,
                       help="Paste anything; press Ctrl+Enter (or click outside) to read it.")
        c[2].file_uploader("…or a .txt file", type=["txt"], key="w_upload", on_change=_upload,
                           help="A text file of up to 5 MB; the app reads as much of it as its token limit can use.")
    cleaned = texts.clean_text(ss.text, max_chars)
    # what was said about the last paste or upload (cut, not UTF-8, ...), until the next one
    cleaned.notices[:0] = [n for n in ss.get("upload_notices", []) if n not in cleaned.notices]
    return cleaned
