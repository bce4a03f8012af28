"""Compact-cache decoding: the RNN state plus a KV cache that holds only the routed tokens.

This is the form a deployed HAM runs: each new token updates the RNN state, is routed by its
surprise (decided from S_{t-1} alone, so before the token is read), and, if routed, its (k, v)
is appended to the layer's cache. Memory is the RNN state plus the cache, nothing else.
The other architectures (config.ARCHITECTURES) run the same way: a Transformer appends every
token and has no state, GDN keeps no cache, and a window model appends every token and drops
the oldest once it holds W.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, List, Optional

import torch

from . import dispatch
from ham_core.errors import HAMInputError
from .model import HAMModel, TauLike, resolve_tau


@dataclass
class LayerCache:
    """One layer's memory for one text: conv history, RNN state, and the compact KV cache."""

    conv: torch.Tensor                   # [1, conv_size - 1, 3 * H * D] recent projections
    state: torch.Tensor                  # [1, H, D, D] RNN state S ([1, H, 0, 0]: no RNN)
    keys: torch.Tensor                   # [n, H, D] routed keys, in arrival order
    values: torch.Tensor                 # [n, H, D]
    positions: List[int] = field(default_factory=list)  # which tokens they came from


@dataclass
class DecodeState:
    """Everything carried between tokens: per-layer caches and the position reached."""

    layers: List[LayerCache]
    tau: torch.Tensor                    # [L] thresholds (HAM)
    position: int = 0
    window: Optional[int] = None         # W, the keys a window model keeps (None: every token)

    def cache_sizes(self) -> List[int]:
        return [len(layer.positions) for layer in self.layers]

    def kv_bytes(self) -> int:
        return sum(layer.keys.numel() + layer.values.numel() for layer in self.layers) * 4


@dataclass
class StepResult:
    logits: torch.Tensor                 # [V] next-token logits
    surprise: torch.Tensor               # [L, H] per-head surprise of this token
    cached: torch.Tensor                 # [L] bool: did it enter each layer's cache


def start(model: HAMModel, tau: TauLike = 0.5, window: Optional[int] = None) -> DecodeState:
    """An empty memory for one text; tau routes a HAM model, window (W) a window model."""
    cfg = model.cfg
    dev = model.device
    taus = resolve_tau(tau, 1, cfg.n_layers, dev)[0]
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 0):
        raise HAMInputError(f"window must be a whole number of tokens >= 0, got {window!r}")
    state_dim = cfg.head_dim if cfg.has_rnn else 0
    empty = lambda: torch.zeros(0, cfg.n_heads, cfg.head_dim, device=dev)  # noqa: E731
    layers = [
        LayerCache(
            conv=torch.zeros(1, cfg.conv_size - 1, 3 * cfg.inner_dim, device=dev),
            state=torch.zeros(1, cfg.n_heads, state_dim, state_dim, device=dev),
            keys=empty(),
            values=empty(),
        )
        for _ in range(cfg.n_layers)
    ]
    return DecodeState(layers, taus, window=window)


def _admits(model: HAMModel, mem: DecodeState, layer_surprise: torch.Tensor, tau: torch.Tensor) -> bool:
    """Whether this token enters the layer's cache (decided before it is read): HAM by its
    surprise, a Transformer always, a window model unless W = 0 (it then drops its oldest), GDN never."""
    arch = model.cfg.architecture
    if arch == "ham":
        return bool(layer_surprise >= tau)
    if arch == "window":
        return mem.window != 0
    return arch == "transformer"


@torch.no_grad()
def step(model: HAMModel, mem: DecodeState, token: int) -> StepResult:
    """Read one token, update `mem` in place, return its logits, surprise and routing."""
    if not 0 <= int(token) < model.cfg.vocab_size:
        raise HAMInputError(f"token id {token} out of range [0, {model.cfg.vocab_size})")
    x = model.embed(torch.tensor([[int(token)]], device=model.device))     # [1, 1, d]
    surprises, cached = [], []
    for block, cache, tau in zip(model.blocks, mem.layers, mem.tau):
        layer = block.ham
        h = block.ham_norm(x)
        q, k, v, g, beta, cache.conv = layer.project(h, cache.conv)
        if layer.has_rnn:
            rnn = dispatch.delta_rule(q, k, v, g, beta, cache.state, mode="recurrent")
            cache.state = rnn.final_state
        else:
            rnn = layer.no_rnn(q)
        surprise = layer.routed_surprise(rnn.surprise[0, 0])              # [H]
        is_cached = _admits(model, mem, layer.layer_surprise(surprise), tau)   # decided from S_{t-1}
        if is_cached:
            cache.keys = torch.cat([cache.keys, k[0]], 0)
            cache.values = torch.cat([cache.values, v[0]], 0)
            cache.positions.append(mem.position)
        if model.cfg.architecture == "window" and mem.window is not None and len(cache.positions) > mem.window:
            cache.keys, cache.values, cache.positions = cache.keys[1:], cache.values[1:], cache.positions[1:]
        o_attn = None
        if layer.has_attention:
            o_attn = dispatch.decode_attention(layer.read_query(q[0, 0]), cache.keys, cache.values,
                                               layer.temperature)[None, None]
        x = x + layer.combine(h, rnn.out, o_attn)
        x = x + block.mlp(block.mlp_norm(x))
        surprises.append(surprise)
        cached.append(is_cached)
    mem.position += 1
    return StepResult(model.head(x)[0, 0], torch.stack(surprises), torch.tensor(cached))


@dataclass
class Generated:
    token: int                           # the sampled token id
    cache_sizes: List[int]               # per-layer cache size after reading the prompt and it


def generate(
    model: HAMModel,
    prompt: List[int],
    max_new_tokens: int = 50,
    tau: TauLike = 0.5,
    temperature: float = 0.0,
    seed: Optional[int] = 0,
    mem: Optional[DecodeState] = None,
) -> Iterator[Generated]:
    """Stream tokens after `prompt`: greedy when temperature is 0, else sampled (seeded).

    Each yielded token has already been read into memory, so cache sizes include it.
    """
    if not prompt:
        raise HAMInputError("prompt is empty: need at least one token")
    if temperature < 0 or temperature != temperature:
        raise HAMInputError(f"temperature must be >= 0, got {temperature}")
    if max_new_tokens < 0:
        raise HAMInputError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    mem = mem if mem is not None else start(model, tau)
    gen = torch.Generator(device="cpu")
    if seed is not None:
        gen.manual_seed(int(seed))
    for token in prompt:
        result = step(model, mem, token)
    for _ in range(max_new_tokens):
        logits = result.logits.float().cpu()
        if temperature == 0:
            token = int(logits.argmax())
        else:
            probs = torch.softmax(logits / temperature, -1)
            token = int(torch.multinomial(probs, 1, generator=gen))
        result = step(model, mem, token)
        yield Generated(token, mem.cache_sizes())
