"""Selection policies at equal memory, and threshold sweeps (ham_core.model.policies, ham_core.analysis.sweep)."""
from __future__ import annotations

import pytest
import torch

from ham_core.errors import HAMInputError
from ham_core.model.policies import (COMPARED, EQUAL_MEMORY, POLICIES, POLICY_NAMES, REFERENCES, TAU_OFF,
                                     caches_nothing, get_policy, policy_routes, register, run_policy)
from ham_core.analysis.sweep import fraction_sweep, sweep, taus_for_fractions

BUDGETED = [name for name, p in POLICIES.items() if p.needs_budget]
TAUS = [0.0, 0.3, 0.6, 0.8, 0.9, 1.0, 1.1, 1.3, 2.0, 2.5]


pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


@pytest.fixture
def ids():
    return torch.randint(0, 320, (1, 150), generator=torch.Generator().manual_seed(1))


def test_registry_has_every_policy():
    assert {"ham", "random", "window", "sinks", "hola", "full", "none"} <= set(POLICIES)
    assert set(BUDGETED) == {"random", "window", "sinks", "hola"}
    with pytest.raises(HAMInputError, match="unknown policy"):
        get_policy("oracle")


def test_name_lists_and_thresholds_come_from_the_registry():
    assert POLICY_NAMES == ("ham", "random", "window", "sinks", "hola", "full", "none")
    assert REFERENCES == ("full", "none") and EQUAL_MEMORY == tuple(BUDGETED)
    assert COMPARED == ("ham", "random", "window", "sinks", "hola")
    assert caches_nothing(TAU_OFF) and not caches_nothing(2.0)


def test_tau_off_caches_nothing_and_tau_zero_everything(tiny_model, ids):
    assert tiny_model(ids, tau=TAU_OFF).kv_fraction.max() == 0.0
    assert tiny_model(ids, tau=0.0).kv_fraction.min() == 1.0


def test_kv_fraction_non_increasing_in_tau(tiny_model, ids):
    rows = sweep(tiny_model, ids, TAUS, ["ham"])
    fractions = [r.kv_fraction for r in rows]
    assert all(b <= a for a, b in zip(fractions, fractions[1:])), fractions
    assert fractions[0] == 1.0 and fractions[-1] == 0.0
    assert 0.0 < fractions[3] < 1.0


def test_tau_zero_is_full_and_above_two_is_none(tiny_model, ids):
    for tau, reference, fraction in ((0.0, "full", 1.0), (2.01, "none", 0.0), (7.5, "none", 0.0)):
        ham = run_policy(tiny_model, ids, tau, "ham")
        ref = run_policy(tiny_model, ids, tau, reference)
        assert float(ham.kv_fraction) == fraction == float(ref.kv_fraction)
        assert torch.equal(ham.logits, ref.logits)
        assert torch.equal(ham.cached, ref.cached)


@pytest.mark.parametrize("tau", [0.0, 0.7, 0.95, 1.2, 2.5])
@pytest.mark.parametrize("policy", BUDGETED)
def test_equal_memory_and_causal(tiny_model, ids, policy, tau):
    ham = run_policy(tiny_model, ids, tau, "ham")
    out = run_policy(tiny_model, ids, tau, policy, attention="all")
    assert torch.equal(out.kv_peak, ham.kv_peak)                    # the same peak cache per layer
    assert torch.equal(out.kv_bytes_peak, ham.kv_bytes_peak)
    for weights, visible in zip(out.attention, out.visible):
        assert weights.triu(1).abs().max() == 0                     # no query reads a future token
        mask = visible if visible.dim() == 3 else visible[:, None, :].expand_as(weights[:, 0])
        assert (weights * ~mask[:, None]).abs().max() == 0          # only visible keys are read


def test_full_and_none_ignore_tau(tiny_model, ids):
    T = ids.shape[1]
    for tau in (0.0, 0.8, 2.5):
        assert run_policy(tiny_model, ids, tau, "full").kv_peak.tolist() == [[T, T]]
        assert run_policy(tiny_model, ids, tau, "none").kv_peak.tolist() == [[0, 0]]


def _masks(model, ids, policy, budget, seed=0):
    taus = torch.full((1, model.cfg.n_layers), 0.5)
    routes = policy_routes([policy], taus, torch.tensor([budget]), seed)
    return model(ids, routes=routes).visible


