"""The package structure holds: no module of ham_core imports from a layer above its own, and
the app's pages draw what ham_core returns without touching torch themselves.

Layers, lowest first: the base modules (errors, progress), model, data, then analysis and
training side by side (neither imports the other), then cli, then the package's own
__init__/__main__, which gather the public names. Imports inside functions count too.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ham_core"
RANK = {"errors": 0, "progress": 0, "model": 1, "data": 2, "analysis": 3, "training": 3, "cli": 4}
TOP = 5    # ham_core/__init__.py and __main__.py


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_nodes(path: Path, skip_type_checking: bool = False) -> list[tuple[ast.stmt, str]]:
    """(import statement, absolute module name it imports from) of every import in `path`,
    relative ones resolved; with skip_type_checking, not those under `if TYPE_CHECKING:`."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out, todo = [], [ast.parse(path.read_text(encoding="utf-8"))]
    while todo:
        node = todo.pop()
        if skip_type_checking and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo += node.orelse
            continue
        if isinstance(node, ast.Import):
            out += [(node, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                out.append((node, ".".join(base + ([node.module] if node.module else []))))
            else:
                out.append((node, node.module))
        todo += list(ast.iter_child_nodes(node))
    return out


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import of a ham_core module in `path`."""
    return [(node.lineno, t) for node, t in import_nodes(path) if t == "ham_core" or t.startswith("ham_core.")]


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__init__", "__main__"):
        return "top"
    return parts[1]


def rank(layer_name: str) -> int:
    return TOP if layer_name == "top" else RANK[layer_name]


def test_every_package_has_a_layer():
    for path in PACKAGE.iterdir():
        if path.name.startswith(("_", ".")):
            continue
        assert path.stem in RANK, f"{path.name} is in no layer: add it to RANK in this test and to the README"


def test_no_module_imports_from_a_layer_above_its_own():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = layer(module_name(path))
        for line, target in imported(path):
            to = layer(target)
            if rank(to) > rank(source) or {source, to} == {"analysis", "training"}:
                upward.append(f"{path.relative_to(ROOT)}:{line} ({source}) imports {target} ({to})")
    assert not upward, "imports against the layer order:\n" + "\n".join(upward)


def test_the_check_sees_relative_and_lazy_imports():
    """The walker resolves `from .x import y` and imports inside functions."""
    names = {t for _, t in imported(PACKAGE / "model" / "policies.py")}
    assert "ham_core.errors" in names and "ham_core.model.layer" in names
    checkpoint = {t for _, t in imported(PACKAGE / "model" / "checkpoint.py")}
    assert "ham_core.model.tokenizer" in checkpoint      # imported inside load_bundle


def test_app_views_import_no_torch():
    offenders = []
    for path in sorted((ROOT / "app" / "views").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names
                          if n == "torch" or n.startswith("torch.")]
    assert not offenders, "\n".join(offenders)
