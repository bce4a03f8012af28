"""The selection probe (ham_core.analysis.selection): every row keeps exactly the memory it is
given, and the gap shares are anchored at the two ends (f = 0: no cache, f = 1: full cache)."""
from __future__ import annotations

import pytest
import torch

from ham_core.analysis import selection
from ham_core.model.model import HAMModel
from tests.conftest import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return HAMModel(tiny_config(max_tokens=128)).eval()


def ids(T=48, seed=0):
    return torch.randint(0, 320, (1, T), generator=torch.Generator().manual_seed(seed))


def test_keep_top_keeps_w_keys_ties_to_the_earlier():
    keep = selection.keep_top(torch.tensor([[0.2, 0.9, 0.2, 0.5]]), 2)
    assert keep.tolist() == [[False, True, False, True]]
    assert selection.keep_top(torch.tensor([[0.1, 0.1, 0.1]]), 2).tolist() == [[True, True, False]]


@pytest.mark.parametrize("score", selection.HEAD_SCORES + ("read-most",))
def test_every_score_keeps_w_keys_per_query(model, score):
    x = ids()
    out = model(x, tau=0.0)
    gate, mass = out.attn_gate[:, 0].mean(1), torch.rand(1, 48)
    route = selection.score_route(score, 20, gate, mass)
    mask = route(out.surprise[:, 0], out.residual[:, 0])
    causal = torch.ones(48, 48, dtype=torch.bool).tril()
    peak = mask.sum(-1).max() if mask.dim() == 2 else (mask & causal).sum(-1).max()
    assert int(peak) == 20


def test_shares_are_zero_with_no_cache_and_one_with_all_of_it(model):
    probe = selection.probe_text(model, ids(seed=1), [0.0, 1.0], "t")
    assert probe.gap != 0
    for row in selection.ROWS:
        assert probe.share(row, 1.0) == pytest.approx(1.0, abs=1e-4), row      # float noise over a tiny gap
        assert probe.share(row, 0.0) == pytest.approx(0.0, abs=1e-4), row
    assert probe.overlap[1.0] == [1.0, 1.0]
    assert probe.memory[1.0] == pytest.approx(1.0)


def test_summary_and_lead_are_means_over_texts_with_standard_errors(model, monkeypatch):
    monkeypatch.setattr(selection, "MIN_GAP", -float("inf"))   # a random model's gaps are tiny, some negative
    probes = [selection.probe_text(model, ids(seed=s), [0.25], f"text-{s}") for s in (2, 3, 4)]
    table = selection.summary(probes, [0.25])
    shares = [p.share("max", 0.25) for p in probes]
    assert table["max"][0.25][0] == pytest.approx(sum(shares) / 3)
    assert table["max"][0.25][1] > 0
    lead, se = selection.lead_over(probes, "max", "window", 0.25)
    assert lead == pytest.approx(sum(p.share("max", 0.25) - p.share("window", 0.25) for p in probes) / 3)
    assert selection.best_other(probes, 0.25) in ("random", "window", "sinks")
    assert selection.mean_se([1.0]) == (1.0, 0.0)


def test_texts_whose_cache_is_worth_little_are_left_out_of_the_means_not_the_pool(model):
    probes = [selection.probe_text(model, ids(seed=s), [0.25], f"text-{s}") for s in (5, 6)]
    probes[0].none = probes[0].full + 1.0                # a text whose cache is worth 1 nat/token
    assert selection.worth(probes) == [probes[0]]
    assert selection.summary(probes, [0.25])["window"][0.25][0] == pytest.approx(probes[0].share("window", 0.25))
    gap = sum(p.gap for p in probes)
    assert selection.pooled(probes, "window", 0.25) == pytest.approx(
        sum(p.none - p.loss["window"][0.25] for p in probes) / gap)
    assert set(probes[0].loss) == set(selection.ROWS)
