"""Selective attention (docs/DESIGN.md section 2, step 6).

Query t reads key s only if s <= t and s is visible (cached). Logits are c_h q_t . k_s with a
learned per-head temperature c_h (q, k are unit vectors), and the softmax has one extra "sink"
logit 0 whose value is zero: an empty cache reads nothing, and a head may choose to read nothing.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F


class AttentionOutput(NamedTuple):
    out: torch.Tensor                 # [B, T, H, Dv]
    weights: Optional[torch.Tensor]   # [B, H, T, T] (query x key) when asked for, else None
    sink: Optional[torch.Tensor]      # [B, H, T]  the sink's share of each query, when asked for


def sink_softmax(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over the last dim plus one extra logit 0, the sink, whose value is zero.

    logits [..., n] (-inf for keys a query may not read; n may be 0) -> (weights [..., n],
    sink [...]) with weights.sum(-1) + sink = 1. Every attention path uses this one form:
    shifted by the max of the logits and the sink's 0, so it never overflows.
    """
    if logits.shape[-1]:
        top = logits.amax(-1, keepdim=True).clamp_min(0.0)
    else:
        top = logits.new_zeros(*logits.shape[:-1], 1)
    scores, sink = (logits - top).exp(), (-top).exp()
    denom = scores.sum(-1, keepdim=True) + sink
    return scores / denom, (sink / denom).squeeze(-1)


def visibility_mask(visible: torch.Tensor, T: int) -> torch.Tensor:
    """Causal query-by-key mask [B, T, T] from a cached-key mask [B, T] or a [B, T, T] mask."""
    causal = torch.ones(T, T, dtype=torch.bool, device=visible.device).tril()
    if visible.dim() == 2:
        return visible[:, None, :] & causal
    if visible.dim() == 3:
        return visible & causal
    raise ValueError(f"visible must be [B, T] or [B, T, T], got {tuple(visible.shape)}")


def selective_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    visible: torch.Tensor,
    temperature: torch.Tensor,
    return_weights: bool = False,
) -> AttentionOutput:
    """q, k [B, T, H, Dk]; v [B, T, H, Dv]; visible bool [B, T] or [B, T, T]; temperature [H]."""
    B, T, H, _ = q.shape
    if not return_weights:
        return AttentionOutput(_fused(q, k, v, visible.bool(), temperature), None, None)
    mask = visibility_mask(visible.bool(), T)[:, None]                  # [B, 1, T, T]
    logits = torch.einsum("bthd,bshd->bhts", q, k) * temperature[None, :, None, None]
    weights, sink = sink_softmax(logits.masked_fill(~mask, float("-inf")))
    out = torch.einsum("bhts,bshd->bthd", weights, v)
    return AttentionOutput(out, weights, sink)


def _fused(q, k, v, visible, temperature):
    """The same attention through torch's fused kernel, for when no weights are wanted.

    A fixed cache ([B, T] mask) is first gathered into its kept keys only, so the cost follows
    the cache size, not the text length. The sink is one extra zero key (logit 0) with a zero
    value that every query sees; the temperature is folded into q; the mask is additive
    (-inf), which the CPU kernel handles faster than a boolean one.
    """
    B, T, H, D = q.shape
    query_pos = torch.arange(T, device=q.device)
    if visible.dim() == 2:
        n = int(visible.sum(-1).max()) if visible.numel() else 0
        # Kept keys first, in order; padding slots point at position T (after every query).
        order = torch.where(visible, query_pos, T).sort(-1).values[:, :n]           # [B, n]
        index = order.clamp(max=T - 1)
        k = k.gather(1, index[:, :, None, None].expand(B, n, H, D))
        v = v.gather(1, index[:, :, None, None].expand(B, n, H, v.shape[-1]))
        mask = order[:, None, :] <= query_pos[None, :, None]                        # [B, T, n]
    else:
        mask = visibility_mask(visible, T)
    n = k.shape[1]
    bias = torch.zeros(B, 1, T, n + 1, dtype=q.dtype, device=q.device)
    bias[..., :n].masked_fill_(~mask[:, None], float("-inf"))
    out = F.scaled_dot_product_attention(
        (q * temperature[:, None]).transpose(1, 2),
        torch.cat([k, k.new_zeros(B, 1, H, D)], 1).transpose(1, 2),
        torch.cat([v, v.new_zeros(B, 1, H, v.shape[-1])], 1).transpose(1, 2),
        attn_mask=bias,
        scale=1.0,
    )
    return out.transpose(1, 2)


def cache_attention(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, temperature: torch.Tensor
) -> torch.Tensor:
    """One query over a compact KV cache (decode): q [H, Dk], keys [n, H, Dk], values [n, H, Dv],
    temperature [H] -> [H, Dv]. Every cached key is visible; n may be 0 (the sink takes it all)."""
    weights, _ = sink_softmax(torch.einsum("hd,nhd->hn", q, keys) * temperature[:, None])
    return torch.einsum("hn,nhd->hd", weights, values)
