"""Held-out texts of the kinds a teacher pastes, written as a folder of .txt files.

Every text comes from a built corpus's valid split, so no model trained on that corpus has seen
it: READMEs, manual pages and code from the technical source (held out by package or page,
ham_core.data.technical), stories (narrative books of the Bible in Basic English), dialogue
(Brown's fiction, cut where its quotations are densest) and articles (Brown's non-fiction).
Each text is cut at a line or sentence end to about `chars` characters (about 1,000 tokens),
and named `<kind>-<nn>.txt`, so a probe can report kinds apart. The choice depends only on the
corpus, never on a model.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List

from ham_core.errors import HAMInputError

KINDS = ("readme", "manual", "code", "story", "dialogue", "article")
BROWN_FICTION = set("klmnpr")        # Brown's categories K-R: fiction of six kinds
BBE_NARRATIVE_BOOKS = range(1, 18)   # Genesis .. Esther: stories where names recur
DEFAULT_CHARS = 4000


def _kind(source: str) -> str | None:
    corpus, _, name = source.partition(":")
    if corpus in ("readme", "manual", "code"):
        return corpus
    if corpus == "bbe":
        return "story" if int(name) // 1000 in BBE_NARRATIVE_BOOKS else None
    if corpus == "brown":
        return "dialogue" if name[1:2] in BROWN_FICTION else "article"
    return None


def _cut(text: str, chars: int) -> str:
    """The text's first `chars` characters, ending at the last line end (or sentence end) before."""
    if len(text) <= chars:
        return text
    head = text[:chars]
    end = max(head.rfind("\n"), head.rfind(". "))
    return head[: end + 1] if end > chars // 2 else head


def _densest_dialogue(text: str, chars: int) -> str:
    """The `chars`-long stretch, starting at a paragraph, with the most quotation marks."""
    starts = [0] + [m.end() for m in re.finditer(r"\n\n", text)]
    best = max(starts, key=lambda s: text[s:s + chars].count('"'))
    return _cut(text[best:], chars)


def held_out_texts(corpus_dir, per_kind: int = 8, chars: int = DEFAULT_CHARS) -> Dict[str, List[str]]:
    """kind -> up to `per_kind` texts from the corpus's valid split, in the split's order."""
    path = Path(corpus_dir).expanduser() / "valid.jsonl"
    if not path.is_file():
        raise HAMInputError(f"no {path}: build the corpus first (python -m ham_core corpus --bbe --technical)")
    found: Dict[str, List[str]] = {k: [] for k in KINDS}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        kind = _kind(record.get("source", ""))
        if kind is None or len(found[kind]) >= per_kind:
            continue
        text = record["text"]
        found[kind].append(_densest_dialogue(text, chars) if kind == "dialogue" else _cut(text, chars))
    return found


def write_held_out(corpus_dir, out_dir, per_kind: int = 8, chars: int = DEFAULT_CHARS) -> Dict[str, int]:
    """Write `<kind>-<nn>.txt` into out_dir; returns how many texts of each kind were written."""
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for kind, texts in held_out_texts(corpus_dir, per_kind, chars).items():
        for i, text in enumerate(texts, 1):
            (out / f"{kind}-{i:02d}.txt").write_text(text.rstrip() + "\n", encoding="utf-8")
        counts[kind] = len(texts)
    return counts
