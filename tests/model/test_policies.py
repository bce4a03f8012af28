"""Selection policies at equal memory (ham_core.model.policies)."""
from __future__ import annotations

import pytest
import torch

from ham_core.analysis.sweep import sweep
from ham_core.errors import HAMInputError
from ham_core.model.policies import (COMPARED, EQUAL_MEMORY, POLICIES, POLICY_NAMES, REFERENCES, TAU_OFF,
                                     caches_nothing, get_policy, policy_routes, register, run_policy)

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
    routes = policy_routes([policy], taus, torch.tensor([budget]), seed, heads="max")
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
    out = tiny_model(ids, routes=policy_routes(["hola"], torch.zeros(1, 2), torch.tensor([[25, 40]]), heads="max"))
    for layer, W in enumerate((25, 40)):
        score = out.residual[0, layer].mean(-1)
        kept = out.visible[layer][0]
        assert kept.sum() == W
        assert score[kept].min() >= score[~kept].max()


def test_mixed_batch_matches_separate_runs(tiny_model, ids):
    taus = torch.tensor([[0.9, 0.9], [0.9, 0.9], [0.0, 0.0]])
    budget = torch.tensor([[40, 12], [40, 12], [0, 0]])
    names = ["hola", "window", "ham"]
    batch = tiny_model(ids.expand(3, -1), routes=policy_routes(names, taus, budget, heads=tiny_model.cfg.head_rule))
    for b, name in enumerate(names):
        alone = tiny_model(ids, routes=policy_routes([name], taus[b:b + 1], budget[b:b + 1], heads=tiny_model.cfg.head_rule))
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
