"""The command that writes the results shipped in assets/precomputed/ (app.engine.shipped reads
them, and says what they are): each preset's sweep and first view, the recall lab's accuracy,
and the Architectures page's and the recall lab's four-architecture results once the comparison
models exist. After retraining:

    python -m app.precompute                 # the models in assets/ (or HAM_LAB_MODEL, HAM_LAB_RECALL_MODEL)
    python -m app.precompute --check         # exit status 1 when a file does not match its model
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app import settings  # noqa: E402
from app.engine import architectures, recall, results, shipped  # noqa: E402
from app.engine.models import recall_compare_dir  # noqa: E402
from app.engine.shipped import FORMAT, VIEW_TAUS, model_hash, slug, view_path  # noqa: E402
from app.engine.store import text_key  # noqa: E402
from app.settings import TAU_GRID  # noqa: E402
from app.settings.presets import PRESETS  # noqa: E402


def _shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def _token_limit(max_tokens: int) -> None:
    """Read every text as the app would with this token limit (the settings read it)."""
    os.environ[settings.NAMES["max_tokens"]] = str(max_tokens)


def write_view(model_dir: Path, text: str, path: Path) -> dict:
    """The first view of `text` as the Read page draws it with the model in `model_dir`, as
    arrays in `path` (.npz): app.engine.results.first_view_arrays."""
    arrays, meta = results.first_view_arrays(model_dir, text)
    meta = {"format": FORMAT, **meta}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez_compressed(f, meta=np.array(json.dumps(meta)), **arrays)
    return meta


def write_views(model_dir: Path, max_tokens: int, out: Path) -> list[Path]:
    """Every preset's first view (beside its sweep file, which is left as it is)."""
    _token_limit(max_tokens)
    written = []
    for name, text in PRESETS.items():
        path = view_path(out / f"preset-{slug(name)}.json")
        meta = write_view(model_dir, text, path)
        print(f"{path}: first view at token {meta['first_token']}", flush=True)
        written.append(path)
    return written


def write_presets(model_dir: Path, max_tokens: int, out: Path) -> list[Path]:
    _token_limit(max_tokens)          # the view reads the text as the app would
    written = []
    for name, text in PRESETS.items():
        entry, rows = results.preset_sweep(model_dir, text)
        path = out / f"preset-{slug(name)}.json"
        _write(path, {"format": FORMAT, "preset": name, "model": model_hash(model_dir), "text": text_key(entry.read_text),
                      "n_tokens": len(entry.ids), "taus": [float(t) for t in TAU_GRID],
                      "ham_rows": rows.ham, "policy_rows": rows.policies})
        written.append(path)
        meta = write_view(model_dir, text, view_path(path))
        written.append(view_path(path))
        print(f"{_shown(path)}: {len(entry.ids)} tokens, {len(rows.ham)} HAM rows, {len(rows.policies)} policy rows; "
              f"first view at token {meta['first_token']}", flush=True)
    return written


def write_recall(recall_dir: Path, out: Path) -> Path:
    task_settings, rows = recall.rows_to_ship(recall_dir)
    path = out / "recall.json"
    _write(path, {"format": FORMAT, "model": model_hash(recall_dir), "settings": task_settings, "rows": rows})
    print(f"{path}: {len(rows)} rows for {task_settings}", flush=True)
    return path


def write_architectures(compare_dir: Path, max_tokens: int) -> list[Path]:
    """One file per preset, or none (with a line saying why) when there are no comparison models."""
    try:
        models = architectures.load(compare_dir)
    except results.HAMInputError as exc:
        print(f"architectures: nothing written ({exc})", flush=True)
        return []
    max_tokens = min([max_tokens] + [m.cfg.max_tokens for m, _ in models.values()])   # as the page reads them
    written = []
    for name, text in PRESETS.items():
        path = architectures.path(name)
        _write(path, {"format": FORMAT, "preset": name, "models": architectures.models_hash(compare_dir, list(models)),
                      "text": text_key(text), "max_tokens": max_tokens,
                      "results": architectures.results(models, text, max_tokens)})
        written.append(path)
        print(f"{_shown(path)}: {len(models)} models", flush=True)
    return written


def write_recall_architectures(folder: Path) -> Optional[Path]:
    """The four recall models' accuracy on the recall task, or nothing (with a line saying why)
    when there are no such models."""
    try:
        models = architectures.load_recall(folder)
    except results.HAMInputError as exc:
        print(f"architectures (recall): nothing written ({exc})", flush=True)
        return None
    path = architectures.recall_path()
    rows = architectures.recall_rows(models)
    _write(path, {"format": FORMAT, "models": architectures.models_hash(folder, list(models)),
                  "task": architectures.recall_task(), "rows": rows})
    print(f"{_shown(path)}: {len(rows)} rows for {len(models)} models", flush=True)
    return path


def check_recall_architectures(folder: Path) -> list[str]:
    """["architectures-recall.json"] when the four recall models exist and the file does not match them."""
    try:
        names = list(architectures.load_recall(folder))
    except results.HAMInputError:
        return []                                     # no models: nothing shipped, nothing to match
    return [] if architectures.lookup_recall(folder, names) is not None else [architectures.recall_path().name]


def check(model_dir: Path, recall_dir: Path, max_tokens: int) -> list[str]:
    """Names of the precomputed files that do not match the models and presets (empty: all do)."""
    bad = []
    for name, text in PRESETS.items():
        read, n_layers = results.read_text(model_dir, text, max_tokens)
        if shipped.lookup_sweep(model_dir, read, TAU_GRID) is None:
            bad.append(f"preset-{slug(name)}.json")
        if any(shipped.lookup_view(model_dir, read, (float(tau),) * n_layers) is None for tau in VIEW_TAUS):
            bad.append(f"preset-{slug(name)}.npz")
    if shipped.lookup_recall(recall_dir, recall.task_settings(recall_dir)) is None:
        bad.append("recall.json")
    return bad + check_recall_architectures(recall_compare_dir())


def main(argv: Optional[list] = None) -> int:
    now = settings.current()
    p = argparse.ArgumentParser(prog="python -m app.precompute", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=now.model)
    p.add_argument("--recall-model", type=Path, default=now.recall_model)
    p.add_argument("--max-tokens", type=int, default=settings.DEFAULTS.max_tokens, help="the app's token limit")
    p.add_argument("--out", type=Path, default=None, help="folder (default: assets/precomputed or HAM_LAB_PRECOMPUTED)")
    p.add_argument("--check", action="store_true", help="only check that the files match the models")
    p.add_argument("--only", choices=["presets", "views", "recall", "architectures"], default=None,
                   help="presets: their sweeps and first views; views: the first views alone; architectures: "
                        "the Architectures page's results (needs the comparison models)")
    args = p.parse_args(argv)
    if args.out is not None:
        os.environ[settings.NAMES["precomputed"]] = str(args.out)
    if args.check:
        bad = check(args.model, args.recall_model, args.max_tokens)
        print("every precomputed file matches its model" if not bad else
              "out of date (run python -m app.precompute): " + ", ".join(bad))
        return 1 if bad else 0
    out = shipped.folder()
    if args.only in (None, "presets"):
        write_presets(args.model, args.max_tokens, out)
    if args.only == "views":
        write_views(args.model, args.max_tokens, out)
    if args.only in (None, "recall"):
        write_recall(args.recall_model, out)
    if args.only in (None, "architectures"):       # the comparison models, once they are trained
        write_architectures(settings.current().compare, args.max_tokens)
        write_recall_architectures(recall_compare_dir())
    return 0


if __name__ == "__main__":
    sys.exit(main())
