"""Results computed ahead of time, so the presets and the recall lab open at once in class.

For each preset, the HAM sweep over the slider's thresholds and the other policies at equal
memory (the rows of the memory-vs-quality chart); for the recall lab, the accuracy of every
policy at the default task; and each preset's whole first view (preset-<name>.npz: its results
at the default threshold, with a full cache and with none, and the reads that view shows), so
the Read page paints a preset before torch is even imported. They are shipped in
assets/precomputed/ (JSON, and numpy arrays without pickles), each stamped with
a hash of the model files it was computed with (and of the text read), and used only when both
still match: a retrained model, another token limit or an edited preset falls back to
computing, as for any pasted text. After retraining, one command writes them again:

    python -m app.precompute                 # the models in assets/ (or HAM_LAB_MODEL, HAM_LAB_RECALL_MODEL)
    python -m app.precompute --check         # exit status 1 when a file does not match its model
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from app.results import DEFAULT_TAU
from ham_core.model.surprise_range import TAU_FULL, TAU_OFF

ROOT = Path(__file__).resolve().parent.parent
FORMAT = 1
# The thresholds of a preset's first view: the slider's default (app.results.DEFAULT_TAU), a
# full cache and none (what the cache bought, and the chart's noise band).
VIEW_TAUS = (DEFAULT_TAU, TAU_FULL, TAU_OFF)
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "task.json")


def folder() -> Path:
    return Path(os.environ.get("HAM_LAB_PRECOMPUTED") or ROOT / "assets" / "precomputed")


def _digest(directory: str, stamp: tuple) -> str:
    h = hashlib.sha256()
    for name in MODEL_FILES:
        path = Path(directory) / name
        if path.exists():
            h.update(name.encode() + b"\0")
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    return h.hexdigest()


_cached_digest = functools.lru_cache(maxsize=8)(_digest)


def model_hash(directory: Path) -> str:
    """SHA-256 over the model folder's files (weights, config, tokenizer, task), computed once
    per version of the files (their sizes and modification times)."""
    stamp = tuple((p.stat().st_size, p.stat().st_mtime_ns) if p.exists() else None
                  for p in (Path(directory) / n for n in MODEL_FILES))
    return _cached_digest(str(Path(directory).resolve()), stamp)


def text_hash(text: str) -> str:
    from app.shared import text_key      # the key every shared store and link uses

    return text_key(text)


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@dataclass
class SweepRows:
    """The memory-vs-quality chart's rows for one text: HAM at each threshold, the others at
    HAM's memory (dicts with policy, tau, kv_fraction, kv_bytes_peak, loss)."""

    ham: list
    policies: list


def sweep_rows(model, ids, taus: Sequence[float], progress: Optional[Callable[[int, int], None]] = None) -> SweepRows:
    """HAM at every tau and the compared policies at HAM's memory for 0 < tau <= 2, in one
    ham_core.analysis.sweep call (HAM's passes are the other policies' budgets, so each runs once)."""
    from ham_core.analysis.sweep import sweep
    from ham_core.model.policies import EQUAL_MEMORY

    rows = [r.to_dict() for r in sweep(model, ids, list(taus), ["ham", *EQUAL_MEMORY], progress=progress)
            if r.loss is not None]
    return SweepRows([r for r in rows if r["policy"] == "ham"],
                     [r for r in rows if r["policy"] != "ham" and 0 < r["tau"] <= 2])


def _read(path: Path) -> Optional[dict]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


@functools.lru_cache(maxsize=4)
def _by_text(directory: str, stamp: tuple) -> dict:
    """text hash -> file, for every preset file in the folder."""
    out = {}
    for path in sorted(Path(directory).glob("preset-*.json")):
        data = _read(path)
        if data and isinstance(data.get("text"), str):
            out[data["text"]] = path
    return out


def lookup_sweep(model_dir: Path, read_text: str, taus: Sequence[float]) -> Optional[SweepRows]:
    """The shipped rows for this exact text, model and threshold grid; None when there are none
    or they were computed with anything else."""
    d = folder()
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(d.glob("preset-*.json"))) if d.is_dir() else ()
    path = _by_text(str(d), stamp).get(text_hash(read_text))
    data = _read(path) if path else None
    if not data or data.get("model") != model_hash(model_dir) or data.get("text") != text_hash(read_text) \
            or data.get("taus") != [float(t) for t in taus]:
        return None
    return SweepRows(data["ham_rows"], data["policy_rows"])


def view_path(sweep_file: Path) -> Path:
    """preset-<name>.json (the sweep) -> preset-<name>.npz (its first view's results)."""
    return sweep_file.with_suffix(".npz")


@functools.lru_cache(maxsize=8)
def _read_view(path: str, stamp: tuple) -> Optional[dict]:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError):
        return None
    return {"meta": meta, "arrays": arrays} if meta.get("format") == FORMAT else None


