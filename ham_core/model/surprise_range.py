"""The range of the RNN's surprise and the two thresholds at its ends, without torch (the app's
first view and its links use them before the model is loaded)."""
from __future__ import annotations

SURPRISE_MAX = 2.0     # surprise is 1 - cos: it lies in [0, 2]
# Surprise lies in [0, SURPRISE_MAX]: tau 0 caches every token and any tau above SURPRISE_MAX
# caches none. TAU_OFF is the one value that stands for "cache nothing" (the pure RNN).
TAU_FULL, TAU_OFF = 0.0, 2.5


def caches_nothing(tau: float) -> bool:
    """Whether a threshold is above every possible surprise (the layer runs as a pure RNN)."""
    return tau > SURPRISE_MAX
