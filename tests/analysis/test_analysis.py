"""The analysis engine: per-token traces, attention reads, totals, limits (ham_core.analysis)."""
from __future__ import annotations

import math

import pytest
import torch

from tests.conftest import SAMPLE_TEXT, tiny_config
from ham_core.analysis.analysis import analyze, layer_taus
from ham_core.model.checkpoint import load_bundle
from ham_core.model.layer import layer_surprise, threshold_route
from ham_core.errors import HAMInputError
from ham_core.model.model import HAMModel, next_token_nll
from ham_core.model.policies import run_policy

JSON_KEYS = {"model", "device", "n_tokens", "truncated", "tau", "surprise_scale", "head_rule", "policy", "loss", "perplexity", "kv_fraction",
             "kv_bytes_peak", "kv_bytes_full", "tokens"}
TOKEN_KEYS = {"text", "start", "end", "lm_surprisal", "surprise", "cached"}


pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


@pytest.fixture(scope="module")
def bundle(tiny_model_dir):
    return load_bundle(tiny_model_dir)


def test_per_token_fields(bundle):
    model, tok = bundle
    a = analyze(model, tok, SAMPLE_TEXT, 0.9)
    T, L, H = a.n_tokens, model.cfg.n_layers, model.cfg.n_heads
    assert "".join(t.text for t in a.tokens) == SAMPLE_TEXT
    assert all(SAMPLE_TEXT[t.start:t.end] == t.text for t in a.tokens)
    assert a.lm_surprisal[0] is None and all(x > 0 for x in a.lm_surprisal[1:])
    assert a.surprise_heads.shape == (L, T, H) and a.surprise.shape == (L, T) and a.cached.shape == (L, T)
    assert torch.equal(a.surprise, layer_surprise(a.surprise_heads, a.head_rule))
    assert torch.equal(a.cached, a.surprise >= 0.9)                   # HAM routing, per layer
    assert a.device == "CPU" and not a.truncated and a.notice == ""
    assert a.state_bytes == L * H * model.cfg.head_dim ** 2 * 4


def test_totals_match_the_model(bundle):
    model, tok = bundle
    a = analyze(model, tok, SAMPLE_TEXT, 0.8, layer_tau={1: 1.1})
    ids = torch.tensor([tok.encode(SAMPLE_TEXT)])
    with torch.no_grad():
        out = model(ids, [0.8, 1.1])
        nll = next_token_nll(out.logits, ids)[0]
    assert a.tau == [0.8, 1.1]
    assert a.loss == pytest.approx(float(nll.mean()), rel=1e-6)
    assert a.perplexity == pytest.approx(math.exp(a.loss))
    assert a.lm_surprisal[1:] == pytest.approx(nll.tolist(), abs=1e-5)
    assert a.kv_fraction == pytest.approx(float(out.kv_fraction[0]))
    assert (a.kv_bytes_peak, a.kv_bytes_full) == (int(out.kv_bytes_peak[0]), out.kv_bytes_full)
    assert a.kv_peak == out.kv_peak[0].tolist()


