"""The HAM language model: routing by tau, explicit visibility, KV accounting, causality,
training signal, and bad input. Equality of the three forms (chunked, recurrent, compact-cache
decode) is in test_decode.py.
"""
from __future__ import annotations

import math

import pytest
import torch
from conftest import tiny_config

from ham_core.model import dispatch
from ham_core.errors import HAMInputError
from ham_core.model.model import HAMModel, next_token_nll

pytestmark = pytest.mark.usefixtures("one_thread")

ATOL = RTOL = 1e-4
T = 21                        # not a multiple of the tiny config's chunk of 8


def random_ids(B=1, T=T, seed=0, vocab=320):
    return torch.randint(0, vocab, (B, T), generator=torch.Generator().manual_seed(seed))


def middle_tau(model, ids) -> float:
    """A threshold that caches some tokens but not all, halfway between two neighbouring layer
    surprises, so float noise between the forms cannot flip a routing decision."""
    with torch.no_grad():
        e = model(ids, 0.0).layer_surprise.flatten().sort().values
    gaps = e[1:] - e[:-1]
    middle = slice(len(e) // 4, 3 * len(e) // 4)
    i = middle.start + int(gaps[middle].argmax())
    assert gaps[i] > 1e-4
    return float((e[i] + e[i + 1]) / 2)


def per_key_bytes(cfg):
    return 2 * cfg.n_heads * cfg.head_dim * 4


@pytest.fixture
def capture_attention(monkeypatch):
    """Record every selective-attention call of a forward: (q, k, v, visible, out) per layer."""
    calls = []
    inner = dispatch.attention

    def spy(q, k, v, visible, temperature, return_weights=False):
        res = inner(q, k, v, visible, temperature, return_weights)
        calls.append({"q": q, "k": k, "v": v, "visible": visible, "out": res.out})
        return res

    monkeypatch.setattr(dispatch, "attention", spy)
    return calls


# ---------------------------------------------------------------- routing by tau

def test_chunked_forward_equals_recurrent_forward(tiny_model):
    ids = random_ids(B=2, seed=1)
    tau = middle_tau(tiny_model, ids)
    with torch.no_grad():
        a = tiny_model(ids, tau)
        b = tiny_model(ids, tau, mode="recurrent")
    torch.testing.assert_close(a.logits, b.logits, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(a.surprise, b.surprise, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(a.residual, b.residual, atol=ATOL, rtol=RTOL)
    assert torch.equal(a.cached, b.cached)


def test_output_shapes(tiny_model):
    cfg = tiny_model.cfg
    B, L, H, V = 2, cfg.n_layers, cfg.n_heads, cfg.vocab_size
    with torch.no_grad():
        out = tiny_model(random_ids(B=B), 0.5, attention="all")
    assert out.logits.shape == (B, T, V)
    assert out.surprise.shape == out.residual.shape == (B, L, T, H)
    assert out.cached.shape == (B, L, T) and out.cached.dtype == torch.bool
    assert out.kv_peak.shape == (B, L) and out.kv_bytes_peak.shape == (B,)
    assert len(out.attention) == L and out.attention[0].shape == (B, H, T, T)
    assert out.sink.shape == (B, L, H, T)
    assert len(out.final_states) == L and out.final_states[0].shape == (B, H, cfg.head_dim, cfg.head_dim)
    assert ((out.surprise >= 0) & (out.surprise <= 2)).all()
    torch.testing.assert_close(out.surprise[:, :, 0], torch.ones(B, L, H))   # empty state


def test_tau_zero_caches_everything_and_reads_every_earlier_token(tiny_model):
    cfg = tiny_model.cfg
    with torch.no_grad():
        out = tiny_model(random_ids(B=2, seed=2), 0.0, attention="all")
    assert out.cached.all()
    assert (out.kv_peak == T).all()
    assert (out.kv_bytes_peak == out.kv_bytes_full).all()
    assert out.kv_bytes_full == T * cfg.n_layers * per_key_bytes(cfg)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for w, sink in zip(out.attention, out.sink.unbind(1)):
        assert (w[..., causal] > 0).all() and (w[..., ~causal] == 0).all()
        torch.testing.assert_close(w.sum(-1) + sink, torch.ones_like(sink))


@pytest.mark.parametrize("tau", [2.0001, 3.0, math.inf])
def test_tau_above_two_caches_nothing_and_attention_reads_exactly_zero(tiny_model, capture_attention, tau):
    with torch.no_grad():
        out = tiny_model(random_ids(seed=3), tau, attention="all")
    assert not out.cached.any()
    assert (out.kv_peak == 0).all() and (out.kv_bytes_peak == 0).all()
    for w in out.attention:
        assert torch.equal(w, torch.zeros_like(w))
    assert torch.equal(out.sink, torch.ones_like(out.sink))
    assert len(capture_attention) == tiny_model.cfg.n_layers
    for call in capture_attention:
        assert torch.equal(call["out"], torch.zeros_like(call["out"]))
    # ... and also on the fused path, without weights
    capture_attention.clear()
    with torch.no_grad():
        tiny_model(random_ids(seed=3), tau)
    for call in capture_attention:
        assert torch.equal(call["out"], torch.zeros_like(call["out"]))


def test_routing_is_the_layer_surprise_against_tau(tiny_model):
    ids = random_ids(B=2, seed=4)
    tau = middle_tau(tiny_model, ids)
    with torch.no_grad():
        out = tiny_model(ids, tau)
    assert torch.equal(out.cached, out.layer_surprise >= tau)
    assert 0 < out.cached.float().mean() < 1
    assert torch.equal(out.kv_peak, out.cached.sum(-1))


def test_per_layer_tau(tiny_model):
    ids = random_ids(seed=5)
    with torch.no_grad():
        out = tiny_model(ids, [0.0, 3.0])
        mid = middle_tau(tiny_model, ids)
        mixed = tiny_model(ids, [mid, 0.0])
        same = tiny_model(ids, [mid, mid])
        scalar = tiny_model(ids, mid)
    assert out.cached[:, 0].all() and not out.cached[:, 1].any()
    assert out.kv_peak.tolist() == [[T, 0]]
    assert torch.equal(mixed.cached[:, 1], torch.ones_like(mixed.cached[:, 1]))
    assert torch.equal(mixed.cached[:, 0], scalar.cached[:, 0])   # layer 0 sees the same input
    assert torch.equal(same.logits, scalar.logits)


def test_per_text_tau_tensor(tiny_model):
    ids = random_ids(B=2, seed=6)
    with torch.no_grad():
        out = tiny_model(ids, torch.tensor([[0.0, 0.0], [3.0, 3.0]]))
        first = tiny_model(ids[:1], 0.0)
        second = tiny_model(ids[1:], 3.0)
    assert out.cached[0].all() and not out.cached[1].any()
    torch.testing.assert_close(out.logits[:1], first.logits, atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(out.logits[1:], second.logits, atol=ATOL, rtol=RTOL)


def test_top_k_reads_are_the_largest_weights(tiny_model):
    ids = random_ids(seed=7)
    with torch.no_grad():
        full = tiny_model(ids, 0.0, attention="all")
        top = tiny_model(ids, 0.0, attention=3)
    for w, reads in zip(full.attention, top.attention):
        assert reads.values.shape == reads.indices.shape == w.shape[:-1] + (3,)
        torch.testing.assert_close(reads.values, w.topk(3, dim=-1).values)
        torch.testing.assert_close(w.gather(-1, reads.indices), reads.values)
    with torch.no_grad():
        assert tiny_model(ids, 0.0, attention=100).attention[0].values.shape[-1] == T


# ---------------------------------------------------------------- causality

@pytest.mark.parametrize("mode", ["chunked", "recurrent"])
@pytest.mark.parametrize("t", [0, 6, 7, 12, T - 2])
def test_changing_token_t_plus_1_changes_nothing_up_to_t(tiny_model, mode, t):
    ids = random_ids(seed=8)
    tau = middle_tau(tiny_model, ids)
    other = ids.clone()
    other[0, t + 1] = (ids[0, t + 1] + 1) % tiny_model.cfg.vocab_size
    with torch.no_grad():
        a = tiny_model(ids, tau, mode=mode)
        b = tiny_model(other, tau, mode=mode)
    torch.testing.assert_close(a.logits[:, :t + 1], b.logits[:, :t + 1], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(a.surprise[:, :, :t + 1], b.surprise[:, :, :t + 1], atol=1e-6, rtol=1e-6)
    assert torch.equal(a.cached[:, :, :t + 1], b.cached[:, :, :t + 1])
    # ... while the changed token does move something at t + 1
    assert not torch.allclose(a.logits[:, t + 1], b.logits[:, t + 1])


def test_later_tokens_change_nothing_earlier(tiny_model):
    """Replacing the whole tail after t, not just one token, also leaves [0, t] untouched."""
    ids = random_ids(seed=9)
    other = torch.cat([ids[:, :10], random_ids(T=T - 10, seed=10)], 1)
    with torch.no_grad():
        a, b = tiny_model(ids, 0.9), tiny_model(other, 0.9)
    torch.testing.assert_close(a.logits[:, :10], b.logits[:, :10], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(a.surprise[:, :, :10], b.surprise[:, :, :10], atol=1e-6, rtol=1e-6)
    assert torch.equal(a.cached[:, :, :10], b.cached[:, :, :10])


# ---------------------------------------------------------------- visibility and KV accounting

def test_kv_accounting_equals_the_formula(tiny_model):
    cfg = tiny_model.cfg
    ids = random_ids(B=3, seed=11)
    tau = middle_tau(tiny_model, ids)
    with torch.no_grad():
        out = tiny_model(ids, tau)
    counts = out.cached.sum(-1)                                      # [B, L] routed tokens
    assert torch.equal(out.kv_peak, counts)
    assert out.kv_bytes_peak.tolist() == [int(c.sum()) * 2 * cfg.n_heads * cfg.head_dim * 4 for c in counts]
    assert out.kv_bytes_full == T * cfg.n_layers * 2 * cfg.n_heads * cfg.head_dim * 4
    assert out.state_bytes == cfg.n_layers * cfg.n_heads * cfg.head_dim ** 2 * 4
    torch.testing.assert_close(out.kv_fraction, counts.sum(-1).double() / (T * cfg.n_layers))


@pytest.mark.parametrize("W", [1, 4, 8, T + 5])
def test_sliding_window_visibility(tiny_model, W):
    cfg = tiny_model.cfg
    B, L = 2, cfg.n_layers
    t = torch.arange(T)
    window = (t[None, :] <= t[:, None]) & (t[None, :] > t[:, None] - W)      # [T, T]
    visibility = window.expand(B, L, T, T)
    with torch.no_grad():
        out = tiny_model(random_ids(B=B, seed=12), visibility=visibility, attention="all")
    peak = min(W, T)
    assert (out.kv_peak == peak).all()
    assert (out.kv_bytes_peak == peak * L * per_key_bytes(cfg)).all()
    assert out.cached.all()                 # every token sits in the window at some point
    for w in out.attention:
        assert (w[..., ~window] == 0).all() and (w[..., window] > 0).all()


def test_fixed_cached_visibility(tiny_model):
    cfg = tiny_model.cfg
    B, L = 2, cfg.n_layers
    keep = torch.zeros(B, L, T, dtype=torch.bool)
    keep[..., ::3] = True
    keep[1, 1] = False
    with torch.no_grad():
        out = tiny_model(random_ids(B=B, seed=13), visibility=keep, attention="all")
    assert torch.equal(out.cached, keep)
    assert out.kv_peak.tolist() == [[7, 7], [7, 0]]
    assert out.kv_bytes_peak.tolist() == [14 * per_key_bytes(cfg), 7 * per_key_bytes(cfg)]
    for l, w in enumerate(out.attention):
        assert (w.sum((-3, -2))[~keep[:, l]] == 0).all()      # no query reads a dropped key


def test_visibility_is_always_causal(tiny_model):
    """An all-True [T, T] visibility must not let a query read the future: it equals tau = 0."""
    ids = random_ids(seed=14)
    L = tiny_model.cfg.n_layers
    with torch.no_grad():
        everything = tiny_model(ids, visibility=torch.ones(1, L, T, T, dtype=torch.bool))
        tau0 = tiny_model(ids, 0.0)
    torch.testing.assert_close(everything.logits, tau0.logits, atol=ATOL, rtol=RTOL)
    assert (everything.kv_peak == T).all()


def test_routes_hook_sees_the_layers_own_surprise(tiny_model):
    ids = random_ids(seed=15)
    seen = []

    def keep_top_half(surprise, residual):
        seen.append((surprise, residual))
        e = surprise.amin(-1)
        return e >= e.median(-1, keepdim=True).values

    with torch.no_grad():
        out = tiny_model(ids, routes=[keep_top_half] * tiny_model.cfg.n_layers)
    assert len(seen) == tiny_model.cfg.n_layers
    for l, (surprise, residual) in enumerate(seen):
        torch.testing.assert_close(surprise, out.surprise[:, l])
        torch.testing.assert_close(residual, out.residual[:, l])
    assert (out.kv_peak == T // 2 + 1).all()


# ---------------------------------------------------------------- training signal

def test_a_few_adamw_steps_lower_the_loss_and_both_branches_learn():
    torch.manual_seed(0)
    model = HAMModel(tiny_config()).train()
    ids = torch.tensor([[5, 17, 42, 99, 7, 3, 250, 64] * 4])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for step in range(12):
        out = model(ids, 0.5)
        loss = next_token_nll(out.logits, ids).mean()
        opt.zero_grad()
        loss.backward()
        if step == 0:
            assert 0 < out.cached.float().mean() < 1       # attention branch actually reads
            layer = model.blocks[0].ham
            params = {
                "qkv (both)": layer.qkv.weight,
                "A_log (rnn)": layer.A_log,
                "dt_bias (rnn)": layer.dt_bias,
                "beta_proj (rnn)": layer.beta_proj.weight,
                "rnn_norm (rnn)": layer.rnn_norm.weight,
                "log_temperature (attention)": layer.log_temperature,
                "attn_norm (attention)": layer.attn_norm.weight,
                "gate_proj (both)": layer.gate_proj.weight,
                "conv": layer.conv.weight,
            }
            for name, p in params.items():
                assert p.grad is not None and torch.isfinite(p.grad).all(), name
                assert p.grad.abs().max() > 0, name
            for name, p in model.named_parameters():
                assert p.grad is not None and torch.isfinite(p.grad).all(), name
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_next_token_nll():
    logits = torch.zeros(1, 3, 4)
    logits[0, 0, 2] = 10.0
    nll = next_token_nll(logits, torch.tensor([[0, 2, 1]]))
    assert nll.shape == (1, 2)
    assert nll[0, 0] < 1e-3 and nll[0, 1] == pytest.approx(math.log(4))


# ---------------------------------------------------------------- bad input

L2 = 2   # tiny_config layers


BAD = [
    ("empty-T", {"ids": torch.zeros(1, 0, dtype=torch.long)}, "ids"),
    ("empty-B", {"ids": torch.zeros(0, 5, dtype=torch.long)}, "ids"),
    ("empty-1d", {"ids": torch.zeros(0, dtype=torch.long)}, "ids"),
    ("id-too-big", {"ids": torch.tensor([[1, 2, 320]])}, "ids"),
    ("id-negative", {"ids": torch.tensor([[1, -1, 2]])}, "ids"),
    ("float-ids", {"ids": torch.tensor([[1.0, 2.0]])}, "ids"),
    ("bool-ids", {"ids": torch.tensor([[True, False]])}, "ids"),
    ("list-ids", {"ids": [1, 2, 3]}, "ids"),
    ("3d-ids", {"ids": torch.zeros(1, 2, 3, dtype=torch.long)}, "ids"),
    ("tau-negative", {"tau": -0.1}, "tau"),
    ("tau-nan", {"tau": float("nan")}, "tau"),
    ("tau-nan-in-list", {"tau": [0.5, float("nan")]}, "tau"),
    ("tau-too-few", {"tau": [0.5]}, "tau"),
    ("tau-too-many", {"tau": [0.5, 0.5, 0.5]}, "tau"),
    ("tau-string", {"tau": "high"}, "tau"),
    ("tau-bad-batch", {"tau": torch.zeros(3, L2)}, "tau"),
    ("visibility-2d", {"visibility": torch.ones(L2, 4, dtype=torch.bool)}, "visibility"),
    ("visibility-unbatched", {"visibility": torch.ones(L2, 4, 4, dtype=torch.bool)}, "visibility"),
    ("visibility-T", {"visibility": torch.ones(1, L2, 5, dtype=torch.bool)}, "visibility"),
    ("visibility-L", {"visibility": torch.ones(1, L2 + 1, 4, dtype=torch.bool)}, "visibility"),
    ("visibility-TT", {"visibility": torch.ones(1, L2, 4, 5, dtype=torch.bool)}, "visibility"),
    ("visibility-5d", {"visibility": torch.ones(1, L2, 4, 4, 1, dtype=torch.bool)}, "visibility"),
    ("routes-count", {"routes": [lambda s, r: s.amin(-1) > 0]}, "routes"),
    ("mode", {"mode": "fast"}, "mode"),
    ("attention-zero", {"attention": 0}, "attention"),
    ("attention-word", {"attention": "some"}, "attention"),
]


@pytest.mark.parametrize("kwargs,arg", [(k, a) for _, k, a in BAD], ids=[i for i, _, _ in BAD])
def test_bad_input_is_a_value_error_naming_the_argument(tiny_model, kwargs, arg):
    kwargs = dict(kwargs)
    ids = kwargs.pop("ids", torch.tensor([[1, 2, 3, 4]]))
    with pytest.raises(HAMInputError, match=arg) as info:
        tiny_model(ids, **kwargs)
    assert isinstance(info.value, ValueError)
