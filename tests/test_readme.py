"""The README holds: its Python example runs as written on the shipped model, its set-up is
exactly two commands naming files that exist, and the design notes it and the docstrings cite
are in the repository with the sections they cite."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
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
    assert commands == ["bash app/start", "bash .ci/run"], commands
    start = (ROOT / "app" / "start").read_text()
    assert "use_python requirements.txt" in start and "-m streamlit run app/server.py" in start
    tests = (ROOT / ".ci" / "run").read_text()
    assert "apt_install chromium chromium-driver" in tests and "use_python requirements-dev.txt" in tests
    assert "pytest tests" in tests
    assert (ROOT / "app" / "server.py").exists() and (ROOT / "requirements.txt").exists()
    readme = (ROOT / "README.md").read_text()
    assert "http://localhost:8501" in readme.split("## Set up", 1)[1].split("\n## ", 1)[0]


def test_the_app_needs_no_triton():
    """Triton is for the kernels on a GPU (requirements-gpu.txt, which the tests' requirements
    include); the app's own requirements leave it out."""
    def names(path):
        lines = [l.split("#")[0].strip() for l in (ROOT / path).read_text().splitlines()]
        return {re.split(r"[<>=!~ ]", l)[0].lower() for l in lines if l and not l.startswith("-r")}

    assert "triton" not in names("requirements.txt") and "torch" in names("requirements.txt")
    assert "triton" in names("requirements-gpu.txt")
    assert "-r requirements-gpu.txt" in (ROOT / "requirements-dev.txt").read_text()
    assert "-r requirements.txt" in (ROOT / "requirements-gpu.txt").read_text()
    assert re.search(r"^torch==\d", (ROOT / "requirements.txt").read_text(), flags=re.M), "keep torch pinned"


def test_readme_command_1_starts_the_app_at_the_address_it_prints(tmp_path):
    """README command 1, run as written (with this interpreter as its Python, so nothing is
    downloaded): it installs nothing new, starts the server and prints the address it serves."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = setup_commands()[0].split() + ["--server.address", "127.0.0.1", "--server.port", str(port)]
    env = dict(os.environ, HAM_LAB_PYTHON=sys.executable, HAM_LAB_TEXT_STORE=str(tmp_path))
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            out.append(line)
            if f"http://127.0.0.1:{port}" in line:
                break
        assert any(f"http://127.0.0.1:{port}" in l for l in out), "".join(out)
        assert b"ok" in urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=30).read()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


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
