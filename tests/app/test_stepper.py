"""The step-through's tape: any sequence of actions leaves a state equal to reading the text
afresh up to the cursor (ham_core.model.decode), and a failed read never leaves it inconsistent."""
from __future__ import annotations

import random

import numpy as np
import pytest

from app.engine.stepper import Tape
from ham_core.model import decode

pytestmark = pytest.mark.usefixtures("one_thread")


def fresh(model, ids, tau, n):
    """Surprise [n, L, H], cached [n, L] and sizes after reading the first n tokens from scratch."""
    mem = decode.start(model, tau)
    rows = [decode.step(model, mem, t) for t in ids[:n]]
    return (np.stack([r.surprise.numpy() for r in rows]) if rows else None,
            np.stack([r.cached.numpy() for r in rows]) if rows else None, mem.cache_sizes(), mem.kv_bytes())


def test_random_clicks_match_a_fresh_read(tiny_model):
    ids = [random.Random(0).randrange(tiny_model.cfg.vocab_size) for _ in range(40)]
    tape = Tape(tiny_model, ids, 0.4, key="k")
    rng = random.Random(1)
    actions = [lambda: tape.forward(1), lambda: tape.forward(10), tape.back, tape.rewind, tape.toggle_play, tape.tick]
    for _ in range(120):
        rng.choice(actions)()
        f = tape.frame()
        assert 0 <= f.position <= len(ids) and f.surprise.shape[0] == f.cached.shape[0] == f.position
        assert not (f.playing and f.position == len(ids))
    for position in (0, 1, 17, 40):
        tape.rewind()
        tape.forward(position)
        f = tape.frame()
        surprise, cached, sizes, kv_bytes = fresh(tiny_model, ids, 0.4, position)
        assert f.cache_sizes() == sizes and f.kv_bytes == kv_bytes
        if position:
            np.testing.assert_allclose(f.surprise, surprise, atol=1e-6)
            assert (f.cached == cached).all()


def test_a_failed_read_leaves_a_consistent_tape(tiny_model):
    ids = list(range(12))
    calls = {"n": 0}

    def flaky(model, mem, token):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("interrupted")
        return decode.step(model, mem, token)

    tape = Tape(tiny_model, ids, 0.3, key="k", step=flaky)
    with pytest.raises(RuntimeError):
        tape.forward(10)
    assert tape.frame().position == 0 and tape.cursor <= 4
    tape.forward(12)                      # the memory is rebuilt from the log, then read on
    f = tape.frame()
    surprise, cached, sizes, _ = fresh(tiny_model, ids, 0.3, 12)
    np.testing.assert_allclose(f.surprise, surprise, atol=1e-6)
    assert f.cache_sizes() == sizes


def test_play_stops_at_the_end(tiny_model):
    tape = Tape(tiny_model, [1, 2, 3], 0.5, key="k")
    tape.toggle_play()
    for _ in range(5):
        tape.tick()
    f = tape.frame()
    assert f.position == 3 and not f.playing
    tape.toggle_play()                    # at the end, Play does not start again
    assert not tape.playing
