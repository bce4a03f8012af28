"""A value made once per server process, on first use, and shared by every session's thread."""
from __future__ import annotations

import threading
from typing import Callable, Dict, Generic, List, Optional, TypeVar

T = TypeVar("T")
_GROUPS: Dict[str, List["ProcessWide"]] = {}     # group -> its values, in the order they were declared


class ProcessWide(Generic[T]):
    """`get()` makes the value with `make()` the first time (one thread makes it, the others wait)
    and returns that one value after; `reset()` forgets it (after `close(value)`, when given), so
    the next `get()` makes it again from the settings of that moment (tests). Values of one
    `group` are reset together by `reset_group`, so a module that fills another's value (the
    curve queue fills the result store) joins its group instead of being imported by it."""

    def __init__(self, make: Callable[[], T], close: Optional[Callable[[T], None]] = None,
                 group: Optional[str] = None):
        self._make, self._close = make, close
        self._value: Optional[T] = None
        self._lock = threading.Lock()
        if group is not None:
            _GROUPS.setdefault(group, []).append(self)

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


def reset_group(group: str) -> None:
    """Reset every value of `group`, the last declared first (what fills a value stops before
    the value it fills is forgotten)."""
    for value in reversed(_GROUPS.get(group, [])):
        value.reset()
