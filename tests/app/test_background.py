"""The server's background queue of curve steps (app.engine.background): every text's first curve before
any is refined, a text no page shows loses its queued work, one failure stops nothing."""
from __future__ import annotations

import time

import pytest

from app import settings
from app.engine import background, curves, results, store
from tests.conftest import SAMPLE_TEXT


@pytest.fixture
def bundle(tiny_model_dir, monkeypatch):
    from app.engine import models

    monkeypatch.setenv("HAM_LAB_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("HAM_LAB_MAX_TOKENS", "96")
    monkeypatch.setenv("HAM_LAB_WORKERS", "1")
    monkeypatch.setenv("HAM_LAB_THREADS", "1")
    store.reset_results_store()
    yield models.get_bundle()
    store.reset_results_store()


def until_finished(queue, bundle, entries, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(queue.want(bundle, e).finished for e in entries):     # asking keeps them shown
            return
        time.sleep(0.05)
    pytest.fail("the queue did not finish")


def test_first_curves_of_every_text_before_any_refinement(bundle, monkeypatch):
    ran, texts = [], []
    run = curves.Step.run
    monkeypatch.setattr(curves.Step, "run", lambda self, p: ran.append(self.priority) or texts.append(self.key[2])
                        or run(self, p))
    queue, gate = background.curve_queue(), store.compute_gate()
    entries = [results.text_entry(bundle, SAMPLE_TEXT + f" Text number {i}.") for i in range(3)]
    with gate.slot(store.VIEW):                  # the one slot busy (a view) while three texts ask
        progress = [queue.want(bundle, e) for e in entries]
        assert not any(p.finished for p in progress)
        assert all(p.seconds(store.REFINE_POLICIES) >= p.seconds(store.CURVE) > 0 for p in progress)
    until_finished(queue, bundle, entries)
    assert ran[1:] == sorted(ran[1:])              # after the step already taken: most urgent first
    # each text's first curve (its two ends and FIRST_TAUS) is complete in turn, in the order asked
    first = len(curves.FIRST_TAUS) + 2
    assert ran.count(store.CURVE) == 3 * first
    order = [t for t, p in zip(texts, ran) if p == store.CURVE]
    assert order == sorted(order, key=[e.key[1] for e in entries].index)
    rows = curves.stored_policy_rows(entries[0])
    assert len(rows) == len(curves.POLICY_TAUS) * len(curves.EQUAL_MEMORY)
    assert len(curves.ham_rows(bundle, entries[0])) == len(settings.TAU_GRID)


def test_the_first_views_threshold_is_a_point_of_the_first_curve():
    """So a pasted text's first view (one forward, at the slider's default) is reused by its chart."""
    assert settings.DEFAULT_TAU in curves.FIRST_TAUS
    assert set(curves.FIRST_TAUS) <= set(settings.TAU_GRID)


def test_a_text_no_page_shows_loses_its_queued_steps(bundle, monkeypatch):
    queue, gate = background.curve_queue(), store.compute_gate()
    entry = results.text_entry(bundle, SAMPLE_TEXT)
    with gate.slot(store.VIEW):
        queue.want(bundle, entry)
        monkeypatch.setattr(background, "DROP_S", 0.05)
        time.sleep(0.2)                           # nobody asks again: the tab was closed
    time.sleep(1.0)
    # at most the steps the workers had already taken
    assert store.results_store().computed.get("result", 0) <= queue.workers


def test_a_failing_step_is_reported_and_the_rest_goes_on(bundle, monkeypatch):
    from ham_core.analysis import sweep

    real = sweep.equal_memory

    def fails_for_window(model, ids, tau, budget, policies, **kw):
        if policies == ["window"]:
            raise RuntimeError("window broke")
        return real(model, ids, tau, budget, policies, **kw)

    monkeypatch.setattr(sweep, "equal_memory", fails_for_window)
    queue = background.curve_queue()
    entry = results.text_entry(bundle, SAMPLE_TEXT)
    until_finished(queue, bundle, [entry])
    progress = queue.want(bundle, entry)
    assert "window broke" in progress.error
    rows = curves.stored_policy_rows(entry)
    assert {r["policy"] for r in rows} == set(curves.EQUAL_MEMORY) - {"window"}


def test_a_session_that_moves_to_another_text_drops_the_old_ones_steps(bundle):
    queue, gate = background.curve_queue(), store.compute_gate()
    old, new = (results.text_entry(bundle, SAMPLE_TEXT + suffix) for suffix in (" Old.", " New."))
    with gate.slot(store.VIEW):
        queue.want(bundle, old, viewer="session-a")
        queue.want(bundle, old, viewer="session-b")                          # shown in two tabs
        queue.want(bundle, new, viewer="session-a")
        assert not queue.want(bundle, old, viewer="session-b").finished      # b still shows it
        queue.want(bundle, new, viewer="session-b")                          # now nobody does
        assert queue.want(bundle, new, viewer="session-b").missing
    until_finished(queue, bundle, [new])
    assert len(curves.ham_rows(bundle, old)) < len(settings.TAU_GRID)         # its sweep was dropped


def test_the_curves_name_every_policy_compared_at_equal_memory():
    from ham_core.model.policies import EQUAL_MEMORY

    assert curves.EQUAL_MEMORY == EQUAL_MEMORY
