"""The README holds: its Python example runs as written on the shipped model, its set-up is
exactly two commands naming files that exist, and the design notes it and the docstrings cite
are in the repository with the sections they cite."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


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

def setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if line.startswith("    ") and line.strip()]


def test_readme_gives_two_commands_that_name_real_files():
    commands = setup_commands()
    assert len(commands) == 2, commands
    app, tests = commands
    script = app.split("streamlit run ")[1].split()[0]
    assert (ROOT / script).exists() and script.startswith("app/")
    assert "requirements.txt" in app and (ROOT / "requirements.txt").exists()
    script = ROOT / tests.split()[-1]
    assert tests.startswith("bash ") and script.exists()
    text = script.read_text()
    assert "chromium-driver" in text and "requirements-dev.txt" in text and "pytest tests" in text
    readme = (ROOT / "README.md").read_text()
    assert "http://localhost:8501" in readme.split("## Set up", 1)[1].split("\n## ", 1)[0]


def test_design_notes_exist_with_the_cited_sections():
    design = ROOT / "docs" / "DESIGN.md"
    headings = re.findall(r"^## (\d+)\.", design.read_text(), flags=re.M)
    cited, bare = set(), []
    for path in [*ROOT.glob("ham_core/**/*.py"), *ROOT.glob("app/**/*.py"), *ROOT.glob("tests/**/*.py"), ROOT / "README.md"]:
        text = path.read_text()
        cited |= set(re.findall(r"DESIGN\.md,? section (\d+)", text))
        if path.suffix == ".py" and path != Path(__file__).resolve():   # docstrings give the path
            bare += [f"{path.relative_to(ROOT)}: {m}" for m in re.findall(r"(?<![/\w])DESIGN\.md[^\n]{0,20}", text)]
    assert cited and cited <= set(headings), (cited, headings)
    assert not bare, bare
    assert "docs/DESIGN.md" in (ROOT / "README.md").read_text()
