"""Attention reads of every token of a layer at once, as plain lists, and the read that best
shows the cache at work.

A view ships a `ReadMap` to the browser so that hovering any token draws its reads without
asking the server again; `memorable_read` picks, by measurement on whatever model is loaded,
the read a first screen should show: a later token whose strongest read lands on an earlier
copy of itself inside a repeated run of tokens, or just after it (a name's later mention
reading its first mention).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence, Tuple

import numpy as np

if TYPE_CHECKING:
    import torch

REPEAT_CAP = 8              # a repeated run longer than this scores no higher
FAR = 8                     # a read at least this many tokens back counts as memory, not context
MIN_LOOKUP = 0.2            # a strongest read this heavy is a lookup, not the peak of a smear
# A read that finds an earlier copy of the query's tokens may land on the copy itself or on the
# tokens just after it: what came next last time, the token an induction read predicts from
# (the short convolution smears keys over neighbours, so one or two tokens on).
COPY_OFFSETS = (0, 1, 2)
LOOKUP_GATE = 0.2           # a head whose attention gate is below this barely uses what it reads


@dataclass
class ReadMap:
    """The `top` largest reads of each of T queries in one layer (one head, or the heads' mean),
    as numpy arrays: a row holds fewer reads when fewer keys were visible (key -1, weight 0)."""

    layer: int
    head: Optional[int]              # None: weights averaged over heads
    keys: np.ndarray                 # [T, top] int32 key positions, largest weight first; -1: none
    weights: np.ndarray              # [T, top] float32 their weights (reads + sink = 1 per query)
    sink: np.ndarray                 # [T] float32 the sink's share ("read nothing")

    @property
    def nbytes(self) -> int:
        return self.keys.nbytes + self.weights.nbytes + self.sink.nbytes

    def row(self, query: int) -> list[tuple[int, float]]:
        """[(key, weight)] read by `query`, largest first."""
        return [(int(k), float(w)) for k, w in zip(self.keys[query], self.weights[query]) if k >= 0]

    def strongest(self, query: int) -> Optional[tuple[int, float]]:
        """(key, weight) of the query's largest read, None when it read nothing."""
        k = int(self.keys[query, 0]) if self.keys.shape[1] else -1
        return (k, float(self.weights[query, 0])) if k >= 0 else None


def read_map(q: torch.Tensor, k: torch.Tensor, visible: torch.Tensor, temperature: torch.Tensor,
             layer: int, top: int = 8, head: Optional[int] = None) -> ReadMap:
    """q, k [T, H, D] unit queries and keys of one layer; visible [T] cached mask or [T, T]
    query-by-key mask; temperature [H]. The attention's own softmax (with its sink) gives the
    weights, so each row agrees with `Analysis.reads`. A fixed cache ([T] mask) is gathered
    first, so the cost follows the cache's size: [H, T, n] logits for n cached keys."""
    import torch      # here, not above: a map read from disk (the app's first view) needs no torch

    from ham_core.model.ops import sink_softmax

    T, H, _ = q.shape
    positions = torch.arange(T, device=q.device)
    with torch.no_grad():
        if visible.dim() == 1:
            keys = visible.bool().nonzero().flatten()                              # [n] cached positions
            allowed = keys[None, :] <= positions[:, None]                         # [T, n] causal
        else:
            keys = positions
            allowed = visible.bool() & torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
        logits = torch.einsum("thd,nhd->htn", q.float(), k[keys].float()) * temperature.float()[:, None, None]
        weights, sink = sink_softmax(logits.masked_fill(~allowed, float("-inf")))      # [H, T, n], [H, T]
        w = weights.mean(0) if head is None else weights[head]                     # [T, n]
        s = sink.mean(0) if head is None else sink[head]                           # [T]
        values, index = w.topk(min(top, w.shape[-1]), dim=-1)
        index = torch.where(values > 0, keys[index], torch.full_like(index, -1))
    out_keys = np.full((T, top), -1, dtype=np.int32)
    out_weights = np.zeros((T, top), dtype=np.float32)
    out_keys[:, :index.shape[1]] = index.cpu().numpy()
    out_weights[:, :values.shape[1]] = values.clamp_min(0).float().cpu().numpy()
    return ReadMap(layer, head, out_keys, out_weights, s.float().cpu().numpy())


@dataclass
class MemorableRead:
    """One read worth showing first: `query` in `layer` read `key` with `weight`."""

    layer: int
    query: int
    key: int
    weight: float
    repeat: int                      # length of the run of equal tokens ending at key - offset and query (0: none)
    offset: int = 0                  # the key is this many tokens after the end of that earlier copy
    head: Optional[int] = None       # the head whose read it is (None: the heads' mean)


def repeat_length(ids: Sequence[int], query: int, key: int, cap: int = REPEAT_CAP) -> int:
    """How many tokens ending at `key` equal those ending at `query` (0 if the two differ)."""
    n = 0
    while n < cap and key - n >= 0 and ids[query - n] == ids[key - n]:
        n += 1
    return n


def copy_match(ids: Sequence[int], query: int, key: int) -> Tuple[int, int]:
    """(run, offset): the longest run of tokens ending at `query` that also ends `offset` tokens
    before `key` (offset in COPY_OFFSETS); (0, 0) when there is none or the read is adjacent."""
    best = (0, 0)
    if key >= query - 1:
        return best
    for offset in COPY_OFFSETS:
        if key - offset < 0:
            break
        run = repeat_length(ids, query, key - offset)
        if run > best[0]:
            best = (run, offset)
    return best


def memorable_read(ids: Sequence[int], maps: Sequence[ReadMap]) -> Optional[MemorableRead]:
    """The read a first screen should show, from each query's strongest read (top-1) in every
    layer: best, a lookup (weight >= MIN_LOOKUP) that lands on or just after an earlier copy of
    the query's tokens (scored by weight x run length: a name's later mention reading its earlier
    one); failing
    that, the heaviest read at least FAR tokens back; failing that, the heaviest read of an
    earlier token; None when nothing was read. ids [T]; maps: per layer, the heads' mean and/or
    single heads (a head's sharp lookup outranks the same read diluted in the mean)."""
    best, best_rank = None, (-1, 0.0)
    for m in maps:
        for query in range(len(ids)):
            top = m.strongest(query)
            if top is None or top[0] >= query:
                continue
            key, weight = top
            run, offset = copy_match(ids, query, key)
            tier = 2 if run and weight >= MIN_LOOKUP else 1 if key <= query - FAR else 0
            rank = (tier, weight * max(run, 1))
            if rank > best_rank:
                best, best_rank = MemorableRead(m.layer, query, key, weight, run, offset, m.head), rank
    return best
