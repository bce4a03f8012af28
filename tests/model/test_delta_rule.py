"""The gated delta rule with surprise: the chunked form equals the recurrent reference.

docs/DESIGN.md section 2, steps 3-4. The recurrent form is the readable reference; the chunked
(WY/UT) form must give the same read-out, surprise, residual and final state to 1e-4 for any
length, chunk size and initial state, and carry gradients.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ham_core.model.ops import (
    cosine_surprise,
    gated_delta_rule_chunked,
    gated_delta_rule_recurrent,
)

pytestmark = pytest.mark.usefixtures("one_thread")

ATOL = RTOL = 1e-4
FIELDS = ("out", "surprise", "final_state", "residual")


def inputs(B, T, H, D, Dv=None, *, init=False, seed=0, decay=(-1.0, 0.0)):
    """Unit q, k; random v; log-decay g uniform in `decay`; beta in (0, 1); optional state."""
    gen = torch.Generator().manual_seed(seed)
    Dv = Dv or D
    q = F.normalize(torch.randn(B, T, H, D, generator=gen), dim=-1)
    k = F.normalize(torch.randn(B, T, H, D, generator=gen), dim=-1)
    v = torch.randn(B, T, H, Dv, generator=gen)
    lo, hi = decay
    g = lo + (hi - lo) * torch.rand(B, T, H, generator=gen)
    beta = torch.rand(B, T, H, generator=gen)
    h0 = 0.5 * torch.randn(B, H, D, Dv, generator=gen) if init else None
    return q, k, v, g, beta, h0


def assert_same(got, want, fields=FIELDS):
    for name in fields:
        torch.testing.assert_close(
            getattr(got, name), getattr(want, name), atol=ATOL, rtol=RTOL,
            msg=lambda m, name=name: f"{name}: {m}",
        )


# (B, T, H, D, Dv, chunk, initial state)
CASES = [
    (1, 1, 1, 8, 8, 8, False),      # a single token
    (2, 1, 2, 16, 16, 64, True),    # a single token read against a given state
    (2, 5, 2, 16, 16, 8, False),    # T < chunk
    (2, 21, 2, 16, 16, 8, True),    # T not a multiple of the chunk
    (1, 64, 4, 32, 32, 16, False),  # several whole chunks
    (2, 100, 2, 16, 16, 64, True),  # the default chunk, a ragged tail
    (1, 37, 3, 16, 24, 8, True),    # value size differs from key size
]


@pytest.mark.parametrize(
    "B,T,H,D,Dv,C,init", CASES,
    ids=[f"B{b}-T{t}-H{h}-D{d}-Dv{dv}-C{c}-{'h0' if i else 'zero'}" for b, t, h, d, dv, c, i in CASES],
)
def test_chunked_matches_recurrent(B, T, H, D, Dv, C, init):
    q, k, v, g, beta, h0 = inputs(B, T, H, D, Dv, init=init)
    want = gated_delta_rule_recurrent(q, k, v, g, beta, h0)
    got = gated_delta_rule_chunked(q, k, v, g, beta, h0, chunk_size=C)
    assert got.out.shape == (B, T, H, Dv)
    assert got.surprise.shape == got.residual.shape == (B, T, H)
    assert got.final_state.shape == (B, H, D, Dv)
    assert_same(got, want)


@pytest.mark.parametrize("C", [1, 3, 4, 16, 50, 64, 128])
def test_any_chunk_size_gives_the_same_numbers(C):
    q, k, v, g, beta, h0 = inputs(2, 50, 2, 16, init=True, seed=1)
    want = gated_delta_rule_recurrent(q, k, v, g, beta, h0)
    assert_same(gated_delta_rule_chunked(q, k, v, g, beta, h0, chunk_size=C), want)


@pytest.mark.parametrize(
    "decay", [(0.0, 0.0), (-0.05, 0.0), (-8.0, -4.0), (-30.0, -20.0), (-120.0, -100.0)],
    ids=["no-decay", "weak", "strong", "extreme", "underflow"],
)
def test_agrees_across_decay_strengths(decay):
    """alpha = 1 down to alpha = 0 in float32 (e^-100): the in-chunk decay products must neither
    overflow nor NaN, and the surprise must still read the undecayed prediction S_{t-1}^T k_t
    (a prediction scaled by a tiny alpha_t would fall under the cosine's zero threshold)."""
    q, k, v, g, beta, h0 = inputs(2, 40, 2, 16, init=True, seed=2, decay=decay)
    want = gated_delta_rule_recurrent(q, k, v, g, beta, h0)
    got = gated_delta_rule_chunked(q, k, v, g, beta, h0, chunk_size=16)
    for name in FIELDS:
        assert torch.isfinite(getattr(got, name)).all(), name
    assert_same(got, want)


@pytest.mark.parametrize("form", ["recurrent", "chunked"])
def test_surprise_is_one_for_the_first_token_and_within_0_2(form):
    q, k, v, g, beta, _ = inputs(3, 30, 2, 16, seed=3)
    run = gated_delta_rule_recurrent if form == "recurrent" else gated_delta_rule_chunked
    e = run(q, k, v, g, beta).surprise
    torch.testing.assert_close(e[:, 0], torch.ones(3, 2))   # empty state predicts nothing
    assert (e >= 0).all() and (e <= 2).all()
    assert e[:, 1:].std() > 0.05                             # later tokens are actually scored


def test_surprise_matches_the_definition():
    """e_t = 1 - cos(S_{t-1}^T k_t, v_t), with S_{t-1} the previous step's final state."""
    q, k, v, g, beta, h0 = inputs(1, 6, 2, 8, init=True, seed=4)
    full = gated_delta_rule_chunked(q, k, v, g, beta, h0, chunk_size=4)
    state = h0
    for t in range(6):
        pred = torch.einsum("bhkv,bhk->bhv", state, k[:, t])
        want = 1 - F.cosine_similarity(pred, v[:, t], dim=-1)
        torch.testing.assert_close(full.surprise[:, t], want, atol=ATOL, rtol=RTOL)
        state = gated_delta_rule_recurrent(
            q[:, t:t + 1], k[:, t:t + 1], v[:, t:t + 1], g[:, t:t + 1], beta[:, t:t + 1], state
        ).final_state
    torch.testing.assert_close(state, full.final_state, atol=ATOL, rtol=RTOL)


def test_cosine_surprise_edge_values():
    v = torch.tensor([[1.0, 2.0, -1.0]])
    assert cosine_surprise(torch.zeros(1, 3), v).item() == 1.0          # no prediction
    assert cosine_surprise(3 * v, v).item() == pytest.approx(0.0, abs=1e-6)
    assert cosine_surprise(-0.1 * v, v).item() == pytest.approx(2.0, abs=1e-6)
    assert cosine_surprise(1e-3 * v, v).item() == pytest.approx(0.0, abs=1e-6)   # scale free


@pytest.mark.parametrize("form", ["recurrent", "chunked"])
@pytest.mark.parametrize("t", [0, 5, 8, 13])
def test_decay_at_t_does_not_change_surprise_up_to_t(form, t):
    """Surprise at t reads S_{t-1}; the chunked form uses the decayed prediction alpha_t p_t,
    which cosine must not see. The decay at t changes surprise only after t."""
    q, k, v, g, beta, h0 = inputs(2, 20, 2, 16, init=True, seed=5)
    run = gated_delta_rule_recurrent if form == "recurrent" else gated_delta_rule_chunked
    g2 = g.clone()
    g2[:, t] = g[:, t] - 2.0                         # alpha_t shrinks by e^-2
    a, b = run(q, k, v, g, beta, h0), run(q, k, v, g2, beta, h0)
    torch.testing.assert_close(a.surprise[:, :t + 1], b.surprise[:, :t + 1], atol=1e-5, rtol=1e-5)
    assert (a.surprise[:, t + 1:] - b.surprise[:, t + 1:]).abs().max() > 1e-3


@pytest.mark.parametrize("form", ["recurrent", "chunked"])
def test_decay_alone_does_not_change_surprise(form):
    """With no writes (beta = 0) the state only decays, so every surprise is that of the
    initial state, however strong the decay (while the state stays representable)."""
    q, k, v, g, _, h0 = inputs(2, 24, 2, 16, init=True, seed=6, decay=(-1.5, 0.0))
    beta = torch.zeros_like(g)
    run = gated_delta_rule_recurrent if form == "recurrent" else gated_delta_rule_chunked
    decayed = run(q, k, v, g, beta, h0).surprise
    undecayed = run(q, k, v, torch.zeros_like(g), beta, h0).surprise
    torch.testing.assert_close(decayed, undecayed, atol=1e-5, rtol=1e-5)


def test_gradients_of_chunked_match_recurrent():
    """Training runs the chunked form: its gradients are finite, non-zero and the reference's."""
    base = inputs(2, 19, 2, 8, init=True, seed=7)
    grads = {}
    for form, run in (("recurrent", gated_delta_rule_recurrent), ("chunked", gated_delta_rule_chunked)):
        leaves = [x.clone().requires_grad_(True) for x in base]
        kwargs = {"chunk_size": 8} if form == "chunked" else {}
        res = run(*leaves, **kwargs)
        weights = torch.Generator().manual_seed(8)
        loss = sum(
            (getattr(res, name) * torch.randn(getattr(res, name).shape, generator=weights)).sum()
            for name in FIELDS
        )
        loss.backward()
        grads[form] = [x.grad for x in leaves]
    names = ("q", "k", "v", "g", "beta", "initial_state")
    for name, got, want in zip(names, grads["chunked"], grads["recurrent"]):
        assert got is not None and torch.isfinite(got).all(), name
        assert got.abs().sum() > 0, name
        torch.testing.assert_close(got, want, atol=ATOL, rtol=RTOL, msg=lambda m, n=name: f"d/d{n}: {m}")


@pytest.mark.parametrize("form", ["recurrent", "chunked"])
def test_final_state_carries_over(form):
    """Running [0, T) equals running [0, t) then [t, T) from the final state."""
    q, k, v, g, beta, h0 = inputs(1, 30, 2, 16, init=True, seed=9)
    run = gated_delta_rule_recurrent if form == "recurrent" else gated_delta_rule_chunked
    whole = run(q, k, v, g, beta, h0)
    first = run(q[:, :11], k[:, :11], v[:, :11], g[:, :11], beta[:, :11], h0)
    second = run(q[:, 11:], k[:, 11:], v[:, 11:], g[:, 11:], beta[:, 11:], first.final_state)
    for name in ("out", "surprise", "residual"):
        joined = torch.cat([getattr(first, name), getattr(second, name)], 1)
        torch.testing.assert_close(joined, getattr(whole, name), atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(second.final_state, whole.final_state, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("form", [gated_delta_rule_recurrent, gated_delta_rule_chunked], ids=["recurrent", "chunked"])
def test_bad_shapes_raise_value_error_naming_the_argument(form):
    q, k, v, g, beta, h0 = inputs(1, 4, 2, 8, init=True)
    with pytest.raises(ValueError, match="q and k"):
        form(q[0], k[0], v, g, beta)
    with pytest.raises(ValueError, match="v must"):
        form(q, k, v[:, :3], g, beta)
    with pytest.raises(ValueError, match="g and beta"):
        form(q, k, v, g[..., :1], beta)
    with pytest.raises(ValueError, match="initial_state"):
        form(q, k, v, g, beta, h0[:, :1])
