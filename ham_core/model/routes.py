"""How training chooses what each layer caches, so one model serves every threshold.

Each batch draws a target cache fraction f (sometimes exactly 0 or 1). Most batches route the
HAM way: each layer's threshold is the (1 - f) quantile of its surprise in the batch (docs/DESIGN.md,
Thresholds). A share of batches use the comparison policies at the same memory (W = f x T
keys per layer), so that at evaluation no policy is out of distribution for the attention.
"""
from __future__ import annotations

from typing import List

import torch

from .layer import Route
from .policies import EQUAL_MEMORY, LayerSignals, get_policy


def draw_fraction(gen: torch.Generator) -> float:
    """10% f = 0, 10% f = 1, else f = U^2 (more low fractions, where the choice matters most)."""
    u = torch.rand(2, generator=gen).tolist()
    if u[0] < 0.1:
        return 0.0
    if u[0] < 0.2:
        return 1.0
    return u[1] ** 2


def quantile_route(fraction: float) -> Route:
    """Cache the `fraction` most surprising tokens of the batch: tau = (1 - f) quantile."""

    def route(surprise: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        layer_surprise = surprise.detach().amin(-1)                      # [B, T]
        if fraction <= 0.0:
            return torch.zeros_like(layer_surprise, dtype=torch.bool)
        if fraction >= 1.0:
            return torch.ones_like(layer_surprise, dtype=torch.bool)
        tau = torch.quantile(layer_surprise.flatten().float(), 1.0 - fraction)
        return layer_surprise >= tau

    return route


def policy_route(policy: str, fraction: float, seed: int, layer: int) -> Route:
    """A comparison policy (ham_core.model.policies) keeping W = round(f x T) keys in this layer."""
    keep = get_policy(policy).keep

    def route(surprise: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        B, T, _ = surprise.shape
        budget = torch.full((B,), round(fraction * T), dtype=torch.long)
        tau = torch.full((B,), float("inf"))
        return keep(LayerSignals(surprise.detach(), residual.detach(), tau, budget, layer, seed))

    return route


def training_routes(n_layers: int, gen: torch.Generator, policy_share: float, seed: int, lowest: float = 0.0):
    """-> (name of the policy drawn, fraction, one route per layer) for one batch. The fraction
    is drawn in [lowest, 1] (draw_fraction's law, squeezed up when lowest > 0)."""
    fraction = lowest + (1.0 - lowest) * draw_fraction(gen)
    if torch.rand(1, generator=gen).item() < policy_share:
        policy = EQUAL_MEMORY[int(torch.randint(len(EQUAL_MEMORY), (1,), generator=gen))]
        routes: List[Route] = [policy_route(policy, fraction, seed, layer) for layer in range(n_layers)]
        return policy, fraction, routes
    return "ham", fraction, [quantile_route(fraction) for _ in range(n_layers)]
