"""Per-text results: ham_core.analysis.analyze at each threshold setting, the HAM sweep over a
grid of thresholds (computed once per text and model) and the other policies at equal memory
(ham_core.sweep). No model math here: this module only calls ham_core and reshapes for views.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import streamlit as st
import torch

from app.engine import Bundle, max_tokens
from ham_core.analysis import Analysis, analyze
from ham_core.errors import HAMInputError

# Thresholds the sweep computes (the slider's stops). A trained model's surprises sit mostly
# below 0.7, so the grid is finer there; 2.5 (> 2) caches nothing.
TAU_GRID = (0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5,
            0.6, 0.7, 0.85, 1.0, 1.25, 1.5, 2.0, 2.5)
DEFAULT_TAU = 0.2
TOP_READS = 12                  # reads listed per query
OTHER_POLICIES = ("random", "window", "sinks", "hola")


def tau_label(tau: float) -> str:
    return "∞ (RNN only)" if tau > 2 else f"{tau:.2f}"


@dataclass
class TextResult:
    """What the views draw for one text at one threshold setting (numpy arrays, plus the
    Analysis itself for attention reads, which it computes on demand)."""

    analysis: Analysis
    tokens: list                  # display text of each token
    starts: list
    ends: list
    tau: list                     # per-layer thresholds used
    lm_surprisal: np.ndarray      # [T] -log p(token | before), NaN for the first token
    surprise: np.ndarray          # [L, T, H] per-head RNN surprise
    cached: np.ndarray            # [L, T] bool
    kv_tokens: np.ndarray         # [L] peak keys per layer
    loss: float                   # NaN for a one-token text
    kv_fraction: float
    kv_bytes_peak: int
    kv_bytes_full: int
    state_bytes: int
    notice: str = ""              # truncation notice ("" when the whole text was read)
    n_tokens_total: int = 0
    layer_surprise: Optional[np.ndarray] = None   # [L, T] min over heads (routing uses this)
    tips: dict = field(default_factory=dict)      # layer -> hover texts (app.panels.tooltips)

    @property
    def perplexity(self) -> float:
        return float(np.exp(min(self.loss, 50.0))) if self.loss == self.loss else float("nan")

    def reads(self, query: int, layer: int, head: Optional[int] = None) -> tuple[dict, float]:
        """{key position: weight} read by `query` in `layer` (one head, or averaged over heads),
        largest first, and the sink's share."""
        r = self.analysis.reads(int(query), int(layer))
        top = {i: w for i, w in r.top(TOP_READS, head=head) if w > 0}
        sink = r.mean_sink if head is None else float(r.sink[head])
        return top, sink


def _display(tokenizer, tokens) -> list:
    if any(t.text == "" for t in tokens):          # tail bytes of a split character: show them
        shown = tokenizer.token_strings([t.id for t in tokens])
        return [t.text or s for t, s in zip(tokens, shown)]
    return [t.text for t in tokens]


def to_result(a: Analysis, tokenizer, notice: str, total: int) -> TextResult:
    return TextResult(
        analysis=a, tokens=_display(tokenizer, a.tokens), starts=[t.start for t in a.tokens],
        ends=[t.end for t in a.tokens], tau=list(a.tau),
        lm_surprisal=np.array([math.nan if x is None else x for x in a.lm_surprisal], dtype=np.float32),
        surprise=a.surprise_heads.numpy(), layer_surprise=a.surprise.numpy(), cached=a.cached.numpy(), kv_tokens=np.array(a.kv_peak),
        loss=math.nan if a.loss is None else a.loss, kv_fraction=a.kv_fraction, kv_bytes_peak=a.kv_bytes_peak,
        kv_bytes_full=a.kv_bytes_full, state_bytes=a.state_bytes, notice=notice or a.notice,
        n_tokens_total=max(total, a.n_tokens_total),
    )


class TextStore:
    """Everything computed for one text with one model: results per threshold setting and the
    other policies' rows. Held by st.cache_resource (shared, never copied: an Analysis keeps
    tensors, and st.cache_data would pickle and copy them on every slider move)."""

    def __init__(self, text: str):
        self.text = text
        self.read_text: Optional[str] = None   # the text cut to the app's token limit
        self.notice = ""
        self.total = 0
        self.results: dict = {}                # per-layer tau tuple -> TextResult
        self.policy_rows: Optional[list] = None
        self.extras: dict = {}                 # other per-text results (the how-it-works gates)


@st.cache_resource(max_entries=4, show_spinner=False)
def _store(model_key: str, text_key: str, limit: int, _text: str) -> TextStore:
    return TextStore(_text)


def store_for(bundle: Bundle, text: str) -> TextStore:
    from app.state import text_hash

    store = _store(bundle.key, text_hash(text), max_tokens(bundle.cfg), text)
    if store.read_text is None:
        _cut(bundle, store)
    return store


