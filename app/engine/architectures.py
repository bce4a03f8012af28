"""The Architectures page's results: computed for any text, or read from those shipped for the
presets (app.engine.shipped's rules: each file stamped with the hashes of the comparison models
and of the text read, and used only while both match). Written by `python -m app.precompute`
when the comparison models exist (`--only architectures` for these alone).

What one file holds for a preset: the loss rows, and per cache fraction of the window and HAM
the cache-size curves and the tokens where the Transformer beats GDN most. One more file,
architectures-recall.json, holds the four recall models' accuracy on the recall task (the recall
lab's section), stamped with those models and the task read.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from app.engine.shipped import _read, folder, model_hash, slug
from app.engine import models as folders
from ham_core.analysis.compare import COMPARE_FRACTIONS  # noqa: F401 - the fractions the page offers
from app.engine.store import VIEW, compute_gate, results_store, text_key


def models_hash(compare_dir: Path, names) -> str:
    """One stamp for the comparison models in use (each folder's model_hash, by architecture)."""
    return ";".join(f"{name}:{model_hash(Path(compare_dir) / name)}" for name in names)


def path(preset: str) -> Path:
    return folder() / f"architectures-{slug(preset)}.json"


def results(models: dict, text: str, max_tokens: int) -> dict:
    """Everything the page draws for one text: {"rows", "curves": {f: ...}, "differ": {f: ...}}
    (fractions as strings, as JSON keys are)."""
    from ham_core.analysis.compare import (cache_by_position, compare_losses, same_tokens,
                                           where_they_differ)

    ids = same_tokens(models, [text])[0][:max_tokens]
    out = {"rows": compare_losses(models, [ids]), "curves": {}, "differ": {}}
    tokens = next(iter(models.values()))[1].token_strings(ids.tolist())
    for f in COMPARE_FRACTIONS:
        out["curves"][str(f)] = {name: cache_by_position(m, ids, f).tolist() for name, (m, _) in models.items()}
        if all(name in models for name in ("transformer", "gdn", "ham")):
            out["differ"][str(f)] = [dict(r, token=tokens[r["position"]], read=tokens[r["read_key"]])
                                     for r in where_they_differ(models, ids, f)]
    return out


def lookup(preset: Optional[str], compare_dir: Path, names, text: str, max_tokens: int) -> Optional[dict]:
    """The shipped results for this preset, text, token limit and models; None otherwise."""
    data = _read(path(preset)) if preset else None
    if not data or data.get("models") != models_hash(compare_dir, names) or data.get("text") != text_key(text) \
            or data.get("max_tokens") != max_tokens:
        return None
    return data["results"]


def page_results(compared: dict, key: str, text: str, preset: Optional[str]) -> dict:
    """`results` for the text: shipped for a preset whose file matches the models, else computed
    once per server (the shared store). key: the comparison models' identity (get_comparison)."""
    limit = min(folders.max_tokens(model.cfg) for model, _ in compared.values())
    found = lookup(preset, folders.compare_dir(), list(compared), text, limit)
    if found is not None:
        return found

    def compute():
        with compute_gate().slot(VIEW):
            return results(compared, text, limit)

    return results_store().get_or_compute(("architectures", key, text_key(text), limit), compute)


def load(directory: Path) -> dict:
    """{architecture: (model, tokenizer)} of the comparison models in `directory` (HAMInputError
    when it holds none), loaded for the command that writes their results."""
    from ham_core.analysis.compare import load_comparison

    return load_comparison(directory)


def recall_path() -> Path:
    return folder() / "architectures-recall.json"


def recall_task() -> dict:
    """The recall task the four are read on: `compare --recall`'s (held-out seeds)."""
    from ham_core.analysis.compare import held_out_recall

    return held_out_recall()


def recall_rows(models: dict) -> list:
    """Rows {"model", "kv_fraction", "accuracy"} of {architecture: recall model} on recall_task()."""
    from ham_core.analysis.compare import compare_recall

    return compare_recall(models, **recall_task())


def lookup_recall(recall_dir: Path, names) -> Optional[list]:
    """The shipped recall rows for these recall models and task; None otherwise."""
    data = _read(recall_path())
    if not data or data.get("models") != models_hash(recall_dir, names) or data.get("task") != recall_task():
        return None
    return data["rows"]


def recall_page_rows(compared: dict, key: str) -> tuple[list, bool]:
    """(recall_rows, shipped?) for the recall lab: shipped when the file matches the models, else
    computed once per server (the shared store). key: the models' identity (get_comparison(recall=True))."""
    found = lookup_recall(folders.recall_compare_dir(), list(compared))
    if found is not None:
        return found, True

    def compute():
        with compute_gate().slot(VIEW):
            return recall_rows(compared)

    return results_store().get_or_compute(("architectures-recall", key), compute), False


def load_recall(directory: Path) -> dict:
    """{architecture: recall model} in `directory` (HAMInputError when it holds none), for the
    command that writes their rows."""
    from ham_core.analysis.compare import load_recall_comparison

    return load_recall_comparison(directory)
