"""The memory-versus-quality curves of one text: HAM at every grid threshold (one result each,
app.results) and the other selection policies at HAM's memory (ham_core.analysis.sweep), kept in
the server's shared store, or read from the rows shipped for a preset (app.precompute).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from app import precompute
from app.engine import Bundle, model_dir
from app.results import TAU_GRID, ShowProgress, TextEntry, grid_taus, result_for, tau_label
from app.shared import compute_gate, results_store


def prepare(bundle: Bundle, entry: TextEntry, progress: Optional[ShowProgress] = None,
            query: Optional[int] = None, layer: Optional[int] = None) -> None:
    """The HAM sweep: a result at every grid threshold, once per text and model on this server.
    The reads of `query` and the read map of `layer` are kept at each threshold, so moving the
    slider never waits for them. A preset whose sweep was computed ahead of time (app.precompute)
    skips it (its results are then computed at the thresholds the slider visits)."""
    if shipped_sweep(bundle, entry):
        return
    store = results_store()
    missing = [t for t in TAU_GRID if ("result",) + entry.key + (grid_taus(bundle, t),) not in store]
    for i, tau in enumerate(missing):
        if progress is not None:
            progress(i / len(missing), f"Reading the text at threshold {tau_label(tau)} ({i + 1}/{len(missing)})")
        result_for(bundle, entry, grid_taus(bundle, tau), query, () if layer is None else (layer,), urgent=False)


def shipped_sweep(bundle: Bundle, entry: TextEntry) -> bool:
    """Put the rows shipped for this text (app.precompute) in the store, when there are rows
    computed with this very model, text and threshold grid; False when there are none."""
    store = results_store()
    if ("ham_curve",) + entry.key in store:
        return True
    rows = precompute.lookup_sweep(model_dir(), entry.read_text, TAU_GRID) if bundle.trained else None
    if rows is None:
        return False
    store.put(("policies",) + entry.key, rows.policies)
    store.put(("ham_curve",) + entry.key, rows.ham)
    return True


def ham_rows(bundle: Bundle, entry: TextEntry) -> list:
    """The HAM curve: one row per grid threshold (policy, tau, kv_fraction, kv_bytes_peak, loss)."""
    rows, store = [], results_store()
    shipped = store.get(("ham_curve",) + entry.key)
    if shipped is not None:
        return shipped
    for tau in TAU_GRID:
        r = store.get(("result",) + entry.key + (grid_taus(bundle, tau),))
        if r is not None and r.loss == r.loss:
            rows.append(dict(policy="ham", tau=tau, kv_fraction=r.kv_fraction, kv_bytes_peak=r.kv_bytes_peak,
                             loss=r.loss))
    return rows


def stored_policy_rows(entry: TextEntry) -> Optional[list]:
    """The other policies' rows if this server has computed them for the text, else None."""
    return results_store().get(("policies",) + entry.key)


def policy_rows(bundle: Bundle, entry: TextEntry, progress: Optional[ShowProgress] = None) -> list:
    """The other selection policies at HAM's memory for each grid threshold (ham_core.analysis.sweep)."""
    taus = [t for t in TAU_GRID if 0 < t <= 2]

    def report(done: int, total: int) -> None:
        if progress is not None:
            frac = done / total if total else 0.0
            progress(min(frac, 1.0), f"Other policies at equal memory: {100 * frac:.0f}%")

    def compute() -> list:
        with compute_gate().slot(urgent=True):             # someone pressed the button and waits
            return precompute.sweep_rows(bundle.model, entry.ids.astype(np.int64), taus, report).policies

    return results_store().get_or_compute(("policies",) + entry.key, compute)
