"""Selective attention with a sink (docs/DESIGN.md section 2, step 6).

Two paths compute it: without weights it runs through torch's fused SDPA (`_fused`, the sink as
an extra zero key), with weights the explicit softmax (the reference). They must agree, equal a
plain causal softmax with the sink written out by hand when every key is visible, read nothing
from invisible or future keys, and give exactly zero when nothing is visible.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ham_core.model.ops import cache_attention, selective_attention, sink_softmax, visibility_mask

pytestmark = pytest.mark.usefixtures("one_thread")

ATOL = RTOL = 1e-5


def inputs(B, T, H, D, seed=0, temp_scale=1.0):
    gen = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(B, T, H, D, generator=gen), dim=-1)
    k = F.normalize(torch.randn(B, T, H, D, generator=gen), dim=-1)
    v = torch.randn(B, T, H, D, generator=gen)
    temperature = temp_scale * (0.5 + 4 * torch.rand(H, generator=gen))
    return q, k, v, temperature


def random_mask(shape, p=0.5, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen) < p


def by_hand(q, k, v, visible_qk, temperature):
    """Plain softmax over the visible causal keys plus one extra logit 0 with a zero value.
    visible_qk [B, T, T] (already causal)."""
    B, T, H, _ = q.shape
    logits = torch.einsum("bthd,bshd->bhts", q, k) * temperature[None, :, None, None]
    logits = logits.masked_fill(~visible_qk[:, None], float("-inf"))
    with_sink = torch.cat([logits, torch.zeros(B, H, T, 1)], -1)       # the sink logit is 0
    probs = torch.softmax(with_sink, -1)
    weights, sink = probs[..., :T], probs[..., T]
    return torch.einsum("bhts,bshd->bthd", weights, v), weights, sink


SHAPES = [(1, 1, 1, 8), (2, 7, 2, 16), (2, 33, 4, 32), (1, 64, 3, 16)]
SHAPE_IDS = [f"B{b}-T{t}-H{h}-D{d}" for b, t, h, d in SHAPES]


@pytest.mark.parametrize("B,T,H,D", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("kind", ["cached", "query-by-key"])
def test_fused_path_equals_weights_path(B, T, H, D, kind):
    q, k, v, c = inputs(B, T, H, D)
    visible = random_mask((B, T) if kind == "cached" else (B, T, T))
    fused = selective_attention(q, k, v, visible, c)
    ref = selective_attention(q, k, v, visible, c, return_weights=True)
    assert fused.weights is None and fused.sink is None
    assert ref.weights.shape == (B, H, T, T) and ref.sink.shape == (B, H, T)
    torch.testing.assert_close(fused.out, ref.out, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("B,T,H,D", SHAPES, ids=SHAPE_IDS)
def test_all_visible_is_causal_softmax_with_sink(B, T, H, D):
    """tau = 0 caches every token: selective attention is plain causal attention plus the sink."""
    q, k, v, c = inputs(B, T, H, D, seed=2)
    everything = torch.ones(B, T, dtype=torch.bool)
    want_out, want_w, want_sink = by_hand(q, k, v, torch.ones(B, T, T, dtype=torch.bool).tril(), c)
    ref = selective_attention(q, k, v, everything, c, return_weights=True)
    torch.testing.assert_close(ref.out, want_out, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(ref.weights, want_w, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(ref.sink, want_sink, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(selective_attention(q, k, v, everything, c).out, want_out, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("kind", ["cached", "query-by-key"])
def test_random_visibility_matches_by_hand(kind):
    B, T, H, D = 2, 19, 2, 16
    q, k, v, c = inputs(B, T, H, D, seed=3)
    visible = random_mask((B, T) if kind == "cached" else (B, T, T), seed=4)
    want_out, want_w, want_sink = by_hand(q, k, v, visibility_mask(visible, T), c)
    ref = selective_attention(q, k, v, visible, c, return_weights=True)
    torch.testing.assert_close(ref.out, want_out, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(ref.weights, want_w, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(ref.sink, want_sink, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("return_weights", [False, True], ids=["fused", "weights"])
@pytest.mark.parametrize("kind", ["cached", "query-by-key"])
def test_nothing_visible_gives_exactly_zero(return_weights, kind):
    B, T, H, D = 2, 12, 2, 16
    q, k, v, c = inputs(B, T, H, D, seed=5)
    nothing = torch.zeros((B, T) if kind == "cached" else (B, T, T), dtype=torch.bool)
    res = selective_attention(q, k, v, nothing, c, return_weights=return_weights)
    assert torch.equal(res.out, torch.zeros_like(res.out))
    if return_weights:
        assert torch.equal(res.weights, torch.zeros_like(res.weights))
        assert torch.equal(res.sink, torch.ones_like(res.sink))


def test_cached_mask_equals_its_query_by_key_form():
    B, T, H, D = 2, 23, 2, 16
    q, k, v, c = inputs(B, T, H, D, seed=6)
    cached = random_mask((B, T), seed=7)
    as_qk = cached[:, None, :].expand(B, T, T)        # every query sees the same cached keys
    for return_weights in (False, True):
        a = selective_attention(q, k, v, cached, c, return_weights=return_weights)
        b = selective_attention(q, k, v, as_qk, c, return_weights=return_weights)
        torch.testing.assert_close(a.out, b.out, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(a.weights, b.weights)


@pytest.mark.parametrize("kind", ["cached", "query-by-key"])
def test_weights_and_sink_sum_to_one_and_skip_hidden_keys(kind):
    B, T, H, D = 2, 29, 3, 16
    q, k, v, c = inputs(B, T, H, D, seed=8)
    visible = random_mask((B, T) if kind == "cached" else (B, T, T), seed=9)
    res = selective_attention(q, k, v, visible, c, return_weights=True)
    torch.testing.assert_close(res.weights.sum(-1) + res.sink, torch.ones(B, H, T))
    readable = visibility_mask(visible, T)[:, None].expand_as(res.weights)
    assert (res.weights[~readable] == 0).all()                    # invisible and future keys
    assert (res.weights[readable] > 0).all()                      # every readable key gets some
    assert (res.sink > 0).all() and (res.sink <= 1).all()


def test_visibility_mask_is_causal():
    T = 6
    full = torch.ones(1, T, T, dtype=torch.bool)
    assert torch.equal(visibility_mask(full, T)[0], torch.ones(T, T, dtype=torch.bool).tril())
    cached = torch.tensor([[True, False, True, True, False, True]])
    m = visibility_mask(cached, T)[0]
    assert not m[0, 2] and m[2, 2] and m[5, 0] and not m[5, 4]
    with pytest.raises(ValueError, match="visible"):
        visibility_mask(torch.ones(T, dtype=torch.bool), T)


def test_future_keys_do_not_move_the_output():
    """Changing keys and values after t leaves outputs up to t unchanged (both paths)."""
    B, T, H, D = 1, 16, 2, 8
    q, k, v, c = inputs(B, T, H, D, seed=10)
    k2, v2 = k.clone(), v.clone()
    k2[:, 9:] = F.normalize(torch.randn(B, T - 9, H, D), dim=-1)
    v2[:, 9:] = 10 * torch.randn(B, T - 9, H, D)
    visible = random_mask((B, T), p=0.7, seed=11)
    for return_weights in (False, True):
        a = selective_attention(q, k, v, visible, c, return_weights=return_weights).out
        b = selective_attention(q, k2, v2, visible, c, return_weights=return_weights).out
        torch.testing.assert_close(a[:, :9], b[:, :9], atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("temp_scale", [1e-3, 1.0, 1e3], ids=["flat", "normal", "sharp"])
def test_extreme_temperatures_stay_finite_and_agree(temp_scale):
    B, T, H, D = 2, 17, 2, 16
    q, k, v, c = inputs(B, T, H, D, seed=12, temp_scale=temp_scale)
    visible = random_mask((B, T), seed=13)
    ref = selective_attention(q, k, v, visible, c, return_weights=True)
    fused = selective_attention(q, k, v, visible, c)
    assert torch.isfinite(ref.out).all() and torch.isfinite(fused.out).all()
    torch.testing.assert_close(fused.out, ref.out, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ref.weights.sum(-1) + ref.sink, torch.ones(B, H, T))


@pytest.mark.parametrize("n", [0, 1, 5], ids=["n0", "n1", "n5"])
def test_cache_attention_equals_the_last_query_of_the_full_form(n):
    """Decode reads one query against a compact cache of n keys: the same numbers as the last
    row of selective attention with only those n keys visible."""
    B, T, H, D = 1, 9, 2, 16
    q, k, v, c = inputs(B, T, H, D, seed=14)
    visible = torch.zeros(B, T, dtype=torch.bool)
    positions = [0, 3, 4, 7, 8][:n]
    visible[0, positions] = True
    want = selective_attention(q, k, v, visible, c, return_weights=True).out[0, -1]
    got = cache_attention(q[0, -1], k[0, positions], v[0, positions], c)
    torch.testing.assert_close(got, want, atol=ATOL, rtol=RTOL)
    if n == 0:
        assert torch.equal(got, torch.zeros(H, D))


def test_gradients_flow_through_the_fused_path():
    B, T, H, D = 1, 10, 2, 8
    q, k, v, c = (x.clone().requires_grad_(True) for x in inputs(B, T, H, D, seed=15))
    visible = random_mask((B, T), p=0.6, seed=16)
    visible[0, 0] = True
    selective_attention(q, k, v, visible, c).out.square().sum().backward()
    for name, x in zip("qkvc", (q, k, v, c)):
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0, name


def test_sink_softmax_is_softmax_with_a_zero_logit_appended():
    """The one sink softmax every attention path uses: masked keys get 0, no keys leave it all
    to the sink, and large logits do not overflow."""
    gen = torch.Generator().manual_seed(3)
    logits = 8 * torch.randn(2, 3, 5, generator=gen)
    logits[0, 1, :2] = float("-inf")
    logits[1, 2, :] = float("-inf")
    weights, sink = sink_softmax(logits)
    probs = torch.softmax(torch.cat([logits, torch.zeros(2, 3, 1)], -1), -1)
    torch.testing.assert_close(weights, probs[..., :5], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(sink, probs[..., 5], atol=ATOL, rtol=RTOL)
    assert (weights[0, 1, :2] == 0).all() and sink[1, 2] == 1.0
    empty_w, empty_sink = sink_softmax(torch.zeros(4, 0))
    assert empty_w.shape == (4, 0) and (empty_sink == 1).all()
    big_w, big_sink = sink_softmax(torch.tensor([[1e4, 1e4 - 1]]))
    assert torch.isfinite(big_w).all() and big_sink.item() == 0.0
