"""Selection policies: which keys each query may read, per layer (docs/DESIGN.md section 3).

A policy is one function of a layer's `LayerSignals` (B texts of T tokens, H heads) returning
either a kept-key mask [B, T] (a fixed cache) or a query-by-key mask [B, T, T] (a sliding
cache). Causality is applied by the attention, so a policy may ignore it.

Equal memory: every policy marked `needs_budget` keeps, in each layer, HAM's peak cache size
W_l at the same tau (memory = the most keys any query can read). W comes from a HAM pass at
that tau, so running such a policy costs two forwards (`run_policy` does both). `full` and
`none` are the fixed references (tau = 0 and tau > 2). Adding a policy is one function:

    @register("every_other", about="every second token")
    def every_other(s: LayerSignals) -> torch.Tensor:
        ...
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import torch

from ham_core.errors import HAMInputError

from .layer import Route, layer_surprise, recent_mask
from .model import HAMModel, HAMOutput, TauLike, resolve_tau
from .surprise_range import TAU_FULL, TAU_OFF, caches_nothing  # noqa: F401 - their home; named here too

SINK_TOKENS = 4   # StreamingLLM keeps the first 4 tokens


@dataclass
class LayerSignals:
    """What a policy may look at when it chooses one layer's keys."""

    surprise: torch.Tensor            # [B, T, H] per-head RNN surprise in this pass
    residual: torch.Tensor            # [B, T, H] committed residual ||u_t|| in this pass
    tau: torch.Tensor                 # [B] HAM's threshold for this layer
    heads: str                        # how the heads' surprise combine (HAMConfig.head_rule)
    budget: Optional[torch.Tensor]    # [B] long: W, HAM's peak cache at tau (equal-memory policies)
    layer: int
    seed: int


@dataclass(frozen=True)
class Policy:
    name: str
    keep: Callable[[LayerSignals], torch.Tensor]   # -> [B, T] or [B, T, T] bool
    needs_budget: bool                             # keeps HAM's W_l keys; needs a HAM pass first
    about: str
    fixed: bool = False                            # ignores tau and memory: a reference (full, none)


POLICIES: Dict[str, Policy] = {}


def register(name: str, *, needs_budget: bool = True, fixed: bool = False, about: str = ""):
    """Decorator adding a policy. An equal-memory policy must keep at most W keys for every
    query, exactly W for some, nothing at W = 0 and every key at W = T (the sweep relies on it)."""

    def add(fn: Callable[[LayerSignals], torch.Tensor]):
        POLICIES[name] = Policy(name, fn, needs_budget, about or (fn.__doc__ or "").strip().split("\n")[0], fixed)
        return fn

    return add


def get_policy(name: str) -> Policy:
    if name not in POLICIES:
        raise HAMInputError(f"unknown policy {name!r}; choose one of: {', '.join(POLICIES)}")
    return POLICIES[name]


def _top_budget(score: torch.Tensor, budget: torch.Tensor) -> torch.Tensor:
    """Keep the budget[b] highest-scoring tokens of each text: score [B, T], budget [B] -> [B, T]."""
    order = score.argsort(dim=-1, descending=True, stable=True)
    rank = order.argsort(dim=-1)
    return rank < budget[:, None].to(score.device)


@register("ham", needs_budget=False, about="tokens the RNN failed to predict (surprise >= tau)")
def ham(s: LayerSignals) -> torch.Tensor:
    """HAM: cache token t when its layer surprise (the heads combined by the model's rule) reaches tau."""
    return layer_surprise(s.surprise, s.heads) >= s.tau[:, None]


@register("random", about="the same number of tokens, chosen uniformly at random (seeded)")
def random_keys(s: LayerSignals) -> torch.Tensor:
    """W tokens at random. One score per position (seeded by seed and layer), so the kept sets
    are nested as W grows and do not depend on how texts are batched."""
    B, T, _ = s.surprise.shape
    gen = torch.Generator().manual_seed(int(s.seed) * 1009 + s.layer)
    score = torch.rand(T, generator=gen).to(s.surprise.device).expand(B, T)
    return _top_budget(score, s.budget)


@register("window", about="a sliding window of the W most recent tokens")
def recent_window(s: LayerSignals) -> torch.Tensor:
    """Query t reads tokens t - W + 1 .. t: [B, T, T]."""
    T, dev = s.surprise.shape[1], s.surprise.device
    return torch.stack([recent_mask(T, int(W), dev) for W in s.budget.tolist()])


