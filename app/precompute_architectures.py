"""The Architectures page's results for the presets, computed ahead of time (app.precompute's
rules: each file stamped with the hashes of the comparison models and of the text read, and
used only while both match). Written by `python -m app.precompute` when the comparison models
exist (`--only architectures` for these alone).

What one file holds for a preset: the loss rows, and per cache fraction of the window and HAM
the cache-size curves and the tokens where the Transformer beats GDN most.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from app.precompute import FORMAT, ROOT, _read, _write, folder, model_hash, slug, text_hash


def models_hash(compare_dir: Path, names) -> str:
    """One stamp for the comparison models in use (each folder's model_hash, by architecture)."""
    return ";".join(f"{name}:{model_hash(Path(compare_dir) / name)}" for name in names)


def _path(preset: str) -> Path:
    return folder() / f"architectures-{slug(preset)}.json"


def results(models: dict, text: str, max_tokens: int) -> dict:
    """Everything the page draws for one text: {"rows", "curves": {f: ...}, "differ": {f: ...}}
    (fractions as strings, as JSON keys are)."""
    from ham_core.analysis.compare import (COMPARE_FRACTIONS, cache_by_position, compare_losses, same_tokens,
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
    data = _read(_path(preset)) if preset else None
    if not data or data.get("models") != models_hash(compare_dir, names) or data.get("text") != text_hash(text) \
            or data.get("max_tokens") != max_tokens:
        return None
    return data["results"]


def write(compare_dir: Path, max_tokens: int) -> list[Path]:
    """One file per preset, or none (with a line saying why) when there are no comparison models."""
    from app.presets import PRESETS
    from ham_core.analysis.compare import load_comparison
    from ham_core.errors import HAMInputError

    try:
        models = load_comparison(compare_dir)
    except HAMInputError as exc:
        print(f"architectures: nothing written ({exc})", flush=True)
        return []
    max_tokens = min([max_tokens] + [m.cfg.max_tokens for m, _ in models.values()])   # as the page reads them
    written = []
    for name, text in PRESETS.items():
        path = _path(name)
        _write(path, {"format": FORMAT, "preset": name, "models": models_hash(compare_dir, list(models)),
                      "text": text_hash(text), "max_tokens": max_tokens, "results": results(models, text, max_tokens)})
        written.append(path)
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {len(models)} models", flush=True)
    return written
