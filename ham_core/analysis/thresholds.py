"""The threshold for a target cache size: the one search behind sweeps, evaluation and the recall lab.

HAM's cache is set by a threshold tau, while a comparison is asked in cache fractions ("every
policy at 25% of the full cache"). The fraction falls as tau rises (TAU_FULL caches every token,
TAU_OFF none), so each round guesses tau from the last pass: rank that pass's layer surprises
and take the value that caches the target share of (layer, token) cells. The guess is exact
unless routing in lower layers moves the upper layers' surprise, so a few rounds suffice. Taus
already run bracket the answer (one cached too much, one at most the target); once a guess
leaves the bracket the search bisects it instead.

Two ways to accept a threshold:
- closest (sweeps and the model card's loss table): the tau whose fraction is nearest the
  target, within `tolerance` when the rounds allow;
- at most (the recall lab): never above the target, and within `tolerance` below it when the
  rounds allow.

`search_taus` runs the search through any `measure` (sweep passes its own batched, cached
forwards); `taus_for_fractions` runs it on a model for one text or a batch of texts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

from ham_core.errors import HAMInputError
from ham_core.model.model import HAMModel
from ham_core.model.policies import TAU_FULL, TAU_OFF

DEFAULT_FRACTIONS = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0)
AT_MOST_MARGIN = 1e-6     # above the ranked surprise, so that token is not cached


@dataclass
class Pass:
    """What the search needs from one forward of one target's texts at one tau."""

    kv_fraction: float        # peak KV cache / full KV cache (the mean when several texts share the tau)
    surprise: torch.Tensor    # the layer surprise of every (text, layer, token) cell, any shape


Measure = Callable[[List[int], List[float]], List[Pass]]   # (targets, one tau each) -> their passes


def check_fractions(fractions: Sequence[float]) -> List[float]:
    """Cache fractions as floats in [0, 1]; a HAMInputError otherwise (or when there are none)."""
    out = []
    for f in fractions:
        try:
            f = float(f)
        except (TypeError, ValueError):
            raise HAMInputError(f"a cache fraction must be a number in [0, 1], got {f!r}") from None
        if not 0 <= f <= 1:
            raise HAMInputError(f"a cache fraction must be in [0, 1], got {f!r}")
        out.append(f)
    if not out:
        raise HAMInputError("need at least one cache fraction")
    return out


def _guess(surprise: torch.Tensor, fraction: float, at_most: bool) -> float:
    """The tau that caches `fraction` of these surprise cells: at least that share (closest), or
    at most it (at_most)."""
    ranked = surprise.flatten().sort(descending=True).values
    n = ranked.numel()
    if at_most:
        return float(ranked[min(int(fraction * n), n - 1)]) + AT_MOST_MARGIN
    return float(ranked[max(1, round(fraction * n)) - 1])


def search_taus(measure: Measure, fractions: Sequence[float], *, at_most: bool = False,
                tolerance: float = 0.005, rounds: int = 4) -> List[float]:
    """One tau per target fraction (fraction 1 gives TAU_FULL, 0 gives TAU_OFF, without a pass).

    measure(targets, taus) runs one pass for each target index at its tau; the first call is
    at TAU_FULL for every target, the pass the first guess is ranked from.
    """
    fractions = check_fractions(fractions)
    taus: List[Optional[float]] = [TAU_FULL if f >= 1 else TAU_OFF if f <= 0 else None for f in fractions]
    pending = [i for i, t in enumerate(taus) if t is None]
    if not pending:
        return taus
    last = dict(zip(pending, measure(list(pending), [TAU_FULL] * len(pending))))
    below = {i: TAU_FULL for i in pending}      # a tau known to cache more than the target
    above = {i: TAU_OFF for i in pending}       # a tau known to cache at most the target
    bisecting: Dict[int, bool] = {i: False for i in pending}
    best: Dict[int, Tuple[float, float]] = {}   # closest: (error, tau)
    for _ in range(rounds):
        if not pending:
            break
        guesses = []
        for i in pending:
            tau = None if bisecting[i] else _guess(last[i].surprise, fractions[i], at_most)
            if tau is None or not below[i] < tau < above[i]:
                bisecting[i], tau = True, (below[i] + above[i]) / 2
            guesses.append(tau)
        for i, tau, p in zip(list(pending), guesses, measure(list(pending), guesses)):
            last[i], f = p, fractions[i]
            if p.kv_fraction <= f:
                above[i] = tau
            else:
                below[i] = tau
            error = abs(p.kv_fraction - f)
            if i not in best or error < best[i][0]:
                best[i] = (error, tau)
            if (f - p.kv_fraction if at_most else error) <= tolerance and (p.kv_fraction <= f or not at_most):
                pending.remove(i)
    return [t if t is not None else above[i] if at_most else best[i][1] for i, t in enumerate(taus)]


@torch.no_grad()
def taus_for_fractions(model: HAMModel, ids: torch.Tensor, fractions: Union[float, Sequence[float]], *,
                       shared: bool = False, at_most: bool = False, tolerance: float = 0.005,
                       rounds: int = 4) -> List[float]:
    """HAM thresholds for target cache fractions, on one text or a batch.

    ids [T] or [B, T]. One text takes any number of fractions (one tau each). A batch takes one
    fraction per text, or one for all: by default each text gets its own tau; with `shared`
    the batch gets one tau whose mean fraction over the texts meets the one target (the recall
    lab reads many texts at one threshold). Returns a list: one tau per fraction, per text, or
    [tau] when shared.
    """
    ids = model.check_ids(torch.as_tensor(ids)).to(model.device)
    B, L = ids.shape[0], model.cfg.n_layers
    targets = [fractions] if isinstance(fractions, (int, float)) else list(fractions)
    if shared:
        if len(targets) != 1:
            raise HAMInputError(f"a shared threshold meets one fraction, got {len(targets)}")

        def measure_batch(_: List[int], taus: List[float]) -> List[Pass]:
            return [_pass(model(ids, tau=tau)) for tau in taus]

        return search_taus(measure_batch, targets, at_most=at_most, tolerance=tolerance, rounds=rounds)
    if B == 1:
        rows = [0] * len(targets)                 # one text, one tau per fraction
    elif len(targets) in (1, B):
        rows, targets = list(range(B)), targets * B if len(targets) == 1 else targets
    else:
        raise HAMInputError(f"give one fraction, or one per text ({B}), got {len(targets)}")

    def measure_rows(picked: List[int], taus: List[float]) -> List[Pass]:
        tau = torch.tensor(taus, dtype=torch.float32, device=ids.device)[:, None].expand(len(taus), L)
        out = model(ids[[rows[i] for i in picked]], tau=tau)
        return [_pass(out, b) for b in range(len(picked))]

    return search_taus(measure_rows, targets, at_most=at_most, tolerance=tolerance, rounds=rounds)


def _pass(out, b: Optional[int] = None) -> Pass:
    """A Pass from a model output: text b's, or the whole batch's (mean fraction)."""
    if b is None:
        return Pass(out.kv_fraction.mean().item(), out.layer_surprise)    # double, as callers read it
    return Pass(float(out.kv_fraction[b]), out.layer_surprise[b])
