"""The app's settings: every HAM_LAB_* variable, the threshold grid and the defaults, in one
place. Plain Python (no Streamlit, no torch, no ham_core), so every layer of the app may read it.

`current()` reads the environment into one frozen Settings; it is read again only when a
HAM_LAB_* variable changed (a test, or the precompute command choosing its token limit), so
every caller sees the same values and junk in a variable falls back to its default, once,
here. README's table "App settings" lists the same variables.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "assets"

# ham_core.model.surprise_range's ends, mirrored so that pages and drawing need no ham_core (a
# test holds them equal): 0 caches every token; TAU_OFF (above every surprise, 2) caches none.
TAU_FULL, TAU_OFF, SURPRISE_MAX = 0.0, 2.5, 2.0
# Thresholds the sweep computes (the slider's stops). A calibrated layer's median surprise reads
# 0.5 (docs/DESIGN.md, Thresholds), so half to a twentieth of the cache lies between about 0.5
# and 1.2 and the grid is finer there; TAU_OFF (> 2) caches nothing.
TAU_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 1.0,
            1.1, 1.25, 1.5, 1.75, 2.0, TAU_OFF)
DEFAULT_TAU = 0.7               # about a quarter of the full cache on English text
DEFAULT_TAU_INDEX = TAU_GRID.index(DEFAULT_TAU)
# What the token view can be coloured by (the Read page's choice, and a link's `metric`).
METRICS = {"min": "RNN surprise (the layer's, as it routes)", "head": "RNN surprise (one head)",
           "lm": "Next-token surprisal (nats)", "bought": "What the cache bought (nats)"}


def caches_nothing(tau: float) -> bool:
    """Whether a threshold is above every possible surprise (the layer runs as a pure RNN)."""
    return tau > SURPRISE_MAX


def tau_label(tau: float) -> str:
    return "∞ (RNN only)" if caches_nothing(tau) else f"{tau:.2f}"


@dataclass(frozen=True)
class Settings:
    """Everything the environment sets (README, "App settings"); each field names its variable."""

    model: Path = ASSETS / "lm"                         # HAM_LAB_MODEL
    recall_model: Path = ASSETS / "recall"              # HAM_LAB_RECALL_MODEL
    compare: Path = ASSETS / "compare"                  # HAM_LAB_COMPARE
    precomputed: Path = ASSETS / "precomputed"          # HAM_LAB_PRECOMPUTED
    max_tokens: int = 1024                              # HAM_LAB_MAX_TOKENS (at least 16; the model's own caps it)
    threads: int = 0                                    # HAM_LAB_THREADS (0: torch's default)
    cache_mb: float = 256                               # HAM_LAB_CACHE_MB
    workers: Optional[int] = None                       # HAM_LAB_WORKERS (None: cores / torch threads)
    store_texts: bool = True                            # HAM_LAB_STORE_TEXTS
    text_store: Path = Path.home() / ".cache" / "ham_lab" / "texts"   # HAM_LAB_TEXT_STORE
    text_store_mb: float = 50                           # HAM_LAB_TEXT_STORE_MB (oldest texts go first)
    text_store_files: float = 10_000                    # HAM_LAB_TEXT_STORE_FILES (a tiny text still takes a block)
    text_store_days: float = 30                         # HAM_LAB_TEXT_STORE_DAYS
    live_trainings: int = max(1, (os.cpu_count() or 1) // 2)   # HAM_LAB_LIVE_TRAININGS


NAMES = {f.name: "HAM_LAB_" + f.name.upper() for f in fields(Settings)}
DEFAULTS = Settings()


def _number(raw: Optional[str], default, low: float = 0.0):
    """A finite number at least `low` from a variable; unset or junk gives the default."""
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        return default
    return value if value == value and value >= low and value != float("inf") else default


def _integer(raw: Optional[str], default):
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        return default


@functools.lru_cache(maxsize=8)
def _read(values: tuple) -> Settings:
    env = dict(zip(NAMES, values))
    d = DEFAULTS
    path = lambda name: Path(env[name]) if env[name] else getattr(d, name)  # noqa: E731 - unset or empty: default
    workers = _number(env["workers"], None, 1)
    return Settings(
        model=path("model"), recall_model=path("recall_model"), compare=path("compare"),
        precomputed=path("precomputed"), text_store=path("text_store"),
        max_tokens=_integer(env["max_tokens"], d.max_tokens), threads=max(0, _integer(env["threads"], 0)),
        cache_mb=_number(env["cache_mb"], d.cache_mb, 1), workers=None if workers is None else int(workers),
        store_texts=(env["store_texts"] or "1").strip().lower() not in ("0", "false", "no", "off"),
        text_store_mb=_number(env["text_store_mb"], d.text_store_mb),
        text_store_files=_number(env["text_store_files"], d.text_store_files, 1),
        text_store_days=_number(env["text_store_days"], d.text_store_days),
        live_trainings=int(_number(env["live_trainings"], d.live_trainings, 1)))


def current() -> Settings:
    """The settings the environment gives now (read once per set of values)."""
    return _read(tuple(os.environ.get(name) for name in NAMES.values()))
