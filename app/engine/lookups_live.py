"""Live lookups-lab trainings: one per session, each on its own thread, a bounded number at once.

A session's LiveTraining is kept in its session state and is the only thing its page reads, so
one session's start, pause or reset never changes another's view. What sessions share is the
server-wide `Slots`: at most `limit` trainings compute at once (HAM_LAB_LIVE_TRAININGS, default
half the CPU cores, at least 1: app.settings); the others wait in a first-come queue, and the page says how
many are ahead and shows the recorded run meanwhile. A paused training gives its slot back and
queues again on resume. A training whose page has stopped asking for it (the tab was closed)
stops by itself after ABANDONED_S, so a closed tab never holds a slot.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, List, Optional

from app import settings as app_settings
from app.engine.once import ProcessWide
from ham_core.training.lookups_lab import (SYMBOLS, LabSettings, LabStep, example_ids, find_jump, lab_config,  # noqa: F401
                                           load_run, right_key, symbols, train_lookups)

# What the page draws a run with (the task's symbols, a run's jump, the right key): the lab's
# own names, through this door.
__all__ = ["SYMBOLS", "LabSettings", "LabStep", "find_jump", "lab_config", "load_run", "right_key", "symbols"]

ABANDONED_S = 30.0        # no look from the page for this long: the training stops
MAX_QUEUE = 64            # more waiting than this: new trainings are turned away (the replay instead)
QUEUED, RUNNING, PAUSED, DONE, STOPPED, FAILED, TURNED_AWAY = (
    "queued", "running", "paused", "done", "stopped", "failed", "turned away")


def live_limit() -> int:
    """Live trainings computing at once on this server."""
    return app_settings.current().live_trainings


class Slots:
    """A first-come queue in front of `limit` places."""

    def __init__(self, limit: int, max_queue: int = MAX_QUEUE):
        self.limit, self.max_queue = limit, max_queue
        self._cond = threading.Condition()
        self._queue: deque = deque()
        self._holders: set = set()

    def acquire(self, who, cancelled: Callable[[], bool]) -> Optional[bool]:
        """Block until `who` holds a place: True; False when cancelled() turned true while
        waiting; None when the queue was full."""
        with self._cond:
            if len(self._queue) >= self.max_queue:
                return None
            self._queue.append(who)
            try:
                while not (self._queue[0] is who and len(self._holders) < self.limit):
                    if cancelled():
                        return False
                    self._cond.wait(0.2)
                self._queue.popleft()
                self._holders.add(who)
                return True
            finally:
                if who in self._queue:
                    self._queue.remove(who)
                self._cond.notify_all()

    def release(self, who) -> None:
        with self._cond:
            self._holders.discard(who)
            self._cond.notify_all()

    def ahead_of(self, who) -> int:
        """How many wait in front of `who` (0 when it holds a place or is not queued)."""
        with self._cond:
            return self._queue.index(who) if who in self._queue else 0

    def counts(self) -> tuple[int, int]:
        """(computing, waiting)."""
        with self._cond:
            return len(self._holders), len(self._queue)


_SLOTS = ProcessWide(lambda: Slots(live_limit()))


def slots() -> Slots:
    """The server's one Slots (made on first use, with live_limit())."""
    return _SLOTS.get()


class LiveTraining:
    """One session's run of train_lookups on a daemon thread. The page polls snapshot()."""

    def __init__(self, settings: LabSettings, steps_per_s: Optional[float] = None, place: Optional[Slots] = None):
        """steps_per_s: the pace (None: as fast as the CPU goes)."""
        self.settings, self.steps_per_s = settings, steps_per_s
        self.place = place or slots()
        self.example = example_ids(settings)[0].tolist()     # the sequence whose reads are drawn
        self.steps: List[LabStep] = []
        self.state, self.error = QUEUED, ""
        self.started_at: Optional[float] = None
        self.compute_s = 0.0                       # seconds spent training (not paused, not queued)
        self._lock = threading.Lock()
        self._resume = threading.Event()
        self._resume.set()
        self._stop = threading.Event()
        self.last_seen = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"lookups-lab-{settings.seed}", daemon=True)
        self._thread.start()

    # what the page calls
    def snapshot(self) -> tuple[str, List[LabStep], int]:
        """(state, the logged steps so far, trainings queued ahead); counts as a look from the page."""
        self.last_seen = time.monotonic()
        with self._lock:
            return self.state, list(self.steps), self.place.ahead_of(self)

    def pause(self) -> None:
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    def stop(self) -> None:
        self._stop.set()
        self._resume.set()

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)

    # the thread
    def _abandoned(self) -> bool:
        return self._stop.is_set() or time.monotonic() - self.last_seen > ABANDONED_S

    def _set(self, state: str) -> None:
        with self._lock:
            if self.state not in (DONE, STOPPED, FAILED, TURNED_AWAY):
                self.state = state

    def _hold(self) -> bool:
        """Queue for a place; False when the training should end instead."""
        self._set(QUEUED)
        got = self.place.acquire(self, self._abandoned)
        if got is None:
            self._set(TURNED_AWAY)
        if not got:
            return False
        self._set(RUNNING)
        return True

    def _run(self) -> None:
        holding = False
        try:
            holding = self._hold()
            if not holding:
                return
            self.started_at = time.monotonic()
            tick = time.monotonic()
            for record in train_lookups(self.settings):
                with self._lock:
                    self.steps.append(record)
                now = time.monotonic()
                self.compute_s += now - tick
                if self.steps_per_s:                       # the pace a teacher chose
                    time.sleep(max(0.0, self.settings.log_every / self.steps_per_s - (now - tick)))
                if not self._resume.is_set():             # paused: give the place back meanwhile
                    self.place.release(self)
                    holding = False
                    self._set(PAUSED)
                    while not self._resume.wait(0.2):
                        if self._abandoned():
                            break
                    if self._abandoned() or not self._hold():
                        break
                    holding = True
                if self._abandoned():
                    break
                tick = time.monotonic()
            else:
                self._set(DONE)
            self._set(STOPPED)
        except Exception as exc:  # noqa: BLE001 - shown on the page; the server keeps running
            with self._lock:
                self.state, self.error = FAILED, f"{type(exc).__name__}: {exc}"
        finally:
            if holding:
                self.place.release(self)
