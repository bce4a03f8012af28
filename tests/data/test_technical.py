"""Technical text (READMEs, Python's manual, code) and the held-out texts a probe reads.

No network: a wheel and a python3.X-doc .deb are built here (dpkg-deb, as on Debian)."""
from __future__ import annotations

import json
import subprocess
import zipfile

import pytest

from ham_core.data import corpus, heldout, technical
from ham_core.errors import HAMInputError

CODE = '"""A module that says why."""\n\n\ndef add(a, b):\n    # the sum, kept simple\n    return a + b\n' * 40
README = "Requests\n========\n\nRequests is a simple HTTP library.\n\n    >>> r = requests.get(url)\n" * 40


def _wheel(path, package="demo"):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{package}-1.0.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {package}\n\n{README}")
        z.writestr(f"{package}/core.py", CODE)
        z.writestr(f"{package}/__init__.py", CODE)            # package glue: not read
        z.writestr(f"{package}/tests/test_core.py", CODE)     # tests: not read


def _deb(folder, pages):
    root = folder / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text("Package: python3.11-doc\nVersion: 1\nArchitecture: all\n"
                                             "Maintainer: t <t@t>\nDescription: docs\n")
    for name, text in pages.items():
        page = root / "usr/share/doc/python3.11/html/_sources" / f"{name}.rst.txt"
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(text)
    subprocess.run(["dpkg-deb", "--build", str(root), str(folder / "python3.11-doc_1_all.deb")],
                   check=True, capture_output=True)


def test_cleaning_keeps_indentation_and_code_layout():
    text = "def f():\r\n\tif x:   \n\t\treturn 1\n\n\n\n# done\x07"
    assert technical.clean_technical(text) == "def f():\n    if x:\n        return 1\n\n# done"


def test_held_out_is_fixed_by_name_and_near_its_share():
    names = [f"package{i}" for i in range(2000)]
    share = sum(map(technical.held_out, names)) / len(names)
    assert abs(share - technical.HELD_OUT_SHARE) < 0.03
    assert [technical.held_out(n) for n in names[:50]] == [technical.held_out(n) for n in names[:50]]
    assert technical.unit_of("code:requests/requests/api.py") == "requests"
    assert technical.unit_of("readme:requests") == "requests"
    assert technical.unit_of("manual:library/os") == "library/os"


def test_a_packages_readme_and_code_are_held_out_together():
    out, kept = [], []
    for i in range(60):
        out += [(f"readme:p{i}", "r" * 10 + str(i)), (f"code:p{i}/m.py", "c" * 10 + str(i))]
    train, valid = corpus.split_documents(out, 0.025, seed=0)
    held = {technical.unit_of(s) for s, _ in valid}
    assert held and held == {f"p{i}" for i in range(60) if technical.held_out(f"p{i}")}
    assert not held & {technical.unit_of(s) for s, _ in train}
    assert corpus.split_documents(out, 0.025, seed=5)[1] == valid or \
        sorted(corpus.split_documents(out, 0.025, seed=5)[1]) == sorted(valid)   # the seed never moves them


def test_read_technical_reads_readmes_manual_pages_and_commented_code(tmp_path):
    _wheel(tmp_path / "demo-1.0-py3-none-any.whl")
    _deb(tmp_path, {"library/os": "os --- Miscellaneous interfaces\n" * 100, "whatsnew/3.11": "x" * 5000,
                    "tiny": "too short"})
    docs = dict(technical.read_technical(tmp_path))
    assert set(docs) == {"readme:demo", "code:demo/demo/core.py", "manual:library/os"}
    assert docs["code:demo/demo/core.py"].startswith('"""A module that says why."""\n\ndef add(a, b):\n    # the sum')
    assert ">>> r = requests.get(url)" in docs["readme:demo"]
    with pytest.raises(HAMInputError, match="no python3-doc"):
        technical.read_technical(tmp_path / "missing")


def test_python_doc_package_comes_from_apt_cache():
    assert technical.python_doc_package("python3-doc\n  Depends: python3.11-doc\n") == "python3.11-doc"
    with pytest.raises(HAMInputError, match="apt-get update"):
        technical.python_doc_package("")


def test_held_out_texts_by_kind_from_the_valid_split(tmp_path):
    dialogue = ("A long quiet paragraph with no speech at all. " * 30 + "\n\n"
                + '"Hello," she said. "Who is there?" "Me," he said.\n\n' * 60)
    rows = [("readme:demo", README), ("manual:library/os", "Manual text.\n" * 500), ("code:demo/m.py", CODE),
            ("bbe:1002", "And Abram went. " * 400), ("bbe:40001", "Psalm. " * 400),
            ("brown:cn27", dialogue), ("brown:ca01", "The jury said. " * 400)]
    (tmp_path / "valid.jsonl").write_text("".join(json.dumps({"text": t, "source": s}) + "\n" for s, t in rows))
    counts = heldout.write_held_out(tmp_path, tmp_path / "out", per_kind=2, chars=1000)
    assert counts == {"readme": 1, "manual": 1, "code": 1, "story": 1, "dialogue": 1, "article": 1}
    texts = {p.stem: p.read_text() for p in (tmp_path / "out").glob("*.txt")}
    assert set(texts) == {"readme-01", "manual-01", "code-01", "story-01", "dialogue-01", "article-01"}
    assert all(len(t) <= 1001 for t in texts.values())
    assert texts["dialogue-01"].startswith('"Hello,"')                   # where the quotations are
    assert texts["manual-01"].endswith("Manual text.\n")                  # cut at a line end
    with pytest.raises(HAMInputError, match="build the corpus"):
        heldout.held_out_texts(tmp_path / "none")
