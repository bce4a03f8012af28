"""What the sessions of one server share in memory: the store of computed results (bounded by
memory, one computation per key, with the one helper that builds its keys) and the gate that
bounds how many model computations run at once. The pasted texts behind links are shared on
disk (app.session.text_store).

A classroom runs one server for thirty students, so nothing here may let one session see
another's text: keys are the full SHA-256 of the text (and of the model), never a short prefix.

Settings (app.settings): cache_mb, the store's memory budget; workers, the computations run at
once (default: CPU cores / torch threads).
"""
from __future__ import annotations

import hashlib
import heapq
import logging
import os
import sys
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import fields, is_dataclass
from typing import Callable, Hashable, Optional

import numpy as np

from app import settings
from app.engine.once import ProcessWide, reset_group

log = logging.getLogger("ham_lab.shared")

KEY_HEX = 64                  # a link's text key: the full SHA-256, so no two texts can share one


def text_key(text: str) -> str:
    """The full SHA-256 of a text (hex): its identity in every shared store and in links."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def key(kind: str, entry, *rest) -> tuple:
    """The store's key of a value of `kind` ("result", "reads", "policy_at", ...) for one text
    (entry: a TextEntry, whose key names the model, the text's SHA-256 and the token limit), and
    what else tells such values apart (thresholds, a query, a layer). The one way keys are built,
    so two callers asking for the same value meet in the store."""
    return (kind,) + tuple(entry.key) + rest


def approx_bytes(obj, _depth: int = 0) -> int:
    """Memory held by a stored value, roughly: arrays and tensors exactly, Python containers
    and strings by their size; an object with an `nbytes` attribute reports its own."""
    if _depth > 6:
        return 64
    torch = sys.modules.get("torch")      # no tensor exists before torch is imported
    if isinstance(obj, np.ndarray) or (torch is not None and isinstance(obj, torch.Tensor)):
        return int(obj.nbytes) + 128
    own = getattr(obj, "nbytes", None)
    if isinstance(own, int):
        return own
    if isinstance(obj, (str, bytes, int, float, bool)) or obj is None:
        return sys.getsizeof(obj)
    if isinstance(obj, dict):
        return 64 + sum(approx_bytes(k, _depth + 1) + approx_bytes(v, _depth + 1) + 16 for k, v in obj.items())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return 56 + sum(approx_bytes(x, _depth + 1) + 8 for x in obj)
    if is_dataclass(obj):
        return 64 + sum(approx_bytes(getattr(obj, f.name), _depth + 1) for f in fields(obj))
    return sys.getsizeof(obj)


class _Flight:
    """One computation in progress; the other callers of its key wait on `done`."""

    def __init__(self):
        self.done = threading.Event()
        self.value = None
        self.error: Optional[BaseException] = None


class BoundedStore:
    """A least-recently-used map sized by bytes, safe for many threads.

    `get_or_compute(key, compute)`: a caller that finds the key gets the stored value; the first
    caller of a missing key computes it while later callers of that key wait for the same
    result (one computation however many sessions ask). Values are immutable once stored, so
    each is measured once. A value larger than the whole budget is returned but not kept.
    """

    def __init__(self, budget_bytes: int):
        self.budget = int(budget_bytes)
        self._items: "OrderedDict[Hashable, tuple]" = OrderedDict()   # key -> (value, bytes)
        self._flights: dict = {}
        self._lock = threading.Lock()
        self.bytes = 0
        self.computed: dict = {}        # what was computed, by kind (the first item of a tuple key)
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self._items

    def pending(self, key) -> bool:
        """Stored, or being computed right now."""
        with self._lock:
            return key in self._items or key in self._flights

    def get(self, key, default=None):
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key][0]

    def put(self, key, value, size: Optional[int] = None) -> bool:
        """Store `value`, evicting the least recently used values to make room."""
        size = approx_bytes(value) if size is None else int(size)
        with self._lock:
            return self._insert(key, value, size, evict=True)

    def offer(self, key, value, size: Optional[int] = None) -> bool:
        """Store `value` only if it fits beside what is stored (nice to keep, not worth evicting for)."""
        size = approx_bytes(value) if size is None else int(size)
        with self._lock:
            return self._insert(key, value, size, evict=False)

    def _insert(self, key, value, size: int, evict: bool) -> bool:
        if key in self._items:
            self.bytes -= self._items.pop(key)[1]
        if size > self.budget or (not evict and self.bytes + size > self.budget):
            return False
        while self.bytes + size > self.budget and self._items:
            _, (_, freed) = self._items.popitem(last=False)
            self.bytes -= freed
            self.evicted += 1
        self._items[key] = (value, size)
        self.bytes += size
        return True

    def get_or_compute(self, key, compute: Callable[[], object]):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
            flight = self._flights.get(key)
            owner = flight is None
            if owner:
                flight = self._flights[key] = _Flight()
        if not owner:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.value
        try:
            value = compute()
        except BaseException as exc:
            flight.error = exc
            with self._lock:
                del self._flights[key]
            flight.done.set()
            raise
        size = approx_bytes(value)
        with self._lock:
            self._insert(key, value, size, evict=True)
            del self._flights[key]
            kind = key[0] if isinstance(key, tuple) and key else "value"
            self.computed[kind] = self.computed.get(kind, 0) + 1
        flight.value = value
        flight.done.set()
        log.info("computed %s (%.1f KB; store %.1f of %.0f MB, %d values)", _describe(key), size / 1024,
                 self.bytes / 2 ** 20, self.budget / 2 ** 20, len(self._items))
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0


def _describe(key) -> str:
    if isinstance(key, tuple):
        return " ".join(k[:12] if isinstance(k, str) and len(k) == KEY_HEX else str(k) for k in key)
    return str(key)


def _new_store() -> BoundedStore:
    return BoundedStore(int(settings.current().cache_mb * 2 ** 20))


_STORE = ProcessWide(_new_store, group="results")


def results_store() -> BoundedStore:
    """The process-wide result store (its budget read when it is first used)."""
    return _STORE.get()


def reset_results_store() -> None:
    """Forget the result store, the gate and the background queue that fills the store (tests,
    or after their settings changed): the "results" group, the queue first."""
    reset_group("results")


# Who waits for a computation, most urgent first: a view someone is looking at; the rest of that
# view (full cache and no cache: the bought table, the chart's noise); a text's first curve (a few
# thresholds); the other policies on it; the rest of the threshold grid; the policies there.
VIEW, VIEW_REST, CURVE, POLICIES, REFINE, REFINE_POLICIES = range(6)


class ComputeGate:
    """At most `slots` model computations at once, the most urgent waiting one first.

    Thirty sessions' sweeps all running at once only share the same cores slower, and each
    holds its own activations (the memory peak grows with the number of sessions), so
    computations queue for a slot by priority (VIEW first; equal priorities in arrival order).
    """

    def __init__(self, slots: int):
        self.slots = max(1, int(slots))
        self._busy = 0
        self._waiting: list = []          # heap of (priority, arrival)
        self._arrivals = 0
        self._cond = threading.Condition()

    @contextmanager
    def slot(self, priority: int = VIEW):
        with self._cond:
            me = (int(priority), self._arrivals)
            self._arrivals += 1
            heapq.heappush(self._waiting, me)
            try:
                while self._busy >= self.slots or self._waiting[0] != me:
                    self._cond.wait()
            finally:
                self._waiting.remove(me)
                heapq.heapify(self._waiting)
                self._cond.notify_all()
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _new_gate() -> ComputeGate:
    import torch      # the gate is first asked for when a model computation starts

    workers = settings.current().workers
    return ComputeGate(workers if workers is not None else max(1, cores() // max(1, torch.get_num_threads())))


_GATE = ProcessWide(_new_gate, group="results")


def compute_gate() -> ComputeGate:
    """The process-wide gate (settings' workers slots, default cores / torch threads)."""
    return _GATE.get()
