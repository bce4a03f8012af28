"""The layer diagram of the How-it-works page: seven boxes carrying the numbers they were given,
the words for them, and nothing from the text ever read as markup."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from app.drawing.layer_diagram import diagram
from app.drawing.layer_steps import TokenLayer, default_token, half_life, steps, surprise_words


def snapshot(text="<script>alert(1)</script>", cached=True, reads=((3, "<b>x</b>", 0.4),), **kw) -> TokenLayer:
    base = dict(index=9, text=text, layer=1, n_layers=2, head_dim=16, conv_size=4, tau=0.3,
                surprise=np.array([0.62, 1.02]), cached=cached, alpha=np.array([0.5, 0.99]), beta=np.array([0.2, 0.7]),
                v_norm=np.array([1.5, 2.5]), gate_rnn=np.array([0.8, 0.9]), gate_attn=np.array([0.05, 0.02]),
                reads=list(reads), sink=0.1, layer_cached=4, n_tokens=12, state_bytes=2048,
                next_text="&next", next_surprisal=2.0, loss=3.0)
    base.update(kw)
    return TokenLayer(**base)


def boxes(svg: str) -> dict:
    return {int(n): json.loads(v.replace("&quot;", '"'))
            for n, v in re.findall(r'id="how-step-(\d)" class="how-step" data-values="([^"]*)"', svg)}


def test_seven_boxes_carry_the_numbers():
    s = snapshot()
    found = boxes(diagram(s))
    assert sorted(found) == list(range(1, 8))
    assert found[3]["surprise"] == pytest.approx([0.62, 1.02])
    assert found[5] == {"min": pytest.approx(0.62), "tau": 0.3, "cached": True, "scale": 1.0}
    assert found[6]["reads"] == [[3, 0.4]] and found[6]["sink"] == pytest.approx(0.1)
    assert found[2]["alpha"] == pytest.approx([0.5, 0.99]) and found[7]["gate_attn"] == pytest.approx([0.05, 0.02])


def test_a_scaled_layer_shows_the_cosine_and_the_units_routing_reads():
    """Step 3 explains the cosine distance; step 5 shows it times the layer's scale against tau."""
    s = snapshot(surprise=np.array([0.64, 1.6]), scale=40.0)
    by_number = {st.number: st for st in steps(s)}
    assert "0.016, 0.040 (cosine distance)" in by_number[3].values and "0.64, 1.60 in this layer's units" in by_number[3].values
    assert "almost exactly" in by_number[3].words                   # words judge the cosine, not the scaled value
    assert "0.016 × 40.0 = 0.64 ≥ τ 0.30" in by_number[5].values and "× 40.0" in by_number[5].words
    found = boxes(diagram(s))
    assert found[3]["cosine"] == pytest.approx([0.016, 0.04]) and found[5]["scale"] == 40.0


def test_text_from_the_paste_is_escaped():
    svg = diagram(snapshot())
    assert "<script>" not in svg and "<b>x</b>" not in svg and "&next" not in svg
    assert "&lt;script&gt;" in svg and "&amp;next" in svg


def test_words_say_what_the_numbers_mean():
    assert "slightly away" in surprise_words(1.02)
    assert "almost exactly" in surprise_words(0.01)
    assert "no guess" in surprise_words(1.0)
    assert half_life(0.5) == pytest.approx(1.0) and math.isinf(half_life(1.0))
    by_number = {s.number: s for s in steps(snapshot(cached=False))}
    assert "not cached" in by_number[5].values and "predicted it well" in by_number[5].words
    assert "barely listens to its cache" in by_number[7].words
    assert "nothing" in steps(snapshot(reads=()))[5].words


def test_presenter_scale_grows_the_type():
    small, large = diagram(snapshot()), diagram(snapshot(), font_scale=1.4)
    size = lambda svg: max(float(x) for x in re.findall(r'font-size="([\d.]+)"', svg))  # noqa: E731
    assert size(large) == pytest.approx(1.4 * size(small), rel=0.02)


def test_default_token_is_a_cached_word():
    assert default_token(["The", " cat", "\n", " sat", "\n"], [True, True, True, False, True]) == 1
    assert default_token(["\n", " "], [True, True]) == 1


def test_routing_is_told_by_the_models_head_rule():
    """Step 5 and its bar quote the surprise routing compared with tau, named by the model's rule
    (max: the most surprised head decides), not min over heads whatever the model."""
    s = snapshot(rule="max", routing=1.02)
    step5 = {st.number: st for st in steps(s)}[5]
    assert step5.values.startswith("max surprise 1.02 ≥ τ 0.30") and "head 2 found it surprising enough" in step5.words
    assert boxes(diagram(s))[5] == {"max": pytest.approx(1.02), "tau": 0.3, "cached": True, "scale": 1.0}
    missed = {st.number: st for st in steps(snapshot(rule="max", routing=0.2, cached=False, tau=0.3))}[5]
    assert "no head found it surprising enough (the most surprised, head 2: 0.20 < τ)" in missed.words
    assert "every head" in {st.number: st for st in steps(snapshot())}[5].words      # min, as the first models routed
