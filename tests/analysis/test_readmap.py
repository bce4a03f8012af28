"""Reads of every token at once (ham_core.analysis.readmap), the first read worth showing, the model's
guesses and the per-layer KV bytes of an Analysis."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tests.conftest import SAMPLE_TEXT
from ham_core.analysis.analysis import GUESSES, analyze
from ham_core.analysis.readmap import FAR, MIN_LOOKUP, ReadMap, copy_match, memorable_read, repeat_length
from ham_core.errors import HAMInputError
from ham_core.model.checkpoint import load_bundle

pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


@pytest.fixture(scope="module")
def bundle(tiny_model_dir):
    return load_bundle(tiny_model_dir)


@pytest.mark.parametrize("policy", ["ham", "window", "full"])
@pytest.mark.parametrize("head", [None, 1])
def test_read_map_rows_agree_with_reads(bundle, policy, head):
    model, tok = bundle
    a = analyze(model, tok, SAMPLE_TEXT, 0.3, policy=policy)
    for layer in range(model.cfg.n_layers):
        m = a.read_map(layer, top=5, head=head)
        assert m.keys.shape == m.weights.shape == (a.n_tokens, 5) and m.sink.shape == (a.n_tokens,)
        assert m.layer == layer and m.head == head
        for query in range(a.n_tokens):
            r = a.reads(query, layer)
            want = [(k, w) for k, w in r.top(5, head=head) if w > 0]
            got = m.row(query)
            assert [w for _, w in got] == pytest.approx([w for _, w in want], abs=1e-6)
            every = dict(r.top(head=head))          # each key's weight (tied keys may swap at the cut)
            assert all(every[k] == pytest.approx(w, abs=1e-6) for k, w in got)
            assert float(m.sink[query]) == pytest.approx(r.mean_sink if head is None else float(r.sink[head]), abs=1e-6)
            assert all(k <= query for k, _ in got)
            assert all(bool(a.cached[layer, k]) for k, _ in got) or policy == "window"


def test_read_map_checks_its_arguments(bundle):
    model, tok = bundle
    a = analyze(model, tok, "A short text.", 0.3)
    for bad in (dict(layer=9), dict(layer=0, head=7), dict(layer=-1)):
        with pytest.raises(HAMInputError):
            a.read_map(**bad)


def test_guesses_are_the_models_top_predictions(bundle):
    model, tok = bundle
    a = analyze(model, tok, SAMPLE_TEXT, 0.5)
    assert a.guess_ids.shape == a.guess_probs.shape == (a.n_tokens, GUESSES)
    assert (a.guess_ids[0] == -1).all() and (a.guess_probs[0] == 0).all()     # nothing predicts token 0
    for t in range(1, a.n_tokens):
        ids, probs = a.guess_ids[t].tolist(), a.guess_probs[t].tolist()
        assert list(probs) == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        actual = math.exp(-a.lm_surprisal[t])
        if a.tokens[t].id in ids:                         # the same softmax as the loss
            assert probs[ids.index(a.tokens[t].id)] == pytest.approx(actual, rel=1e-4)
        else:
            assert actual <= probs[-1] + 1e-6


def test_kv_bytes_per_layer_add_up(bundle):
    model, tok = bundle
    a = analyze(model, tok, SAMPLE_TEXT, 0.4)
    per_layer = a.kv_bytes_layers
    assert len(per_layer) == model.cfg.n_layers and sum(per_layer) == a.kv_bytes_peak
    assert all(b <= a.kv_bytes_full // model.cfg.n_layers for b in per_layer)


def _map(layer, strongest, head=None):
    """A ReadMap whose query i reads strongest[i] = (key, weight) or None."""
    keys = np.array([[s[0] if s else -1] for s in strongest], dtype=np.int32)
    weights = np.array([[s[1] if s else 0.0] for s in strongest], dtype=np.float32)
    return ReadMap(layer, head, keys, weights, 1 - weights[:, 0])


def test_memorable_read_prefers_a_repeated_run():
    #        0  1  2  3  4  5  6  7  8  9 10 11 12 13 14
    ids = [5, 6, 7, 1, 2, 3, 4, 8, 9, 6, 7, 0, 0, 0, 9]
    T = len(ids)
    near = [None] * T
    near[13] = (12, 0.9)                                  # heavy but adjacent: context, not memory
    far = [None] * T
    far[14] = (0, 0.5)                                    # 14 tokens back, a different token
    repeat = [None] * T
    repeat[10] = (2, 0.3)                                 # "6 7" again: its earlier copy, run of 2
    repeat[9] = (1, 0.35)                                 # "6" again: run of 1
    maps = [_map(0, near), _map(1, far), _map(2, repeat)]
    pick = memorable_read(ids, maps)
    assert (pick.layer, pick.query, pick.key, pick.repeat) == (2, 10, 2, 2)
    assert repeat_length(ids, 10, 2) == 2 and repeat_length(ids, 14, 0) == 0
    pick = memorable_read(ids, maps[:2])                  # no repeat: the far read
    assert (pick.layer, pick.query, pick.key, pick.repeat) == (1, 14, 0, 0) and 14 - 0 >= FAR
    pick = memorable_read(ids, maps[:1])                  # only a near read
    assert (pick.query, pick.key) == (13, 12)
    assert memorable_read(ids, [_map(0, [None] * T)]) is None


def test_a_read_just_after_an_earlier_copy_counts_as_a_copy():
    """An induction read: the second "6 7" reads what followed the first one (key 3, not 2)."""
    #        0  1  2  3  4  5  6  7  8  9 10 11
    ids = [5, 6, 7, 1, 2, 3, 4, 8, 9, 6, 7, 0]
    T = len(ids)
    after = [None] * T
    after[10] = (3, 0.3)                                  # one token after the copy ending at 2
    far = [None] * T
    far[11] = (0, 0.6)                                    # heavier, but no copy
    assert copy_match(ids, 10, 3) == (2, 1) and copy_match(ids, 10, 2) == (2, 0)
    assert copy_match(ids, 10, 9) == (0, 0)               # adjacent: context, not a copy
    pick = memorable_read(ids, [_map(0, after), _map(1, far)])
    assert (pick.layer, pick.query, pick.key, pick.repeat, pick.offset) == (0, 10, 3, 2, 1)
    after[10] = (3, MIN_LOOKUP / 2)                       # too light to be a lookup: the far read wins
    assert memorable_read(ids, [_map(0, after), _map(1, far)]).query == 11


def test_one_heads_sharp_lookup_outranks_the_same_read_in_the_heads_mean():
    ids = [5, 6, 7, 1, 2, 3, 4, 8, 9, 6, 7, 0]
    T = len(ids)
    mean, sharp = [None] * T, [None] * T
    mean[10], sharp[10] = (3, 0.25), (3, 0.85)            # the mean dilutes one head's lookup
    pick = memorable_read(ids, [_map(0, mean), _map(0, sharp, head=2)])
    assert (pick.layer, pick.head, pick.query, pick.key, pick.weight) == (0, 2, 10, 3, pytest.approx(0.85))
    assert memorable_read(ids, [_map(0, mean)]).head is None


def test_memorable_read_on_a_model_is_a_real_read(bundle):
    model, tok = bundle
    a = analyze(model, tok, SAMPLE_TEXT, 0.3)
    maps = [a.read_map(layer) for layer in range(model.cfg.n_layers)]
    pick = memorable_read([t.id for t in a.tokens], maps)
    assert pick is not None and pick.key < pick.query and bool(a.cached[pick.layer, pick.key])
    assert maps[pick.layer].strongest(pick.query) == (pick.key, pytest.approx(pick.weight))
