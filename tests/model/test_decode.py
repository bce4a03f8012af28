"""Compact-cache decoding equals the whole-text forms, token by token.

The three forms of docs/DESIGN.md section 2 (chunked, recurrent, compact-cache decode) must give the
same logits, surprise and routing; the decode cache must hold exactly the routed tokens' keys
and values; generation is seeded and greedy at temperature 0.
"""
from __future__ import annotations

import math

import pytest
import torch

from ham_core.model import decode, dispatch
from ham_core.errors import HAMInputError

pytestmark = pytest.mark.usefixtures("one_thread")

ATOL = RTOL = 1e-4
T = 21


def random_ids(T=T, seed=0, vocab=320):
    return torch.randint(0, vocab, (1, T), generator=torch.Generator().manual_seed(seed))


def middle_tau(model, ids) -> float:
    """Halfway between two neighbouring layer surprises near the middle: some tokens cached,
    and no surprise close enough to tau for float noise to flip a decision."""
    with torch.no_grad():
        e = model(ids, 0.0).layer_surprise.flatten().sort().values
    gaps = e[1:] - e[:-1]
    lo = len(e) // 4
    i = lo + int(gaps[lo:3 * len(e) // 4].argmax())
    assert gaps[i] > 1e-4
    return float((e[i] + e[i + 1]) / 2)


def decode_all(model, ids, tau, window=None):
    mem = decode.start(model, tau, window)
    steps = [decode.step(model, mem, int(t)) for t in ids[0]]
    return mem, (
        torch.stack([s.logits for s in steps])[None],                   # [1, T, V]
        torch.stack([s.surprise for s in steps], 1)[None],              # [1, L, T, H]
        torch.stack([s.cached for s in steps], 1)[None],                # [1, L, T]
    )


def assert_forms_agree(model, ids):
    """Chunked, recurrent and compact-cache decode give the same logits, surprise and cache at a
    threshold that caches some tokens, not all."""
    tau = middle_tau(model, ids)
    with torch.no_grad():
        chunked = model(ids, tau)
        recurrent = model(ids, tau, mode="recurrent")
    _, (logits, surprise, cached) = decode_all(model, ids, tau)
    assert 0 < chunked.cached.float().mean() < 1
    for got_logits, got_surprise, got_cached in ((recurrent.logits, recurrent.surprise, recurrent.cached),
                                                 (logits, surprise, cached)):
        torch.testing.assert_close(got_logits, chunked.logits, atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(got_surprise, chunked.surprise, atol=ATOL, rtol=RTOL)
        assert torch.equal(got_cached, chunked.cached)

@pytest.mark.parametrize("which", ["zero", "middle", "above-two", "per-layer"])
def test_three_forms_agree_token_by_token(tiny_model, which):
    ids = random_ids(seed=1)
    tau = {
        "zero": 0.0,
        "middle": middle_tau(tiny_model, ids),
        "above-two": 2.5,
        "per-layer": [middle_tau(tiny_model, ids), 0.0],
    }[which]
    with torch.no_grad():
        chunked = tiny_model(ids, tau)
        recurrent = tiny_model(ids, tau, mode="recurrent")
    mem, (logits, surprise, cached) = decode_all(tiny_model, ids, tau)
    for other in (recurrent, None):
        got_logits = other.logits if other else logits
        got_surprise = other.surprise if other else surprise
        got_cached = other.cached if other else cached
        torch.testing.assert_close(got_logits, chunked.logits, atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(got_surprise, chunked.surprise, atol=ATOL, rtol=RTOL)
        assert torch.equal(got_cached, chunked.cached)
    # the decode memory ends where the whole-text forward ends
    for layer, state in zip(mem.layers, chunked.final_states):
        torch.testing.assert_close(layer.state, state, atol=ATOL, rtol=RTOL)
    if which == "zero":
        assert cached.all() and mem.cache_sizes() == [T, T]
    if which == "above-two":
        assert not cached.any() and mem.cache_sizes() == [0, 0] and mem.kv_bytes() == 0
    if which == "middle":
        assert 0 < cached.float().mean() < 1


def test_compact_cache_holds_exactly_the_routed_tokens(tiny_model, monkeypatch):
    ids = random_ids(seed=2)
    tau = middle_tau(tiny_model, ids)
    seen = []   # the k, v each layer's attention got in the whole-text forward
    inner = dispatch.attention

    def spy(q, k, v, visible, temperature, return_weights=False):
        seen.append((k, v))
        return inner(q, k, v, visible, temperature, return_weights)

    monkeypatch.setattr(dispatch, "attention", spy)
    with torch.no_grad():
        out = tiny_model(ids, tau)
    monkeypatch.setattr(dispatch, "attention", inner)
    mem, _ = decode_all(tiny_model, ids, tau)
    H, D = tiny_model.cfg.n_heads, tiny_model.cfg.head_dim
    for l, (layer, (k, v)) in enumerate(zip(mem.layers, seen)):
        routed = out.cached[0, l].nonzero().flatten().tolist()
        assert layer.positions == routed
        assert layer.keys.shape == layer.values.shape == (len(routed), H, D)
        torch.testing.assert_close(layer.keys, k[0, routed], atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(layer.values, v[0, routed], atol=ATOL, rtol=RTOL)
    assert mem.cache_sizes() == out.kv_peak[0].tolist()
    assert mem.kv_bytes() == int(out.kv_bytes_peak[0])
    assert mem.position == T


def test_streaming_in_pieces_equals_one_pass(tiny_model):
    """decode carries everything in `mem`: stopping and resuming changes nothing."""
    ids = random_ids(seed=3)
    mem_a, (logits_a, _, _) = decode_all(tiny_model, ids, 0.9)
    mem_b = decode.start(tiny_model, 0.9)
    first = [decode.step(tiny_model, mem_b, int(t)) for t in ids[0, :8]]
    rest = [decode.step(tiny_model, mem_b, int(t)) for t in ids[0, 8:]]
    logits_b = torch.stack([s.logits for s in first + rest])
    torch.testing.assert_close(logits_b, logits_a[0])
    assert mem_b.cache_sizes() == mem_a.cache_sizes()


def test_generate_is_greedy_at_temperature_zero(tiny_model):
    prompt = random_ids(T=6, seed=4)[0].tolist()
    tokens = [g.token for g in decode.generate(tiny_model, prompt, max_new_tokens=8, tau=0.9, temperature=0.0)]
    assert len(tokens) == 8
    with torch.no_grad():
        logits = tiny_model(torch.tensor([prompt + tokens]), 0.9).logits[0]
    for i, token in enumerate(tokens):
        assert token == int(logits[len(prompt) - 1 + i].argmax())
    again = [g.token for g in decode.generate(tiny_model, prompt, max_new_tokens=8, tau=0.9, seed=123)]
    assert again == tokens                  # the seed does not matter when greedy


def test_generate_is_deterministic_for_a_seed(tiny_model):
    prompt = random_ids(T=5, seed=5)[0].tolist()

    def sample(seed):
        return [g.token for g in decode.generate(
            tiny_model, prompt, max_new_tokens=12, tau=0.5, temperature=1.0, seed=seed)]

    first = sample(7)
    assert first == sample(7)
    assert first != sample(8)               # 12 draws from ~320 near-uniform tokens
    assert all(0 <= t < tiny_model.cfg.vocab_size for t in first)


def test_generate_reports_cache_sizes_that_include_the_new_token(tiny_model):
    prompt = random_ids(T=4, seed=6)[0].tolist()
    out = list(decode.generate(tiny_model, prompt, max_new_tokens=5, tau=0.0))
    assert [g.cache_sizes for g in out] == [[len(prompt) + i + 1] * 2 for i in range(5)]
    assert list(decode.generate(tiny_model, prompt, max_new_tokens=5, tau=3.0))[-1].cache_sizes == [0, 0]
    assert list(decode.generate(tiny_model, prompt, max_new_tokens=0)) == []


def test_step_result_shapes(tiny_model):
    cfg = tiny_model.cfg
    mem = decode.start(tiny_model, [0.0, 3.0])
    res = decode.step(tiny_model, mem, 5)
    assert res.logits.shape == (cfg.vocab_size,)
    assert res.surprise.shape == (cfg.n_layers, cfg.n_heads)
    assert res.cached.tolist() == [True, False]
    torch.testing.assert_close(res.surprise, torch.ones(cfg.n_layers, cfg.n_heads))   # empty state


@pytest.mark.parametrize(
    "call,arg",
    [
        (lambda m: decode.start(m, -1.0), "tau"),
        (lambda m: decode.start(m, float("nan")), "tau"),
        (lambda m: decode.start(m, [0.5]), "tau"),
        (lambda m: decode.step(m, decode.start(m), 320), "token"),
        (lambda m: decode.step(m, decode.start(m), -1), "token"),
        (lambda m: list(decode.generate(m, [], 3)), "prompt"),
        (lambda m: list(decode.generate(m, [1, 2], 3, temperature=-1.0)), "temperature"),
        (lambda m: list(decode.generate(m, [1, 2], 3, temperature=math.nan)), "temperature"),
        (lambda m: list(decode.generate(m, [1, 2], -1)), "max_new_tokens"),
        (lambda m: list(decode.generate(m, [1, 400], 3)), "token"),
    ],
    ids=["tau-negative", "tau-nan", "tau-count", "token-too-big", "token-negative", "empty-prompt",
         "temperature-negative", "temperature-nan", "max-new-negative", "prompt-out-of-range"],
)
def test_bad_input(tiny_model, call, arg):
    with pytest.raises(HAMInputError, match=arg):
        call(tiny_model)


def test_three_forms_agree_with_an_attention_gate_floor():
    """A floor on g^A changes step 7 in every form alike (the decode path calls the same gates)."""
    from ham_core.model.model import HAMModel
    from tests.conftest import tiny_config

    torch.manual_seed(3)
    model = HAMModel(tiny_config(attn_gate_floor=0.4)).eval()
    ids = random_ids(seed=2)
    tau = middle_tau(model, ids)
    with torch.no_grad():
        chunked = model(ids, tau)
        recurrent = model(ids, tau, mode="recurrent")
    _, (logits, surprise, cached) = decode_all(model, ids, tau)
    assert chunked.attn_gate.min() >= 0.4
    for got in (recurrent.logits, logits):
        torch.testing.assert_close(got, chunked.logits, atol=ATOL, rtol=RTOL)
    assert torch.equal(cached, chunked.cached)
    plain = HAMModel(tiny_config())
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert not torch.allclose(plain(ids, tau).logits, chunked.logits)   # the floor does act