@pytest.mark.parametrize("policy", ["ham", "window", "sinks", "random", "hola", "full", "none"])
def test_reads_point_at_cached_earlier_tokens(bundle, policy):
    model, tok = bundle
    a = analyze(model, tok, SAMPLE_TEXT, 0.85, policy=policy)
    ids = torch.tensor([tok.encode(SAMPLE_TEXT)])
    out = run_policy(model, ids, 0.85, policy, attention="all")   # run_policy is no_grad
    for layer in range(model.cfg.n_layers):
        visible = out.visible[layer][0]
        for query in (0, 7, 60, a.n_tokens - 1):
            r = a.reads(query, layer)
            row = visible if visible.dim() == 1 else visible[query]
            assert all(k <= query and row[k] for k in r.keys)         # cached, not in the future
            assert r.keys == row[: query + 1].nonzero().flatten().tolist()
            torch.testing.assert_close(r.weights.sum(-1) + r.sink, torch.ones(model.cfg.n_heads))
            expected = out.attention[layer][0, :, query, r.keys]    # what the model itself computed
            torch.testing.assert_close(r.weights, expected, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(r.sink, out.sink[0, layer, :, query], atol=1e-5, rtol=1e-4)
            assert r.mean_sink == pytest.approx(float(r.sink.mean()))
            assert r.mean.sum() + r.mean_sink == pytest.approx(1.0, abs=1e-5)


def test_reads_with_empty_cache_go_to_the_sink(bundle):
    model, tok = bundle
    r = analyze(model, tok, SAMPLE_TEXT, 2.5).reads(30, 0)
    assert r.keys == [] and r.top() == []
    assert torch.equal(r.sink, torch.ones(model.cfg.n_heads))


def test_top_reads_and_query(bundle):
    model, tok = bundle
    a = analyze(model, tok, SAMPLE_TEXT, 0.0, query=40)
    assert [r.layer for r in a.query_reads] == list(range(model.cfg.n_layers))
    top = a.query_reads[0].top(3)
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1]
    assert a.query_reads[0].top(1, head=1)[0][0] in a.query_reads[0].keys
    for bad in (-1, a.n_tokens, 2.5):
        with pytest.raises(HAMInputError):
            a.reads(bad, 0)
    with pytest.raises(HAMInputError):
        a.reads(0, model.cfg.n_layers)


def test_same_input_same_numbers(bundle):
    model, tok = bundle
    for policy in ("ham", "random", "hola"):
        a = analyze(model, tok, SAMPLE_TEXT, 0.9, policy=policy)
        b = analyze(model, tok, SAMPLE_TEXT, 0.9, policy=policy)
        assert a.to_dict() == b.to_dict()
        assert torch.equal(a.surprise_heads, b.surprise_heads)
        assert torch.equal(a.reads(50, 1).weights, b.reads(50, 1).weights)


def test_to_dict_has_exactly_the_cli_keys(bundle):
    model, tok = bundle
    d = analyze(model, tok, SAMPLE_TEXT, 0.5, model_name="tiny").to_dict()
    assert set(d) == JSON_KEYS
    assert d["model"] == "tiny" and d["n_tokens"] == len(d["tokens"]) and d["tau"] == [0.5, 0.5]
    assert all(set(t) == TOKEN_KEYS for t in d["tokens"])
    assert d["tokens"][0]["lm_surprisal"] is None
    assert len(d["tokens"][3]["surprise"]) == len(d["tokens"][3]["cached"]) == 2


def test_long_text_is_truncated_with_a_notice(bundle):
    _, tok = bundle
    torch.manual_seed(0)
    small = HAMModel(tiny_config(vocab_size=tok.vocab_size, max_tokens=32)).eval()
    a = analyze(small, tok, SAMPLE_TEXT * 3, 0.5)
    assert a.truncated and a.n_tokens == 32 and a.n_tokens_total > 32
    assert "only the first 32" in a.notice
    assert a.tokens[-1].end < len(SAMPLE_TEXT)


@pytest.mark.parametrize("text", ["", "   ", "\n\t \n"])
def test_empty_text_is_a_friendly_error(bundle, text):
    model, tok = bundle
    with pytest.raises(HAMInputError, match="empty"):
        analyze(model, tok, text, 0.5)


def test_one_token_text(bundle):
    model, tok = bundle
    a = analyze(model, tok, "a", 0.5)
    assert a.n_tokens == 1 and a.loss is None and a.perplexity is None
    assert a.to_dict()["tokens"][0]["lm_surprisal"] is None


def test_bad_thresholds_and_policy(bundle):
    model, tok = bundle
    for kwargs in (dict(tau=-0.1), dict(tau=float("nan")), dict(tau=float("inf")), dict(tau="x"),
                   dict(tau=[0.5]), dict(layer_tau={5: 0.5}), dict(layer_tau={0: -1}), dict(policy="nope")):
        with pytest.raises(HAMInputError):
            analyze(model, tok, SAMPLE_TEXT, **{"tau": 0.5, **kwargs})
    assert layer_taus(3, 0.5, {2: 0.9}) == [0.5, 0.5, 0.9]
    assert layer_taus(2, [0.1, 0.2]) == [0.1, 0.2]


