"""Chunked gated delta rule with surprise (Triton), mirroring
ham_core.model.ops.delta_rule.gated_delta_rule_chunked (read its docstring for the WY/UT algebra).

Three launches, per (batch, head), over chunks of C tokens:

1. `_prep_kernel`, all chunks in parallel: within-chunk cumulative log-decay gamma, the UT
   transform Tinv = (I + A)^-1 with A_ts = beta_t e^(gamma_t - gamma_s) (k_t . k_s), s < t, and
   U0 = Tinv diag(beta) V, W = Tinv diag(beta e^gamma) K.
2. `_state_kernel`, chunks in sequence (the only sequential part): carries the state S, records
   each chunk's start state, and turns U0 into the updates U = U0 - W S_0.
3. `_output_kernel`, all chunks in parallel: read-out, prediction S_{t-1}^T k_t, surprise, ||u||.
"""
from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from ham_core.model.ops.delta_rule import DeltaRuleOutput, check_inputs

from ._common import block, check_device
from .delta_rule_recurrent import COS_EPS


@triton.jit
def _prep_kernel(
    k, v, g, beta, gamma, w, u, T, NT, H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr,
    C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
):
    """k [B, T, H, DK], v [B, T, H, DV], g, beta [B, T, H] in; gamma [B*H, TP],
    w [B*H, TP, DK], u [B*H, TP, DV] out (TP = chunks * C). Grid (chunks, B * H)."""
    n = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    ot = n * C + tl.arange(0, C)
    ok = tl.arange(0, BK)
    ov = tl.arange(0, BV)
    mt = ot < T
    # Steps past T load g = 0 and beta = 0: alpha = 1 and no write, as the reference's padding.
    row = (b * T + ot) * H + h
    g_c = tl.load(g + row, mask=mt, other=0.0).to(tl.float32)
    b_c = tl.load(beta + row, mask=mt, other=0.0).to(tl.float32)
    k_c = tl.load(k + row[:, None] * DK + ok[None, :],
                  mask=mt[:, None] & (ok[None, :] < DK), other=0.0).to(tl.float32)
    v_c = tl.load(v + row[:, None] * DV + ov[None, :],
                  mask=mt[:, None] & (ov[None, :] < DV), other=0.0).to(tl.float32)

    i = tl.arange(0, C)
    # gamma_t = sum_{s <= t} g_s, as a masked row sum (C is small; avoids a scan).
    gam = tl.sum(tl.where(i[:, None] >= i[None, :], g_c[None, :], 0.0), axis=1)
    strict = i[:, None] > i[None, :]
    # Mask before exp: above the diagonal gamma_t - gamma_s > 0 and could overflow.
    decay = tl.exp(tl.where(strict, gam[:, None] - gam[None, :], float("-inf")))
    kk = tl.dot(k_c, tl.trans(k_c), input_precision="ieee")
    a = b_c[:, None] * decay * kk                                     # strictly lower

    # Forward substitution for the unit lower-triangular inverse, one row at a time:
    # row t of Tinv = e_t - sum_{s<t} A_ts (row s of Tinv); rows s < t are final by then.
    tinv = tl.where(i[:, None] == i[None, :], 1.0, 0.0)
    for t in range(1, C):
        a_t = tl.sum(tl.where(i[:, None] == t, a, 0.0), axis=0)       # row t of A, over s
        new = tl.where(i == t, 1.0, 0.0) - tl.sum(a_t[:, None] * tinv, axis=0)
        tinv = tl.where(i[:, None] == t, new[None, :], tinv)

    u0 = tl.dot(tinv, b_c[:, None] * v_c, input_precision="ieee")
    w_c = tl.dot(tinv, (b_c * tl.exp(gam))[:, None] * k_c, input_precision="ieee")
    base = bh * NT * C + ot                                           # rows padded to NT * C
    tl.store(gamma + base, gam)
    tl.store(w + base[:, None] * DK + ok[None, :], w_c, mask=ok[None, :] < DK)
    tl.store(u + base[:, None] * DV + ov[None, :], u0, mask=ov[None, :] < DV)


