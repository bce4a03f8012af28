"""Links: a view as the URL's query parameters and back, pure functions, no model.

A link holds the preset name (or the key of a pasted text: its full SHA-256), the threshold, the
layer, the metric, the selected token and whose reads are drawn (one head, or the heads' mean).
Pasted texts are kept in a bounded store on this server (app.session.text_store), so a link made
here reopens the same text; a key that is not in the store says so instead of guessing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Optional

from app.engine.store import KEY_HEX
from app.settings import METRICS, TAU_FULL, TAU_OFF
from app.settings.presets import PRESETS

@dataclass
class ViewState:
    """What a link restores."""

    preset: Optional[str] = None
    text_hash: Optional[str] = None
    tau: Optional[float] = None
    layer: int = 0
    metric: str = "min"
    head: int = 0
    token: Optional[int] = None
    reads: Optional[int] = None       # the head whose reads are drawn (None: the heads' mean)


def _num(value, cast, default):
    try:
        out = cast(value)
    except (TypeError, ValueError):
        return default
    return out if out == out else default        # NaN -> default


def parse_params(params: Mapping[str, str], n_layers: int, n_heads: int) -> ViewState:
    """Query parameters -> ViewState; anything malformed falls back to the default."""
    preset = params.get("preset")
    state = ViewState(preset=preset if preset in PRESETS else None)
    h = params.get("text")
    if h and re.fullmatch(r"[0-9a-f]{%d}" % KEY_HEX, h):
        state.text_hash = h
    tau = _num(params.get("tau"), float, None)
    state.tau = None if tau is None else min(max(tau, TAU_FULL), TAU_OFF)
    state.layer = min(max(_num(params.get("layer"), int, 1), 1), n_layers) - 1
    state.head = min(max(_num(params.get("head"), int, 1), 1), n_heads) - 1
    state.metric = params.get("metric") if params.get("metric") in METRICS else "min"
    tok = _num(params.get("tok"), int, None)
    state.token = tok if tok is not None and tok >= 0 else None
    reads = _num(params.get("reads"), int, None)
    state.reads = reads - 1 if reads is not None and 1 <= reads <= n_heads else None
    return state


def to_params(state: ViewState) -> dict[str, str]:
    """ViewState -> query parameters (layer and head 1-based, as the page shows them)."""
    out: dict[str, str] = {}
    if state.preset:
        out["preset"] = state.preset
    elif state.text_hash:
        out["text"] = state.text_hash
    if state.tau is not None:
        out["tau"] = f"{state.tau:g}"
    out["layer"] = str(state.layer + 1)
    out["metric"] = state.metric
    if state.metric == "head":
        out["head"] = str(state.head + 1)
    if state.token is not None:
        out["tok"] = str(state.token)
    if state.reads is not None:
        out["reads"] = str(state.reads + 1)
    return out
