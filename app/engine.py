"""The app's only door to ham_core: load models once, cache per-text results. No model math here.

HAM_LAB_MODEL=<dir> picks the language model folder (default: the shipped assets/lm);
HAM_LAB_RECALL_MODEL=<dir> the recall model (default: assets/recall);
HAM_LAB_MAX_TOKENS caps how many tokens of a text are read (default 1,024);
HAM_LAB_THREADS sets torch's CPU threads (useful when another job shares the machine).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import torch

from ham_core.data import recall_task
from ham_core.model.checkpoint import TOKENIZER, WEIGHTS, default_model_dir, default_recall_dir, load_bundle, load_model
from ham_core.model.config import HAMConfig
from ham_core.model.dispatch import device_label
from ham_core.model.model import HAMModel

DEFAULT_MAX_TOKENS = 1024


@dataclass
class Bundle:
    model: HAMModel
    tokenizer: object
    key: str                      # identifies the weights in cache keys
    device: str
    n_params: int
    trained: bool                 # False: the shipped weights are missing, a random model stands in
    notice: str = ""

    @property
    def cfg(self) -> HAMConfig:
        return self.model.cfg


def model_dir() -> Path:
    return Path(os.environ.get("HAM_LAB_MODEL") or default_model_dir())


def max_tokens(cfg: HAMConfig) -> int:
    try:
        limit = int(os.environ.get("HAM_LAB_MAX_TOKENS", DEFAULT_MAX_TOKENS))
    except ValueError:
        limit = DEFAULT_MAX_TOKENS
    return max(16, min(limit, cfg.max_tokens))


def input_chars(bundle: "Bundle") -> int:
    """The most characters of a paste or upload the token limit can use (no token spans more
    than the tokenizer's longest piece); longer input is cut to this before anything reads it."""
    from ham_core.data.textfile import prefix_bytes

    return prefix_bytes(bundle.tokenizer, max_tokens(bundle.cfg))


def _libc():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


_LIBC = _libc()


def release_free_memory() -> None:
    """Hand freed heap pages back to the system (glibc's malloc_trim; a no-op elsewhere).

    Every session runs in its own thread and glibc gives threads their own arenas, which keep
    the memory a forward's activations freed; with many sessions that retained memory, not the
    results, dominates the server's size (30 sessions: peak RSS 2.0 GB without, 0.96 GB with).
    Called after each model computation; it costs a few ms at most.
    """
    if _LIBC is not None:
        try:
            _LIBC.malloc_trim(0)
        except AttributeError:
            pass


def _set_threads() -> None:
    try:
        n = int(os.environ.get("HAM_LAB_THREADS", "0"))
    except ValueError:
        n = 0
    if n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _key(directory: Path) -> str:
    weights = directory / WEIGHTS
    stamp = weights.stat().st_mtime_ns if weights.exists() else 0
    return f"{directory.resolve()}@{stamp}"


@st.cache_resource(show_spinner="Loading the model (once)...")
def _load(directory: str, key: str) -> Bundle:
    path = Path(directory)
    dev = _device()
    _set_threads()
    if (path / WEIGHTS).exists():
        model, tok = load_bundle(path, device=dev)
        return Bundle(model, tok, key, device_label(dev), model.num_parameters(), True)
    from ham_core.model.tokenizer import HAMTokenizer

    tok = HAMTokenizer.from_file(path / TOKENIZER)
    torch.manual_seed(0)
    model = HAMModel(HAMConfig(vocab_size=tok.vocab_size)).to(dev).eval()
    return Bundle(model, tok, key + "#random", device_label(dev), model.num_parameters(), False,
                  f"No trained weights in {path}: a random, untrained model stands in, so the "
                  "surprise and cache patterns are noise.")


def get_bundle() -> Bundle:
    """The language model and tokenizer, loaded once per process (HAMInputError if unusable)."""
    directory = model_dir()
    return _load(str(directory), _key(directory))


def recall_dir() -> Path:
    return Path(os.environ.get("HAM_LAB_RECALL_MODEL") or default_recall_dir())


@st.cache_resource(show_spinner="Loading the recall model (once)...")
def _load_recall(directory: str, key: str):
    path = Path(directory)
    if (path / WEIGHTS).exists():
        return load_model(path, _device()), recall_task.load_task(path), True
    torch.manual_seed(0)
    return HAMModel(recall_task.recall_config()).to(_device()).eval(), dict(recall_task.TASK), False


def get_recall_bundle():
    """(model, task dict, trained?) for the recall lab."""
    directory = recall_dir()
    return _load_recall(str(directory), _key(directory))


def format_params(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"


def kaleido_available() -> bool:
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return False
    return True