@triton.jit
def _state_kernel(
    k, gamma, w, u, h0, states, ht, T, NT, H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr,
    C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, HAS_H0: tl.constexpr,
):
    """Walk the chunks: states [B*H, NT, DK, DV] gets each chunk's start state, u is
    overwritten in place U0 -> U, ht [B*H, DK, DV] gets the final state. Grid (DV blocks, B * H):
    value columns of S never mix (U = U0 - W S and the update act column by column)."""
    pv = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    ok = tl.arange(0, BK)
    ov = pv * BV + tl.arange(0, BV)
    mk = ok < DK
    mv = ov < DV
    s_off = ok[:, None] * DV + ov[None, :]
    s_mask = mk[:, None] & mv[None, :]
    S = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_H0:
        S += tl.load(h0 + bh * DK * DV + s_off, mask=s_mask, other=0.0).to(tl.float32)
    i = tl.arange(0, C)
    for n in range(NT):
        tl.store(states + (bh * NT + n) * DK * DV + s_off, S, mask=s_mask)
        ot = n * C + i
        mt = ot < T
        base = bh * NT * C + ot
        w_c = tl.load(w + base[:, None] * DK + ok[None, :], mask=mk[None, :], other=0.0)
        u_c = tl.load(u + base[:, None] * DV + ov[None, :], mask=mv[None, :], other=0.0)
        u_c = u_c - tl.dot(w_c, S, input_precision="ieee")          # U = U0 - W S_0
        tl.store(u + base[:, None] * DV + ov[None, :], u_c, mask=mv[None, :])
        gam = tl.load(gamma + base)
        g_end = tl.load(gamma + bh * NT * C + n * C + C - 1)
        row = (b * T + ot) * H + h
        k_c = tl.load(k + row[:, None] * DK + ok[None, :],
                      mask=mt[:, None] & mk[None, :], other=0.0).to(tl.float32)
        # S <- e^gamma_C S + sum_s e^(gamma_C - gamma_s) k_s u_s^T
        k_c = k_c * tl.exp(g_end - gam)[:, None]
        S = tl.exp(g_end) * S + tl.dot(tl.trans(k_c), u_c, input_precision="ieee")
    tl.store(ht + bh * DK * DV + s_off, S, mask=s_mask)


@triton.jit
def _output_kernel(
    q, k, v, g, gamma, u, states, out, surprise, residual, T, NT,
    H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr,
    C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, EPS: tl.constexpr,
):
    """out [B, T, H, DV], surprise, residual [B, T, H] from the chunk start states and U.
    Grid (chunks, B * H); each program holds whole value rows (the cosine needs all of DV)."""
    n = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    i = tl.arange(0, C)
    ot = n * C + i
    ok = tl.arange(0, BK)
    ov = tl.arange(0, BV)
    mt = ot < T
    mk = ok < DK
    mv = ov < DV
    row = (b * T + ot) * H + h
    mask_k = mt[:, None] & mk[None, :]
    q_c = tl.load(q + row[:, None] * DK + ok[None, :], mask=mask_k, other=0.0).to(tl.float32)
    k_c = tl.load(k + row[:, None] * DK + ok[None, :], mask=mask_k, other=0.0).to(tl.float32)
    v_c = tl.load(v + row[:, None] * DV + ov[None, :], mask=mt[:, None] & mv[None, :], other=0.0).to(tl.float32)
    base = bh * NT * C + ot
    u_c = tl.load(u + base[:, None] * DV + ov[None, :], mask=mv[None, :], other=0.0)
    gam = tl.load(gamma + base)
    # The prediction reads S_{t-1}: decay up to t - 1 only, gamma'_t = gamma_t - g_t.
    gam_prev = gam - tl.load(g + row, mask=mt, other=0.0).to(tl.float32)
    S = tl.load(states + (bh * NT + n) * DK * DV + ok[:, None] * DV + ov[None, :],
                mask=mk[:, None] & mv[None, :], other=0.0)

    diff = gam[:, None] - gam[None, :]
    decay_incl = tl.exp(tl.where(i[:, None] >= i[None, :], diff, float("-inf")))
    decay_pred = tl.exp(tl.where(i[:, None] > i[None, :], gam_prev[:, None] - gam[None, :],
                                 float("-inf")))
    start = tl.exp(gam)[:, None]
    # o_t = e^gamma_t S_0^T q_t + sum_{s<=t} e^(gamma_t - gamma_s) (q_t . k_s) u_s
    qk = tl.dot(q_c, tl.trans(k_c), input_precision="ieee") * decay_incl
    o = start * tl.dot(q_c, S, input_precision="ieee") + tl.dot(qk, u_c, input_precision="ieee")
    # The prediction itself, p_t = e^gamma'_t S_0^T k_t + sum_{s<t} e^(gamma'_t - gamma_s)
    # (k_t . k_s) u_s: not v - u/beta (divides by small betas) and not alpha_t p_t (under a
    # strong decay that underflows and would read as "no prediction").
    kk = tl.dot(k_c, tl.trans(k_c), input_precision="ieee") * decay_pred
    p = tl.exp(gam_prev)[:, None] * tl.dot(k_c, S, input_precision="ieee") \
        + tl.dot(kk, u_c, input_precision="ieee")

    norms = tl.sqrt(tl.sum(p * p, axis=1)) * tl.sqrt(tl.sum(v_c * v_c, axis=1))
    cos = tl.sum(p * v_c, axis=1) / tl.maximum(norms, EPS)
    tl.store(surprise + row, tl.minimum(tl.maximum(1.0 - cos, 0.0), 2.0), mask=mt)
    tl.store(residual + row, tl.sqrt(tl.sum(u_c * u_c, axis=1)), mask=mt)
    tl.store(out + row[:, None] * DV + ov[None, :], o, mask=mt[:, None] & mv[None, :])