def test_window_and_sinks_shapes(tiny_model, ids):
    T, W = ids.shape[1], 20
    window = _masks(tiny_model, ids, "window", [W, W])[0][0]          # [T, T]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    reads = (window & causal).sum(-1)
    assert reads.tolist() == [min(W, t + 1) for t in range(T)]
    assert window[T - 1, T - W:].all() and not window[T - 1, : T - W].any()
    sinks = _masks(tiny_model, ids, "sinks", [W, W])[0][0] & causal
    assert sinks[T - 1, :4].all() and sinks[T - 1, T - (W - 4):].all() and sinks[T - 1].sum() == W
    assert sinks.sum(-1).max() == W
    tiny = _masks(tiny_model, ids, "sinks", [2, 2])[0][0] & causal   # W < 4: the first W tokens
    assert tiny[T - 1].nonzero().flatten().tolist() == [0, 1]


def test_random_is_seeded_and_nested(tiny_model, ids):
    a = _masks(tiny_model, ids, "random", [30, 30], seed=3)
    b = _masks(tiny_model, ids, "random", [30, 30], seed=3)
    c = _masks(tiny_model, ids, "random", [30, 30], seed=4)
    small = _masks(tiny_model, ids, "random", [10, 10], seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    assert not torch.equal(a[0], a[1])                                # layers draw differently
    assert (small[0] <= a[0]).all() and small[0].sum() == 10


def test_hola_keeps_largest_residual(tiny_model, ids):
    out = tiny_model(ids, routes=policy_routes(["hola"], torch.zeros(1, 2), torch.tensor([[25, 40]])))
    for layer, W in enumerate((25, 40)):
        score = out.residual[0, layer].mean(-1)
        kept = out.visible[layer][0]
        assert kept.sum() == W
        assert score[kept].min() >= score[~kept].max()


def test_mixed_batch_matches_separate_runs(tiny_model, ids):
    taus = torch.tensor([[0.9, 0.9], [0.9, 0.9], [0.0, 0.0]])
    budget = torch.tensor([[40, 12], [40, 12], [0, 0]])
    names = ["hola", "window", "ham"]
    batch = tiny_model(ids.expand(3, -1), routes=policy_routes(names, taus, budget))
    for b, name in enumerate(names):
        alone = tiny_model(ids, routes=policy_routes([name], taus[b:b + 1], budget[b:b + 1]))
        torch.testing.assert_close(batch.logits[b], alone.logits[0], atol=1e-5, rtol=1e-5)
        assert torch.equal(batch.kv_peak[b], alone.kv_peak[0])


def test_adding_a_policy_is_one_function(tiny_model, ids):
    @register("oldest", about="the W earliest tokens")
    def oldest(s):
        positions = torch.arange(s.surprise.shape[1], device=s.surprise.device)
        return positions[None, :] < s.budget[:, None]

    try:
        ham = run_policy(tiny_model, ids, 0.9, "ham")
        out = run_policy(tiny_model, ids, 0.9, "oldest")
        assert torch.equal(out.kv_peak, ham.kv_peak)
        assert [r.policy for r in sweep(tiny_model, ids, [0.9], ["oldest"])] == ["oldest"]
    finally:
        del POLICIES["oldest"]


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


def test_sweep_rejects_bad_input(tiny_model, ids):
    for taus, policies in (([-0.1], ["ham"]), ([float("nan")], ["ham"]), ([], ["ham"]), ([0.5], ["nope"])):
        with pytest.raises(HAMInputError):
            sweep(tiny_model, ids, taus, policies)
    with pytest.raises(HAMInputError):
        sweep(tiny_model, ids.expand(2, -1), [0.5], ["ham"])


def test_taus_for_fractions(tiny_model, ids):
    fractions = [0.0, 0.1, 0.25, 0.5, 1.0]
    taus = taus_for_fractions(tiny_model, ids, fractions)
    assert taus[0] == TAU_OFF and taus[-1] == 0.0
    got = [r.kv_fraction for r in sweep(tiny_model, ids, taus, ["ham"])]
    for want, have in zip(fractions, got):
        assert abs(want - have) <= 0.02, (fractions, got)
    with pytest.raises(HAMInputError):
        taus_for_fractions(tiny_model, ids, [1.5])


def test_fraction_sweep_compares_at_equal_memory(tiny_model, ids):
    rows = fraction_sweep(tiny_model, ids, [0.0, 0.25, 1.0], ["ham", "random", "hola"])
    assert len(rows) == 9
    for i in range(3):
        peaks = {rows[i + 3 * k].kv_bytes_peak for k in range(3)}
        assert len(peaks) == 1
