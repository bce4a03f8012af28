"""Selective attention (Triton), mirroring ham_core.model.ops.attention.

`selective_attention`: tiled causal attention with online softmax (flash-attention style).
Query t reads key s only if s <= t and s is visible; logits are c_h q_t . k_s; one extra sink
logit 0 with a zero value. The sink needs no special case: the running max starts at 0 and the
running denominator at e^(0 - 0) = 1, which is exactly the sink's term.
`cache_attention`: one query per head over the compact KV cache (decode).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ham_core.model.ops.attention import AttentionOutput

from ._common import block, check_device


@triton.jit
def _attention_kernel(
    q, k, v, visible, temperature, out, T, H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr,
    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    PER_QUERY: tl.constexpr,
):
    """q, k [B, T, H, DK]; v, out [B, T, H, DV]; visible int8 [B, T] or, with PER_QUERY,
    [B, T, T] (query x key); temperature [H]. Grid (query blocks, B * H)."""
    pm = tl.program_id(0)
    bh = tl.program_id(1)
    b = bh // H
    h = bh % H
    om = pm * BM + tl.arange(0, BM)
    ok = tl.arange(0, BK)
    ov = tl.arange(0, BV)
    mm = om < T
    # Fold the temperature into q once instead of scaling every logit tile.
    c = tl.load(temperature + h).to(tl.float32)
    q_b = tl.load(q + ((b * T + om) * H + h)[:, None] * DK + ok[None, :],
                  mask=mm[:, None] & (ok[None, :] < DK), other=0.0).to(tl.float32) * c

    m_i = tl.zeros([BM], dtype=tl.float32)        # running max, starts at the sink logit 0
    l_i = tl.zeros([BM], dtype=tl.float32) + 1.0  # running denominator, the sink's e^0
    acc = tl.zeros([BM, BV], dtype=tl.float32)    # the sink's value is zero
    # Causal: keys past this query block's last row are never visible (and past T, masked).
    for start in range(0, (pm + 1) * BM, BN):
        on = start + tl.arange(0, BN)
        mn = on < T
        if PER_QUERY:
            vis = tl.load(visible + (b * T + om[:, None]) * T + on[None, :],
                          mask=mm[:, None] & mn[None, :], other=0) != 0
        else:
            vis = (tl.load(visible + b * T + on, mask=mn, other=0) != 0)[None, :]
        vis = vis & (on[None, :] <= om[:, None])
        # A block with no visible key changes nothing: skip its loads and dots (a sparse cache
        # is the common case for HAM).
        if tl.max(tl.max(vis.to(tl.int32), axis=1), axis=0) > 0:
            rows = (b * T + on) * H + h
            k_b = tl.load(k + rows[:, None] * DK + ok[None, :],
                          mask=mn[:, None] & (ok[None, :] < DK), other=0.0).to(tl.float32)
            v_b = tl.load(v + rows[:, None] * DV + ov[None, :],
                          mask=mn[:, None] & (ov[None, :] < DV), other=0.0).to(tl.float32)
            logits = tl.dot(q_b, tl.trans(k_b), input_precision="ieee")
            logits = tl.where(vis, logits, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(logits, axis=1))       # finite: m_i >= 0
            p = tl.exp(logits - m_new[:, None])
            scale = tl.exp(m_i - m_new)
            l_i = l_i * scale + tl.sum(p, axis=1)
            acc = acc * scale[:, None] + tl.dot(p, v_b, input_precision="ieee")
            m_i = m_new
    o = acc / l_i[:, None]
    tl.store(out + ((b * T + om) * H + h)[:, None] * DV + ov[None, :], o,
             mask=mm[:, None] & (ov[None, :] < DV))


@triton.jit
def _decode_kernel(
    q, keys, values, temperature, out, n, H: tl.constexpr, DK: tl.constexpr, DV: tl.constexpr,
    BN: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
):
    """q [H, DK]; keys [n, H, DK]; values [n, H, DV]; temperature [H]; out [H, DV].
    Grid (H,): one query row, so the products are broadcast sums rather than tl.dot."""
    h = tl.program_id(0)
    ok = tl.arange(0, BK)
    ov = tl.arange(0, BV)
    q_h = tl.load(q + h * DK + ok, mask=ok < DK, other=0.0).to(tl.float32)
    q_h = q_h * tl.load(temperature + h).to(tl.float32)
    m_i = 0.0                                       # sink logit 0 (see module docstring)
    l_i = 1.0
    acc = tl.zeros([BV], dtype=tl.float32)
    for start in range(0, n, BN):
        on = start + tl.arange(0, BN)
        mn = on < n
        rows = on * H + h
        k_b = tl.load(keys + rows[:, None] * DK + ok[None, :],
                      mask=mn[:, None] & (ok[None, :] < DK), other=0.0).to(tl.float32)
        v_b = tl.load(values + rows[:, None] * DV + ov[None, :],
                      mask=mn[:, None] & (ov[None, :] < DV), other=0.0).to(tl.float32)
        logits = tl.where(mn, tl.sum(k_b * q_h[None, :], axis=1), float("-inf"))
        m_new = tl.maximum(m_i, tl.max(logits, axis=0))
        p = tl.exp(logits - m_new)
        scale = tl.exp(m_i - m_new)
        l_i = l_i * scale + tl.sum(p, axis=0)
        acc = acc * scale + tl.sum(p[:, None] * v_b, axis=0)
        m_i = m_new
    tl.store(out + h * DV + ov, acc / l_i, mask=ov < DV)


def _block_t(T: int) -> int:
    """Query/key tile: 16 for short texts (tl.dot's minimum), at most 64."""
    return min(64, block(T))


def selective_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    visible: torch.Tensor,
    temperature: torch.Tensor,
    return_weights: bool = False,
) -> AttentionOutput:
    """Same signature as ham_core.model.ops.attention.selective_attention, forward only.

    q, k [B, T, H, Dk]; v [B, T, H, Dv]; visible bool [B, T] (cached keys) or [B, T, T]
    (query x key); temperature [H] -> AttentionOutput(out [B, T, H, Dv], None, None).
    The kernel never forms the T x T weights, so return_weights=True is refused (the
    dispatcher sends such calls to the reference).
    """
    if return_weights:
        raise ValueError("the attention kernel does not return weights; use the reference path")
    B, T, H, Dk = q.shape
    Dv = v.shape[-1]
    if visible.dim() not in (2, 3) or visible.shape[0] != B or visible.shape[1:] != (T,) * (visible.dim() - 1):
        raise ValueError(f"visible must be [B, T] or [B, T, T] = {(B, T)}, got {tuple(visible.shape)}")
    check_device(q, k, v, visible, temperature)
    q, k, v = (x.contiguous() for x in (q, k, v))
    vis = visible.to(torch.int8).contiguous()
    temp = temperature.contiguous()
    out = q.new_empty(B, T, H, Dv)
    BT = _block_t(T)
    _attention_kernel[(triton.cdiv(T, BT), B * H)](
        q, k, v, vis, temp, out, T, H=H, DK=Dk, DV=Dv,
        BM=BT, BN=BT, BK=block(Dk), BV=block(Dv), PER_QUERY=visible.dim() == 3,
    )
    return AttentionOutput(out, None, None)


def cache_attention(
    q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, temperature: torch.Tensor
) -> torch.Tensor:
    """Same as ham_core.model.ops.attention.cache_attention: q [H, Dk], keys [n, H, Dk],
    values [n, H, Dv], temperature [H] -> [H, Dv]; n may be 0 (the output is then zero)."""
    H, Dk = q.shape
    n, _, Dv = values.shape
    check_device(q, keys, values, temperature)
    q, keys, values, temp = (x.contiguous() for x in (q, keys, values, temperature))
    out = q.new_empty(H, Dv)
    _decode_kernel[(H,)](
        q, keys, values, temp, out, n, H=H, DK=Dk, DV=Dv,
        BN=min(64, block(n)), BK=block(Dk, 1), BV=block(Dv, 1),
    )
    return out
