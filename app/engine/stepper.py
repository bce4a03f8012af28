"""The step-through's state: a tape of per-token results and a cursor on it. No Streamlit here.

Streamlit may stop a script run at any read or write of the session state (that is where it
checks for a newer click), so a step that touched the session between updating the RNN memory
and logging the token could leave them out of step, and every later draw would fail. The tape
is therefore one object, fetched from the session once per action; every change happens on it
with no session access in between, and what a view shows is taken from it in one snapshot.

Tokens already read are never recomputed: Back moves the cursor, Step moves it forward over the
logged tokens and only reads a new token (ham_core.model.decode.step, the compact-cache form) at the
end of the tape, so Back and Step cost the same at any position.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Hashable, Optional, Sequence

import numpy as np
import torch

from ham_core.model import decode
from ham_core.model.layer import layer_surprise


@dataclass(frozen=True)
class Frame:
    """What the view draws at one cursor position (a consistent snapshot)."""

    position: int                   # tokens read, 0..T
    total: int                      # T
    surprise: np.ndarray            # [position, L, H] per-head surprise of each token read
    layer_surprise: np.ndarray      # [position, L] heads combined by the model's rule (what tau is compared with)
    cached: np.ndarray              # [position, L] bool
    sizes: np.ndarray               # [position, L] cache size per layer after each token
    kv_bytes: int                   # the compact cache's bytes after the current token
    playing: bool

    @property
    def current(self) -> Optional[int]:
        """Index of the token read last (None before the first)."""
        return self.position - 1 if self.position else None

    def cache_sizes(self) -> list[int]:
        return self.sizes[-1].tolist() if self.position else [0] * self.cached.shape[1]


class Tape:
    """Per-token results of reading `ids` with the decode form at thresholds `tau`, and a cursor.

    Invariant: the decode memory has read exactly len(log) tokens, and 0 <= cursor <= len(log).
    """

    def __init__(self, model, ids: Sequence[int], tau, key: Hashable,
                 start: Callable = decode.start, step: Callable = decode.step):
        self.model, self.ids, self.tau, self.key = model, list(ids), tau, key
        self._start, self._step = start, step
        self._mem = None
        self._log: list[tuple] = []        # per token: surprise [L, H], cached [L], sizes [L], KV bytes
        self.cursor = 0
        self.playing = False
        self._lock = threading.Lock()      # a timer tick and a click never interleave

    @property
    def total(self) -> int:
        return len(self.ids)

    def _read_next(self) -> None:
        """Read token len(log) into the memory and log it; on any failure the memory is dropped
        (rebuilt from the log on the next read), so the invariant holds whatever happens."""
        if self._mem is None:
            self._replay()
        try:
            out = self._step(self.model, self._mem, self.ids[len(self._log)])
            entry = (out.surprise.float().cpu().numpy(), out.cached.cpu().numpy().astype(bool),
                     np.array(self._mem.cache_sizes()), int(self._mem.kv_bytes()))
        except BaseException:
            self._mem = None
            raise
        self._log.append(entry)

    def _replay(self) -> None:
        mem = self._start(self.model, self.tau)
        for token in self.ids[: len(self._log)]:
            self._step(self.model, mem, token)
        self._mem = mem

    def _seek(self, position: int) -> None:
        position = min(max(int(position), 0), self.total)
        while len(self._log) < position:
            self._read_next()
        self.cursor = position

    # Actions (each takes the lock, so a tick of the player and a click run one after the other).
    def forward(self, n: int = 1) -> None:
        with self._lock:
            self.playing = False
            self._seek(self.cursor + n)

    def back(self, n: int = 1) -> None:
        with self._lock:
            self.playing = False
            self._seek(self.cursor - n)

    def rewind(self) -> None:
        with self._lock:
            self.playing = False
            self.cursor = 0

    def toggle_play(self) -> None:
        with self._lock:
            self.playing = not self.playing and self.cursor < self.total

    def tick(self) -> None:
        """One token further while playing; stops at the end."""
        with self._lock:
            if self.playing:
                self._seek(self.cursor + 1)
                self.playing = self.cursor < self.total

    def frame(self) -> Frame:
        with self._lock:
            pos = self.cursor
            rows = self._log[:pos]
            n_layers = self.model.cfg.n_layers
            n_heads = self.model.cfg.n_heads
            if rows:
                surprise, cached, sizes = (np.stack(x) for x in list(zip(*rows))[:3])
                kv_bytes = rows[-1][3]
            else:
                surprise = np.zeros((0, n_layers, n_heads), np.float32)
                cached = np.zeros((0, n_layers), bool)
                sizes = np.zeros((0, n_layers), int)
                kv_bytes = 0
            combined = layer_surprise(torch.from_numpy(surprise), self.model.cfg.head_rule).numpy()
            return Frame(pos, self.total, surprise, combined, cached, sizes, kv_bytes, self.playing)