def test_concurrent_analyses_on_one_model_match_single_thread(bundle):
    """Two texts read at once by two threads on one model, 50 times: every result is exactly
    the single-thread one (nothing of a forward is kept on the shared model)."""
    import threading

    model, tok = bundle
    texts = (SAMPLE_TEXT, "Ada met Bob. Bob met Ada again, twice.")     # different lengths

    def numbers(text):
        a = analyze(model, tok, text, 0.6)
        reads = [a.reads(q, l) for l in range(model.cfg.n_layers) for q in (0, a.n_tokens // 2, a.n_tokens - 1)]
        return a.surprise_heads, a.cached, a.lm_surprisal, [(r.keys, r.weights, r.sink) for r in reads], a.steps

    expected = [numbers(t) for t in texts]
    failures = []

    def worker(i):
        for _ in range(50):
            try:
                got = numbers(texts[i])
            except Exception as exc:   # noqa: BLE001 - a crash in a thread is a failure to report
                failures.append(repr(exc))
                continue
            want = expected[i]
            same = (torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]) and got[2] == want[2]
                    and all(gk == wk and torch.equal(gw, ww) and torch.equal(gs, ws)
                            for (gk, gw, gs), (wk, ww, ws) in zip(got[3], want[3]))
                    and all(torch.equal(getattr(got[4], f), getattr(want[4], f))
                            for f in ("k_norm", "v_norm", "alpha", "beta")))
            if not same:
                failures.append(f"text {i} differs")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.modules())


def test_step_values_are_the_layers_own(bundle):
    model, tok = bundle
    a = analyze(model, tok, SAMPLE_TEXT, 0.5)
    ids = torch.tensor([tok.encode(SAMPLE_TEXT)])
    with torch.no_grad():
        out = model(ids, 0.5, projections=True)
    L, T, H = model.cfg.n_layers, a.n_tokens, model.cfg.n_heads
    for name in ("k_norm", "v_norm", "alpha", "beta", "gate_rnn", "gate_attn"):
        assert getattr(a.steps, name).shape == (L, T, H)
    torch.testing.assert_close(a.steps.k_norm, torch.ones(L, T, H))      # q, k are unit vectors
    for l, p in enumerate(out.projections):
        torch.testing.assert_close(a.steps.alpha[l], p.g[0].exp())
        torch.testing.assert_close(a.steps.beta[l], p.beta[0])
        torch.testing.assert_close(a.steps.v_norm[l], p.v[0].norm(dim=-1))
    # Step 7's gates are the layer's own: recompute them from the block's normalised input.
    x = model.embed(ids)
    with torch.no_grad():
        for l, block in enumerate(model.blocks):
            gate_rnn, gate_attn = block.ham.mix_gates(block.ham_norm(x))
            torch.testing.assert_close(a.steps.gate_rnn[l], gate_rnn[0])
            torch.testing.assert_close(a.steps.gate_attn[l], gate_attn[0])
            x = block(x, threshold_route(torch.tensor([0.5]), model.cfg.head_rule), "chunked", False)[0]
    assert (0 < a.steps.alpha).all() and (a.steps.alpha < 1).all()


def test_non_finite_numbers_are_an_error_not_a_view(bundle):
    """A model built in memory is not checked like a file: if its forward gives NaN or infinity,
    analyze says so instead of returning numbers no view can draw."""
    model, tok = bundle
    torch.manual_seed(0)
    broken = HAMModel(model.cfg).eval()
    broken.load_state_dict(model.state_dict())
    with torch.no_grad():
        broken.blocks[0].ham.out_proj.weight[0, 0] = float("inf")
    with pytest.raises(HAMInputError, match="not finite"):
        analyze(broken, tok, SAMPLE_TEXT, 0.5)
