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


def test_story_preset_first_view_is_a_name_reading_its_first_mention():
    """What the Read page opens on for its default preset: a later mention of the rare name whose
    strongest read (a lookup, weight >= MIN_LOOKUP) lands on an earlier mention of it, or just
    after one (what came next last time)."""
    from ham_core import analyze
    from ham_core.analysis.lookups import MIN_LOOKUP
    from ham_core.analysis.readmap import memorable_read
    from app.settings import DEFAULT_TAU
    from app.settings.presets import DEFAULT_PRESET, PRESETS

    story = PRESETS[DEFAULT_PRESET]
    model, tokenizer = load_bundle()
    a = analyze(model, tokenizer, story, DEFAULT_TAU)
    pick = memorable_read([t.id for t in a.tokens], [a.read_map(layer) for layer in range(model.cfg.n_layers)])
    assert pick is not None and pick.repeat >= 1 and pick.weight >= MIN_LOOKUP
    names = [m.span() for m in re.finditer(r"Thessaly|Vandermeer", story)]

    def letters_start(tok) -> int:                   # " V" of " Vandermeer" starts at its space
        return tok.start + len(tok.text) - len(tok.text.lstrip())

    inside = [k for k, (a0, b0) in enumerate(names) if a0 <= letters_start(a.tokens[pick.query]) < b0]
    assert inside and inside[0] > 0, f"query {a.tokens[pick.query].text!r} is not a later mention of the name"
    copy = a.tokens[pick.key - pick.offset]          # the earlier copy the read landed on (or just after)
    assert any(a0 <= letters_start(copy) < b0 for a0, b0 in names[:inside[0]]), f"read lands by {copy.text!r}"