def _chunk(chunk_size: int) -> int:
    """The kernel's chunk length: a power of two in [16, 64] (tl.dot needs >= 16 and a
    power-of-two tile; past 64 the per-chunk tiles crowd the registers). Chunking is only a
    schedule, so the result matches the reference at any chunk_size to float tolerance."""
    return min(64, block(chunk_size))


def chunk_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    initial_state: Optional[torch.Tensor] = None,
    chunk_size: int = 64,
) -> DeltaRuleOutput:
    """Same signature and result as gated_delta_rule_chunked.

    q, k [B, T, H, Dk]; v [B, T, H, Dv]; g, beta [B, T, H]; initial_state [B, H, Dk, Dv] or None
    -> DeltaRuleOutput(out [B, T, H, Dv], surprise [B, T, H], final_state [B, H, Dk, Dv],
    residual [B, T, H]), in q's dtype (the kernels work in float32).
    """
    check_inputs(q, k, v, g, beta, initial_state)
    check_device(q, k, v, g, beta, initial_state)
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    B, T, H, Dk = q.shape
    Dv = v.shape[-1]
    C = _chunk(chunk_size)
    NT = triton.cdiv(T, C)
    BK, BV = block(Dk), block(Dv)
    q, k, v, g, beta = (x.contiguous() for x in (q, k, v, g, beta))
    h0 = None if initial_state is None else initial_state.to(q.dtype).contiguous()
    f32 = dict(dtype=torch.float32, device=q.device)
    gamma = torch.empty(B * H, NT * C, **f32)
    w = torch.empty(B * H, NT * C, Dk, **f32)
    u = torch.empty(B * H, NT * C, Dv, **f32)
    states = torch.empty(B * H, NT, Dk, Dv, **f32)
    final = torch.empty(B * H, Dk, Dv, **f32)
    out = q.new_empty(B, T, H, Dv)
    surprise = q.new_empty(B, T, H)
    residual = q.new_empty(B, T, H)

    sizes = dict(H=H, DK=Dk, DV=Dv, C=C, BK=BK)
    _prep_kernel[(NT, B * H)](k, v, g, beta, gamma, w, u, T, NT, BV=BV, **sizes)
    # The state pass is the sequential part: split value columns over more programs, and pipe
    # two chunks deep so its shared memory (about 58 KB at Dk = 64, C = 64) fits consumer GPUs.
    BVS = min(BV, 32)
    _state_kernel[(triton.cdiv(Dv, BVS), B * H)](
        k, gamma, w, u, final if h0 is None else h0, states, final, T, NT,
        BV=BVS, HAS_H0=h0 is not None, num_stages=2, **sizes,
    )
    _output_kernel[(NT, B * H)](
        q, k, v, g, gamma, u, states, out, surprise, residual, T, NT, BV=BV, EPS=COS_EPS, **sizes
    )
    return DeltaRuleOutput(out, surprise, final.view(B, H, Dk, Dv).to(q.dtype), residual)
