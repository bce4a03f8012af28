"""The model: config, the HAM layer and its ops, the full model, decoding, checkpoints, the
tokenizer, the selection policies (which keys each layer caches) and the training routes.

Nothing here imports from ham_core.data, .analysis, .training or .cli.
"""
from .config import HAMConfig

__all__ = ["HAMConfig", "HAMModel", "HAMOutput"]


def __getattr__(name: str):
    # The model (torch) is imported on first use, so the torch-free modules here stay light.
    if name in ("HAMModel", "HAMOutput"):
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
