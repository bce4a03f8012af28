"""Threshold sweeps and policies compared at equal memory (ham_core.analysis.sweep)."""
from __future__ import annotations

import pytest
import torch

from ham_core.analysis.sweep import equal_memory, fraction_sweep, sweep
from ham_core.errors import HAMInputError

pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


@pytest.fixture
def ids():
    return torch.randint(0, 320, (1, 150), generator=torch.Generator().manual_seed(1))


def test_sweep_rows_and_batching(tiny_model, ids):
    policies = ["ham", "random", "window", "sinks", "hola", "full", "none"]
    calls = []
    rows = sweep(tiny_model, ids, [0.0, 0.9, 2.5], policies, progress=lambda d, t: calls.append((d, t)))
    assert [(r.policy, r.tau) for r in rows] == [(p, t) for p in policies for t in (0.0, 0.9, 2.5)]
    assert calls and calls[-1][0] == calls[-1][1]
    assert all(d1 < d2 for (d1, _), (d2, _) in zip(calls, calls[1:]))
    by = {(r.policy, r.tau): r for r in rows}
    for p in policies[:5]:
        assert by[(p, 0.9)].kv_bytes_peak == by[("ham", 0.9)].kv_bytes_peak
        assert by[(p, 0.0)].loss == pytest.approx(by[("full", 0.0)].loss, abs=1e-6)
        assert by[(p, 2.5)].loss == pytest.approx(by[("none", 0.0)].loss, abs=1e-6)
    one_at_a_time = sweep(tiny_model, ids, [0.0, 0.9, 2.5], policies, max_batch=1)
    for a, b in zip(rows, one_at_a_time):
        assert (a.policy, a.tau, a.kv_bytes_peak) == (b.policy, b.tau, b.kv_bytes_peak)
        assert a.loss == pytest.approx(b.loss, abs=1e-5)
    assert set(rows[0].to_dict()) == {"policy", "tau", "kv_fraction", "kv_bytes_peak", "loss"}


def test_equal_memory_gives_the_sweeps_rows_one_threshold_at_a_time(tiny_model, ids):
    """Built up a threshold at a time from HAM's known budgets, the rows are the sweep's own."""
    policies = ["random", "window", "sinks", "hola"]
    whole = {(r.policy, r.tau): r for r in sweep(tiny_model, ids, [0.5, 0.9], policies)}
    for tau in (0.5, 0.9):
        budget = tiny_model(ids, tau=tau).kv_peak[0].tolist()
        for row in equal_memory(tiny_model, ids[0], tau, budget, policies):
            ref = whole[(row.policy, tau)]
            assert (row.kv_bytes_peak, row.kv_fraction) == (ref.kv_bytes_peak, ref.kv_fraction)
            assert row.loss == pytest.approx(ref.loss, abs=1e-5)
    with pytest.raises(HAMInputError):
        equal_memory(tiny_model, ids, 0.5, [3], policies)                    # one budget per layer


def test_sweep_rejects_bad_input(tiny_model, ids):
    for taus, policies in (([-0.1], ["ham"]), ([float("nan")], ["ham"]), ([], ["ham"]), ([0.5], ["nope"])):
        with pytest.raises(HAMInputError):
            sweep(tiny_model, ids, taus, policies)
    with pytest.raises(HAMInputError):
        sweep(tiny_model, ids.expand(2, -1), [0.5], ["ham"])


def test_fraction_sweep_compares_at_equal_memory(tiny_model, ids):
    rows = fraction_sweep(tiny_model, ids, [0.0, 0.25, 1.0], ["ham", "random", "hola"])
    assert len(rows) == 9
    for i in range(3):
        peaks = {rows[i + 3 * k].kv_bytes_peak for k in range(3)}
        assert len(peaks) == 1
