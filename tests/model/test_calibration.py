"""Per-layer surprise scales: routing reads each layer's surprise in its own units.

A scale multiplies a layer's cosine surprise before routing (capped at 2); it changes which
tokens are cached at a given threshold and nothing else. Every form applies it alike;
calibration puts each layer's median at TYPICAL_SURPRISE; training keeps the scales current.
"""
from __future__ import annotations

import pytest
import torch

from ham_core.errors import HAMInputError
from ham_core.model.calibration import TYPICAL_SURPRISE, RunningScale, calibrate, layer_medians
from ham_core.model.config import HAMConfig
from ham_core.model.model import HAMModel
from ham_core.model.ops.delta_rule import SURPRISE_MAX
from ham_core.model.policies import run_policy
from tests.conftest import tiny_config
from tests.model.test_decode import assert_forms_agree, random_ids

pytestmark = pytest.mark.usefixtures("one_thread")


def scaled_copy(model: HAMModel, scales) -> HAMModel:
    other = HAMModel(tiny_config(surprise_scale=list(scales))).eval()
    other.load_state_dict(model.state_dict())
    return other


def test_a_scale_multiplies_the_surprise_and_changes_nothing_else_at_full_cache(tiny_model):
    ids = random_ids(seed=4)
    scaled = scaled_copy(tiny_model, [3.0, 0.5])
    with torch.no_grad():
        plain, out = tiny_model(ids, 0.0), scaled(ids, 0.0)
    torch.testing.assert_close(out.logits, plain.logits)                 # every token cached either way
    torch.testing.assert_close(out.surprise[:, 0], (plain.surprise[:, 0] * 3.0).clamp(max=SURPRISE_MAX))
    torch.testing.assert_close(out.surprise[:, 1], plain.surprise[:, 1] * 0.5)
    assert out.surprise.max() <= SURPRISE_MAX


def test_routing_compares_the_scaled_surprise_with_tau(tiny_model):
    ids = random_ids(seed=5)
    scaled = scaled_copy(tiny_model, [4.0, 0.25])
    with torch.no_grad():
        out = scaled(ids, 0.4)
    assert torch.equal(out.cached, out.layer_surprise >= 0.4)
    with torch.no_grad():
        assert not scaled(ids, 2.5).cached.any()                          # above 2 still caches nothing


def test_three_forms_agree_with_surprise_scales(tiny_model):
    model = scaled_copy(tiny_model, [2.5, 0.7])
    ids = random_ids(seed=2)
    assert_forms_agree(model, ids)


def test_calibrate_puts_every_layer_median_at_the_typical_surprise(tiny_model):
    windows = torch.randint(0, 320, (6, 40), generator=torch.Generator().manual_seed(0))
    model = scaled_copy(tiny_model, [1.0, 1.0])
    medians = calibrate(model, windows, batch=4)
    with torch.no_grad():
        plain = tiny_model(windows, 0.0).layer_surprise                  # [B, L, T] cosine surprise
        out = model(windows, 0.0)
    for l, m in enumerate(medians):
        assert m == pytest.approx(float(plain[:, l].flatten().median()), rel=1e-5)
        assert float(out.layer_surprise[:, l].flatten().median()) == pytest.approx(TYPICAL_SURPRISE, rel=1e-4)
    # medians are read back in cosine units whatever scale the model ran with
    assert layer_medians(out.layer_surprise, model.cfg.surprise_scale) == pytest.approx(medians, rel=1e-4)


def test_calibrate_from_a_scale_that_clips_most_tokens_still_finds_the_median(tiny_model):
    """A model recalibrated for another head rule may start from scales that put most tokens at
    the clip (SURPRISE_MAX); the median is then the clip's, not the text's, unless measured raw."""
    windows = torch.randint(0, 320, (6, 40), generator=torch.Generator().manual_seed(0))
    fresh = calibrate(scaled_copy(tiny_model, [1.0, 1.0]), windows, batch=4)
    model = scaled_copy(tiny_model, [1e4, 1e4])                      # every token at the clip
    assert calibrate(model, windows, batch=4) == pytest.approx(fresh, rel=1e-5)
    with torch.no_grad():
        out = model(windows, 0.0).layer_surprise
    assert (out < SURPRISE_MAX).float().mean() > 0.5                  # no longer stuck at the clip


def test_calibrated_layers_cache_a_like_share_at_one_threshold(tiny_model):
    windows = torch.randint(0, 320, (6, 60), generator=torch.Generator().manual_seed(1))
    model = scaled_copy(tiny_model, [1.0, 1.0])
    calibrate(model, windows)
    with torch.no_grad():
        shares = run_policy(model, windows, TYPICAL_SURPRISE).cached.float().mean((0, 2))   # [L]
    assert shares.tolist() == pytest.approx([0.5, 0.5], abs=0.05)


def test_running_scale_follows_the_batches_median():
    model = HAMModel(tiny_config()).eval()
    running = RunningScale(model, decay=0.5)
    surprise = torch.full((2, 2, 10), 0.2)                 # [B, L, T] layer surprise
    surprise[:, 1] = 0.05
    running.update(surprise)
    assert model.cfg.surprise_scale == pytest.approx([TYPICAL_SURPRISE / 0.2, TYPICAL_SURPRISE / 0.05])
    # the next batch arrives in the new units; its cosine median (0.1 in layer 1) moves the average
    running.update(torch.full((2, 2, 10), 0.1) * torch.tensor(model.cfg.surprise_scale)[None, :, None])
    assert model.cfg.surprise_scale == pytest.approx([TYPICAL_SURPRISE / 0.15, TYPICAL_SURPRISE / 0.075])
    assert RunningScale(model).medians == pytest.approx([0.15, 0.075])   # a resumed run starts from the saved scales


@pytest.mark.parametrize("bad", [[1.0], [1.0, 0.0], [1.0, float("inf")], "2", [True, 1.0]])
def test_bad_scales_name_the_field(bad):
    with pytest.raises(HAMInputError, match="surprise_scale"):
        HAMConfig(n_layers=2, surprise_scale=bad)


def test_config_without_scales_loads_as_one_everywhere():
    cfg = HAMConfig.from_dict({k: v for k, v in HAMConfig().to_dict().items() if k != "surprise_scale"})
    assert [cfg.layer_surprise_scale(l) for l in range(cfg.n_layers)] == [1.0] * cfg.n_layers
    assert HAMConfig.from_dict(HAMConfig(n_layers=2, surprise_scale=[2, 3]).to_dict()).surprise_scale == [2.0, 3.0]


def test_analyze_reports_the_scales_it_read_with(tiny_model):
    from ham_core import analyze
    from ham_core.model.tokenizer import train_tokenizer
    from tests.conftest import SAMPLE_TEXT

    tok = train_tokenizer([SAMPLE_TEXT] * 4, vocab_size=320)
    a = analyze(scaled_copy(tiny_model, [3.0, 0.5]), tok, SAMPLE_TEXT[:200], 0.6)
    assert a.surprise_scale == [3.0, 0.5] and a.to_dict()["surprise_scale"] == [3.0, 0.5]
