"""Share: a "copy link" button. The address bar already holds the view (text or preset,
threshold, layer, metric, token: app.session.links), so the button copies the page's own address.

The copy happens in the browser, in a small component whose only script is this one: the
clipboard API where the page is a secure context (localhost, https), else a hidden text field
and the browser's copy command (a classroom server reached over http on the local network).
The address is shown beside the button as text in either case, to copy by hand if both fail.
"""
from __future__ import annotations

import streamlit as st

_JS = """
export default function(component) {
  const { parentElement } = component;
  let box = parentElement.querySelector('.ham-link-share');
  if (!box) {
    box = document.createElement('div');
    box.className = 'ham-link-share';
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'ham-link-copy';
    button.textContent = 'Copy link to this view';
    const note = document.createElement('div');
    note.className = 'ham-link-note';
    box.append(button, note);
    parentElement.appendChild(box);
  }
  const button = box.querySelector('.ham-link-copy');
  const note = box.querySelector('.ham-link-note');
  const byHand = (url) => {
    const field = document.createElement('textarea');
    field.value = url;
    field.setAttribute('readonly', '');
    field.style.position = 'fixed';
    field.style.opacity = '0';
    document.body.appendChild(field);
    field.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
    field.remove();
    return ok;
  };
  button.onclick = async () => {
    const url = window.location.href;
    let ok = false;
    if (navigator.clipboard && window.isSecureContext) {
      try { await navigator.clipboard.writeText(url); ok = true; } catch (e) { ok = false; }
    }
    if (!ok) ok = byHand(url);
    box.dataset.copied = ok ? url : '';
    note.textContent = (ok ? 'Copied: ' : 'Copy this address: ') + url;
  };
}
"""

_CSS = """
.ham-link-share .ham-link-copy{font:inherit;font-size:0.9rem;padding:0.35rem 0.8rem;border-radius:0.5rem;cursor:pointer;
 border:1px solid rgba(128,128,128,0.45);background:transparent;color:inherit}
.ham-link-share .ham-link-copy:hover{border-color:#0072B2;color:#0072B2}
.ham-link-share .ham-link-note{font-size:0.75rem;opacity:0.75;margin-top:0.3rem;overflow-wrap:anywhere}
"""

_component = None


def copy_link_button() -> None:
    """The button (in the sidebar, so every page has it)."""
    global _component
    try:
        if _component is None:
            _component = st.components.v2.component("ham_lab.copy_link", js=_JS, css=_CSS, isolate_styles=False)
        _component(key="w_copy_link")
    except Exception:          # without v2 components: the address bar still holds the view
        st.caption("To share this view, copy the address from the address bar.")
