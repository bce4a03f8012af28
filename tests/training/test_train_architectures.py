"""Each architecture trains with the same loop and curriculum, resumably; `ham train --architecture`."""
from __future__ import annotations

import json

import pytest
import torch

from ham_core.cli import main as ham
from ham_core.model.checkpoint import load_model
from ham_core.model.config import ARCHITECTURES
from ham_core.model.model import kv_peak_keys
from ham_core.model.routes import WINDOW_FRACTIONS, training_routes
from ham_core.training.curriculum import Curriculum
from ham_core.training.train import TrainSettings, train
from tests.conftest import tiny_config
from tests.training.test_train import _tiny_run_flags, repeated_batches

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_each_architecture_trains_and_resumes(tmp_path, architecture):
    cfg = tiny_config(vocab_size=64, architecture=architecture)
    # a short curriculum: copy phase to step 2 at most, 1 full step, then the mix ramped over 2
    settings = TrainSettings(steps=6, batch=4, length=24, lr=1e-2, warmup=2, save_every=3, eval_every=6,
                             copy_until=0.5, copy_max_steps=2, full_steps=1, mix_ramp=2, watch_every=2,
                             span_share=0.0)
    valid = repeated_batches(0)[:2]
    train(cfg, repeated_batches, tmp_path, settings, valid=valid, quiet=True, stop_at=3)
    last = train(cfg, repeated_batches, tmp_path, settings, valid=valid, quiet=True)
    log = [e for e in json.loads((tmp_path / "train_state.json").read_text())["log"] if "loss" in e]
    assert [e["step"] for e in log] == list(range(1, 7))
    assert log[-1]["loss"] < log[0]["loss"]
    assert ("valid_rnn" in last) == (architecture in ("ham", "window"))   # the hybrids' no-cache reading
    policies = {e["policy"] for e in log}
    expected = {"ham": {"full", "ham-tau", "random", "window", "sinks", "hola"}, "transformer": {"full"},
                "gdn": {"none"}, "window": {"full", "window"}}[architecture]
    assert policies <= expected, policies
    assert load_model(tmp_path).cfg.architecture == architecture


def test_window_training_draws_its_compared_fractions():
    gen = torch.Generator().manual_seed(0)
    surprise = torch.rand(1, 200, 2)
    seen = []
    for step in range(200):
        name, fraction, routes = training_routes(2, gen, 0.25, step, heads="max", architecture="window")
        assert name == "window"
        assert fraction == 1.0 or WINDOW_FRACTIONS[0] <= fraction <= WINDOW_FRACTIONS[1]
        peak = kv_peak_keys(routes[0](surprise, surprise)).item()
        assert peak == round(fraction * 200)
        seen.append(fraction)
    assert 0.1 < sum(f == 1.0 for f in seen) / len(seen) < 0.3          # the full-cache point is trained too
    assert min(seen) < 0.15 and max(f for f in seen if f < 1) > 0.45    # and the range, end to end


def test_the_curriculum_routes_by_architecture():
    s = TrainSettings(copy_until=0.0, full_steps=0, mix_ramp=0)
    for architecture, name in (("transformer", "full"), ("gdn", "none")):
        c = Curriculum(s, 2, 64, 0, heads="max", architecture=architecture)
        assert {c.routes(step)[0] for step in range(20)} == {name}
    window = Curriculum(s, 2, 64, 0, heads="max", architecture="window")
    assert {window.routes(step)[0] for step in range(20)} == {"window"}


def test_train_command_takes_an_architecture(tmp_path, tiny_model_dir, capsys):
    common, sizes = _tiny_run_flags(tmp_path, tiny_model_dir)
    flags = ["--steps", "2", "--batch", "2", "--length", "32", "--warmup", "1", "--eval-every", "2",
             "--valid-windows", "2", "--copy-until", "0", "--watch-every", "0"]
    run = tmp_path / "run"
    assert ham(["train", "--out", str(run), *common, *sizes, *flags, "--architecture", "window"]) == 0
    assert json.loads((run / "config.json").read_text())["architecture"] == "window"
    assert ham(["train", "--out", str(tmp_path / "bad"), *common, *sizes, *flags, "--architecture", "rnn"]) == 2
    assert "architecture must be one of" in capsys.readouterr().err


@pytest.mark.parametrize("architecture", ["transformer", "window"])
def test_train_recall_takes_an_architecture(tmp_path, architecture, capsys):
    assert ham(["train-recall", "--out", str(tmp_path), "--steps", "4", "--architecture", architecture]) == 0
    capsys.readouterr()
    model = load_model(tmp_path)
    assert model.cfg.architecture == architecture and model.cfg.d_model == 64      # the recall lab's size
