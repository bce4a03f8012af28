"""The token view in the page: a Streamlit v2 component whose only script is ours (token_view.js,
shipped with the app: no CDN). Hover draws a token's reads as arcs and shows its numbers, from
data sent with the view (no round trip to the server); a click locks the selection and tells
the page, which then updates the panels beside the text.

The HTML it shows comes from app.drawing.token_view, where every token is escaped, and the script puts
the rest of the data (token text in tooltips) into the page as text only, never as markup.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

import streamlit as st

from app.drawing.token_view import CSS, READ_COLOUR
from app.session import state

JS = (Path(__file__).with_name("token_view.js")).read_text(encoding="utf-8")

COMPONENT_CSS = CSS + f"""
.ham-root{{position:relative}}
.ham-arcs{{position:absolute;left:0;top:0;pointer-events:none;overflow:visible;z-index:2}}
.ham-arc{{fill:none;stroke-linecap:round}}
.ham-tip{{position:absolute;z-index:5;max-width:32rem;padding:0.45rem 0.6rem;border-radius:6px;
 background:#1f2328;color:#f6f8fa;font:0.8rem/1.45 system-ui,sans-serif;box-shadow:0 4px 14px rgba(0,0,0,0.3);
 pointer-events:none;white-space:normal}}
.ham-tip-i{{opacity:0.7}}
.ham-tip-tok{{font-family:ui-monospace,monospace;font-weight:700;white-space:pre-wrap}}
.ham-tip-num{{font-variant-numeric:tabular-nums;font-weight:600}}
.ham-tip-guess{{font-family:ui-monospace,monospace;white-space:pre}}
.ham-tip-hit{{font-family:ui-monospace,monospace;white-space:pre;background:rgba{READ_COLOUR + (0.55,)};
 border-radius:3px;padding:0 2px}}
"""

_component = None


def _get():
    global _component
    if _component is None:
        _component = st.components.v2.component("ham_lab.token_view", css=COMPONENT_CSS, js=JS, isolate_styles=False)
    return _component


def show(data: str, key: str, on_click: Optional[Callable[[int], None]] = None) -> None:
    """Mount the view. `data`: one JSON text (app.drawing.viewdata.view_data) holding html (the escaped
    view), prefix, selected, reads {keys, weights in thousandths} and tips {layers, rows}; sent
    as text so Streamlit does not encode it again. `on_click(index)` runs as a widget callback
    when a token is clicked."""
    def _clicked():
        value = getattr(state.widget_value(key), "clicked", None)
        if on_click is not None and value is not None:
            on_click(int(value))

    try:
        component = _get()
    except Exception:          # an older Streamlit without v2 components: static view, selector only
        st.html(f"<style>{CSS}</style>{json.loads(data).get('html', '')}")
        return
    component(data=data, key=key, on_clicked_change=_clicked)
