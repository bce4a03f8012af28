"""How training chooses what each layer caches, so one model serves every threshold.

Each batch draws a target cache fraction f (sometimes exactly 0 or 1). Most batches route the
HAM way: each layer's threshold is the (1 - f) quantile of its surprise in the batch (DESIGN.md,
Thresholds). A share of batches use the comparison policies at the same memory (W = f x T
keys per layer), so that at evaluation no policy is out of distribution for the attention.
"""
from __future__ import annotations

from typing import List

import torch

from .layer import Route

TRAIN_POLICIES = ("random", "window", "sinks", "hola")


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


def random_keys(B: int, T: int, W: int, seed: int, device=None) -> torch.Tensor:
    """W keys per text chosen uniformly at random: [B, T] mask."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.rand(B, T, generator=gen).argsort(-1)[:, :W]
    return torch.zeros(B, T, dtype=torch.bool).scatter_(1, order, True).to(device)


def window_keys(B: int, T: int, W: int, sinks: int = 0, device=None) -> torch.Tensor:
    """Query t reads the first `sinks` tokens and its W - sinks most recent ones: [B, T, T]."""
    t = torch.arange(T, device=device)
    lag = t[:, None] - t[None, :]
    keep = min(sinks, W)
    mask = ((lag >= 0) & (lag < W - keep)) | ((t[None, :] < keep) & (lag >= 0))
    return mask.expand(B, T, T)


def top_residual_keys(residual: torch.Tensor, W: int) -> torch.Tensor:
    """HOLA: the W tokens with the largest committed residual (mean over heads): [B, T] mask."""
    score = residual.mean(-1)
    top = score.topk(W, dim=-1).indices
    return torch.zeros_like(score, dtype=torch.bool).scatter_(1, top, True)


def policy_route(policy: str, fraction: float, seed: int) -> Route:
    """A comparison policy keeping W = round(f x T) keys per query in every layer."""

    def route(surprise: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        B, T, _ = surprise.shape
        W = round(fraction * T)
        if policy == "random":
            return random_keys(B, T, W, seed, surprise.device)
        if policy in ("window", "sinks"):
            return window_keys(B, T, W, 4 if policy == "sinks" else 0, surprise.device)
        return top_residual_keys(residual.detach(), W)

    return route


def training_routes(n_layers: int, gen: torch.Generator, policy_share: float, seed: int):
    """-> (name of the policy drawn, fraction, one route per layer) for one batch."""
    fraction = draw_fraction(gen)
    if torch.rand(1, generator=gen).item() < policy_share:
        policy = TRAIN_POLICIES[int(torch.randint(len(TRAIN_POLICIES), (1,), generator=gen))]
        routes: List[Route] = [policy_route(policy, fraction, seed + layer) for layer in range(n_layers)]
        return policy, fraction, routes
    return "ham", fraction, [quantile_route(fraction) for _ in range(n_layers)]
