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
from .errors import HAMInputError
from .model.checkpoint import load_bundle, load_model
from .model.config import HAMConfig
from .model.model import HAMModel, HAMOutput
from .analysis.analysis import Analysis, analyze

__all__ = ["Analysis", "HAMConfig", "HAMInputError", "HAMModel", "HAMOutput", "analyze", "load_bundle", "load_model"]
