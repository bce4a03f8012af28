"""Build the English training text for the small HAM language model (docs/DESIGN.md section 6).

The documents come from ham_core.data.sources (registry packages, or a folder of .txt files).
Here they are de-duplicated, split into train/valid BY DOCUMENT (so no validation text is ever
trained on) and cached outside git as `train.jsonl` / `valid.jsonl`, one {"text", "source"}
object per line.
"""
from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path
from typing import Callable

from ham_core.errors import HAMInputError

from . import technical
from .sources import READERS, REGISTRY_SOURCES, Docs, fetch, read_folder

# Sources the first models were split with: their held-out documents come from one shared
# shuffle, kept as it was so earlier held-out figures stay comparable. Every other source is
# shuffled on its own, so adding it never moves another source's held-out documents.
_SHARED_SPLIT = ("brown", "nlp", "shakespeare")
VALID_FRACTION = 0.025
SPLITS = ("train", "valid")


def default_corpus_dir() -> Path:
    """`$HAM_LAB_CACHE/corpus`, else `~/.cache/ham_lab/corpus`: outside git, reused by runs."""
    base = os.environ.get("HAM_LAB_CACHE")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "ham_lab"
    return root / "corpus"



# ---------------------------------------------------------------- split, write, report

def _corpus_of(doc: tuple[str, str]) -> str:
    return doc[0].split(":", 1)[0]


def split_documents(docs: Docs, valid_fraction: float, seed: int) -> tuple[Docs, Docs]:
    """Shuffle each corpus's documents with `seed` and hold out `valid_fraction` of them.

    Splitting per corpus keeps every corpus represented in valid. The technical corpora are
    held out by name instead (technical.held_out: a package's README and code together, the same
    documents whatever the seed). Returns (train, valid).
    """
    groups: dict[str, list] = {}
    for doc in docs:
        groups.setdefault(_corpus_of(doc), []).append(doc)
    rng = random.Random(seed)
    train, valid = [], []
    shared_first = sorted(groups, key=lambda name: (name not in _SHARED_SPLIT, name))
    for name in shared_first:
        group = groups[name]
        if name in technical.CORPORA:
            kept = [d for d in group if technical.held_out(technical.unit_of(d[0]))]
            valid += kept
            train += [d for d in group if d not in kept]
            continue
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
            docs += READERS[source](fetch(source, Path(tmp)))
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
