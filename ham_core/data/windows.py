"""Training data: documents -> one token stream -> random windows, reproducible by step.

The stream is the documents' tokens joined by the end-of-text token. It is cached as a .npy
file (plain integers, no pickle) next to the corpus, keyed by the tokenizer's contents.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch

from ham_core.errors import HAMInputError
from ham_core.model.health import random_words


def encode_documents(tokenizer, documents: Sequence[str]) -> np.ndarray:
    """All documents as one int32 stream, each followed by the end-of-text token."""
    if not documents:
        raise HAMInputError("no documents to train on")
    ids: List[int] = []
    batch = 512
    for i in range(0, len(documents), batch):
        for doc in tokenizer.encode_batch(list(documents[i:i + batch])):
            ids.extend(doc)
            ids.append(tokenizer.eot_id)
    return np.asarray(ids, dtype=np.int32)


def cached_stream(tokenizer, documents: Sequence[str], cache_dir: Optional[Path], name: str) -> np.ndarray:
    """encode_documents, cached in cache_dir/<name>-<hash>.npy when a cache dir is given."""
    if cache_dir is None:
        return encode_documents(tokenizer, documents)
    digest = hashlib.sha1("\x00".join(tokenizer.token_strings(range(tokenizer.vocab_size))).encode())
    digest.update(str(len(documents)).encode())
    for doc in documents[:50]:
        digest.update(doc.encode())
    path = Path(cache_dir) / f"{name}-{digest.hexdigest()[:12]}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    stream = encode_documents(tokenizer, documents)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, stream, allow_pickle=False)
    return stream


class WindowSampler:
    """Batches of `batch` windows of `length` tokens from a stream; batch k is the same on
    every run (seed, rank, k), so a resumed run continues exactly where it stopped."""

    def __init__(self, stream: np.ndarray, length: int, batch: int, seed: int = 0, rank: int = 0):
        if len(stream) < length + 1:
            raise HAMInputError(f"corpus has {len(stream)} tokens, fewer than one window of {length + 1}")
        self.stream = torch.from_numpy(stream.astype(np.int64))
        self.length, self.batch, self.seed, self.rank = length, batch, seed, rank

    def __call__(self, step: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.rank * 7919 + step)
        starts = torch.randint(0, len(self.stream) - self.length, (self.batch,), generator=gen)
        return torch.stack([self.stream[s:s + self.length] for s in starts.tolist()])


def fixed_windows(stream: np.ndarray, length: int, count: int) -> torch.Tensor:
    """`count` evenly spaced, non-overlapping windows: a fixed validation slice [count, length]."""
    stream = torch.from_numpy(stream.astype(np.int64))
    n = min(count, len(stream) // length)
    if n == 0:
        raise HAMInputError(f"validation text has {len(stream)} tokens, fewer than one window of {length}")
    step = len(stream) // n
    return torch.stack([stream[i * step:i * step + length] for i in range(n)])


BatchFn = Callable[[int], torch.Tensor]


def with_repeats(batches: BatchFn, share: float, seed: int = 0, min_span: int = 16, max_span: int = 128) -> BatchFn:
    """Copy a span of about `share` of the windows to a later place in the same window.

    Short windows of natural text rarely repeat anything far back, so a small model never
    learns to look things up in its cache (its attention stays idle, and every selection policy
    then looks alike). A copied span is a lookup worth learning, and the skill carries over to
    names and phrases that recur in real prose. Deterministic in (seed, step), so resuming is exact.
    """
    if share <= 0:
        return batches

    def draw(step: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed * 1_000_033 + step + 17)
        return repeat_spans(batches(step), share, gen, min_span, max_span)

    return draw


def repeat_spans(ids: torch.Tensor, share: float, gen: torch.Generator, min_span: int = 16,
                 max_span: int = 128, vocab_size: Optional[int] = None) -> torch.Tensor:
    """A copy of ids [B, T] where about `share` of the windows read a span twice: a span in the
    first half is repeated at a later place. With vocab_size, the span is first filled with
    random tokens: then the RNN cannot guess it from context, and only a lookup in the cache
    predicts the second reading. Deterministic in `gen`."""
    ids = ids.clone()
    B, T = ids.shape
    top = min(max_span, T // 4)
    if share <= 0 or top < min_span:
        return ids
    for row in range(B):
        if torch.rand(1, generator=gen).item() >= share:
            continue
        span = int(torch.randint(min_span, top + 1, (1,), generator=gen))
        src = int(torch.randint(0, T // 2 - span + 1, (1,), generator=gen))
        dst = int(torch.randint(src + span, T - span + 1, (1,), generator=gen))
        if vocab_size is not None:
            ids[row, src:src + span] = random_words((span,), vocab_size, gen).to(ids.dtype)
        ids[row, dst:dst + span] = ids[row, src:src + span]
    return ids
