"""Live lookups-lab trainings (app.engine.lookups_live): pause, resume, stop, the server-wide bound and its
queue, and a closed tab's training stopping by itself."""
from __future__ import annotations

import os
import time

import pytest

from app.engine import lookups_live
from app.engine.lookups_live import DONE, PAUSED, QUEUED, RUNNING, STOPPED, TURNED_AWAY, LiveTraining, Slots
from ham_core.training.lookups_lab import LabSettings

SHORT = LabSettings(steps=30, log_every=5, reads_every=10)

pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


def wait_for(condition, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


def test_a_training_runs_to_the_end_and_logs_every_step():
    t = LiveTraining(SHORT, place=Slots(1))
    wait_for(lambda: t.snapshot()[0] == DONE)
    state, steps, ahead = t.snapshot()
    assert [s.step for s in steps] == [0, 5, 10, 15, 20, 25, 30] and ahead == 0
    assert t.example and len(t.example) == 2 * SHORT.half
    assert t.place.counts() == (0, 0)          # its place is free again


def test_pause_gives_the_place_back_and_resume_continues():
    place = Slots(1)
    t = LiveTraining(LabSettings(steps=400, log_every=5), steps_per_s=200.0, place=place)
    wait_for(lambda: len(t.snapshot()[1]) >= 2)
    t.pause()
    wait_for(lambda: t.snapshot()[0] == PAUSED)
    n = len(t.snapshot()[1])
    time.sleep(0.3)
    assert len(t.snapshot()[1]) == n and place.counts() == (0, 0)
    t.resume()
    wait_for(lambda: len(t.snapshot()[1]) > n)
    assert t.snapshot()[0] in (RUNNING, DONE)
    t.stop()
    t.join()
    assert t.snapshot()[0] == STOPPED and place.counts() == (0, 0)


def test_the_bound_queues_the_second_training_until_the_first_ends():
    place = Slots(1)
    first = LiveTraining(LabSettings(steps=400), steps_per_s=100.0, place=place)
    wait_for(lambda: first.snapshot()[0] == RUNNING)
    second = LiveTraining(SHORT, place=place)
    third = LiveTraining(SHORT, place=place)
    wait_for(lambda: place.counts() == (1, 2))
    assert second.snapshot()[0] == QUEUED and second.snapshot()[2] == 0 and third.snapshot()[2] == 1
    assert second.snapshot()[1] == []                  # nothing computed while it waits
    first.stop()
    wait_for(lambda: third.snapshot()[0] == DONE)      # first come, first served, then the next
    assert second.snapshot()[0] == DONE


def test_a_full_queue_turns_a_training_away():
    place = Slots(1, max_queue=1)
    first = LiveTraining(LabSettings(steps=400), steps_per_s=100.0, place=place)
    wait_for(lambda: first.snapshot()[0] == RUNNING)
    waiting = LiveTraining(SHORT, place=place)
    wait_for(lambda: place.counts() == (1, 1))
    away = LiveTraining(SHORT, place=place)
    wait_for(lambda: away.snapshot()[0] == TURNED_AWAY)
    for t in (first, waiting):
        t.stop()
        t.join()


def test_a_training_nobody_watches_stops_by_itself(monkeypatch):
    monkeypatch.setattr(lookups_live, "ABANDONED_S", 0.3)
    place = Slots(1)
    t = LiveTraining(LabSettings(steps=2000), steps_per_s=100.0, place=place)
    t.join(timeout=30)                                   # no snapshot(): the page is gone
    assert not t._thread.is_alive() and t.state == STOPPED and place.counts() == (0, 0)


def test_the_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("HAM_LAB_LIVE_TRAININGS", "3")
    assert lookups_live.live_limit() == 3
    for bad in ("0", "-2", "many"):         # junk: the default, at least one
        monkeypatch.setenv("HAM_LAB_LIVE_TRAININGS", bad)
        assert lookups_live.live_limit() == max(1, (os.cpu_count() or 1) // 2)


def test_sessions_never_share_a_training():
    """Two sessions' trainings with different seeds log their own losses."""
    place = Slots(2)
    a, b = LiveTraining(SHORT, place=place), LiveTraining(LabSettings(seed=5, steps=30), place=place)
    wait_for(lambda: a.snapshot()[0] == DONE and b.snapshot()[0] == DONE)
    assert [s.loss for s in a.snapshot()[1]] != [s.loss for s in b.snapshot()[1]]
