"""Only app/session/ touches st.session_state, and always by a name of app.session.state.Key:
a page reads and sets the session through the typed accessors (one `tau()`, one `text()`), and
a widget bound to a session key is given the key's name from Key, never a string of its own.
"""
from __future__ import annotations

import ast
from pathlib import Path

from app.session.state import KEYS

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
SESSION = APP / "session"
MAPPING_METHODS = {"get", "pop", "setdefault", "keys", "values", "items", "clear", "update", "to_dict"}


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name}:{node.lineno}"


def _in_session(path: Path) -> bool:
    return path.is_relative_to(SESSION)


def _is_session_state(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "session_state") or \
        (isinstance(node, ast.Name) and node.id == "session_state")


def _literal(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def session_offences(path: Path, inside: bool) -> list[str]:
    """What `path` does with st.session_state against the rule (inside: it is in app/session/)."""
    tree, out = ast.parse(path.read_text(encoding="utf-8")), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and any(a.name == "session_state" for a in node.names):
            out.append(f"{_where(path, node)} imports session_state")
        elif _is_session_state(node) and not inside:
            out.append(f"{_where(path, node)} touches session_state: read and set it through app.session.state")
        elif isinstance(node, ast.Attribute) and _is_session_state(node.value) and node.attr not in MAPPING_METHODS:
            out.append(f"{_where(path, node)} names a key as an attribute (session_state.{node.attr}): use Key")
        elif isinstance(node, ast.Subscript) and _is_session_state(node.value) and _literal(node.slice):
            out.append(f"{_where(path, node)} names a key as a string ({node.slice.value!r}): use Key")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and _is_session_state(node.func.value) \
                and node.args and _literal(node.args[0]):
            out.append(f"{_where(path, node)} names a key as a string ({node.args[0].value!r}): use Key")
        elif isinstance(node, ast.Compare) and any(_is_session_state(c) for c in node.comparators) and _literal(node.left):
            out.append(f"{_where(path, node)} names a key as a string ({node.left.value!r}): use Key")
    return out


def key_literals(path: Path, inside: bool) -> list[str]:
    """Widgets given a session key's name as a string of their own (`key="w_layer"`), outside
    app/session/ (there, Key is where the names are written)."""
    if inside:
        return []
    return [f"{_where(path, node)} passes the session key {node.value.value!r} as a string: use Key"
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.keyword) and node.arg == "key" and _literal(node.value) and node.value.value in KEYS]


def test_only_app_session_touches_session_state_and_always_by_key():
    found = [o for path in sorted(APP.rglob("*.py"))
             for o in session_offences(path, _in_session(path)) + key_literals(path, _in_session(path))]
    assert not found, "session state used against the rule:\n" + "\n".join(found)


def test_the_check_sees_each_kind_of_offence(tmp_path):
    """The walker finds what it is meant to (it would pass vacuously otherwise)."""
    page, inside = tmp_path / "page.py", tmp_path / "state.py"
    page.write_text("import streamlit as st\nfrom streamlit import session_state\nx = st.session_state.get(KEY)\n"
                    "st.slider('a', key='w_layer')\n")
    inside.write_text("import streamlit as st\nst.session_state.layer = 1\nst.session_state['layer'] = 1\n"
                      "st.session_state.get('layer')\n'layer' in st.session_state\nok = st.session_state.get(KEY)\n")
    assert len(session_offences(page, inside=False)) == 2 and len(key_literals(page, inside=False)) == 1
    assert len(session_offences(inside, inside=True)) == 4 and key_literals(inside, inside=True) == []
