"""The app's models: the language model, the recall lab's and the comparison models, each loaded
once per process, in the folders app.settings names (HAM_LAB_MODEL, HAM_LAB_RECALL_MODEL,
HAM_LAB_COMPARE), with the token limit (HAM_LAB_MAX_TOKENS) and torch's threads (HAM_LAB_THREADS).
No model math here.

A model is known by one identity, its files' SHA-256 (app.engine.shipped.model_hash): the same
stamp the shipped results carry, in every cache key. Nothing here imports torch until a model is
wanted: a preset's first view is drawn from results shipped with the app (app.engine.shipped)
while the model loads behind it (app.engine.warmup).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from app import settings
from app.engine.shipped import model_hash
from ham_core.errors import HAMInputError
from ham_core.model.checkpoint import WEIGHTS, CONFIG, load_tokenizer, stored_parameters
from ham_core.model.config import HAMConfig

if TYPE_CHECKING:
    from ham_core.model.model import HAMModel

__all__ = ["HAMInputError"]        # what pages catch: bad input, said in one line (app.widgets.page.guard)


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
        """Where the model runs, in words (loads the model): device_name."""
        return device_name(self.model)

    @property
    def n_params(self) -> int:
        return stored_parameters(self.directory) if self.trained else self.model.num_parameters()


def device_name(model) -> str:
    """'CPU' or 'GPU (...)', as ham_core.model.dispatch words a model's device."""
    from ham_core.model.dispatch import device_label

    return device_label(model.device)


def model_dir() -> Path:
    return settings.current().model


def max_tokens(cfg: HAMConfig) -> int:
    return max(16, min(settings.current().max_tokens, cfg.max_tokens))


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

    n = settings.current().threads
    if n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _random_model(cfg: HAMConfig) -> "HAMModel":
    """The untrained stand-in for a folder without weights: the same random model every time."""
    import torch

    from ham_core.model.model import HAMModel

    torch.manual_seed(0)
    return HAMModel(cfg).to(_device()).eval()


_LOADED: set = set()             # keys of the bundles whose model is in memory
_FAILED: dict = {}               # key -> why its model could not be loaded (weights found broken)
_LOADED_LOCK = threading.Lock()


RANDOM = "#random"             # a key's suffix: the folder has no weights, a random model stands in


@st.cache_resource(show_spinner=False)
def _load(directory: str, key: str) -> Bundle:
    path = Path(directory)
    if (path / WEIGHTS).exists():
        cfg = HAMConfig.load(path / CONFIG)
        return Bundle(load_tokenizer(path, cfg), cfg, key, path, True)
    tok = load_tokenizer(path)
    return Bundle(tok, HAMConfig(vocab_size=tok.vocab_size), key + RANDOM, path, False,
                  f"No trained weights in {path}: a random, untrained model stands in, so the "
                  "surprise and cache patterns are noise.")


@st.cache_resource(show_spinner="Loading the model (once)...")
def _load_model(directory: str, key: str) -> "HAMModel":
    from ham_core.model.checkpoint import load_model

    _set_threads()
    if key.endswith(RANDOM):
        model = _random_model(_load(directory, key.removesuffix(RANDOM)).cfg)
    else:
        try:
            model = load_model(Path(directory), _device())
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
    return _load(str(directory), model_hash(directory))


def get_bundle() -> Bundle:
    """The app's language model (HAM_LAB_MODEL, or the shipped one): see bundle_at."""
    return bundle_at(model_dir())


def recall_dir() -> Path:
    return settings.current().recall_model


@st.cache_resource(show_spinner="Loading the recall model (once)...")
def _load_recall(directory: str, key: str):
    from ham_core.data import recall_task
    from ham_core.model.checkpoint import load_model

    path = Path(directory)
    if (path / WEIGHTS).exists():
        return load_model(path, _device()), recall_task.load_task(path), True
    return _random_model(recall_task.recall_config()), dict(recall_task.TASK), False


def recall_key() -> str:
    """The recall model's identity (its files' SHA-256)."""
    return model_hash(recall_dir())


def get_recall_bundle():
    """(model, task dict, trained?) for the recall lab."""
    return _load_recall(str(recall_dir()), recall_key())


def format_params(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"


def kaleido_available() -> bool:
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return False
    return True


def compare_dir() -> Path:
    return settings.current().compare


def recall_compare_dir() -> Path:
    """The recall-task models of the comparison: HAM_LAB_COMPARE's recall/ folder."""
    return compare_dir() / "recall"


@st.cache_resource(show_spinner="Loading the comparison models (once)...")
def _load_comparison(directory: str, key: str, recall: bool) -> dict:
    from ham_core.analysis.compare import load_comparison, load_recall_comparison

    _set_threads()
    return (load_recall_comparison if recall else load_comparison)(directory)


def get_comparison(recall: bool = False) -> tuple[dict, str]:
    """({architecture: (model, tokenizer)}, key for caches) of the comparison models, or with
    recall=True ({architecture: recall model}, key) of the recall task's (recall_compare_dir); a
    HAMInputError saying so when the folder holds none."""
    from ham_core.analysis.compare import COMPARED_ARCHITECTURES

    directory = recall_compare_dir() if recall else compare_dir()
    key = ";".join(model_hash(directory / name) for name in COMPARED_ARCHITECTURES)
    return _load_comparison(str(directory), key, recall), key
