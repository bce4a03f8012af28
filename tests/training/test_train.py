"""Training: the loss falls, a resumed run continues where it stopped, DDP runs on 2 CPU processes."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ham_core.model.checkpoint import load_model
from ham_core.model.loss import lm_loss
from ham_core.model.routes import policy_route, quantile_route, training_routes
from ham_core.cli import main as ham
from ham_core.training.train import TrainSettings, lr_at, read_settings, train
from tests.conftest import SAMPLE_TEXT, tiny_config

ROOT = Path(__file__).resolve().parents[2]


# The loop's mechanics without the curriculum (its own tests are in test_curriculum.py).
PLAIN = dict(copy_until=0.0, full_steps=0, mix_ramp=0, span_share=0.0, watch_every=0)


def repeated_batches(step: int) -> torch.Tensor:
    """The same short pattern every step: a model that learns anything lowers its loss."""
    pattern = torch.arange(24) % 7 + 3
    return pattern.repeat(4, 1)


def test_loss_falls_and_resume_continues(tmp_path):
    cfg = tiny_config(vocab_size=64)
    settings = TrainSettings(steps=12, batch=4, length=24, lr=1e-2, warmup=2, save_every=4, eval_every=1000, **PLAIN)
    first = train(cfg, repeated_batches, tmp_path, settings, quiet=True)
    log = json.loads((tmp_path / "train_state.json").read_text())["log"]
    assert first["step"] == 12
    assert log[-1]["loss"] < log[0]["loss"] - 0.5

    # Resume for 4 more steps: starts at step 12 with the saved optimizer state.
    more = TrainSettings(**{**settings.__dict__, "steps": 16})
    last = train(cfg, repeated_batches, tmp_path, more, quiet=True)
    log = json.loads((tmp_path / "train_state.json").read_text())["log"]
    assert [e["step"] for e in log] == list(range(1, 17))
    assert last["tokens"] == 16 * 4 * 24
    # every checkpoint carries the running surprise scales, one per layer
    scales = json.loads((tmp_path / "config.json").read_text())["surprise_scale"]
    assert len(scales) == cfg.n_layers and all(s > 0 for s in scales)


def test_interrupted_run_resumes_from_checkpoint(tmp_path):
    """Stopping after a checkpoint and resuming gives the same weights as an unbroken run."""
    cfg = tiny_config(vocab_size=64)
    base = dict(batch=4, length=24, lr=1e-2, warmup=2, save_every=4, eval_every=1000, **PLAIN)
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    train(cfg, repeated_batches, whole, TrainSettings(steps=8, **base), quiet=True)
    train(cfg, repeated_batches, broken, TrainSettings(steps=8, **base), quiet=True, stop_at=4)
    assert json.loads((broken / "train_state.json").read_text())["step"] == 4
    train(cfg, repeated_batches, broken, TrainSettings(steps=8, **base), quiet=True)
    a, b = load_model(whole), load_model(broken)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, msg=name)


def test_lr_schedule_warms_up_then_decays():
    s = TrainSettings(steps=100, warmup=10, lr=1.0, min_lr_ratio=0.1)
    assert lr_at(0, s) == pytest.approx(0.1)
    assert lr_at(9, s) == pytest.approx(1.0)
    assert lr_at(99, s) == pytest.approx(0.1, abs=1e-3)
    assert all(lr_at(i, s) >= lr_at(i + 1, s) for i in range(10, 99))


def test_quantile_route_caches_the_target_fraction():
    surprise = torch.rand(2, 100, 3)
    for fraction in (0.0, 0.1, 0.5, 1.0):
        mask = quantile_route(fraction, "min")(surprise, surprise)
        assert abs(mask.float().mean().item() - fraction) <= 0.02


def test_training_policies_keep_the_drawn_fraction_of_memory():
    from ham_core.model.model import kv_peak_keys

    B, T, W = 2, 50, 12
    surprise, residual = torch.rand(B, T, 3), torch.rand(B, T, 3)
    for name in ("random", "window", "sinks", "hola"):
        mask = policy_route(name, W / T, seed=1, layer=0, heads="max")(surprise, residual)
        assert kv_peak_keys(mask).tolist() == [W, W], name
    gen = torch.Generator().manual_seed(0)
    names = {training_routes(2, gen, 0.5, 0, heads="max")[0] for _ in range(60)}
    assert names == {"ham", "random", "window", "sinks", "hola"}


def test_lm_loss_mask_counts_only_marked_targets():
    logits = torch.zeros(1, 4, 10)
    logits[0, 0, 5] = 10.0      # predicts token 1 (=5) well, the others not at all
    ids = torch.tensor([[0, 5, 3, 3]])
    mask = torch.tensor([[0, 1, 0, 0]])
    assert lm_loss(logits, ids, mask).item() < 0.01
    assert lm_loss(logits, ids).item() > 1.0


def test_ddp_two_cpu_processes(tmp_path, tiny_model_dir):
    """`torchrun --nproc_per_node=2 -m ham_core train` on a folder of .txt files, gloo backend."""
    texts = tmp_path / "texts"
    texts.mkdir()
    for i in range(6):
        (texts / f"doc{i}.txt").write_text(SAMPLE_TEXT * 3)
    out = tmp_path / "run"
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    cmd = [
        torchrun, "--standalone", "--nproc_per_node=2", "-m", "ham_core", "train",
        "--from-dir", str(texts), "--tokenizer", str(tiny_model_dir / "tokenizer.json"),
        "--out", str(out), "--steps", "3", "--batch", "2", "--length", "32",
        "--d-model", "32", "--layers", "2", "--heads", "2", "--head-dim", "16", "--mlp-hidden", "64",
        "--warmup", "1", "--eval-every", "3", "--valid-windows", "2", "--threads", "1",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    log = json.loads((out / "train_state.json").read_text())["log"]
    assert log[-1]["step"] == 3
    assert log[-1]["tokens"] == 3 * 2 * 2 * 32          # both processes' windows count
    load_model(out)                                      # a loadable checkpoint


def test_repeats_copy_a_span_forward_deterministically():
    from ham_core.data.windows import with_repeats

    base = lambda step: torch.arange(200).repeat(6, 1)          # noqa: E731 - every token distinct
    draw = with_repeats(base, share=1.0, seed=3, min_span=8, max_span=32)
    ids = draw(5)
    torch.testing.assert_close(ids, draw(5))                    # same step, same batch (resume)
    for row in ids:
        moved = (row != torch.arange(200)).nonzero().flatten()
        assert 8 <= len(moved) <= 32                            # one contiguous span was overwritten
        assert moved.max() - moved.min() + 1 == len(moved)
        src = row[moved[0]].item()                              # ...by an earlier stretch, in order
        assert src < moved[0] and row[moved].tolist() == list(range(src, src + len(moved)))
    assert with_repeats(base, share=0.0)(5).equal(base(5))


def test_init_from_starts_a_new_phase_from_trained_weights(tmp_path):
    cfg = tiny_config(vocab_size=64)
    first = TrainSettings(steps=4, batch=4, length=24, lr=1e-2, warmup=2, save_every=4, eval_every=1000, **PLAIN)
    train(cfg, repeated_batches, tmp_path / "a", first, quiet=True)
    second = TrainSettings(**{**first.__dict__, "init_from": str(tmp_path / "a")})
    last = train(cfg, repeated_batches, tmp_path / "b", second, quiet=True, stop_at=1)
    assert last["step"] == 1 and last["tokens"] == 5 * 4 * 24  # counts the tokens seen before
    start = load_model(tmp_path / "a")
    moved = load_model(tmp_path / "b")
    assert any(not torch.equal(p, q) for p, q in zip(start.parameters(), moved.parameters()))


OLD_STATE_SETTINGS = {   # train_state.json's "settings" as runs before typed settings wrote them
    "steps": 6, "batch": 2, "length": 32, "lr": 0.01, "min_lr_ratio": 0.1, "warmup": 1, "weight_decay": 0.1,
    "clip": 1.0, "policy_share": 0.25, "eval_every": 3, "save_every": 2, "seed": 0,
    "extra": {"init_from": None, "repeat_share": 0.5, "task": {"n_pairs": 4}},
}


def test_old_train_state_maps_extra_onto_fields():
    s = TrainSettings.from_dict(OLD_STATE_SETTINGS)
    assert s.repeat_share == 0.5 and s.init_from is None and s.steps == 6 and s.valid_windows == 32
    assert s.route_by == "fraction"           # saved before the threshold rule: as it was trained
    assert TrainSettings.from_dict({**OLD_STATE_SETTINGS, "extra": {}}).repeat_share == 0.0
    assert TrainSettings.from_dict(dataclasses.asdict(s)) == s


def _tiny_run_flags(tmp_path, tiny_model_dir) -> tuple[list, list]:
    """(data flags, model-size flags) of a tiny `ham train` run on a folder of four texts."""
    texts = tmp_path / "texts"
    texts.mkdir()
    for i in range(4):
        (texts / f"doc{i}.txt").write_text(SAMPLE_TEXT * 3)
    common = ["--from-dir", str(texts), "--tokenizer", str(tiny_model_dir / "tokenizer.json"), "--threads", "1"]
    sizes = ["--d-model", "32", "--layers", "2", "--heads", "2", "--head-dim", "16", "--mlp-hidden", "64"]
    return common, sizes


def test_a_run_from_the_old_layout_resumes_with_its_own_settings(tmp_path, tiny_model_dir, capsys):
    """A run stopped at step 4 whose train_state.json has the old "extra" settings: `ham train
    --out RUN` with no other flag resumes it to its own 6 steps, with its own batch, length and
    repeat share (not the defaults: 3,000 steps of 16 x 512)."""
    run = tmp_path / "run"
    common, sizes = _tiny_run_flags(tmp_path, tiny_model_dir)
    flags = ["--steps", "6", "--batch", "2", "--length", "32", "--lr", "0.01", "--warmup", "1",
             "--eval-every", "3", "--save-every", "2", "--valid-windows", "2", "--repeat-share", "0.5"]
    assert ham(["train", "--out", str(run), *common, *sizes, *flags, "--steps", "4"]) == 0
    state = json.loads((run / "train_state.json").read_text())
    assert state["step"] == 4
    state["settings"] = OLD_STATE_SETTINGS
    (run / "train_state.json").write_text(json.dumps(state))
    assert read_settings(run).repeat_share == 0.5
    assert ham(["train", "--out", str(run), *common]) == 0
    state = json.loads((run / "train_state.json").read_text())
    assert state["step"] == 6 and state["log"][-1]["tokens"] == 6 * 2 * 32
    assert state["settings"]["repeat_share"] == 0.5 and "extra" not in state["settings"]
    assert state["settings"]["valid_windows"] == 32          # not in the old settings: the default
    capsys.readouterr()
    load_model(run)                                          # a loadable checkpoint


def test_progress_rate_counts_only_this_runs_steps():
    import io
    from ham_core.progress import Progress
    out = io.StringIO()
    bar = Progress(100, "train", unit="step", stream=out, start=90)
    bar.start -= 10.0          # ten seconds ago
    bar(95, force=True)
    assert " 0.5 step/s" in out.getvalue()      # 5 steps in 10 s, not 95


def test_stop_at_then_resume_with_longer_windows(tmp_path, tiny_model_dir, capsys):
    """The long run's recipe: short windows until a step, then the same run on longer ones."""
    run = tmp_path / "run"
    common, sizes = _tiny_run_flags(tmp_path, tiny_model_dir)
    flags = ["--steps", "6", "--batch", "2", "--length", "32", "--warmup", "1", "--eval-every", "100",
             "--valid-windows", "2", "--copy-until", "0", "--watch-every", "0"]
    assert ham(["train", "--out", str(run), *common, *sizes, *flags, "--stop-at", "3"]) == 0
    assert json.loads((run / "train_state.json").read_text())["step"] == 3
    assert ham(["train", "--out", str(run), *common, "--length", "64", "--batch", "1"]) == 0
    state = json.loads((run / "train_state.json").read_text())
    assert state["step"] == 6 and state["settings"]["length"] == 64
    assert state["log"][-1]["tokens"] == 3 * 2 * 32 + 3 * 1 * 64
    capsys.readouterr()
