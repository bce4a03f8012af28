"""Checkpoints: model.safetensors (weights) + config.json, with tokenizer.json beside them.

Loading never unpickles anything: safetensors holds raw tensors only. Every failure names the
file at fault, so a user who points the app at the wrong folder knows what to fix.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from safetensors import SafetensorError

from .config import HAMConfig
from ham_core.errors import HAMInputError

if TYPE_CHECKING:     # torch is imported where a model is built, so the file names come without it
    import torch

    from .model import HAMModel

ASSETS = Path(__file__).resolve().parents[2] / "assets"
WEIGHTS, CONFIG, TOKENIZER = "model.safetensors", "config.json", "tokenizer.json"


def default_model_dir() -> Path:
    """The shipped English model."""
    return ASSETS / "lm"


def default_recall_dir() -> Path:
    """The shipped recall-lab model."""
    return ASSETS / "recall"


def save_checkpoint(model: HAMModel, directory: str | Path, metadata: Optional[dict] = None) -> Path:
    """Write model.safetensors and config.json into `directory` (created if needed)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().contiguous().cpu() for name, t in model.state_dict().items()}
    meta = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in (metadata or {}).items()}
    save_file(tensors, str(directory / WEIGHTS), metadata=meta or None)
    model.cfg.save(directory / CONFIG)
    return directory


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> HAMModel:
    """Build a HAMModel from a checkpoint folder, in eval mode on `device`."""
    import torch
    from safetensors.torch import load_file

    from .model import HAMModel

    directory = Path(directory)
    if not directory.is_dir():
        raise HAMInputError(f"model folder not found: {directory}")
    cfg = HAMConfig.load(directory / CONFIG)
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise HAMInputError(f"weights file not found: {weights}")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise HAMInputError(f"weights file {weights} is corrupt or not safetensors: {exc}") from None
    model = HAMModel(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise HAMInputError(
            f"weights file {weights} does not match {directory / CONFIG}: "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise HAMInputError(
                f"weights file {weights}: {name} has shape {list(tensor.shape)}, "
                f"config expects {list(expected[name].shape)}"
            )
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            bad = int((~torch.isfinite(tensor)).sum())
            raise HAMInputError(f"weights file {weights} is damaged: {name} holds {bad:,} NaN or infinite "
                                f"value(s); retrain or restore the file")
    model.load_state_dict(state)
    return model.to(device).eval()


def stored_parameters(directory: str | Path) -> int:
    """How many numbers model.safetensors holds, read from its header (no torch): the model's
    parameter count (HAMModel keeps no buffers; tests/model/test_checkpoint.py checks)."""
    from safetensors import safe_open

    weights = Path(directory) / WEIGHTS
    try:
        with safe_open(str(weights), framework="numpy") as f:
            shapes = [f.get_slice(name).get_shape() for name in f.keys()]
    except (SafetensorError, OSError) as exc:
        raise HAMInputError(f"weights file {weights} cannot be read: {exc}") from None
    return sum(math.prod(shape) for shape in shapes)


def read_metadata(directory: str | Path) -> dict:
    """The metadata stored in model.safetensors (training facts), decoded from JSON."""
    from safetensors import safe_open

    weights = Path(directory) / WEIGHTS
    try:
        with safe_open(str(weights), framework="pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise HAMInputError(f"weights file {weights} cannot be read: {exc}") from None
    out = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def load_tokenizer(directory: str | Path, cfg: Optional[HAMConfig] = None):
    """The folder's tokenizer.json (no torch), checked against the model's config when given."""
    from .tokenizer import HAMTokenizer

    tokenizer = HAMTokenizer.from_file(Path(directory) / TOKENIZER)
    if cfg is not None and tokenizer.vocab_size > cfg.vocab_size:
        raise HAMInputError(
            f"tokenizer {Path(directory) / TOKENIZER} has {tokenizer.vocab_size} tokens, "
            f"more than the model's vocab_size {cfg.vocab_size}"
        )
    return tokenizer


def load_bundle(directory: str | Path | None = None, device: str | torch.device = "cpu"):
    """(model, tokenizer) from a checkpoint folder; the shipped English model by default."""
    directory = Path(directory) if directory is not None else default_model_dir()
    model = load_model(directory, device)
    return model, load_tokenizer(directory, model.cfg)
