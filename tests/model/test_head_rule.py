"""How a layer's heads combine their surprise for routing (docs/DESIGN.md step 5, HAMConfig.head_rule).

Each rule is one reduction over heads; every form (chunked, recurrent, compact-cache decode),
the training routes and HAM's policy apply the model's own rule; a config saved before the
field existed loads with the rule it was trained with (min).
"""
from __future__ import annotations

import json

import pytest
import torch

from ham_core.errors import HAMInputError
from ham_core.model.config import HAMConfig
from ham_core.model.layer import layer_surprise
from ham_core.model.model import HAMModel
from ham_core.model.policies import run_policy
from ham_core.model.routes import quantile_route
from tests.conftest import tiny_config
from tests.model.test_decode import assert_forms_agree, random_ids

pytestmark = pytest.mark.usefixtures("one_thread")


def model_with(rule: str) -> HAMModel:
    torch.manual_seed(0)
    return HAMModel(tiny_config(head_rule=rule)).eval()


def test_each_rule_is_one_reduction_over_heads():
    s = torch.tensor([[0.1, 0.9], [0.4, 0.6]])                 # [T=2, H=2]
    assert layer_surprise(s, "min").tolist() == pytest.approx([0.1, 0.4])
    assert layer_surprise(s, "max").tolist() == pytest.approx([0.9, 0.6])
    assert layer_surprise(s, "mean").tolist() == pytest.approx([0.5, 0.5])
    with pytest.raises(ValueError, match="head rule"):
        layer_surprise(s, "median")


@pytest.mark.parametrize("rule", ["min", "max", "mean"])
def test_routing_caches_by_the_models_rule(rule):
    model = model_with(rule)
    ids = random_ids(seed=3)
    with torch.no_grad():
        out = model(ids, 0.3)
    torch.testing.assert_close(out.layer_surprise, layer_surprise(out.surprise, rule))
    assert torch.equal(out.cached, out.layer_surprise >= 0.3)
    with torch.no_grad():   # HAM's policy and a training route read the same rule
        assert torch.equal(run_policy(model, ids, 0.3, "ham").cached, out.cached)
        routed = model(ids, routes=[quantile_route(0.5, rule)] * model.cfg.n_layers)
    assert (routed.cached.float().mean(-1) >= 0.5).all()


def test_any_head_surprised_caches_more_than_every_head_at_one_threshold():
    ids = random_ids(seed=5)
    with torch.no_grad():
        out = model_with("max")(ids, 0.3)
    anyhead = (out.surprise >= 0.3).any(-1)
    assert torch.equal(out.cached, anyhead)
    assert out.cached.sum() >= (out.surprise >= 0.3).all(-1).sum()


@pytest.mark.parametrize("rule", ["min", "max", "mean"])
def test_three_forms_agree_under_every_rule(rule):
    assert_forms_agree(model_with(rule), random_ids(seed=2))


def test_a_config_saved_before_the_rule_loads_as_min(tmp_path):
    data = HAMConfig().to_dict()
    del data["head_rule"]
    (tmp_path / "config.json").write_text(json.dumps(data))
    assert HAMConfig.load(tmp_path / "config.json").head_rule == "min"
    assert HAMConfig().head_rule == "max"                      # a new model routes by any head


def test_an_unknown_rule_names_the_field():
    with pytest.raises(HAMInputError, match="head_rule must be one of min, max, mean"):
        HAMConfig(head_rule="vote")
