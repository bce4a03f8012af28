"""The token view in the page, clickable: a Streamlit v2 component whose only script is ours.

The HTML it shows comes from app.token_view, where every token is escaped, so the data
passed in is markup we built, never user markup. Hover shows a token's numbers (its title);
a click reports the token's index, and the page locks the selection on it.
"""
from __future__ import annotations

from typing import Callable, Optional

import streamlit as st

from app.token_view import CSS

_JS = """
export default function(component) {
  const { data, setTriggerValue, parentElement } = component;
  let box = parentElement.querySelector('.ham-box');
  if (!box) { box = document.createElement('div'); box.className = 'ham-box'; parentElement.appendChild(box); }
  box.innerHTML = data || '';
  const onClick = (e) => {
    const tok = e.target.closest('.ham-tok');
    if (tok && tok.dataset.i !== undefined) { setTriggerValue('clicked', parseInt(tok.dataset.i, 10)); }
  };
  box.addEventListener('click', onClick);
  return () => box.removeEventListener('click', onClick);
}
"""

_component = None


def _get():
    global _component
    if _component is None:
        _component = st.components.v2.component("ham_lab.token_view", css=CSS, js=_JS, isolate_styles=False)
    return _component


def show(view_html: str, key: str, on_click: Optional[Callable[[int], None]] = None) -> None:
    """Mount the view; `on_click(index)` runs (as a widget callback) when a token is clicked."""
    def _clicked():
        value = getattr(st.session_state.get(key), "clicked", None)
        if on_click is not None and value is not None:
            on_click(int(value))

    try:
        component = _get()
    except Exception:          # an older Streamlit without v2 components: static view, selector only
        st.html(f"<style>{CSS}</style>{view_html}")
        return
    component(data=view_html, key=key, on_clicked_change=_clicked)
