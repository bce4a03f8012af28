"""HAM Lab core: the Hybrid Associative Memory model and everything that is not UI.

The packages, lowest first; each imports only from the ones before it (tests/test_layers.py
checks this):

    errors, progress     one error type for bad input; a progress bar
    model/               config, layer, ops, model, decode, checkpoints, tokenizer, policies, routes
    data/                corpus, training windows, the recall task
    analysis/  training/ what a model does with a text; how a model is trained (side by side,
                         neither imports the other)
    cli/                 every `python -m ham_core` command

The names most callers need are here: `from ham_core import load_bundle, analyze`.
"""
from importlib import import_module

from .errors import HAMInputError

# Each name is imported on first use (PEP 562), so importing a torch-free module such as
# ham_core.model.tokenizer does not import torch: the app paints a preset's first view
# without it.
_HOMES = {"load_bundle": ".model.checkpoint", "load_model": ".model.checkpoint", "HAMConfig": ".model.config",
          "HAMModel": ".model.model", "HAMOutput": ".model.model", "Analysis": ".analysis.analysis",
          "analyze": ".analysis.analysis"}

__all__ = ["Analysis", "HAMConfig", "HAMInputError", "HAMModel", "HAMOutput", "analyze", "load_bundle", "load_model"]


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(_HOMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
