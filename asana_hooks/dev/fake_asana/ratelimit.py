"""Per-token rate limiting: a requests-per-(scaled)-minute budget and a concurrent-reads cap.
No I/O.

The budget is a fixed window per token that starts with the token's first request and
lasts one (scaled) minute. Rejected requests still count against it, as Asana documents.
Retry-After is the time until the window ends (whole seconds, rounded up, at least 1).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .timing import retry_after_seconds

__all__ = ["RateLimiter", "Rejection"]


@dataclass(frozen=True)
class Rejection:
    retry_after: int
    reason: str  # "rate" or "concurrency"


@dataclass
class _Window:
    started: float
    used: int = 0


class RateLimiter:
    def __init__(
        self,
        lock: threading.RLock,
        window: Callable[[], float],
        budget: Callable[[], int],
        max_concurrent: Callable[[], int],
    ) -> None:
        self._lock = lock
        self._window = window
        self._budget = budget
        self._max_concurrent = max_concurrent
        self._windows: dict[str, _Window] = {}
        self._in_flight: dict[str, int] = {}

    def charge(self, token: str, cost: int) -> Rejection | None:
        """Count ``cost`` requests; reject (and still count) when over the budget."""
        now = time.monotonic()
        length = self._window()
        with self._lock:
            win = self._windows.get(token)
            if win is None or now - win.started >= length:
                win = self._windows[token] = _Window(started=now)
            win.used += cost
            if win.used > self._budget():
                return Rejection(retry_after_seconds(win.started + length - now), "rate")
            return None

    def acquire_reads(self, token: str, count: int) -> Rejection | None:
        """Take ``count`` concurrent-read slots, or reject without taking any."""
        if count <= 0:
            return None
        with self._lock:
            current = self._in_flight.get(token, 0)
            if current + count > self._max_concurrent():
                return Rejection(retry_after_seconds(self._window() / 60.0), "concurrency")
            self._in_flight[token] = current + count
            return None

    def release_reads(self, token: str, count: int) -> None:
        if count <= 0:
            return
        with self._lock:
            self._in_flight[token] = max(0, self._in_flight.get(token, 0) - count)

    def in_flight(self, token: str) -> int:
        with self._lock:
            return self._in_flight.get(token, 0)
