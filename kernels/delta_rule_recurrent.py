"""Fused recurrent gated delta rule with surprise (Triton), mirroring
ham_core.model.ops.delta_rule.gated_delta_rule_recurrent.

One program per (batch, head) walks time with the state S [Dk, Dv] in registers. Per step:
p = S^T k (prediction), surprise = 1 - cos(p, v), u = beta (v - alpha p), residual = ||u||,
S <- alpha S + k u^T, o = S^T q. Used for decoding and short prefills: the work per program is
sequential in T, so long prefills go to the chunked kernel instead.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from ham_core.model.ops.delta_rule import DeltaRuleOutput, check_inputs

from ._common import block, check_device

# The reference's threshold below which |p| |v| counts as an empty prediction (surprise 1).
COS_EPS = 1e-12


@triton.jit
def _recurrent_kernel(
    q, k, v, g, beta, h0, out, surprise, residual, ht,
    T, H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr,
    BK: tl.constexpr, BV: tl.constexpr, HAS_H0: tl.constexpr, EPS: tl.constexpr,
):
    """q, k [B, T, H, DK]; v, out [B, T, H, DV]; g, beta, surprise, residual [B, T, H];
    h0, ht [B, H, DK, DV]. All contiguous; grid (B * H,)."""
    bh = tl.program_id(0)
    b = bh // H
    h = bh % H
    ok = tl.arange(0, BK)
    ov = tl.arange(0, BV)
    mk = ok < DK
    mv = ov < DV
    state_off = bh * DK * DV + ok[:, None] * DV + ov[None, :]
    state_mask = mk[:, None] & mv[None, :]
    S = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_H0:
        S += tl.load(h0 + state_off, mask=state_mask, other=0.0).to(tl.float32)

    # Pointers to token 0 of this (batch, head); consecutive tokens are H heads apart.
    pk = (b * T * H + h) * DK + ok
    pv = (b * T * H + h) * DV + ov
    ps = b * T * H + h
    for _ in range(T):
        k_t = tl.load(k + pk, mask=mk, other=0.0).to(tl.float32)
        q_t = tl.load(q + pk, mask=mk, other=0.0).to(tl.float32)
        v_t = tl.load(v + pv, mask=mv, other=0.0).to(tl.float32)
        alpha = tl.exp(tl.load(g + ps).to(tl.float32))
        beta_t = tl.load(beta + ps).to(tl.float32)

        pred = tl.sum(S * k_t[:, None], axis=0)                      # p_t = S_{t-1}^T k_t
        norms = tl.sqrt(tl.sum(pred * pred, axis=0)) * tl.sqrt(tl.sum(v_t * v_t, axis=0))
        cos = tl.sum(pred * v_t, axis=0) / tl.maximum(norms, EPS)
        tl.store(surprise + ps, tl.minimum(tl.maximum(1.0 - cos, 0.0), 2.0))

        u = beta_t * (v_t - alpha * pred)                             # committed residual
        tl.store(residual + ps, tl.sqrt(tl.sum(u * u, axis=0)))
        S = alpha * S + k_t[:, None] * u[None, :]
        tl.store(out + pv, tl.sum(S * q_t[:, None], axis=0), mask=mv)  # o_t = S_t^T q_t

        pk += H * DK
        pv += H * DV
        ps += H
    tl.store(ht + state_off, S, mask=state_mask)


def fused_recurrent_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    initial_state: Optional[torch.Tensor] = None,
) -> DeltaRuleOutput:
    """Same signature and result as gated_delta_rule_recurrent.

    q, k [B, T, H, Dk]; v [B, T, H, Dv]; g, beta [B, T, H]; initial_state [B, H, Dk, Dv] or None
    -> DeltaRuleOutput(out [B, T, H, Dv], surprise [B, T, H], final_state [B, H, Dk, Dv],
    residual [B, T, H]), in q's dtype (the kernel accumulates in float32).
    """
    check_inputs(q, k, v, g, beta, initial_state)
    check_device(q, k, v, g, beta, initial_state)
    B, T, H, Dk = q.shape
    Dv = v.shape[-1]
    q, k, v, g, beta = (x.contiguous() for x in (q, k, v, g, beta))
    h0 = None if initial_state is None else initial_state.to(q.dtype).contiguous()
    out = q.new_empty(B, T, H, Dv)
    surprise = q.new_empty(B, T, H)
    residual = q.new_empty(B, T, H)
    final = q.new_empty(B, H, Dk, Dv)
    _recurrent_kernel[(B * H,)](
        q, k, v, g, beta, final if h0 is None else h0, out, surprise, residual, final,
        T, H=H, DK=Dk, DV=Dv, BK=block(Dk, 1), BV=block(Dv, 1),
        HAS_H0=h0 is not None, EPS=COS_EPS,
    )
    return DeltaRuleOutput(out, surprise, final, residual)
