"""The app's folders are its layers, and a file's folder says what it may import (the twin of
tests/test_layers.py for ham_core; docs/DESIGN.md, Layout).

Lowest first: settings (plain Python); drawing and engine side by side (neither imports the
other); session; widgets; views (one file a page); the entry at the top of app/ (router, server,
the precompute command), which may import any of them. Only the engine imports ham_core, torch
or Triton; settings and drawing import no Streamlit. Imports inside functions count; imports
under `if TYPE_CHECKING:` (type names for annotations, never run) do not.
"""
from __future__ import annotations

import ast
from pathlib import Path

from tests.test_layers import import_nodes

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
ENTRY = {"streamlit_app.py", "server.py", "precompute.py"}     # the top of app/: may import every layer
MAY_IMPORT = {           # folder -> the app's folders it may import from
    "settings": {"settings"},
    "drawing": {"settings", "drawing"},
    "engine": {"settings", "engine"},
    "session": {"settings", "engine", "session"},
    "widgets": {"settings", "drawing", "engine", "session", "widgets"},
    "views": {"settings", "drawing", "engine", "session", "widgets"},
}
MODEL_CODE = ("ham_core", "torch", "triton")          # the engine's alone
NO_STREAMLIT = {"settings", "drawing"}


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `path` that runs; `from app import x`
    names the module app.x."""
    return [(node.lineno, f"app.{a.name}" if module == "app" and isinstance(node, ast.ImportFrom) else module)
            for node, module in import_nodes(path, skip_type_checking=True)
            for a in (node.names if module == "app" and isinstance(node, ast.ImportFrom) else node.names[:1])]


def layer(path: Path) -> str:
    """The folder of app/ a file is in ("entry" for the files at its top)."""
    parts = path.relative_to(APP).parts
    return "entry" if len(parts) == 1 else parts[0]


def app_folder(module: str) -> str | None:
    """The folder of app/ a module lives in (None: not the app's; "entry": a file at its top)."""
    parts = module.split(".")
    if parts[0] != "app":
        return None
    return "entry" if len(parts) == 1 or (APP / f"{parts[1]}.py").is_file() else parts[1]


def offences(path: Path) -> list[str]:
    """What `path` imports against the rule of its folder."""
    own, out = layer(path), []
    for line, module in imports(path):
        where = f"{path.relative_to(ROOT)}:{line} ({own}) imports {module}"
        top = module.split(".")[0]
        if top in MODEL_CODE and own != "engine":
            out.append(f"{where}: only app/engine/ imports {', '.join(MODEL_CODE)}")
        elif top == "streamlit" and own in NO_STREAMLIT:
            out.append(f"{where}: app/{own}/ draws or configures without Streamlit")
        elif own != "entry" and app_folder(module) is not None and app_folder(module) not in MAY_IMPORT[own]:
            out.append(f"{where}: app/{own}/ may import only from " + ", ".join(sorted(MAY_IMPORT[own])))
    return out


def test_every_file_of_the_app_has_a_layer():
    for path in sorted(APP.rglob("*.py")):
        own = layer(path)
        assert own in MAY_IMPORT or (own == "entry" and path.name in ENTRY), \
            f"{path.relative_to(ROOT)} is in no layer: put it in a folder of MAY_IMPORT (or ENTRY) and docs/DESIGN.md"


def test_each_folder_imports_only_what_its_layer_may():
    found = [o for path in sorted(APP.rglob("*.py")) for o in offences(path)]
    assert not found, "imports against the app's layers:\n" + "\n".join(found)


def test_the_check_sees_lazy_package_and_guarded_imports(tmp_path):
    """Imports inside functions and `from app import x` count; TYPE_CHECKING imports do not."""
    names = {m for _, m in imports(APP / "server.py")}
    assert "app.engine.warmup" in names and "app.widgets" in names      # preload() imports inside itself
    assert "app.settings" in {m for _, m in imports(APP / "engine" / "store.py")}
    viewdata = {m for _, m in imports(APP / "drawing" / "viewdata.py")}
    assert "app.engine.results" not in viewdata and "ham_core.analysis.readmap" not in viewdata


def module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_two_modules_of_the_app_import_each_other_in_a_loop():
    """Following the threshold from a page to the model never goes back: the app's modules
    import each other in one direction (a loop of imports, lazy ones included, is one idea
    split across files or a lower module calling a higher one)."""
    graph = {module_of(p): {m for _, m in imports(p) if m.startswith("app.")} for p in sorted(APP.rglob("*.py"))}
    graph = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}
    done, path, loops = set(), [], []

    def visit(m):
        if m in path:
            loops.append(" -> ".join(path[path.index(m):] + [m]))
            return
        if m in done:
            return
        path.append(m)
        for d in sorted(graph[m]):
            visit(d)
        path.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)
    assert not loops, "import loops in app/:\n" + "\n".join(loops)