def lookup_view(model_dir: Path, read_text: str, taus: Sequence[float]) -> Optional[dict]:
    """The arrays shipped for this exact text and model at these per-layer thresholds (one of a
    preset's first view: app.results.result_arrays), or None. Only numpy reads them: no torch."""
    d = folder()
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(d.glob("preset-*.json"))) if d.is_dir() else ()
    path = _by_text(str(d), stamp).get(text_hash(read_text))
    path = view_path(path) if path else None
    view = _read_view(str(path), path.stat().st_mtime_ns) if path and path.is_file() else None
    if not view or view["meta"].get("model") != model_hash(model_dir) or view["meta"].get("text") != text_hash(read_text):
        return None
    taus = [float(t) for t in taus]
    if taus not in view["meta"]["taus"]:
        return None
    i = view["meta"]["taus"].index(taus)
    prefix = f"{i}."
    return {name[len(prefix):]: a for name, a in view["arrays"].items() if name.startswith(prefix)}


def lookup_recall(model_dir: Path, settings: dict) -> Optional[list]:
    """Shipped recall-lab accuracy rows for these task settings and this recall model, or None."""
    data = _read(folder() / "recall.json")
    if not data or data.get("model") != model_hash(model_dir) or data.get("settings") != settings:
        return None
    return data["rows"]


def recall_settings(task: dict, seed: int = 0, n: int = 8) -> dict:
    """The recall lab's settings on first view (what its sliders start at)."""
    return {"n_pairs": int(task.get("n_pairs", 16)), "length": int(task.get("length", 256)),
            "first_seed": int(seed), "n": int(n)}


def accuracy_rows(model, n_pairs: int, length: int, first_seed: int, n: int,
                  progress: Optional[Callable[[float, str], None]] = None) -> list:
    """Recall accuracy and cache size of every policy (ham_core.analysis.recall) at the
    cache fractions strictly between 0 and 1, one fraction at a time so progress can be shown;
    full and none (which ignore the fraction) come with the first."""
    from ham_core.analysis import recall
    from ham_core.analysis.thresholds import DEFAULT_FRACTIONS
    from ham_core.model.policies import POLICY_NAMES, REFERENCES

    rows = []
    fractions = [f for f in DEFAULT_FRACTIONS if 0 < f < 1]
    for i, f in enumerate(fractions):
        if progress is not None:
            progress(i / len(fractions), f"Cache target {f:.0%}: running every policy ({i + 1}/{len(fractions)})")
        policies = POLICY_NAMES if i == 0 else tuple(p for p in POLICY_NAMES if p not in REFERENCES)
        rows += [r.to_dict() for r in recall.recall_accuracy(model, policies, fractions=[f], n_pairs=n_pairs,
                                                             length=length, seeds=range(first_seed, first_seed + n))]
    return rows


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def write_view(model_dir: Path, text: str, path: Path) -> dict:
    """The first view of `text` as the Read page draws it with the model in `model_dir`: the
    results at VIEW_TAUS, the read maps the page's choice of a first token looks through and
    that token's reads (app.views.read.first_view), as arrays in `path` (.npz)."""
    from app import engine, results, viewdata

    bundle = engine.bundle_at(model_dir)
    entry = results.text_entry(bundle, text)
    L = bundle.cfg.n_layers
    arrays, taus, pick = {}, [], None
    for i, tau in enumerate(VIEW_TAUS):
        r = results.computed_result(bundle, entry, results.grid_taus(bundle, tau), layers=tuple(range(L)))
        first = tau == DEFAULT_TAU
        pick = viewdata.first_view(r) if first else pick
        part = results.result_arrays(r, (pick.query,) if first and pick else (),
                                     viewdata.first_view_maps(r) if first else ())
        arrays.update({f"{i}.{name}": a for name, a in part.items()})
        taus.append(list(r.tau))
    meta = {"format": FORMAT, "model": model_hash(model_dir), "text": text_hash(entry.read_text), "taus": taus,
            "first_token": None if pick is None else pick.query}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez_compressed(f, meta=np.array(json.dumps(meta)), **arrays)
    return meta


def write_views(model_dir: Path, max_tokens: int, out: Path) -> list[Path]:
    """Every preset's first view (beside its sweep file, which is left as it is)."""
    from app.presets import PRESETS

    os.environ["HAM_LAB_MAX_TOKENS"] = str(max_tokens)
    written = []
    for name, text in PRESETS.items():
        path = view_path(out / f"preset-{slug(name)}.json")
        meta = write_view(model_dir, text, path)
        print(f"{path}: first view at token {meta['first_token']}", flush=True)
        written.append(path)
    return written


