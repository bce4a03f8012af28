"""The curriculum that gets a model to read its cache: copy phase until the probe passes, full
cache, then the routing mix with a ramp; everything resumable and the same on every run."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from ham_core.model.checkpoint import load_model
from ham_core.model.health import attention_health, copy_probe, second_reading_loss
from ham_core.model.model import HAMModel
from ham_core.training.curriculum import COPY, FULL, MIX, Curriculum
from ham_core.training.train import TrainSettings, train
from tests.conftest import tiny_config


def prose(step: int, length: int = 32) -> torch.Tensor:
    """Stand-in prose: random ids, different per step."""
    g = torch.Generator().manual_seed(step)
    return torch.randint(3, 60, (4, length), generator=g)


def test_phases_follow_the_probe_then_the_step_counts():
    s = TrainSettings(copy_until=1.0, full_steps=5, mix_ramp=10, route_by="fraction")
    c = Curriculum(s, n_layers=2, vocab_size=64, seed=0, heads="min")
    assert c.phase(0) == COPY and c.phase(10 ** 6) == COPY     # until the probe passes, however long
    assert not c.passed(20, second_reading=3.0) and c.phase(20) == COPY
    assert c.passed(40, second_reading=0.8) and c.copy_passed_at == 40
    assert not c.passed(60, second_reading=0.1)                 # recorded once
    assert [c.phase(t) for t in (39, 40, 44, 45)] == [COPY, FULL, FULL, MIX]
    assert c.routes(42)[:2] == ("full", 1.0)
    # the ramp: at the start of the mix only f = 1 is drawn; after mix_ramp steps the full range
    assert {c.routes(45)[1]} == {1.0}
    fractions = [c.routes(t)[1] for t in range(55, 400)]
    assert min(fractions) == 0.0 and max(fractions) == 1.0 and len(set(fractions)) > 50
    assert min(c.routes(t)[1] for t in range(48, 50)) > 0.5    # still squeezed up mid-ramp


def test_the_copy_phase_gives_up_after_copy_max_steps():
    c = Curriculum(TrainSettings(copy_max_steps=30), 2, 64, 0, heads="min")
    assert not c.passed(20, second_reading=5.0) and c.passed(30, second_reading=5.0)


def test_no_copy_phase_when_copy_until_is_zero():
    c = Curriculum(TrainSettings(copy_until=0.0, full_steps=0, mix_ramp=0), 2, 64, 0, heads="min")
    assert c.phase(0) == MIX and c.routes(0)[0] in ("ham-tau", "random", "window", "sinks", "hola")


def test_threshold_rule_draws_one_threshold_for_every_layer():
    """The default rule routes HAM batches as the app reads a model: one threshold, all layers."""
    from ham_core.model.policies import TAU_OFF
    c = Curriculum(TrainSettings(copy_until=0.0, full_steps=0, mix_ramp=10, policy_share=0.0), 3, 64, 0, heads="min")
    assert {c.routes(0)[:2] for _ in range(3)} == {("ham-tau", 0.0)}      # ramp start: everything cached
    taus = [c.routes(t)[1] for t in range(10, 400)]
    assert 0.0 in taus and TAU_OFF in taus and len(set(taus)) > 50
    assert all(0.0 <= t <= 1.0 for t in taus if t != TAU_OFF)
    _, tau, routes = next(c.routes(t) for t in range(10, 400) if 0.2 < c.routes(t)[1] < 0.8)
    surprise = torch.rand(2, 16, 4) * 2           # [B, T, H]
    for route in routes:
        assert torch.equal(route(surprise, None), surprise.amin(-1) >= tau)
    with pytest.raises(Exception, match="route-by"):
        Curriculum(TrainSettings(route_by="quantile"), 2, 64, 0, heads="min")


def test_copy_batches_read_random_tokens_twice_and_are_the_same_every_run():
    c = Curriculum(TrainSettings(copy_rows=0.5, span_share=0.0), 2, 64, seed=3, heads="min")
    ids = c.batch(7, prose(7))
    assert ids.equal(c.batch(7, prose(7)))
    assert ids[:2, :16].equal(ids[:2, 16:])                     # two rows of a sequence read twice
    assert ids[2:].equal(prose(7)[2:])                          # the rest stays prose
    c.copy_passed_at = 0
    assert c.batch(7, prose(7)).equal(prose(7))                 # after the copy phase: prose only


def test_random_spans_repeat_within_a_window():
    c = Curriculum(TrainSettings(span_share=1.0, copy_until=0.0), 2, 64, seed=1, heads="min")
    ids, base = c.batch(2, prose(2, 64)), prose(2, 64)      # spans of 16: windows of 64 or more
    for row, orig in zip(ids, base):
        changed = (row != orig).nonzero().flatten().tolist()
        assert changed, "every window holds a span"
        first, last = changed[0], changed[-1]
        # a span of random tokens at `first`, read again so that it ends at `last`
        spans = [L for L in range(12, 17) if row[first:first + L].equal(row[last + 1 - L:last + 1])]
        assert spans and first + spans[-1] <= last + 1 - spans[-1]


def test_span_max_sets_the_longest_repeated_span():
    lengths = {}
    for span_max in (16, 64):
        c = Curriculum(TrainSettings(span_share=1.0, copy_until=0.0, span_max=span_max), 2, 64, seed=1, heads="min")
        base = prose(3, 512)
        ids = c.batch(3, base)
        lengths[span_max] = max(int((row != orig).nonzero().flatten().numel()) for row, orig in zip(ids, base))
    assert lengths[16] <= 2 * 16 < lengths[64]          # a span changes at most twice its length of tokens


def test_a_fresh_model_starts_with_open_attention_gates_and_keeps_its_floor(tmp_path):
    cfg = dataclasses.replace(tiny_config(vocab_size=64), attn_gate_floor=0.3)
    s = TrainSettings(steps=2, batch=4, length=32, lr=1e-2, warmup=1, save_every=2, eval_every=1000,
                      attn_gate_bias=2.0, watch_every=1)
    train(cfg, prose, tmp_path, s, quiet=True)
    model = load_model(tmp_path)
    assert model.cfg.attn_gate_floor == 0.3
    out = model(prose(0), tau=0.0)
    assert out.attn_gate.min() >= 0.3 and out.attn_gate.mean() > 0.6
    health = [e for e in json.loads((tmp_path / "train_state.json").read_text())["log"] if "health" in e]
    assert [e["step"] for e in health] == [0, 1] and len(health[0]["health"]["layers"]) == cfg.n_layers


def test_a_floor_asked_for_is_applied_to_a_trained_model_and_kept_on_resume(tmp_path):
    cfg = tiny_config(vocab_size=64)
    base = dict(batch=4, length=32, lr=1e-2, warmup=1, save_every=1, eval_every=1000, watch_every=0,
                copy_until=0.0, full_steps=0, mix_ramp=0)
    train(cfg, prose, tmp_path / "first", TrainSettings(steps=1, attn_gate_bias=-4.0, **base), quiet=True)
    assert load_model(tmp_path / "first").cfg.attn_gate_floor == 0.0
    floored = dataclasses.replace(cfg, attn_gate_floor=0.25)
    then = TrainSettings(steps=3, init_from=str(tmp_path / "first"), **base)
    train(floored, prose, tmp_path / "then", then, quiet=True, stop_at=1)
    train(cfg, prose, tmp_path / "then", then, quiet=True)            # resumed: the run's own floor
    model = load_model(tmp_path / "then")
    assert model.cfg.attn_gate_floor == 0.25
    assert model(prose(0), tau=0.0).attn_gate.min() >= 0.25


def test_an_interrupted_curriculum_run_resumes_exactly(tmp_path):
    """The copy phase ends by a measurement; a run stopped and resumed sees the same batches and
    phases as an unbroken one, so its weights match."""
    cfg = tiny_config(vocab_size=64)
    # the probe never passes at 0.001, so the copy phase ends at the first watch after 4 steps
    base = dict(batch=4, length=32, lr=1e-2, warmup=2, save_every=3, eval_every=1000, copy_until=0.001,
                copy_max_steps=4, full_steps=2, mix_ramp=2, watch_every=2, span_share=0.5)
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    train(cfg, prose, whole, TrainSettings(steps=9, **base), quiet=True)
    train(cfg, prose, broken, TrainSettings(steps=9, **base), quiet=True, stop_at=3)
    train(cfg, prose, broken, TrainSettings(steps=9, **base), quiet=True)
    state = json.loads((whole / "train_state.json").read_text())
    assert state["copy_passed_at"] == json.loads((broken / "train_state.json").read_text())["copy_passed_at"] == 4
    assert [e["phase"] for e in state["log"] if "loss" in e] == [COPY] * 4 + [FULL] * 2 + [MIX] * 3
    for (name, p), q in zip(load_model(whole).named_parameters(), load_model(broken).parameters()):
        torch.testing.assert_close(p, q, msg=name)


def test_health_figures_are_measured_not_guessed():
    torch.manual_seed(0)
    model = HAMModel(tiny_config(vocab_size=64)).eval()
    with torch.no_grad():                     # a temperature per head, so "the open head's" is one of them
        for block in model.blocks:
            block.ham.log_temperature.copy_(torch.linspace(1.0, 3.0, block.ham.log_temperature.numel()))
    probe = copy_probe(64, count=2, half=16)
    assert probe[:, :16].equal(probe[:, 16:])
    h = attention_health(model, prose(0), probe)
    assert h.copy_full == pytest.approx(second_reading_loss(model, probe, tau=0.0))
    assert len(h.layers) == model.cfg.n_layers
    out = model(prose(0), tau=0.0)
    for l, layer in enumerate(h.layers):
        assert 0 < layer.attn_gate <= layer.attn_gate_max < 1 and 0 < layer.top_read <= 1
        open_head = out.attn_gate[:, l].mean((0, 1)).argmax()
        assert layer.open_temperature == pytest.approx(model.blocks[l].ham.sharpness()[open_head].item())
    assert "copy 2nd reading" in h.line()