def _cut(bundle: Bundle, store: TextStore) -> None:
    """Apply the app's token limit (HAM_LAB_MAX_TOKENS, at most the model's own) by cutting the
    text after the limit-th token; analyze then reads that prefix."""
    if not store.text.strip():
        raise HAMInputError("the text is empty (or only whitespace): give some text to read")
    tokens = bundle.tokenizer.tokenize(store.text)
    limit = max_tokens(bundle.cfg)
    store.total = len(tokens)
    if len(tokens) > limit:
        store.read_text = store.text[: tokens[limit - 1].end]
        store.notice = (f"The text has {len(tokens):,} tokens; only the first {limit:,} are read "
                        "(the token limit shown in the sidebar).")
    else:
        store.read_text = store.text


def grid_taus(bundle: Bundle, tau: float) -> tuple:
    return (float(tau),) * bundle.cfg.n_layers


def _analyze(bundle: Bundle, store: TextStore, taus: tuple) -> TextResult:
    a = analyze(bundle.model, bundle.tokenizer, store.read_text, tau=list(taus))
    return to_result(a, bundle.tokenizer, store.notice, store.total)


def prepare(bundle: Bundle, text: str, progress=None, layer: int = 0) -> TextStore:
    """The HAM sweep: an analysis at every grid threshold, computed once per text and model.
    Each is warmed for `layer`'s attention reads, so slider moves never wait for them."""
    store = store_for(bundle, text)
    missing = [t for t in TAU_GRID if grid_taus(bundle, t) not in store.results]
    for i, tau in enumerate(missing):
        if progress is not None:
            progress(i / len(missing), f"Reading the text at threshold {tau_label(tau)} ({i + 1}/{len(missing)})")
        store.results[grid_taus(bundle, tau)] = _analyze(bundle, store, grid_taus(bundle, tau))
    for tau in TAU_GRID:
        store.results[grid_taus(bundle, tau)].analysis.reads(0, layer)      # computes the layer's q, k once
    return store


def result_for(bundle: Bundle, store: TextStore, taus: tuple) -> TextResult:
    """The result at any per-layer setting (grid points are precomputed; others on demand)."""
    taus = tuple(float(t) for t in taus)
    if taus not in store.results:
        store.results[taus] = _analyze(bundle, store, taus)
    return store.results[taus]


def ham_rows(bundle: Bundle, store: TextStore) -> list:
    """The HAM curve: one row per grid threshold (policy, tau, kv_fraction, kv_bytes_peak, loss)."""
    rows = []
    for tau in TAU_GRID:
        r = store.results.get(grid_taus(bundle, tau))
        if r is not None and r.loss == r.loss:
            rows.append(dict(policy="ham", tau=tau, kv_fraction=r.kv_fraction, kv_bytes_peak=r.kv_bytes_peak,
                             loss=r.loss))
    return rows


def read_ids(bundle: Bundle, store: TextStore) -> torch.Tensor:
    """Token ids of the text as read (after the token limit): [T]."""
    return torch.tensor([t.id for t in store.results[next(iter(store.results))].analysis.tokens]) \
        if store.results else torch.tensor(bundle.tokenizer.encode(store.read_text))


def policy_rows(bundle: Bundle, store: TextStore, progress=None) -> list:
    """The other selection policies at HAM's memory for each grid threshold (ham_core.sweep)."""
    from ham_core.sweep import sweep

    taus = [t for t in TAU_GRID if 0 < t <= 2]

    def report(done: int, total: int) -> None:
        if progress is not None:
            frac = done / total if total else 0.0
            progress(min(frac, 1.0), f"Other policies at equal memory: {100 * frac:.0f}%")

    rows = sweep(bundle.model, read_ids(bundle, store), taus, list(OTHER_POLICIES), progress=report)
    return [r.to_dict() for r in rows if r.policy in OTHER_POLICIES and r.loss is not None]


def layer_inputs(bundle: Bundle, store: TextStore, taus: tuple, layer: int) -> dict:
    """Steps 1-2 for one layer, as the layer itself computes them (HAMLayer.project on the
    layer's own input, captured with a forward pre-hook): per token and head ||k||, ||v||,
    alpha = exp(g) and beta. Numpy arrays [T, H]."""
    key = ("gates", tuple(taus), layer)
    if key in store.extras:
        return store.extras[key]
    model = bundle.model
    ham = model.blocks[layer].ham
    seen = {}

    def capture(module, args) -> None:            # returns None: the forward is left unchanged
        seen["x"] = args[0]

    hook = ham.register_forward_pre_hook(capture)
    try:
        with torch.no_grad():
            model(read_ids(bundle, store)[None].to(model.device), tau=list(taus))
            q, k, v, g, beta, _ = ham.project(seen["x"])
    finally:
        hook.remove()
    as_np = lambda t: t[0].float().cpu().numpy()  # noqa: E731
    store.extras[key] = {"k_norm": as_np(k.norm(dim=-1)), "v_norm": as_np(v.norm(dim=-1)),
                         "alpha": as_np(g.exp()), "beta": as_np(beta)}
    return store.extras[key]
