"""The memory-versus-quality curves of one text: HAM at the grid thresholds (one result each,
app.engine.results) and the other selection policies at HAM's memory there
(ham_core.analysis.sweep), kept in the server's shared store one threshold at a time, or read
from the rows shipped for a preset (app.engine.shipped).

A curve is built in steps, most useful first (`steps`): the text's first curve (the full and
empty cache, which are also the view's bought table and the chart's noise, and HAM at a few
thresholds), the other policies there, then the rest of the grid. The server's background queue (app.engine.background) runs them, so a page
draws whatever is stored and never waits for the whole sweep.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, Optional

import numpy as np

from app.engine import shipped
from app.engine.models import Bundle
from app.engine.results import TextEntry, grid_taus, result_for, stored_result
from app.engine.store import CURVE, POLICIES, REFINE, REFINE_POLICIES, compute_gate, key, results_store
from app.settings import TAU_GRID, TAU_OFF

# The first curve: with the full and empty cache, three thresholds spread over the memory range
# a calibrated model spans (docs/DESIGN.md, Thresholds: about 50%, 11% and 2% of the full cache
# on English text), the slider's default among them so the first view's forward is one of its
# points; the rest of the grid refines it. Five points are a curve a class can read, and each
# threshold fewer is thirty forwards fewer before the last of thirty pasted texts has its chart.
FIRST_TAUS = (0.5, 0.7, 1.0)
POLICY_TAUS = tuple(t for t in TAU_GRID if 0 < t <= 2)      # where the other policies are compared
# ham_core.model.policies.EQUAL_MEMORY, named here so a preset's page needs no torch (a test holds
# the two equal)
EQUAL_MEMORY = ("random", "window", "sinks", "hola")
HAM_CURVE, POLICY_ROWS = "ham_curve", "policies"     # the store's kinds of a shipped sweep's rows


def ham_point(bundle: Bundle, entry: TextEntry, tau: float, query: Optional[int] = None,
              layer: Optional[int] = None, priority: Optional[int] = REFINE) -> None:
    """HAM's result at one grid threshold. The reads of `query` and the read map of `layer` are
    kept with it, so moving the slider there never waits for them."""
    result_for(bundle, entry, grid_taus(bundle, tau), query, () if layer is None else (layer,), priority)


def policy_at(bundle: Bundle, entry: TextEntry, tau: float, policy: str,
              priority: Optional[int] = REFINE_POLICIES) -> Optional[dict]:
    """One other policy's row at HAM's per-layer memory at `tau` (HAM's result there first);
    None for a one-token text, which has no loss."""
    from ham_core.analysis.sweep import equal_memory

    def compute() -> Optional[dict]:
        ham = result_for(bundle, entry, grid_taus(bundle, tau), priority=priority)
        with compute_gate().slot(priority) if priority is not None else nullcontext():
            (row,) = equal_memory(bundle.model, entry.ids.astype(np.int64), tau, ham.kv_tokens.tolist(), [policy])
        return row.to_dict() if row.loss is not None else None

    return results_store().get_or_compute(_policy_key(entry, tau, policy), compute)


def _policy_key(entry: TextEntry, tau: float, policy: str) -> tuple:
    return key("policy_at", entry, float(tau), policy)


def _ham_key(bundle: Bundle, entry: TextEntry, tau: float) -> tuple:
    return key("result", entry, grid_taus(bundle, tau))


class Step:
    """One piece of a curve: `run()` fills the store under `key`; `forwards` of the text's length
    is what it costs (for the wait's estimate)."""

    def __init__(self, priority: int, key: tuple, forwards: int, run: Callable[[Optional[int]], object]):
        self.priority, self.key, self.forwards, self._run = priority, key, forwards, run

    def run(self, priority: Optional[int]) -> None:
        self._run(priority)


def steps(bundle: Bundle, entry: TextEntry, query: Optional[int] = None, layer: Optional[int] = None) -> list:
    """What is still missing of this text's curves, most useful first: a list of Step."""
    ready = shipped_sweep(bundle, entry)
    store, out = results_store(), []

    def ham(priority: int, tau: float) -> None:
        name = _ham_key(bundle, entry, tau)
        if name not in store:
            out.append(Step(priority, name, 1, lambda p: ham_point(bundle, entry, tau, query, layer, p)))

    def others(priority: int, tau: float) -> None:
        for policy in EQUAL_MEMORY:             # one forward a step: a view waits for one at most
            name = _policy_key(entry, tau, policy)
            if name not in store:
                out.append(Step(priority, name, 1, lambda p, policy=policy: policy_at(bundle, entry, tau, policy, p)))

    # The two ends go with the text's first curve, at its rank: with thirty texts queued, each
    # text's chart is complete in turn, rather than every text's ends before anyone's curve.
    for tau in (0.0, TAU_OFF):
        ham(CURVE, tau)
    if not ready:
        for tau in FIRST_TAUS:
            ham(CURVE, tau)
        for tau in FIRST_TAUS:
            others(POLICIES, tau)
        for tau in TAU_GRID:
            if tau not in FIRST_TAUS and tau not in (0.0, TAU_OFF):
                ham(REFINE, tau)
        for tau in POLICY_TAUS:
            if tau not in FIRST_TAUS:
                others(REFINE_POLICIES, tau)
    return out


def prepare(bundle: Bundle, entry: TextEntry, query: Optional[int] = None, layer: Optional[int] = None) -> None:
    """The whole HAM sweep now, in this thread (a result at every grid threshold), once per text
    and model on this server; a preset whose sweep was shipped (app.engine.shipped) skips it."""
    if shipped_sweep(bundle, entry):
        return
    for tau in TAU_GRID:
        ham_point(bundle, entry, tau, query, layer)


def shipped_sweep(bundle: Bundle, entry: TextEntry) -> bool:
    """Put the rows shipped for this text (app.engine.shipped) in the store, when there are rows
    computed with this very model, text and threshold grid; False when there are none."""
    store = results_store()
    if key(HAM_CURVE, entry) in store and key(POLICY_ROWS, entry) in store:
        return True
    rows = shipped.lookup_sweep(bundle.directory, entry.read_text, TAU_GRID) if bundle.trained else None
    if rows is None:
        return False
    store.put(key(POLICY_ROWS, entry), rows.policies)
    store.put(key(HAM_CURVE, entry), rows.ham)
    return True


def ham_rows(bundle: Bundle, entry: TextEntry) -> list:
    """The HAM curve so far: one row per stored grid threshold (policy, tau, kv_fraction,
    kv_bytes_peak, loss)."""
    found = results_store().get(key(HAM_CURVE, entry))
    if found is not None:
        return found
    rows = []
    for tau in TAU_GRID:
        r = stored_result(bundle, entry, grid_taus(bundle, tau))
        if r is not None and r.loss == r.loss:
            rows.append(dict(policy="ham", tau=tau, kv_fraction=r.kv_fraction, kv_bytes_peak=r.kv_bytes_peak,
                             loss=r.loss))
    return rows


def stored_policy_rows(entry: TextEntry) -> Optional[list]:
    """The other policies' rows this server holds for the text (shipped, or computed so far at
    some thresholds), else None."""
    store = results_store()
    found = store.get(key(POLICY_ROWS, entry))
    if found is not None:
        return found
    found = [store.get(_policy_key(entry, tau, policy)) for policy in EQUAL_MEMORY for tau in POLICY_TAUS]
    rows = [row for row in found if row is not None]
    return rows or None
