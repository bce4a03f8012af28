"""The model: config, the HAM layer and its ops, the full model, decoding, checkpoints, the
tokenizer, the selection policies (which keys each layer caches) and the training routes.

Nothing here imports from ham_core.data, .analysis, .training or .cli.
"""
from .config import HAMConfig
from .model import HAMModel, HAMOutput

__all__ = ["HAMConfig", "HAMModel", "HAMOutput"]
