"""HAM Lab core: the Hybrid Associative Memory model and everything that is not UI."""
from .config import HAMConfig
from .errors import HAMInputError
from .model import HAMModel, HAMOutput

__all__ = ["HAMConfig", "HAMInputError", "HAMModel", "HAMOutput"]
