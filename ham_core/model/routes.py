"""How training chooses what each layer caches, so one model serves every threshold.

Each batch draws a target cache fraction f (sometimes exactly 0 or 1). Most batches route the
HAM way, by one of two rules (`by`):
- "fraction": each layer's threshold is the (1 - f) quantile of its surprise in the batch, so
  every layer caches f of its tokens;
- "threshold": one threshold tau for every layer, drawn (sometimes exactly full or none), the
  rule the analyses and the app apply (docs/DESIGN.md, Thresholds). Layers' surprise differ in
  scale (one model: medians 0.01, 0.10, 0.51, 0.08 in layers 1-4), so a model trained by
  fraction and read at one threshold caches nearly all of one layer and nothing of another,
  and its reads in the low-surprise layers vanish at any threshold above ~0.02.
A share of batches use the comparison policies at the same memory (W = f x T keys per layer),
so that at evaluation no policy is out of distribution for the attention.

The other architectures (config.ARCHITECTURES) route the same batches their own way: the
Transformer caches every token, GDN has no cache, and a window model reads its last W = f x T
tokens with f drawn over the fractions it is compared at (WINDOW_FRACTIONS, or the full cache),
so one model serves each of them.
"""
from __future__ import annotations

from typing import List

import torch

from ham_core.errors import HAMInputError

from .layer import Route, every_token_route, threshold_route
from .layer import layer_surprise as combine_heads
from .policies import EQUAL_MEMORY, TAU_OFF, LayerSignals, get_policy

ROUTE_RULES = ("fraction", "threshold")
TRAIN_TAU_MAX = 1.0     # drawn thresholds are U(0, this): above ~1 a trained layer caches almost nothing
WINDOW_FRACTIONS = (0.1, 0.5)   # a window model's W / T is drawn in this range (compared at 10, 25, 50%) ...
WINDOW_FULL_SHARE = 0.2         # ... or is the full cache in this share of batches (its full-cache point)


def draw_fraction(gen: torch.Generator) -> float:
    """10% f = 0, 10% f = 1, else f = U^2 (more low fractions, where the choice matters most)."""
    u = torch.rand(2, generator=gen).tolist()
    if u[0] < 0.1:
        return 0.0
    if u[0] < 0.2:
        return 1.0
    return u[1] ** 2


def quantile_route(fraction: float, heads: str) -> Route:
    """Cache the `fraction` most surprising tokens of the batch: tau = (1 - f) quantile of the
    layer surprise (the heads combined by `heads`, HAMConfig.head_rule)."""

    def route(surprise: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        layer_surprise = combine_heads(surprise.detach(), heads)          # [B, T]
        if fraction <= 0.0:
            return torch.zeros_like(layer_surprise, dtype=torch.bool)
        if fraction >= 1.0:
            return torch.ones_like(layer_surprise, dtype=torch.bool)
        tau = torch.quantile(layer_surprise.flatten().float(), 1.0 - fraction)
        return layer_surprise >= tau

    return route


def policy_route(policy: str, fraction: float, seed: int, layer: int, heads: str) -> Route:
    """A comparison policy (ham_core.model.policies) keeping W = round(f x T) keys in this layer."""
    keep = get_policy(policy).keep

    def route(surprise: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        B, T, _ = surprise.shape
        budget = torch.full((B,), round(fraction * T), dtype=torch.long)
        tau = torch.full((B,), float("inf"))
        return keep(LayerSignals(surprise.detach(), residual.detach(), tau, heads, budget, layer, seed))

    return route


def check_route_rule(by: str) -> str:
    if by not in ROUTE_RULES:
        raise HAMInputError(f"--route-by must be one of {', '.join(ROUTE_RULES)}, got {by!r}")
    return by


def draw_threshold(gen: torch.Generator, lowest: float = 0.0) -> float:
    """10% tau = 0 (full), 10% none (only once lowest is 0), else U(0, TRAIN_TAU_MAX); `lowest`,
    the ramp's lowest cache fraction, scales the range down toward 0 (everything cached)."""
    u = torch.rand(2, generator=gen).tolist()
    if u[0] < 0.1:
        return 0.0
    if u[0] < 0.2 and lowest <= 0.0:
        return TAU_OFF
    return (1.0 - lowest) * TRAIN_TAU_MAX * u[1]


def draw_window_fraction(gen: torch.Generator, lowest: float = 0.0) -> float:
    """A window model's W / T: WINDOW_FULL_SHARE of batches 1 (every token), else uniform over
    WINDOW_FRACTIONS, squeezed up toward 1 while the ramp's lowest fraction is above 0."""
    u = torch.rand(2, generator=gen).tolist()
    lo, hi = WINDOW_FRACTIONS
    drawn = 1.0 if u[0] < WINDOW_FULL_SHARE else lo + (hi - lo) * u[1]
    return lowest + (1.0 - lowest) * drawn


def training_routes(n_layers: int, gen: torch.Generator, policy_share: float, seed: int, lowest: float = 0.0,
                    by: str = "fraction", *, heads: str, architecture: str = "ham"):
    """-> (name of the policy drawn, fraction or HAM's threshold, one route per layer) for one
    batch. The fraction is drawn in [lowest, 1] (draw_fraction's law, squeezed up when
    lowest > 0); with by="threshold" HAM batches draw one threshold for every layer instead.
    heads: the model's HAMConfig.head_rule. Another architecture routes its own way (module
    docstring): the Transformer "full", GDN "none", a window model "window" at a drawn W / T."""
    check_route_rule(by)
    if architecture == "transformer":
        return "full", 1.0, [every_token_route] * n_layers
    if architecture == "gdn":                # no attention: the routes are never asked
        return "none", 0.0, [quantile_route(0.0, heads)] * n_layers
    if architecture == "window":
        fraction = draw_window_fraction(gen, lowest)
        return "window", fraction, [policy_route("window", fraction, seed, layer, heads) for layer in range(n_layers)]
    fraction = lowest + (1.0 - lowest) * draw_fraction(gen)
    if torch.rand(1, generator=gen).item() < policy_share:
        policy = EQUAL_MEMORY[int(torch.randint(len(EQUAL_MEMORY), (1,), generator=gen))]
        routes: List[Route] = [policy_route(policy, fraction, seed, layer, heads) for layer in range(n_layers)]
        return policy, fraction, routes
    if by == "threshold":
        tau = draw_threshold(gen, lowest)
        return "ham-tau", tau, [threshold_route(torch.tensor([tau]), heads)] * n_layers
    return "ham", fraction, [quantile_route(fraction, heads) for _ in range(n_layers)]
