"""The README's Python example runs as written, on the shipped model."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_api_example_runs(capsys):
    from ham_core.model.checkpoint import WEIGHTS, default_model_dir

    if not (default_model_dir() / WEIGHTS).is_file():
        pytest.fail("the shipped model is missing from assets/lm")
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "README.md has no ```python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    kv_fraction, loss = capsys.readouterr().out.split()
    assert 0.0 <= float(kv_fraction) <= 1.0 and float(loss) > 0
