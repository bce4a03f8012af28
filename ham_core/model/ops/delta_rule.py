"""Gated delta rule with surprise (docs/DESIGN.md section 2, steps 3-4).

Per head, with state S (d_k x d_v), log-decay g_t (alpha_t = exp(g_t)) and write strength beta_t:

    p_t  = S_{t-1}^T k_t                                  the RNN's prediction of v_t
    e_t  = 1 - cos(p_t, v_t)                              surprise, in [0, 2]; 1 when p_t = 0
    u_t  = beta_t (v_t - alpha_t p_t)                     the committed residual
    S_t  = alpha_t S_{t-1} + k_t u_t^T
    o_t  = S_t^T q_t

Two forms with one signature: `gated_delta_rule_recurrent` (a step at a time, the reference)
and `gated_delta_rule_chunked` (chunkwise parallel, WY/UT form). Both take
q, k [B, T, H, Dk] (unit norm), v [B, T, H, Dv], g, beta [B, T, H], initial_state [B, H, Dk, Dv]
and return a `DeltaRuleOutput`.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from ..surprise_range import SURPRISE_MAX  # noqa: F401 - named here too (layer, tests)

# Below this product of norms the prediction counts as empty: cos = 0, surprise = 1.
_COS_EPS = 1e-12


class DeltaRuleOutput(NamedTuple):
    out: torch.Tensor          # [B, T, H, Dv]  RNN read-out S_t^T q_t
    surprise: torch.Tensor     # [B, T, H]      1 - cos(S_{t-1}^T k_t, v_t)
    final_state: torch.Tensor  # [B, H, Dk, Dv]
    residual: torch.Tensor     # [B, T, H]      ||u_t|| = beta_t ||v_t - alpha_t S_{t-1}^T k_t|| (HOLA)


def cosine_surprise(pred: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """1 - cos(pred, v) over the last dim, clamped to [0, 2]; 1 where pred is zero.

    pred, v: [..., D] -> [...]. Cosine is scale free, so a decayed prediction gives the same value.
    """
    dot = (pred * v).sum(-1)
    norms = pred.norm(dim=-1) * v.norm(dim=-1)
    cos = dot / norms.clamp_min(_COS_EPS)
    return (1.0 - cos).clamp(0.0, SURPRISE_MAX)


def check_inputs(q, k, v, g, beta, initial_state) -> None:
    """The shapes every form of the gated delta rule takes (the kernels check the same); ValueError if not."""
    if q.dim() != 4 or k.shape != q.shape:
        raise ValueError(f"q and k must both be [B, T, H, D], got {tuple(q.shape)} and {tuple(k.shape)}")
    B, T, H, _ = q.shape
    if v.dim() != 4 or v.shape[:3] != (B, T, H):
        raise ValueError(f"v must be [B, T, H, Dv] matching q, got {tuple(v.shape)}")
    if g.shape != (B, T, H) or beta.shape != (B, T, H):
        raise ValueError(f"g and beta must be [B, T, H] = {(B, T, H)}, got {tuple(g.shape)}, {tuple(beta.shape)}")
    if initial_state is not None and initial_state.shape != (B, H, q.shape[-1], v.shape[-1]):
        raise ValueError(f"initial_state must be [B, H, Dk, Dv], got {tuple(initial_state.shape)}")


def gated_delta_rule_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    initial_state: Optional[torch.Tensor] = None,
) -> DeltaRuleOutput:
    """The readable reference: one token at a time. Shapes as in the module docstring."""
    check_inputs(q, k, v, g, beta, initial_state)
    B, T, H, Dk = q.shape
    Dv = v.shape[-1]
    S = q.new_zeros(B, H, Dk, Dv) if initial_state is None else initial_state.to(q.dtype)
    outs, surprises, residuals = [], [], []
    for t in range(T):
        k_t, v_t, q_t = k[:, t], v[:, t], q[:, t]                      # [B, H, D]
        pred = torch.einsum("bhkv,bhk->bhv", S, k_t)                   # p_t = S_{t-1}^T k_t
        surprises.append(cosine_surprise(pred, v_t))
        alpha = g[:, t].exp()                                           # [B, H]
        u = beta[:, t, :, None] * (v_t - alpha[..., None] * pred)       # committed residual
        residuals.append(u.norm(dim=-1))
        S = alpha[..., None, None] * S + k_t[..., :, None] * u[..., None, :]
        outs.append(torch.einsum("bhkv,bhk->bhv", S, q_t))
    return DeltaRuleOutput(
        torch.stack(outs, 1), torch.stack(surprises, 1), S, torch.stack(residuals, 1)
    )


def gated_delta_rule_chunked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    initial_state: Optional[torch.Tensor] = None,
    chunk_size: int = 64,
) -> DeltaRuleOutput:
    """Chunkwise-parallel form (WY/UT). Same inputs and outputs as the recurrent form.

    Inside a chunk with start state S_0 and inclusive cumulative log-decay gamma, the updates
    u = beta (v - alpha S_{t-1}^T k) solve a unit lower-triangular system
        (I + A) U = diag(beta) V - diag(beta e^gamma) K S_0,
        A_ts = beta_t e^(gamma_t - gamma_s) (k_t . k_s)  for s < t,
    so U = U0 - W S_0 with U0, W computed for all chunks at once; only S_0 is carried
    chunk to chunk. The surprise uses the prediction itself,
        p_t = S_{t-1}^T k_t = e^gamma'_t S_0^T k_t + sum_{s<t} e^(gamma'_t - gamma_s) (k_t . k_s) u_s
    with gamma'_t = gamma_t - g_t the decay up to t - 1: not v - u/beta, which would divide by
    small betas, and not the decayed alpha_t p_t, which for a strong decay (alpha_t < ~1e-10)
    falls under the cosine's zero threshold or underflows and would read as "no prediction".
    """
    check_inputs(q, k, v, g, beta, initial_state)
    B, T, H, Dk = q.shape
    Dv = v.shape[-1]
    C = int(chunk_size)
    pad = (-T) % C
    if pad:
        # Padded steps have alpha = 1 and beta = 0: they leave the state untouched.
        q, k, v = (torch.nn.functional.pad(x, (0, 0, 0, 0, 0, pad)) for x in (q, k, v))
        g, beta = (torch.nn.functional.pad(x, (0, 0, 0, pad)) for x in (g, beta))
    N = (T + pad) // C

    def chunks(x):  # [B, T, H, ...] -> [B, H, N, C, ...]
        x = x.reshape(B, N, C, H, *x.shape[3:])
        return x.permute(0, 3, 1, 2, *range(4, x.dim()))

    q, k, v, g, beta = (chunks(x) for x in (q, k, v, g, beta))
    gamma = g.float().cumsum(-1).to(q.dtype)                           # [B, H, N, C]
    idx = torch.arange(C, device=q.device)
    incl = idx[:, None] >= idx[None, :]
    strict = idx[:, None] > idx[None, :]
    diff = gamma[..., :, None] - gamma[..., None, :]                    # [B, H, N, C, C]
    # Mask before exp: above the diagonal diff is positive and could overflow.
    decay_incl = diff.masked_fill(~incl, float("-inf")).exp()
    decay_strict = diff.masked_fill(~strict, float("-inf")).exp()

    # The prediction p_t reads S_{t-1}: decay up to t - 1 only (gamma' = gamma - g).
    gamma_prev = gamma - g
    decay_pred = (gamma_prev[..., :, None] - gamma[..., None, :]).masked_fill(~strict, float("-inf")).exp()

    kk = k @ k.transpose(-1, -2)                                        # [B, H, N, C, C]
    kk_decayed = kk * decay_strict
    kk_pred = kk * decay_pred
    qk_decayed = (q @ k.transpose(-1, -2)) * decay_incl
    eye = torch.eye(C, dtype=q.dtype, device=q.device)
    system = eye + beta[..., :, None] * kk_decayed                      # I + A
    u0 = torch.linalg.solve_triangular(system, beta[..., None] * v, upper=False, unitriangular=True)
    w = torch.linalg.solve_triangular(
        system, (beta * gamma.exp())[..., None] * k, upper=False, unitriangular=True
    )
    decay_to_end = (gamma[..., -1:] - gamma).exp()                     # e^(gamma_C - gamma_s)

    S = q.new_zeros(B, H, Dk, Dv) if initial_state is None else initial_state.to(q.dtype)
    outs, preds, us = [], [], []
    for n in range(N):
        u = u0[:, :, n] - w[:, :, n] @ S                                # [B, H, C, Dv]
        start = gamma[:, :, n, :, None].exp()                           # e^gamma_t, [B, H, C, 1]
        outs.append(start * (q[:, :, n] @ S) + qk_decayed[:, :, n] @ u)
        start_pred = gamma_prev[:, :, n, :, None].exp()                 # e^gamma'_t
        preds.append(start_pred * (k[:, :, n] @ S) + kk_pred[:, :, n] @ u)
        us.append(u)
        S = gamma[:, :, n, -1, None, None].exp() * S + (
            k[:, :, n] * decay_to_end[:, :, n, :, None]
        ).transpose(-1, -2) @ u

    def unchunk(xs):  # list of N x [B, H, C, ...] -> [B, T, H, ...]
        x = torch.stack(xs, 2).flatten(2, 3)[:, :, :T]
        return x.movedim(1, 2)

    out, pred, u = unchunk(outs), unchunk(preds), unchunk(us)
    v_orig = unchunk(list(v.unbind(2)))
    return DeltaRuleOutput(out, cosine_surprise(pred, v_orig), S, u.norm(dim=-1))
