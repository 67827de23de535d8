"""Per-token rate limiting: a requests-per-(scaled)-minute budget and caps on concurrent
reads (GET, 50) and writes (POST/PUT/DELETE, 15), as Asana documents. No I/O.

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
        max_concurrent_writes: Callable[[], int] | None = None,
    ) -> None:
        self._lock = lock
        self._window = window
        self._budget = budget
        self._max_concurrent = max_concurrent
        self._max_concurrent_writes = max_concurrent_writes or (lambda: 15)
        self._windows: dict[str, _Window] = {}
        self._in_flight: dict[str, int] = {}
        self._writes_in_flight: dict[str, int] = {}

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

    def _acquire(
        self, slots: dict[str, int], cap: Callable[[], int], token: str, count: int
    ) -> Rejection | None:
        if count <= 0:
            return None
        with self._lock:
            current = slots.get(token, 0)
            if current + count > cap():
                return Rejection(retry_after_seconds(self._window() / 60.0), "concurrency")
            slots[token] = current + count
            return None

    def _release(self, slots: dict[str, int], token: str, count: int) -> None:
        if count <= 0:
            return
        with self._lock:
            slots[token] = max(0, slots.get(token, 0) - count)

    def acquire_reads(self, token: str, count: int) -> Rejection | None:
        """Take ``count`` concurrent-read slots, or reject without taking any."""
        return self._acquire(self._in_flight, self._max_concurrent, token, count)

    def release_reads(self, token: str, count: int) -> None:
        self._release(self._in_flight, token, count)

    def acquire_writes(self, token: str, count: int) -> Rejection | None:
        """Take ``count`` concurrent-write slots (Asana: 15 per token), or reject."""
        return self._acquire(self._writes_in_flight, self._max_concurrent_writes, token, count)

    def release_writes(self, token: str, count: int) -> None:
        self._release(self._writes_in_flight, token, count)

    def in_flight(self, token: str) -> int:
        with self._lock:
            return self._in_flight.get(token, 0)

    def writes_in_flight(self, token: str) -> int:
        with self._lock:
            return self._writes_in_flight.get(token, 0)
