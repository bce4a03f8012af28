"""The attention's per-channel query gain (HOLA's q/k gain, folded into the query).

With a gain, step 6 scores c_h (gain_h * q_t) . k_s; the RNN still reads with q, and the cache
still holds the RNN's own keys. Every form applies it alike, the analysis reads what the
forward read, a gain of 1 changes nothing, and training can add one to a trained model.
"""
from __future__ import annotations

import json

import pytest
import torch

from ham_core.analysis.analysis import analyze
from ham_core.model.checkpoint import load_bundle, load_model, save_checkpoint
from ham_core.model.config import HAMConfig
from ham_core.model.model import HAMModel
from ham_core.training.train import TrainSettings, _param_groups, add_score_gain, train
from tests.conftest import SAMPLE_TEXT, tiny_config
from tests.model.test_decode import assert_forms_agree, random_ids
from tests.training.test_train import PLAIN, repeated_batches

pytestmark = pytest.mark.usefixtures("one_thread")


def gained_copy(model: HAMModel, seed: int = 0) -> HAMModel:
    """`model` with a random (far from 1) query gain in every head."""
    other = HAMModel(tiny_config(score_gain=True)).eval()
    state = dict(model.state_dict())
    gen = torch.Generator().manual_seed(seed)
    H, D = model.cfg.n_heads, model.cfg.head_dim
    for l in range(model.cfg.n_layers):
        state[f"blocks.{l}.ham.log_score_gain"] = 1.5 * torch.randn(H, D, generator=gen)
    other.load_state_dict(state)
    return other


def test_a_gain_of_one_changes_nothing(tiny_model):
    ids = random_ids(seed=3)
    gained = HAMModel(tiny_config(score_gain=True)).eval()
    gained.load_state_dict({**tiny_model.state_dict(),
                            **{f"blocks.{l}.ham.log_score_gain": torch.zeros(2, 16) for l in range(2)}})
    with torch.no_grad():
        torch.testing.assert_close(gained(ids, 0.3).logits, tiny_model(ids, 0.3).logits)


def test_the_gain_changes_the_reads_not_the_rnn(tiny_model):
    ids = random_ids(seed=3)
    gained = gained_copy(tiny_model)
    with torch.no_grad():
        plain, out = tiny_model(ids, 0.0, attention="all"), gained(ids, 0.0, attention="all")
    torch.testing.assert_close(out.surprise[:, 0], plain.surprise[:, 0])     # the first layer's RNN is untouched
    assert not torch.allclose(out.attention[0], plain.attention[0], atol=1e-3)


def test_three_forms_agree_with_a_gain(tiny_model):
    model = gained_copy(tiny_model, seed=1)
    ids = random_ids(seed=2)
    assert_forms_agree(model, ids)


def test_analysis_reads_are_the_forward_weights_with_a_gain(tiny_model_dir):
    model, tokenizer = load_bundle(tiny_model_dir)
    model = gained_copy(model, seed=2)
    result = analyze(model, tokenizer, SAMPLE_TEXT, 0.0)
    ids = torch.tensor([[t.id for t in result.tokens]])
    with torch.no_grad():
        weights = model(ids, 0.0, attention="all").attention            # per layer [1, H, T, T]
    query = len(result.tokens) - 1
    for layer in range(model.cfg.n_layers):
        reads = result.reads(query, layer)
        torch.testing.assert_close(reads.weights, weights[layer][0, :, query, reads.keys], atol=1e-5, rtol=1e-4)


def test_config_and_checkpoint_keep_the_gain(tmp_path, tiny_model):
    model = gained_copy(tiny_model, seed=3)
    assert model.cfg.parameter_count() == model.num_parameters() == tiny_model.num_parameters() + 2 * 2 * 16
    save_checkpoint(model, tmp_path)
    again = load_model(tmp_path)
    assert again.cfg.score_gain
    torch.testing.assert_close(again.blocks[1].ham.log_score_gain, model.blocks[1].ham.log_score_gain)
    old = json.loads((tmp_path / "config.json").read_text())
    del old["score_gain"]                                                    # configs written before the gain
    assert HAMConfig.from_dict(old).score_gain is False
    with pytest.raises(Exception, match="score_gain must be true or false"):
        HAMConfig.from_dict({**old, "score_gain": 1})


def test_add_score_gain_keeps_the_function(tiny_model):
    ids = random_ids(seed=6)
    model = HAMModel(tiny_config()).eval()
    model.load_state_dict(tiny_model.state_dict())
    add_score_gain(model)
    assert model.cfg.score_gain and all(b.ham.log_score_gain is not None for b in model.blocks)
    with torch.no_grad():
        torch.testing.assert_close(model(ids, 0.4).logits, tiny_model(ids, 0.4).logits)


def test_training_adds_the_gain_and_learns_the_score_faster(tmp_path):
    cfg = tiny_config(vocab_size=64)
    base = dict(steps=4, batch=4, length=24, lr=1e-2, warmup=2, save_every=4, eval_every=1000, **PLAIN)
    train(cfg, repeated_batches, tmp_path / "a", TrainSettings(**base), quiet=True)
    assert not load_model(tmp_path / "a").cfg.score_gain
    settings = TrainSettings(**{**base, "init_from": str(tmp_path / "a"), "score_gain": True, "score_lr_scale": 5.0})
    train(cfg, repeated_batches, tmp_path / "b", settings, quiet=True)
    model = load_model(tmp_path / "b")
    assert model.cfg.score_gain
    assert any(b.ham.log_score_gain.abs().max() > 0 for b in model.blocks)   # it learned
    groups = {g["lr_scale"]: g for g in _param_groups(model, settings)}
    score = {id(p) for p in groups[5.0]["params"]}
    assert score == {id(p) for b in model.blocks for p in (b.ham.log_temperature, b.ham.log_score_gain)}
    # a fresh model takes the setting too
    train(cfg, repeated_batches, tmp_path / "c", TrainSettings(**{**base, "score_gain": True}), quiet=True)
    assert load_model(tmp_path / "c").cfg.score_gain
