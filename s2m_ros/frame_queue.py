"""The hand-over between ``s2m_node``'s subscription callbacks and its worker thread."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any


class FrameQueue:
    """The newest ``maxlen`` frames for the worker; putting into a full queue drops the oldest.

    Callbacks only store frames (they never wait for processing), so a slow pipeline sees the
    newest image instead of a growing backlog; each replaced frame is reported as dropped.
    """

    def __init__(self, maxlen: int = 1) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be >= 1, got {maxlen}")
        self._items: deque[Any] = deque()
        self._maxlen = maxlen
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: Any) -> int:
        """Add ``item``; returns how many unprocessed frames it replaced (0 or 1)."""
        with self._cond:
            dropped = 0
            if len(self._items) >= self._maxlen:
                self._items.popleft()
                dropped = 1
            self._items.append(item)
            self._cond.notify()
            return dropped

    def get(self, timeout: float) -> Any | None:
        """The oldest queued frame, or None after ``timeout`` seconds or once closed."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def close(self) -> None:
        """Wake every waiting :meth:`get` (shutdown)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
