"""Which tokens are worth caching? Selection rules compared at exactly equal memory.

Every row keeps W = round(f x T) keys in every layer of one text and is scored by the share of
the no-cache / full-cache gap it recovers: (loss_none - loss) / (loss_none - loss_full).

- HAM's scores, from the same pass: top-W by surprise with the heads combined by min, mean or
  max; `gated` (each head's surprise weighted by its mean attention gate, so the heads that read
  the cache choose); `recent16+max` (the last 16 tokens plus top-(W - 16) by max).
- `threshold`: the model's own routing (its head rule, one shared tau) at the largest tau whose
  cache is at most f: what the app's slider shows. Its layers' memories need not be equal.
- The other policies of ham_core.model.policies at the same W: random, window, sinks, hola;
  and, as the app's chart compares them, at the threshold row's own per-layer memory
  (`window@tau`, ...: each layer keeps as many keys as HAM's threshold cached there).
- `read-most`: top-W by the attention mass each key receives under a full cache (gate-weighted,
  summed over heads and queries). It looks at the future, so no cache could run it: it shows
  what a fixed selection of that size can recover on this model (not a strict bound: a sliding
  window can beat it at small f).

Per layer, `overlap` is the share of read-most's W keys that the model's own rule also keeps
(chance: f). Shapes: B texts of T tokens, L layers, H heads.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Sequence

import torch

from ham_core.model.layer import Route, layer_surprise, recent_mask
from ham_core.model.model import HAMModel, next_token_nll
from ham_core.model.policies import TAU_OFF, policy_routes, run_policy

from .thresholds import taus_for_fractions

HEAD_SCORES = ("min", "mean", "max", "gated", "recent16+max")
OTHER_POLICIES = ("random", "window", "sinks", "hola")
AT_TAU = tuple(f"{p}@tau" for p in OTHER_POLICIES)
ROWS = HEAD_SCORES + ("threshold",) + OTHER_POLICIES + AT_TAU + ("read-most",)
MIN_GAP = 0.1     # nats/token: a text whose cache is worth less has no share worth averaging
RECENT = 16


def keep_top(score: torch.Tensor, W: int) -> torch.Tensor:
    """score [B, T] -> keep [B, T]: the W highest (ties to the earlier token)."""
    order = score.argsort(dim=-1, descending=True, stable=True)
    return order.argsort(dim=-1) < W


def score_route(score: str, W: int, gate: torch.Tensor | None = None, mass: torch.Tensor | None = None) -> Route:
    """A route keeping W keys by one of HEAD_SCORES or "read-most": gate [B, H] each head's mean
    attention gate (for "gated"), mass [B, T] the full cache's attention mass (for "read-most")."""

    def route(surprise: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        B, T, _ = surprise.shape
        if score == "read-most":
            return keep_top(mass, W)
        if score == "gated":
            return keep_top((surprise * gate[:, None, :]).sum(-1), W)
        if score == "recent16+max":
            # Query t reads its last 16 tokens and the W - 16 most surprising (max over heads)
            # of the tokens before them: W keys for every query, like the window.
            recent = min(RECENT, W)
            window = recent_mask(T, recent, surprise.device)                            # [T, T]
            older = torch.ones(T, T, dtype=torch.bool, device=surprise.device).tril(-recent)
            score_tk = surprise.amax(-1)[:, None, :].expand(B, T, T).masked_fill(~older, float("-inf"))
            far = keep_top(score_tk.flatten(0, 1), W - recent).view(B, T, T) & older
            return window[None] | far
        return keep_top(layer_surprise(surprise, score), W)

    return route


@dataclass
class TextProbe:
    """One text: its losses (nats/token) per row and fraction, and the per-layer overlap."""

    name: str
    tokens: int
    full: float
    none: float
    loss: Dict[str, Dict[float, float]] = field(default_factory=dict)        # row -> f -> loss
    memory: Dict[float, float] = field(default_factory=dict)                 # f -> threshold row's cache share
    overlap: Dict[float, List[float]] = field(default_factory=dict)          # f -> [L]

    @property
    def gap(self) -> float:
        return self.none - self.full

    def share(self, row: str, f: float) -> float:
        return (self.none - self.loss[row][f]) / self.gap if self.gap else float("nan")


def _loss(model, ids, **kw) -> tuple[float, object]:
    out = model(ids, **kw)
    return float(next_token_nll(out.logits, ids).double().mean()), out


@torch.no_grad()
def probe_text(model: HAMModel, ids: torch.Tensor, fractions: Sequence[float], name: str = "",
               seed: int = 0) -> TextProbe:
    """ids [1, T] -> TextProbe with every row of ROWS at every fraction."""
    T, L = ids.shape[1], model.cfg.n_layers
    full, out = _loss(model, ids, tau=0.0, attention="all")
    gate = out.attn_gate.mean(2)                                                 # [B, L, H]
    mass = [(w * out.attn_gate[:, l].permute(0, 2, 1)[..., None]).sum((1, 2))    # [B, T] keys' mass
            for l, w in enumerate(out.attention)]
    none, _ = _loss(model, ids, tau=TAU_OFF)
    probe = TextProbe(name, T, full, none, {row: {} for row in ROWS})
    for f in fractions:
        W = round(f * T)
        for score in HEAD_SCORES + ("read-most",):
            routes = [score_route(score, W, gate[:, l], mass[l]) for l in range(L)]
            probe.loss[score][f], _ = _loss(model, ids, routes=routes)
        budget = torch.full((1, L), W, dtype=torch.long)
        taus = torch.full((1, L), TAU_OFF)
        for policy in OTHER_POLICIES:
            routes = policy_routes([policy], taus, budget, seed, heads=model.cfg.head_rule)
            probe.loss[policy][f], _ = _loss(model, ids, routes=routes)
        (tau,) = taus_for_fractions(model, ids, f, shared=True, at_most=True)
        probe.loss["threshold"][f], routed = _loss(model, ids, tau=tau)
        probe.memory[f] = float(routed.kv_fraction[0])
        for policy in OTHER_POLICIES:
            out_p = run_policy(model, ids, tau, policy, seed=seed, budget=routed.kv_peak)
            probe.loss[f"{policy}@tau"][f] = float(next_token_nll(out_p.logits, ids).double().mean())
        own = [keep_top(s, W) for s in out.layer_surprise.unbind(1)]            # the model's rule at W
        best = [keep_top(m, W) for m in mass]
        probe.overlap[f] = [float((a & b).sum()) / max(W, 1) for a, b in zip(own, best)]
    return probe


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the finite values (SE 0 for one value)."""
    v = [x for x in values if math.isfinite(x)]
    if not v:
        return float("nan"), float("nan")
    m = sum(v) / len(v)
    if len(v) < 2:
        return m, 0.0
    return m, math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1) / len(v))


def worth(probes: Sequence[TextProbe]) -> List[TextProbe]:
    """The texts whose no-cache / full-cache gap is at least MIN_GAP (a share of a tiny gap is noise)."""
    return [p for p in probes if p.gap >= MIN_GAP]


def summary(probes: Sequence[TextProbe], fractions: Sequence[float]) -> Dict[str, Dict[float, tuple]]:
    """row -> f -> (mean share of the gap, its standard error) over the texts worth it."""
    kept = worth(probes)
    return {row: {f: mean_se([p.share(row, f) for p in kept]) for f in fractions} for row in ROWS}


def pooled(probes: Sequence[TextProbe], row: str, f: float) -> float:
    """What the row recovers of all the texts' gaps together: sum of (none - loss) / sum of gaps."""
    gap = sum(p.gap for p in probes)
    return sum(p.none - p.loss[row][f] for p in probes) / gap if gap else float("nan")


def best_other(probes: Sequence[TextProbe], f: float, at_tau: bool = False) -> str:
    """The strongest of random, window and sinks at fraction f (HAM's rivals in the targets),
    at every layer's W or (at_tau) at the threshold's own per-layer memory."""
    table = summary(probes, [f])
    rows = [r + ("@tau" if at_tau else "") for r in ("random", "window", "sinks")]
    return max(rows, key=lambda row: table[row][f][0])


def lead_over(probes: Sequence[TextProbe], row: str, other: str, f: float) -> tuple[float, float]:
    """Mean and SE over the texts worth it of row's share minus other's: paired, since both read
    the same text."""
    return mean_se([p.share(row, f) - p.share(other, f) for p in worth(probes)])
