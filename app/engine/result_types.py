"""What a text's results are, as the pages hold and draw them: a text as read (TextEntry), one
query's reads (ReadSummary) and everything at one threshold setting (TextResult, numpy arrays).
Computed, stored and shipped by app.engine.results."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from app.engine.models import HAMInputError
from app.engine.store import key, results_store
from ham_core.analysis.readmap import ReadMap, copy_match


@dataclass
class TextEntry:
    """One text as this server reads it with one model: cut to the token limit, tokenised once.
    `key` (model, text SHA-256, limit) prefixes every stored result of the text."""

    key: tuple
    read_text: str                # the text cut after the limit-th token
    notice: str                   # why it was cut ("" when it was not)
    total: int                    # tokens in the whole text
    ids: np.ndarray               # [T] token ids read
    tokens: list                  # [T] text of each token ("" for one holding only the last bytes of a
                                  # character, which the token before shows)
    starts: list                  # [T] character offsets into the text
    ends: list


@dataclass
class ReadSummary:
    """What one query read at one threshold setting, in every layer: per layer, for the head
    average (key None) and each head, the largest reads [(key position, weight)] and the sink."""

    layers: list                  # [L] {None | head: ([(key, weight)], sink)}


@dataclass
class TextResult:
    """What the views draw for one text at one threshold setting (numpy arrays)."""

    text: TextEntry = field(repr=False)
    tau: list                     # per-layer thresholds used
    lm_surprisal: np.ndarray      # [T] -log p(token | before), NaN for the first token
    surprise: np.ndarray          # [L, T, H] per-head RNN surprise
    layer_surprise: np.ndarray    # [L, T] heads combined by the model's rule (routing uses this)
    cached: np.ndarray            # [L, T] bool
    kv_tokens: np.ndarray         # [L] peak keys per layer
    loss: float                   # NaN for a one-token text
    kv_fraction: float
    kv_bytes_peak: int
    kv_bytes_full: int
    state_bytes: int
    kv_bytes_layers: list = field(default_factory=list)       # [L] peak KV bytes per layer
    guess_ids: Optional[np.ndarray] = None     # [T, 5] the model's top guesses for each token (-1: none)
    guess_probs: Optional[np.ndarray] = None   # [T, 5] their probabilities
    attn_gate: Optional[np.ndarray] = None     # [L, T, H] step 7's g^A: how much of each head's reads is used
    _reader: Optional[Callable[[int], ReadSummary]] = field(default=None, repr=False)
    _mapper: Optional[Callable[[int, Optional[int]], ReadMap]] = field(default=None, repr=False)

    @property
    def tokens(self) -> list:
        return self.text.tokens

    @property
    def starts(self) -> list:
        return self.text.starts

    @property
    def ends(self) -> list:
        return self.text.ends

    @property
    def notice(self) -> str:
        return self.text.notice

    @property
    def n_tokens_total(self) -> int:
        return self.text.total

    @property
    def nbytes(self) -> int:
        """Memory this result holds beyond its text (shared by every threshold)."""
        return 256 + sum(a.nbytes for a in (self.lm_surprisal, self.surprise, self.layer_surprise,
                                             self.cached, self.kv_tokens, self.guess_ids, self.guess_probs,
                                             self.attn_gate)
                         if a is not None)

    @property
    def perplexity(self) -> float:
        return float(np.exp(min(self.loss, 50.0))) if self.loss == self.loss else float("nan")

    def memo(self, what: tuple, build: Callable[[], object]):
        """A value derived from this result (e.g. hover texts), kept while memory is free."""
        name = key("view", self.text, tuple(self.tau), what)
        store = results_store()
        value = store.get(name)
        if value is None:
            value = build()
            store.offer(name, value)
        return value

    def reads(self, query: int, layer: int, head: Optional[int] = None) -> tuple[dict, float]:
        """{key position: weight} read by `query` in `layer` (one head, or averaged over heads),
        largest first, and the sink's share."""
        T, L = len(self.tokens), len(self.tau)
        if not 0 <= int(query) < T or not 0 <= int(layer) < L:
            raise HAMInputError(f"token {query} or layer {layer} is outside this text ({T} tokens, {L} layers)")
        pairs, sink = self._reader(int(query)).layers[int(layer)][head]
        return dict(pairs), sink

    def read_map(self, layer: int, head: Optional[int] = None) -> ReadMap:
        """The top reads of every token in `layer` (one head, or averaged over heads): what the
        view ships to the browser so hovering draws arcs without asking the server."""
        if not 0 <= int(layer) < len(self.tau):
            raise HAMInputError(f"layer {layer} is outside this model ({len(self.tau)} layers)")
        return self._mapper(int(layer), head)

    def copy_match(self, query: int, key: int) -> tuple[int, int]:
        """ham_core.analysis.readmap.copy_match on this text's ids: (length of the run of tokens
        before `key` that also stands before `query`, how far after that run `key` lies)."""
        return copy_match(self.text.ids.tolist(), query, key)
