"""The server's background queue: the curves of the texts being shown (app.engine.curves' steps),
computed between views, most useful step first, in one queue for every session.

A page asks for its text's curves with `want` on each run (and while it polls for them): the
missing steps join the queue, and a worker takes the most urgent step of any text (by priority,
then by which text asked first), so thirty pasted texts each get their first curve before any
is refined. A text no page has asked about for DROP_S seconds loses its queued steps (a closed
tab, or a student who pasted another text). A step that runs the model takes a compute slot
(app.engine.store) at its priority, so a view someone is waiting for still goes first.
"""
from __future__ import annotations

import atexit
import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from app.engine.once import ProcessWide
from app.engine.store import cores, results_store

log = logging.getLogger("ham_lab.background")

DROP_S = 20.0                  # a text unasked-for this long loses its queued steps
FIRST_GUESS_S_PER_TOKEN = 4e-4  # one forward's cost per token until one is measured (~0.4 s for 1,024)
MAX_VIEWERS = 10_000            # sessions whose last text is remembered
MAX_FAILED = 10_000             # failed steps remembered (so they are not retried on every poll)


@dataclass
class Progress:
    """How far a text's curves are: steps still missing at each priority, and the seconds until
    the text's steps of a priority (and every more urgent one) are done, by the queue's estimate."""

    missing: dict = field(default_factory=dict)      # priority -> steps queued or running
    eta: dict = field(default_factory=dict)          # priority -> seconds
    error: str = ""

    def done(self, priority: int) -> bool:
        return not any(n for p, n in self.missing.items() if p <= priority)

    def seconds(self, priority: int) -> float:
        return max([s for p, s in self.eta.items() if p <= priority] or [0.0])

    @property
    def finished(self) -> bool:
        return not any(self.missing.values())


class _Text:
    def __init__(self, tokens: int, arrival: int):
        self.tokens, self.arrival = tokens, arrival
        self.queued: list = []           # curves.Step, most urgent first
        self.running: dict = {}          # key -> Step
        self.viewers: dict = {}          # who asked (a session id, or None) -> when, time.monotonic()
        self.error = ""

    def shown(self, now: float) -> bool:
        return any(now - when <= DROP_S for when in self.viewers.values())


