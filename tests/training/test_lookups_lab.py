"""The lookups lab (ham_core.training.lookups_lab): a few steps, the shipped recorded run, the command."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from ham_core.cli import main as ham
from ham_core.errors import HAMInputError
from ham_core.training.lookups_lab import (LOOKUP_REACH, LabSettings, find_jump, lab_config, load_run, right_key,
                                           save_run, train_lookups)

ROOT = Path(__file__).resolve().parents[2]
RECORDED = ROOT / "assets" / "lookups_lab" / "run.json"
FEW = LabSettings(steps=10, log_every=5, reads_every=5)

pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py: a run reproduces on one thread


def test_a_few_steps_log_loss_gates_temperatures_cache_share_and_reads():
    steps = list(train_lookups(FEW))
    assert [s.step for s in steps] == [0, 5, 10]
    H, half = lab_config(FEW.half).n_heads, FEW.half
    for s in steps:
        assert len(s.attn_gate) == H and len(s.temperature) == H
        assert s.cache_share == 1.0                       # tau 0 caches every token
        assert 3.0 < s.loss < 4.0                         # near ln(32): nothing learned in 10 steps
        assert len(s.reads.weights) == H and len(s.reads.weights[0]) == half
        for i, row in enumerate(s.reads.weights[0]):
            assert len(row) == half + i + 1 and 0 <= sum(row) <= 100 + len(row)   # percent, rounded
    assert all(g < 0.1 for g in steps[0].attn_gate)       # the gates start nearly shut
    assert [s.loss for s in steps] == [s.loss for s in train_lookups(FEW)]     # pure: the seed decides


def test_no_cache_caches_nothing():
    steps = list(train_lookups(replace(FEW, tau=3.0)))
    assert all(s.cache_share == 0.0 for s in steps)


def test_bad_settings_are_clear_errors():
    for bad in (dict(steps=0), dict(tau=-1.0), dict(tau=float("nan")), dict(seed=-2), dict(steps=10 ** 6)):
        with pytest.raises(HAMInputError):
            LabSettings(**bad)


def test_the_recorded_run_shows_the_jump_and_reproduces_from_its_seed():
    run = load_run(RECORDED)
    jump = find_jump(run.steps)
    assert jump is not None and jump.loss_before > 2.5 and jump.loss_after < 0.3
    assert max(run.steps[-1].attn_gate) > 0.8 > 0.1 > max(run.steps[0].attn_gate)     # one gate opened
    # after the jump one head reads the right key: most of a query's weight on one arc
    last = run.steps[-1].reads.weights
    head = max(range(len(last)), key=lambda h: run.steps[-1].attn_gate[h])
    half = run.settings.half
    reach = [sum(row[right_key(half + i, half):right_key(half + i, half) + LOOKUP_REACH + 1])
             for i, row in enumerate(last[head])]
    assert sum(reach) / len(reach) > 70 and sum(max(row) for row in last[head]) / half > 60   # one key, not a smear
    again = list(train_lookups(replace(run.settings, steps=40)))
    assert [s.loss for s in again] == pytest.approx([s.loss for s in run.steps[:len(again)]], abs=2e-3)


def test_a_broken_recording_is_one_clear_error(tmp_path):
    for text in ("not json", json.dumps({"format": 99}), json.dumps({"format": 1, "settings": {"steps": -1}})):
        (tmp_path / "run.json").write_text(text)
        with pytest.raises(HAMInputError, match="not a recorded lookups-lab run"):
            load_run(tmp_path / "run.json")
    with pytest.raises(HAMInputError, match="not found"):
        load_run(tmp_path / "missing.json")


def test_save_and_load_round_trip(tmp_path):
    steps = list(train_lookups(FEW))
    run = load_run(save_run(tmp_path / "r.json", FEW, steps))
    assert run.settings == FEW and run.steps == steps


def test_the_command_prints_json_and_a_progress_bar(capsys, tmp_path):
    assert ham(["lookups-lab", "--steps", "10", "--json", "--record", str(tmp_path / "r.json")]) == 0
    out, err = capsys.readouterr()
    rows = json.loads(out)
    assert [r["step"] for r in rows] == [0, 5, 10] and set(rows[0]) == {"step", "loss", "attn_gate"}
    assert "lookups lab [" in err and "10/10" in err
    assert load_run(tmp_path / "r.json").settings.steps == 10
    assert ham(["lookups-lab", "--steps", "5"]) == 0
    assert "second-reading loss" in capsys.readouterr().out
    assert ham(["lookups-lab", "--tau", "-1"]) == 2
    assert capsys.readouterr().err.startswith("error: tau")
