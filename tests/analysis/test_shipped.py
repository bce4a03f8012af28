"""The shipped English model loads and reproduces the loss recorded in assets/MODEL_CARD.md."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from ham_core.model.checkpoint import default_model_dir, load_bundle
from ham_core.analysis.evaluate import slice_loss

CARD = Path(__file__).resolve().parents[2] / "assets" / "MODEL_CARD.md"


def test_shipped_model_reproduces_the_model_card_loss():
    recorded = re.search(r"full cache: loss (\d+\.\d+) nats/token", CARD.read_text())
    assert recorded, "MODEL_CARD.md must record the fixed validation slice's loss"
    model, tokenizer = load_bundle()
    assert model.num_parameters() == 4_292_944
    assert slice_loss(model, tokenizer, default_model_dir()) == pytest.approx(float(recorded.group(1)), abs=1e-4)


def test_shipped_weights_stay_small():
    for path in (CARD.parent).rglob("*.safetensors"):
        assert path.stat().st_size < 50 * 1024 * 1024, path
