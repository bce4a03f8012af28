"""A value made once per server process, on first use, and shared by every session's thread."""
from __future__ import annotations

import threading
from typing import Callable, Generic, Optional, TypeVar

T = TypeVar("T")


class ProcessWide(Generic[T]):
    """`get()` makes the value with `make()` the first time (one thread makes it, the others wait)
    and returns that one value after; `reset()` forgets it (after `close(value)`, when given), so
    the next `get()` makes it again from the settings of that moment (tests)."""

    def __init__(self, make: Callable[[], T], close: Optional[Callable[[T], None]] = None):
        self._make, self._close = make, close
        self._value: Optional[T] = None
        self._lock = threading.Lock()

    def get(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._make()
            return self._value

    def reset(self) -> None:
        with self._lock:
            if self._value is not None and self._close is not None:
                self._close(self._value)
            self._value = None
