"""A tiny progress bar for stderr (no dependency): `bar = Progress(total, "sweep"); bar(done)`."""
from __future__ import annotations

import sys
import time
from typing import Callable

# What long computations accept for progress: called as report(done, total). A Progress bar is one.
ProgressFn = Callable[[int, int], None]


class Progress:
    """Redraws one stderr line: label, bar, done/total, rate and an optional note."""

    def __init__(self, total: int, label: str = "", unit: str = "it", stream=None, width: int = 24, start: int = 0):
        """start: where the count begins (a resumed run), so the rate counts only this run's work."""
        self.total, self.label, self.unit, self.width = max(int(total), 1), label, unit, width
        self.first = start
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.last_draw = 0.0

    def __call__(self, done: int, total: int | None = None, note: str = "", force: bool = False) -> None:
        if total:
            self.total = max(int(total), 1)
        now = time.monotonic()
        if not force and done < self.total and now - self.last_draw < 0.2:
            return   # redraw at most five times a second
        self.last_draw = now
        frac = min(done / self.total, 1.0)
        filled = int(frac * self.width)
        rate = (done - self.first) / max(now - self.start, 1e-9)
        line = f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} {rate:,.1f} {self.unit}/s {note}"
        self.stream.write(line[:200])
        if done >= self.total:
            self.stream.write("\n")
        self.stream.flush()