class CurveQueue:
    """Worker threads (one per compute slot) running the queued steps of every text."""

    def __init__(self, workers: int):
        self._texts: dict = {}                       # TextEntry.key -> _Text
        self._cond = threading.Condition()
        self._arrivals = itertools.count()
        self.workers = max(1, int(workers))
        self.s_per_token = FIRST_GUESS_S_PER_TOKEN
        self._stopped = False
        self._failed: dict = {}                      # step key -> what went wrong
        self._watching: dict = {}                    # session id -> the text key it shows
        self._threads = [threading.Thread(target=self._work, name=f"ham-lab-curves-{i}", daemon=True)
                         for i in range(self.workers)]
        for thread in self._threads:
            thread.start()

    def want(self, bundle, entry, query: Optional[int] = None, layer: Optional[int] = None,
             viewer: Optional[str] = None) -> Progress:
        """Queue what is missing of this text's curves (the reads of `query` and the map of
        `layer` are kept at each threshold), mark the text as shown to `viewer` (a session: the
        text it showed before, if no one else shows it, loses its queued steps at once), and say
        how far it is."""
        from app.engine import curves

        missing = curves.steps(bundle, entry, query, layer)            # store lookups only
        with self._cond:
            if viewer is not None and self._watching.get(viewer, entry.key) != entry.key:
                before = self._texts.get(self._watching[viewer])
                if before is not None:
                    before.viewers.pop(viewer, None)
                    if not before.shown(time.monotonic()):
                        before.queued = []
            if viewer is not None:
                self._watching.pop(viewer, None)
                self._watching[viewer] = entry.key               # the newest last
                while len(self._watching) > MAX_VIEWERS:         # sessions long gone
                    del self._watching[next(iter(self._watching))]
            text = self._texts.get(entry.key)
            if text is None and missing:
                text = self._texts[entry.key] = _Text(len(entry.ids), next(self._arrivals))
            if text is None:
                return Progress()
            text.viewers[viewer] = time.monotonic()
            text.queued = [s for s in missing if s.key not in text.running and s.key not in self._failed]
            text.error = text.error or next((self._failed[s.key] for s in missing if s.key in self._failed), "")
            self._cond.notify_all()
            return self._progress(text)

    def _progress(self, text: _Text) -> Progress:
        out = Progress(error=text.error)
        for step in text.queued + list(text.running.values()):
            out.missing[step.priority] = out.missing.get(step.priority, 0) + 1
        # what goes before this text's last step of a priority: every queued step of a more urgent
        # rank, of any text; a running step counts half (it is under way). One pass over the
        # queue (thirty pages poll it every few seconds), summed by rank.
        by_rank: dict = {}
        running = 0.0
        for t in self._texts.values():
            for s in t.queued:
                rank = (s.priority, t.arrival)
                by_rank[rank] = by_rank.get(rank, 0) + s.forwards * t.tokens
            running += sum(0.5 * s.forwards * t.tokens for s in t.running.values())
        for priority in out.missing:
            mine = (priority, text.arrival)
            work = running + sum(w for rank, w in by_rank.items() if rank <= mine)
            out.eta[priority] = work * self.s_per_token / self.workers
        return out

    def _next(self):
        """The most urgent queued step of any text still shown, or None; drops the others."""
        now, best = time.monotonic(), None
        for key, text in list(self._texts.items()):
            if not text.shown(now):
                text.queued = []
            if not text.queued:
                if not text.running:
                    del self._texts[key]
                continue
            rank = (text.queued[0].priority, text.arrival)
            if best is None or rank < best[0]:
                best = (rank, text)
        if best is None:
            return None
        text = best[1]
        step = text.queued.pop(0)
        text.running[step.key] = step
        return text, step

    def stop(self) -> None:
        """Drop every queued step; the workers end after the step they are running."""
        with self._cond:
            self._stopped = True
            self._texts.clear()
            self._cond.notify_all()

    def close(self, timeout: float = 30.0) -> None:
        """stop(), then wait for the workers to end their running step."""
        self.stop()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def _work(self) -> None:
        while True:
            store = results_store()
            with self._cond:
                pick = None if self._stopped else self._next()
                while pick is None:
                    if self._stopped:
                        return
                    self._cond.wait(timeout=DROP_S)
                    pick = self._next()
            text, step = pick
            took = None
            try:
                if not store.pending(step.key):         # a view may have computed it meanwhile
                    # the step takes a compute slot at its priority only if it runs the model (a
                    # preset's shipped results need neither a slot nor torch)
                    start = time.perf_counter()
                    step.run(step.priority)
                    took = time.perf_counter() - start
            except Exception as exc:  # noqa: BLE001 - one text's failure must not stop the queue
                log.warning("a curve step failed: %s", exc, exc_info=True)
                text.error = f"{type(exc).__name__}: {exc}"
                with self._cond:
                    if len(self._failed) > MAX_FAILED:
                        self._failed.clear()
                    self._failed[step.key] = text.error     # not queued again
            finally:
                with self._cond:
                    text.running.pop(step.key, None)
                    if took is not None:
                        measured = took / max(1, step.forwards * text.tokens)
                        self.s_per_token = 0.8 * self.s_per_token + 0.2 * measured
                    self._cond.notify_all()


# one worker per core; the compute gate bounds how many run the model at once
_QUEUE = ProcessWide(lambda: CurveQueue(cores()), close=CurveQueue.close, group="results")
# A daemon worker still inside torch when the interpreter finalizes aborts the process
# ("terminate called without an active exception"): at exit the queue is closed like a reset.
atexit.register(_QUEUE.reset)


def curve_queue() -> CurveQueue:
    """The process-wide queue, one worker per core."""
    return _QUEUE.get()


def reset_curve_queue() -> None:
    """Close the queue (app.engine.store.reset_results_store does, with the store it fills)."""
    _QUEUE.reset()
