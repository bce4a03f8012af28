"""User text made safe for Streamlit's markdown."""
from __future__ import annotations


def md(text: str) -> str:
    """Escape user text for st.markdown (which never renders raw HTML, but does render markdown)."""
    return "".join("\\" + ch if ch in "\\`*_{}[]()<>#+-.!|~$" else ch for ch in text)