def write_presets(model_dir: Path, max_tokens: int, out: Path) -> list[Path]:
    from app.presets import PRESETS
    from app.results import TAU_GRID
    from ham_core.model.checkpoint import load_bundle

    model, tokenizer = load_bundle(model_dir)
    os.environ["HAM_LAB_MAX_TOKENS"] = str(max_tokens)     # the view reads the text as the app would
    written = []
    for name, text in PRESETS.items():
        tokens = tokenizer.tokenize(text)
        read = text if len(tokens) <= max_tokens else text[: tokens[max_tokens - 1].end]
        ids = tokenizer.encode(read)
        rows = sweep_rows(model, ids, TAU_GRID)
        path = out / f"preset-{slug(name)}.json"
        _write(path, {"format": FORMAT, "preset": name, "model": model_hash(model_dir), "text": text_hash(read),
                      "n_tokens": len(ids), "taus": [float(t) for t in TAU_GRID],
                      "ham_rows": rows.ham, "policy_rows": rows.policies})
        written.append(path)
        meta = write_view(model_dir, text, view_path(path))
        written.append(view_path(path))
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {len(ids)} tokens, "
              f"{len(rows.ham)} HAM rows, {len(rows.policies)} policy rows; first view at token "
              f"{meta['first_token']}", flush=True)
    return written


def write_recall(recall_dir: Path, out: Path) -> Path:
    from ham_core.data.recall_task import load_task
    from ham_core.model.checkpoint import load_model

    model, task = load_model(recall_dir), load_task(recall_dir)
    settings = recall_settings(task)
    rows = accuracy_rows(model, **settings)
    path = out / "recall.json"
    _write(path, {"format": FORMAT, "model": model_hash(recall_dir), "settings": settings, "rows": rows})
    print(f"{path}: {len(rows)} rows for {settings}", flush=True)
    return path


def check(model_dir: Path, recall_dir: Path, max_tokens: int) -> list[str]:
    """Names of the precomputed files that do not match the models and presets (empty: all do)."""
    from app.presets import PRESETS
    from app.results import TAU_GRID
    from ham_core.data.recall_task import load_task
    from ham_core.model.checkpoint import CONFIG, TOKENIZER
    from ham_core.model.config import HAMConfig
    from ham_core.model.tokenizer import HAMTokenizer

    tokenizer = HAMTokenizer.from_file(model_dir / TOKENIZER)
    cfg = HAMConfig.load(model_dir / CONFIG)
    bad = []
    for name, text in PRESETS.items():
        tokens = tokenizer.tokenize(text)
        read = text if len(tokens) <= max_tokens else text[: tokens[max_tokens - 1].end]
        if lookup_sweep(model_dir, read, TAU_GRID) is None:
            bad.append(f"preset-{slug(name)}.json")
        if any(lookup_view(model_dir, read, (float(tau),) * cfg.n_layers) is None for tau in VIEW_TAUS):
            bad.append(f"preset-{slug(name)}.npz")
    if lookup_recall(recall_dir, recall_settings(load_task(recall_dir))) is None:
        bad.append("recall.json")
    return bad


def main(argv: Optional[list] = None) -> int:
    from app.engine import DEFAULT_MAX_TOKENS
    from ham_core.model.checkpoint import default_model_dir, default_recall_dir

    p = argparse.ArgumentParser(prog="python -m app.precompute", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=Path(os.environ.get("HAM_LAB_MODEL") or default_model_dir()))
    p.add_argument("--recall-model", type=Path,
                   default=Path(os.environ.get("HAM_LAB_RECALL_MODEL") or default_recall_dir()))
    p.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, help="the app's token limit")
    p.add_argument("--out", type=Path, default=None, help="folder (default: assets/precomputed or HAM_LAB_PRECOMPUTED)")
    p.add_argument("--check", action="store_true", help="only check that the files match the models")
    p.add_argument("--only", choices=["presets", "views", "recall", "architectures"], default=None,
                   help="presets: their sweeps and first views; views: the first views alone; architectures: "
                        "the Architectures page's results (needs the comparison models)")
    args = p.parse_args(argv)
    if args.out is not None:
        os.environ["HAM_LAB_PRECOMPUTED"] = str(args.out)
    if args.check:
        bad = check(args.model, args.recall_model, args.max_tokens)
        print("every precomputed file matches its model" if not bad else
              "out of date (run python -m app.precompute): " + ", ".join(bad))
        return 1 if bad else 0
    out = folder()
    if args.only in (None, "presets"):
        write_presets(args.model, args.max_tokens, out)
    if args.only == "views":
        write_views(args.model, args.max_tokens, out)
    if args.only in (None, "recall"):
        write_recall(args.recall_model, out)
    if args.only in (None, "architectures"):       # the comparison models, once they are trained
        from app import engine, precompute_architectures

        precompute_architectures.write(engine.compare_dir(), args.max_tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