@register("sinks", about="the first 4 tokens plus a sliding window of W - 4 (StreamingLLM)")
def sinks_and_window(s: LayerSignals) -> torch.Tensor:
    """Query t reads the first min(4, W) tokens and its W - min(4, W) most recent ones: [B, T, T]."""
    T, dev = s.surprise.shape[1], s.surprise.device
    masks = []
    for W in s.budget.tolist():
        sinks = min(SINK_TOKENS, int(W))
        mask = recent_mask(T, int(W) - sinks, dev)
        mask[:, :sinks] |= torch.ones(T, sinks, dtype=torch.bool, device=dev).tril()
        masks.append(mask)
    return torch.stack(masks)


@register("hola", about="the W tokens with the largest committed residual (HOLA)")
def hola(s: LayerSignals) -> torch.Tensor:
    """Top-W tokens by beta ||v - alpha S^T k||, averaged over heads, from this very pass."""
    return _top_budget(s.residual.mean(-1), s.budget)


@register("full", needs_budget=False, fixed=True, about="every token (a Transformer-like cache, tau = 0)")
def full(s: LayerSignals) -> torch.Tensor:
    return torch.ones(s.surprise.shape[:2], dtype=torch.bool, device=s.surprise.device)


@register("none", needs_budget=False, fixed=True, about="no token (a pure RNN, tau > 2)")
def none(s: LayerSignals) -> torch.Tensor:
    return torch.zeros(s.surprise.shape[:2], dtype=torch.bool, device=s.surprise.device)


# The names callers list, derived from the registry once the built-in policies are in it.
POLICY_NAMES = tuple(POLICIES)                                            # every built-in policy
REFERENCES = tuple(n for n, p in POLICIES.items() if p.fixed)             # full, none
EQUAL_MEMORY = tuple(n for n, p in POLICIES.items() if p.needs_budget)    # random, window, sinks, hola
COMPARED = ("ham",) + EQUAL_MEMORY                                        # HAM and the others at its memory


def _as_query_by_key(mask: torch.Tensor, T: int) -> torch.Tensor:
    return mask if mask.dim() == 3 else mask[:, None, :].expand(mask.shape[0], T, T)


def policy_routes(
    policies: Sequence[str],
    tau: torch.Tensor,
    budget: Optional[torch.Tensor] = None,
    seed: int = 0,
    *,
    heads: str,
) -> List[Route]:
    """One model route per layer for a batch where text b runs policies[b].

    tau [B, L] thresholds; budget [B, L] HAM's peak cache per layer (needed by equal-memory
    policies). Texts with different policies may share a batch; if any of them needs a sliding
    mask, the layer's masks are all given as [B, T, T]. heads: how the model's heads combine
    their surprise (HAMConfig.head_rule), for HAM's own routing.
    """
    B, L = tau.shape
    if len(policies) != B:
        raise HAMInputError(f"need one policy per text ({B}), got {len(policies)}")
    chosen = [get_policy(p) for p in policies]
    if budget is None and any(p.needs_budget for p in chosen):
        raise HAMInputError("equal-memory policies need HAM's per-layer budget (run_policy computes it)")
    groups = []                                            # (policy, start, stop) runs of equal names
    for b, p in enumerate(chosen):
        if groups and groups[-1][0] is p:
            groups[-1][2] = b + 1
        else:
            groups.append([p, b, b + 1])

    def layer_route(layer: int) -> Route:
        def route(surprise: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
            T = surprise.shape[1]
            masks = []
            for p, lo, hi in groups:
                signals = LayerSignals(
                    surprise[lo:hi], residual[lo:hi], tau[lo:hi, layer].to(surprise.device), heads,
                    None if budget is None else budget[lo:hi, layer].long(), layer, seed,
                )
                masks.append(p.keep(signals).bool())
            if len(masks) == 1:
                return masks[0]
            if any(m.dim() == 3 for m in masks):
                masks = [_as_query_by_key(m, T) for m in masks]
            return torch.cat(masks, 0)

        return route

    return [layer_route(layer) for layer in range(L)]


@torch.no_grad()
def run_policy(
    model: HAMModel,
    ids: torch.Tensor,
    tau: TauLike,
    policy: str = "ham",
    *,
    seed: int = 0,
    attention=None,
    budget: Optional[torch.Tensor] = None,
    projections: bool = False,
) -> HAMOutput:
    """Read ids [B, T] with `policy` at HAM's per-layer memory for `tau` (float, [L] or [B, L]).

    For an equal-memory policy a HAM pass first measures the budget W [B, L] (unless given);
    the returned output is the policy's own pass.
    """
    p = get_policy(policy)
    ids = model.check_ids(ids)
    taus = resolve_tau(tau, ids.shape[0], model.cfg.n_layers, model.device)
    if p.needs_budget and budget is None:
        budget = model(ids, routes=policy_routes(["ham"] * ids.shape[0], taus, heads=model.cfg.head_rule)).kv_peak
    routes = policy_routes([policy] * ids.shape[0], taus, budget, seed, heads=model.cfg.head_rule)
    return model(ids, routes=routes, attention=attention, projections=projections)
