"""The one threshold search (ham_core.analysis.thresholds): one text or a batch, one threshold
or one per text, closest to the target or never above it."""
from __future__ import annotations

import pytest
import torch

from ham_core.analysis.sweep import sweep
from ham_core.analysis.thresholds import Pass, search_taus, taus_for_fractions
from ham_core.errors import HAMInputError
from ham_core.model.policies import TAU_FULL, TAU_OFF

pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


@pytest.fixture
def ids():
    return torch.randint(0, 320, (3, 150), generator=torch.Generator().manual_seed(1))


def test_one_text_many_fractions(tiny_model, ids):
    fractions = [0.0, 0.1, 0.25, 0.5, 1.0]
    taus = taus_for_fractions(tiny_model, ids[:1], fractions)
    assert taus[0] == TAU_OFF and taus[-1] == TAU_FULL
    got = [r.kv_fraction for r in sweep(tiny_model, ids[:1], taus, ["ham"])]
    for want, have in zip(fractions, got):
        assert abs(want - have) <= 0.02, (fractions, got)
    with pytest.raises(HAMInputError):
        taus_for_fractions(tiny_model, ids[:1], [1.5])


def test_a_batch_gets_one_threshold_per_text(tiny_model, ids):
    taus = taus_for_fractions(tiny_model, ids, 0.25)
    assert len(taus) == 3
    alone = [taus_for_fractions(tiny_model, ids[b], [0.25])[0] for b in range(3)]
    assert taus == pytest.approx(alone, abs=1e-6)
    kv = tiny_model(ids, tau=torch.tensor(taus)[:, None].expand(3, tiny_model.cfg.n_layers)).kv_fraction
    assert (kv - 0.25).abs().max() <= 0.02, kv
    per_text = taus_for_fractions(tiny_model, ids, [0.1, 0.25, 0.5])
    assert per_text[1] == pytest.approx(taus[1], abs=1e-6)
    with pytest.raises(HAMInputError, match="one per text"):
        taus_for_fractions(tiny_model, ids, [0.1, 0.2])


def test_a_shared_threshold_is_never_above_the_target(tiny_model, ids):
    for fraction in (0.05, 0.25, 0.5):
        (tau,) = taus_for_fractions(tiny_model, ids, fraction, shared=True, at_most=True, rounds=12)
        kv = tiny_model(ids, tau=tau).kv_fraction.mean().item()
        assert fraction - 0.02 <= kv <= fraction, (fraction, tau, kv)
    assert taus_for_fractions(tiny_model, ids, 1.0, shared=True) == [TAU_FULL]
    with pytest.raises(HAMInputError, match="one fraction"):
        taus_for_fractions(tiny_model, ids, [0.1, 0.2], shared=True)


def test_search_bisects_when_a_guess_leaves_the_bracket():
    """A made-up measure whose surprise ranking always guesses too high: the search must fall
    back to bisection and still meet the target, from below (at_most) or to the nearest."""
    def kv(tau):                      # fraction cached falls linearly from 1 at tau 0 to 0 at 2
        return max(0.0, 1 - tau / 2)

    calls = []

    def measure(targets, taus):
        calls.append(list(taus))
        return [Pass(kv(t), torch.full((10,), 5.0)) for t in taus]    # guesses would be 5 > TAU_OFF

    (closest,) = search_taus(measure, [0.3], rounds=30, tolerance=1e-3)
    assert abs(kv(closest) - 0.3) <= 1e-3
    assert calls[0] == [TAU_FULL] and all(0 < t < TAU_OFF for c in calls[1:] for t in c)
    calls.clear()
    (at_most,) = search_taus(measure, [0.3], at_most=True, rounds=30, tolerance=1e-3)
    assert 0.3 - 1e-3 <= kv(at_most) <= 0.3
    assert calls[0] == [TAU_FULL] and all(0 < t < TAU_OFF for c in calls[1:] for t in c)
