"""What sessions share in memory (app.engine.store, app.engine.results): a store bounded by memory that
computes each key once however many sessions ask."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from app import settings
from app.engine import store as shared
from app.engine.store import BoundedStore, approx_bytes


def test_store_keeps_within_its_budget_and_evicts_least_recently_used():
    store = BoundedStore(10_000)
    for i in range(5):
        store.put(("x", i), np.zeros(2_000 // 8 * 8, dtype=np.uint8))     # ~2.1 KB each
    assert store.bytes <= 10_000 and len(store) == 4 and ("x", 0) not in store
    store.get(("x", 1))                                                   # now the most recent
    store.put(("x", 5), np.zeros(2_000, dtype=np.uint8))
    assert ("x", 1) in store and ("x", 2) not in store
    assert not store.put(("big",), np.zeros(20_000, dtype=np.uint8))      # larger than the budget
    assert ("big",) not in store and store.bytes <= 10_000


def test_offer_never_evicts():
    store = BoundedStore(5_000)
    store.put(("a",), np.zeros(3_000, dtype=np.uint8))
    assert not store.offer(("b",), np.zeros(3_000, dtype=np.uint8))
    assert ("a",) in store and ("b",) not in store
    assert store.offer(("c",), np.zeros(1_000, dtype=np.uint8))


def test_concurrent_callers_of_one_key_share_one_computation():
    store = BoundedStore(1 << 20)
    calls, started = [], threading.Event()

    def compute():
        calls.append(1)
        started.set()
        time.sleep(0.2)                    # long enough that every thread arrives while it runs
        return np.arange(10)

    got = []
    threads = [threading.Thread(target=lambda: got.append(store.get_or_compute(("k",), compute))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(got) == 8 and all(g is got[0] for g in got)
    assert store.computed == {"k": 1}


def test_a_failed_computation_reaches_every_waiter_and_is_not_stored():
    store = BoundedStore(1 << 20)

    def fail():
        time.sleep(0.1)
        raise ValueError("bad text")

    errors = []

    def call():
        try:
            store.get_or_compute(("k",), fail)
        except ValueError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == ["bad text"] * 4 and ("k",) not in store
    assert store.get_or_compute(("k",), lambda: 7) == 7                  # a later call tries again


def test_compute_gate_bounds_concurrency_and_serves_views_first():
    from app.engine.store import REFINE, VIEW, VIEW_REST, ComputeGate

    gate, lock = ComputeGate(2), threading.Lock()
    running, most, order = [0], [0], []

    def work(name, priority, hold):
        with gate.slot(priority):
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
                order.append(name)
            time.sleep(hold)
            with lock:
                running[0] -= 1

    first = [threading.Thread(target=work, args=(f"busy{i}", REFINE, 0.3)) for i in range(2)]
    for t in first:
        t.start()
    time.sleep(0.05)                                     # both slots taken
    later = []
    for name, priority in (("sweep", REFINE), ("sweep2", REFINE), ("rest", VIEW_REST), ("view", VIEW)):
        later.append(threading.Thread(target=work, args=(name, priority, 0.01)))
        later[-1].start()
        time.sleep(0.05)
    for t in first + later:
        t.join()
    assert most[0] == 2
    # arrived later, served first; equal priorities in arrival order
    assert order[2:] == ["view", "rest", "sweep", "sweep2"]


def test_approx_bytes_counts_arrays_and_text():
    assert approx_bytes(np.zeros(1000, dtype=np.float32)) >= 4000
    assert approx_bytes(["a" * 1000] * 3) >= 3000
    assert approx_bytes({"x": np.zeros(10)}) < 1000


def test_text_keys_are_full_sha256():
    key = shared.text_key("a text")
    assert len(key) == 64 and key == shared.text_key("a text") and key != shared.text_key("a text.")


# The result store as the app uses it ---------------------------------------------------------

@pytest.fixture
def bundle(tiny_model_dir, monkeypatch):
    from app.engine import models

    monkeypatch.setenv("HAM_LAB_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("HAM_LAB_MAX_TOKENS", "128")
    shared.reset_results_store()
    yield models.get_bundle()
    shared.reset_results_store()


def test_sessions_on_one_text_run_each_threshold_once(bundle):
    from app.engine import curves, results
    from tests.conftest import SAMPLE_TEXT

    def session(token):
        entry = results.text_entry(bundle, SAMPLE_TEXT)
        results.result_for(bundle, entry, results.grid_taus(bundle, settings.DEFAULT_TAU), token)
        curves.prepare(bundle, entry, query=token)

    threads = [threading.Thread(target=session, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store = shared.results_store()
    assert store.computed["result"] == len(settings.TAU_GRID) and store.computed["text"] == 1
    assert "context" not in store.computed                              # q and k were kept, no re-read


def test_kept_results_hold_no_per_token_vectors(bundle):
    """Per threshold the store keeps [L, T, H] surprises and gates and [L, T] marks, not [T, d] tensors."""
    from app.engine import results
    from tests.conftest import SAMPLE_TEXT

    entry = results.text_entry(bundle, SAMPLE_TEXT)
    r = results.result_for(bundle, entry, results.grid_taus(bundle, 0.5))
    L, T, H = r.surprise.shape
    guesses = 2 * 4 * T * 5                                             # the model's top 5 per token
    assert r.nbytes <= 256 + 2 * 4 * L * T * H + 4 * L * T + L * T + 4 * T + 8 * L + guesses
    assert approx_bytes(entry) < 200 * T                                 # tokens and offsets, once per text


def test_reads_after_the_context_was_evicted_are_recomputed_exactly(bundle):
    from app.engine import results
    from tests.conftest import SAMPLE_TEXT

    entry = results.text_entry(bundle, SAMPLE_TEXT)
    taus = results.grid_taus(bundle, 0.3)
    r = results.result_for(bundle, entry, taus)
    first = r.reads(40, 1), r.reads(40, 1, head=1)
    shared.reset_results_store()                                        # everything forgotten
    again = results.result_for(bundle, entry, taus)
    assert (again.reads(40, 1), again.reads(40, 1, head=1)) == first
    assert np.array_equal(again.surprise, r.surprise)
