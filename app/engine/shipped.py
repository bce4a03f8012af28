"""Results computed ahead of time, so the presets and the recall lab open at once in class: the
lookup half (the files are written by the command `python -m app.precompute`).

For each preset, the HAM sweep over the slider's thresholds and the other policies at equal
memory (the rows of the memory-vs-quality chart); for the recall lab, the accuracy of every
policy at the default task; and each preset's whole first view (preset-<name>.npz: its results
at the default threshold, with a full cache and with none, and the reads that view shows), so
the Read page paints a preset before torch is even imported. They are shipped in
assets/precomputed/ (JSON, and numpy arrays without pickles), each stamped with a hash of the
model files it was computed with (and of the text read), and used only when both still match:
a retrained model, another token limit or an edited preset falls back to computing, as for any
pasted text. That hash is also the app's one identity of a model (app.engine.models).
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from app import settings
from app.engine.store import text_key     # a text's identity: the key every shared store and link uses
from app.settings import DEFAULT_TAU, TAU_FULL, TAU_OFF

FORMAT = 1
# The thresholds of a preset's first view: the slider's default (app.settings.DEFAULT_TAU), a
# full cache and none (what the cache bought, and the chart's noise band).
VIEW_TAUS = (DEFAULT_TAU, TAU_FULL, TAU_OFF)
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "task.json")


def folder() -> Path:
    return settings.current().precomputed


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
    path = _by_text(str(d), stamp).get(text_key(read_text))
    data = _read(path) if path else None
    if not data or data.get("model") != model_hash(model_dir) or data.get("text") != text_key(read_text) \
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
    preset's first view: app.engine.results.result_arrays), or None. Only numpy reads them: no torch."""
    d = folder()
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(d.glob("preset-*.json"))) if d.is_dir() else ()
    path = _by_text(str(d), stamp).get(text_key(read_text))
    path = view_path(path) if path else None
    view = _read_view(str(path), path.stat().st_mtime_ns) if path and path.is_file() else None
    if not view or view["meta"].get("model") != model_hash(model_dir) or view["meta"].get("text") != text_key(read_text):
        return None
    taus = [float(t) for t in taus]
    if taus not in view["meta"]["taus"]:
        return None
    i = view["meta"]["taus"].index(taus)
    prefix = f"{i}."
    return {name[len(prefix):]: a for name, a in view["arrays"].items() if name.startswith(prefix)}


def lookup_recall(model_dir: Path, task_settings: dict) -> Optional[list]:
    """Shipped recall-lab accuracy rows for these task settings and this recall model, or None."""
    data = _read(folder() / "recall.json")
    if not data or data.get("model") != model_hash(model_dir) or data.get("settings") != task_settings:
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
