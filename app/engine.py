"""The app's only door to ham_core: load models once, cache per-text results. No model math here.

HAM_LAB_MODEL=<dir> picks the language model folder (default: the shipped assets/lm);
HAM_LAB_RECALL_MODEL=<dir> the recall model (default: assets/recall);
HAM_LAB_COMPARE=<dir> the comparison models, one folder per architecture (default: assets/compare);
HAM_LAB_MAX_TOKENS caps how many tokens of a text are read (default 1,024);
HAM_LAB_THREADS sets torch's CPU threads (useful when another job shares the machine).

Nothing here imports torch until a model is wanted: a preset's first view is drawn from results
shipped with the app (app.precompute) while the model loads behind it (app.warmup).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from ham_core.model.checkpoint import (CONFIG, WEIGHTS, default_model_dir, default_recall_dir, load_tokenizer,
                                       stored_parameters)
from ham_core.errors import HAMInputError
from ham_core.model.config import HAMConfig

if TYPE_CHECKING:
    from ham_core.model.model import HAMModel

DEFAULT_MAX_TOKENS = 1024


@dataclass
class Bundle:
    """The language model's tokenizer and config, read at once without torch; the model itself
    is loaded on first use of `model` (once per process, usually by the warm-up first)."""

    tokenizer: object
    cfg: HAMConfig
    key: str                      # identifies the weights in cache keys
    directory: Path
    trained: bool                 # False: the shipped weights are missing, a random model stands in
    notice: str = ""

    @property
    def model(self) -> "HAMModel":
        return _load_model(str(self.directory), self.key)

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory already (asking for it would not wait)."""
        return self.key in _LOADED

    @property
    def load_error(self) -> str:
        """Why loading the model failed the last time it was tried ("" when it did not)."""
        return _FAILED.get(self.key, "")

    @property
    def device(self) -> str:
        """'CPU' or 'GPU (...)', as ham_core.model.dispatch words it (loads the model)."""
        from ham_core.model.dispatch import device_label

        return device_label(self.model.device)

    @property
    def n_params(self) -> int:
        return stored_parameters(self.directory) if self.trained else self.model.num_parameters()


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
    import torch

    try:
        n = int(os.environ.get("HAM_LAB_THREADS", "0"))
    except ValueError:
        n = 0
    if n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _key(directory: Path) -> str:
    weights = directory / WEIGHTS
    stamp = weights.stat().st_mtime_ns if weights.exists() else 0
    return f"{directory.resolve()}@{stamp}"


_LOADED: set = set()             # keys of the bundles whose model is in memory
_FAILED: dict = {}               # key -> why its model could not be loaded (weights found broken)
_LOADED_LOCK = threading.Lock()


@st.cache_resource(show_spinner=False)
def _load(directory: str, key: str) -> Bundle:
    path = Path(directory)
    if (path / WEIGHTS).exists():
        cfg = HAMConfig.load(path / CONFIG)
        return Bundle(load_tokenizer(path, cfg), cfg, key, path, True)
    tok = load_tokenizer(path)
    return Bundle(tok, HAMConfig(vocab_size=tok.vocab_size), key + "#random", path, False,
                  f"No trained weights in {path}: a random, untrained model stands in, so the "
                  "surprise and cache patterns are noise.")


@st.cache_resource(show_spinner="Loading the model (once)...")
def _load_model(directory: str, key: str) -> "HAMModel":
    import torch

    from ham_core.model.checkpoint import load_model
    from ham_core.model.model import HAMModel

    dev = _device()
    _set_threads()
    if key.endswith("#random"):
        torch.manual_seed(0)
        model = HAMModel(_load(directory, key.removesuffix("#random")).cfg).to(dev).eval()
    else:
        try:
            model = load_model(Path(directory), dev)
        except HAMInputError as exc:
            with _LOADED_LOCK:
                _FAILED[key] = str(exc)
            raise
    with _LOADED_LOCK:
        _LOADED.add(key)
        _FAILED.pop(key, None)
    return model


def bundle_at(directory: Path) -> Bundle:
    """The language model in `directory`: its tokenizer and config read once per process
    (HAMInputError if unusable); its model loads on first use."""
    return _load(str(directory), _key(directory))


def get_bundle() -> Bundle:
    """The app's language model (HAM_LAB_MODEL, or the shipped one): see bundle_at."""
    return bundle_at(model_dir())


def recall_dir() -> Path:
    return Path(os.environ.get("HAM_LAB_RECALL_MODEL") or default_recall_dir())


@st.cache_resource(show_spinner="Loading the recall model (once)...")
def _load_recall(directory: str, key: str):
    import torch

    from ham_core.data import recall_task
    from ham_core.model.checkpoint import load_model
    from ham_core.model.model import HAMModel

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


def compare_dir() -> Path:
    from ham_core.analysis.compare import default_compare_dir

    return Path(os.environ.get("HAM_LAB_COMPARE") or default_compare_dir())


@st.cache_resource(show_spinner="Loading the comparison models (once)...")
def _load_comparison(directory: str, key: str) -> dict:
    from ham_core.analysis.compare import load_comparison

    _set_threads()
    return load_comparison(directory)


def get_comparison() -> tuple[dict, str]:
    """({architecture: (model, tokenizer)}, key for caches) of the comparison models; a
    HAMInputError saying so when the folder holds none."""
    from ham_core.analysis.compare import COMPARED_ARCHITECTURES

    directory = compare_dir()
    key = ";".join(_key(directory / name) for name in COMPARED_ARCHITECTURES)
    return _load_comparison(str(directory), key), key
