"""One model family, four memories (config.ARCHITECTURES): HAM, a Transformer, GDN and a window hybrid.

Every architecture's three forms (chunked, recurrent, compact-cache decode) agree token by token;
each caches what it says (the Transformer every token, GDN none, the window the last W); a path
an architecture lacks has no parameters; the sizes' parameter counts stay within 5%; configs
saved before the field load as HAM.
"""
from __future__ import annotations

import json

import pytest
import torch

from ham_core.errors import HAMInputError
from ham_core.model.checkpoint import load_model, save_checkpoint
from ham_core.model.config import ARCHITECTURES, HAMConfig
from ham_core.model.model import HAMModel
from tests.conftest import tiny_config
from tests.model.test_decode import ATOL, RTOL, assert_forms_agree, decode_all, random_ids

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(vocab_size=4096, d_model=128, n_layers=2, n_heads=4, head_dim=32, mlp_hidden=352)   # the comparison runs


def model_of(architecture: str, seed: int = 0, **overrides) -> HAMModel:
    torch.manual_seed(seed)
    return HAMModel(tiny_config(architecture=architecture, **overrides)).eval()


def assert_reading_agrees(model, ids, **reading):
    """Chunked, recurrent and decode agree on logits, surprise, cache marks, final state and the
    decode cache's size, read the architecture's way (`reading`: window=W for a window model)."""
    with torch.no_grad():
        chunked = model(ids, **reading)
        recurrent = model(ids, mode="recurrent", **reading)
    mem, (logits, surprise, cached) = decode_all(model, ids, reading.get("tau", 0.0), **{
        k: v for k, v in reading.items() if k == "window"})
    for got_logits, got_surprise, got_cached in ((recurrent.logits, recurrent.surprise, recurrent.cached),
                                                 (logits, surprise, cached)):
        torch.testing.assert_close(got_logits, chunked.logits, atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(got_surprise, chunked.surprise, atol=ATOL, rtol=RTOL)
        assert torch.equal(got_cached, chunked.cached)
    for layer, state in zip(mem.layers, chunked.final_states):
        torch.testing.assert_close(layer.state, state, atol=ATOL, rtol=RTOL)
    assert mem.cache_sizes() == chunked.kv_peak[0].tolist()      # the decode cache is the peak the forward counts
    return chunked, mem


def test_ham_architecture_is_the_ham_layer():
    assert_forms_agree(model_of("ham"), random_ids(seed=1))


def test_transformer_caches_every_token_and_has_no_state():
    model = model_of("transformer")
    ids = random_ids(seed=1)
    out, mem = assert_reading_agrees(model, ids, tau=0.9)        # tau routes HAM only
    T = ids.shape[1]
    assert out.cached.all() and out.kv_peak[0].tolist() == [T, T] and float(out.kv_fraction) == 1.0
    assert out.state_bytes == 0 and all(layer.state.numel() == 0 for layer in mem.layers)
    torch.testing.assert_close(out.surprise, torch.ones_like(out.surprise))   # no RNN: no prediction
    assert torch.equal(out.rnn_gate, torch.zeros_like(out.rnn_gate))


def test_gdn_caches_nothing():
    model = model_of("gdn")
    out, mem = assert_reading_agrees(model, random_ids(seed=1), tau=0.0)      # even at tau 0
    assert not out.cached.any() and out.kv_bytes_peak.item() == 0 and mem.kv_bytes() == 0
    assert out.state_bytes > 0
    assert torch.equal(out.attn_gate, torch.zeros_like(out.attn_gate))
    with torch.no_grad():
        reads = model(random_ids(seed=1), attention="all")
    assert reads.attention[0].sum() == 0 and torch.equal(reads.sink, torch.ones_like(reads.sink))


@pytest.mark.parametrize("window", [0, 1, 5, 40])
def test_window_reads_its_last_w_tokens_in_every_form(window):
    model = model_of("window")
    ids = random_ids(seed=2)
    out, mem = assert_reading_agrees(model, ids, window=window)
    T = ids.shape[1]
    assert out.kv_peak[0].tolist() == [min(window, T)] * 2
    for layer in mem.layers:                          # the decode cache keeps the last W tokens
        assert layer.positions == list(range(max(0, T - window), T))


def test_window_model_without_a_window_reads_every_token():
    model = model_of("window")
    ids = random_ids(seed=3)
    with torch.no_grad():
        full, every = model(ids), model(ids, window=ids.shape[1])
    torch.testing.assert_close(full.logits, every.logits)
    assert full.kv_peak[0].tolist() == [ids.shape[1]] * 2


def test_a_window_changes_what_the_model_reads():
    model = model_of("window")
    ids = random_ids(seed=3)
    with torch.no_grad():
        assert not torch.allclose(model(ids, window=3).logits, model(ids).logits)


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_parameter_count_formula_and_missing_paths(architecture):
    for cfg in (tiny_config(architecture=architecture), tiny_config(architecture=architecture, score_gain=True),
                HAMConfig(architecture=architecture, **SMALL)):
        assert HAMModel(cfg).num_parameters() == cfg.parameter_count()
    names = {n.split(".", 3)[-1] for n, _ in model_of(architecture).named_parameters() if n.startswith("blocks.0.ham.")}
    rnn = {"decay_proj.weight", "beta_proj.weight", "A_log", "dt_bias", "rnn_norm.weight"}
    attention = {"log_temperature", "attn_norm.weight"}
    assert (rnn <= names) == (architecture != "transformer") and not (rnn & names) == (architecture == "transformer")
    assert (attention <= names) == (architecture != "gdn") and not (attention & names) == (architecture == "gdn")


def test_the_four_sizes_stay_within_five_percent():
    counts = {a: HAMConfig(architecture=a, **SMALL).parameter_count() for a in ARCHITECTURES}
    assert max(counts.values()) / min(counts.values()) < 1.05, counts
    shipped = {a: HAMConfig(architecture=a).parameter_count() for a in ARCHITECTURES}
    assert max(shipped.values()) / min(shipped.values()) < 1.05, shipped


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_checkpoint_round_trip(tmp_path, architecture):
    model = model_of(architecture)
    save_checkpoint(model, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["architecture"] == architecture
    again = load_model(tmp_path)
    ids = random_ids(seed=4)
    with torch.no_grad():
        torch.testing.assert_close(again(ids, window=4).logits, model(ids, window=4).logits)


def test_old_config_loads_as_ham(tmp_path):
    data = tiny_config().to_dict()
    del data["architecture"]
    assert HAMConfig.from_dict(data).architecture == "ham"


@pytest.mark.parametrize("bad", ["rnn", "", 3, None])
def test_unknown_architecture_is_a_clear_error(bad):
    with pytest.raises(HAMInputError, match="architecture must be one of"):
        tiny_config(architecture=bad)


@pytest.mark.parametrize("bad", [-1, 2.5, True, "4"])
def test_bad_window_is_a_clear_error(bad):
    from ham_core.model import decode

    model = model_of("window")
    with pytest.raises(HAMInputError, match="window"):
        model(random_ids(), window=bad)
    with pytest.raises(HAMInputError, match="window"):
        decode.start(model, window=bad)
