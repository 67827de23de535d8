"""The one API budget shared by every process that calls Asana. I/O edge (Redis, Lua).

Asana counts requests per token, whoever sends them, so the budget lives in Redis and is
taken atomically by a Lua script on Redis's own clock (``TIME``): every worker, the poller
and the CLI see the same window, the same 429 pause and the same in-flight reads.

- A sliding one-minute window (sorted set ``keys.API_BUDGET``): a request takes one slot,
  a ``/batch`` request one slot per action, as Asana counts them. Refused requests count too.
  A slot is dated again when the request's answer is back: Asana counts a request when it
  arrives, somewhere between our grant and the answer, so a slot dated at the grant alone
  would free itself a little before a minute of Asana's has passed, and the next request
  could land in the same minute at Asana (``bench/connections.py`` saw 31 and 32 in 60 s
  against a budget of 30). Dated at the answer, no 60 s of Asana's ever hold more than the
  budget. A process that dies mid-request leaves its slots dated at the grant.
- At most ``max_concurrent_reads`` reads in flight (sorted set ``keys.API_READS`` of leases
  that expire by themselves if their holder dies).
- A pause (``keys.API_PAUSED_UNTIL``): after a 429 nobody sends anything until its
  ``Retry-After`` has passed.
- A rejected token (``keys.API_TOKEN_REJECTED``): after a 401 nobody calls at all.

All of it is per connection (``connection_id``, asana_hooks.connections), since Asana's limits
are per token: the default connection (``ASANA_ACCESS_TOKEN``) uses the keys above, as before
connections existed, and every other connection the same keys under its id
(``keys.api_budget(id)`` and its neighbours). One connection's 429 or 401 never pauses another.

Two lanes share that budget. ``fresh`` is the work someone waits for: rehydrating a change
the workers batched, and the CLI. ``background`` is the poller (Events API polls, webhook
listings, resyncs) and later watch reconciliation: it catches what webhooks missed and may
run late by seconds, but must never make a change's rehydration wait. So a background request
gets only what fresh work leaves:

- it yields while any fresh request waits for room (sorted set ``keys.API_FRESH_WAITING``,
  kept by the same Lua script: a refused fresh request is in it until it is granted, or
  until a grace after the moment it meant to ask again, so a caller that died stops
  counting within a second);
- it never takes the last ``window_reserve`` slots of the minute (10 %: 150 of Asana's
  1,500, 15 of the free 150) nor the last ``reads_reserve`` concurrent-read slots (10 of
  Asana's 50). The waiting set alone would only help a fresh request that already waits;
  the reserve means one arriving while the poller is busy finds room at once. 10 % of the
  minute is fifteen full ``/batch`` rehydrations on a paid token, more than a keystroke
  burst's batches take; a fifth of the read slots covers the flush jobs of several workers
  at once, while the poller (one or two processes, one request in flight each) never needs
  more than the other forty.

With both rules a fresh request waits behind background work at most as long as a background
request already in flight takes (it holds its read slot until it returns): the time one
poll takes. Fresh requests may use the whole budget, reserve included.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import redis

from asana_hooks import keys, lua
from asana_hooks.asana_errors import BadToken, BudgetExhausted

log = logging.getLogger(__name__)

WINDOW_MS = 60_000
"""Asana's rate limit is per minute."""

READ_LEASE_MS = 90_000
"""A read slot frees itself this long after it was taken (its holder may have died)."""

READ_SLOT_POLL_SECONDS = 0.02
"""How long to wait before asking again when every concurrent-read slot is taken."""

TOKEN_REJECTED_TTL_SECONDS = 600
"""After a 401, nobody calls Asana for ten minutes (or until the flag is cleared)."""

BACKGROUND_YIELD_SECONDS = 0.02
"""How long a background request waits before asking again after yielding to fresh work."""

FRESH_WAITING_GRACE_MS = 1_000
"""A refused fresh request counts as waiting until this long after it meant to ask again."""

Lane = Literal["fresh", "background"]
LANES: tuple[Lane, ...] = ("fresh", "background")


def window_reserve(per_minute: int) -> int:
    """Slots of the minute a background request never takes: 10 % (see the module docstring)."""
    return per_minute // 10


def reads_reserve(max_concurrent_reads: int) -> int:
    """Read slots a background request never takes: a fifth, 10 of Asana's 50."""
    return max_concurrent_reads // 5


_ACQUIRE = lua.load(__file__, "budget_acquire")
_RELEASE = lua.load(__file__, "budget_release")
_PAUSE = lua.load(__file__, "budget_pause")
_PAUSED_UNTIL = lua.load(__file__, "budget_paused_until")


@dataclass(frozen=True)
class Grant:
    """Room taken in the budget: ``n`` slots, and a read lease when ``read``."""

    token: str
    n: int
    read: bool
    waited: float
    """Seconds spent waiting for room (a pause, the window or a read slot)."""


class Budget:
    """``with budget.acquire(): send one request``: the shared per-minute and read budget,
    drawn from in one ``lane`` (``fresh`` or ``background``, see the module docstring)."""

    def __init__(
        self,
        connection: redis.Redis,
        per_minute: int,
        max_concurrent_reads: int = 50,
        *,
        lane: Lane = "fresh",
        connection_id: str = keys.DEFAULT_CONNECTION,
    ) -> None:
        """``connection_id``: whose budget (asana_hooks.connections); each connection's token
        has its own minute, read slots, pause and 401 flag, in keys named by ``keys``."""
        if per_minute < 1 or max_concurrent_reads < 1:
            raise ValueError("per_minute and max_concurrent_reads must be at least 1")
        if lane not in LANES:
            raise ValueError(f"lane must be one of {', '.join(LANES)}, got {lane!r}")
        self._redis = connection
        self.per_minute = per_minute
        self.max_concurrent_reads = max_concurrent_reads
        self.lane: Lane = lane
        self.connection_id = connection_id
        self._budget_key = keys.api_budget(connection_id)
        self._reads_key = keys.api_reads(connection_id)
        self._paused_key = keys.api_paused_until(connection_id)
        self._rejected_key = keys.api_token_rejected(connection_id)
        self._waiting_key = keys.api_fresh_waiting(connection_id)
        self.window_reserve = window_reserve(per_minute)
        self.reads_reserve = reads_reserve(max_concurrent_reads)
        self._acquire = connection.register_script(_ACQUIRE)
        self._release = connection.register_script(_RELEASE)
        self._pause = connection.register_script(_PAUSE)
        self._paused_until = connection.register_script(_PAUSED_UNTIL)

    @contextmanager
    def acquire(self, n: int = 1, *, read: bool = True, max_wait: float = 30.0) -> Iterator[Grant]:
        """Wait (at most ``max_wait`` s) for room for ``n`` requests, hold it while inside."""
        grant = self.take(n, read=read, max_wait=max_wait)
        try:
            yield grant
        finally:
            self.release(grant)

    def take(self, n: int = 1, *, read: bool = True, max_wait: float = 30.0) -> Grant:
        """Like ``acquire`` without the context manager; call ``release`` when done."""
        most = self.per_minute - (self.window_reserve if self.lane == "background" else 0)
        if n < 1 or n > most:
            raise ValueError(f"n must be between 1 and {most} in lane {self.lane}, got {n}")
        started = time.monotonic()
        token = secrets.token_hex(8)
        paused_once = False
        while True:
            code, value = self._acquire(
                keys=[
                    self._budget_key,
                    self._reads_key,
                    self._paused_key,
                    self._rejected_key,
                    self._waiting_key,
                ],
                args=[
                    n,
                    self.per_minute,
                    int(read),
                    self.max_concurrent_reads,
                    token,
                    WINDOW_MS,
                    READ_LEASE_MS,
                    self.lane,
                    self.window_reserve,
                    self.reads_reserve,
                    FRESH_WAITING_GRACE_MS,
                ],
            )
            code = int(code)
            if code == 0:
                return Grant(token=token, n=n, read=read, waited=time.monotonic() - started)
            if code == 4:
                raise BadToken(_rejected_message(self.connection_id), status=401)
            wait = {3: READ_SLOT_POLL_SECONDS, 5: BACKGROUND_YIELD_SECONDS}.get(
                code, int(value) / 1000
            )
            if code == 1 and not paused_once:
                paused_once = True
                self._redis.hincrby(keys.STATS, "rate_limit_waits", 1)
            left = max_wait - (time.monotonic() - started)
            if wait > left:
                reason = {
                    1: "paused after a 429",
                    2: "per-minute budget used",
                    3: "read slots busy",
                    5: "yielding to fresh requests",
                }
                if self.lane == "fresh":
                    self._redis.zrem(self._waiting_key, token)
                raise BudgetExhausted(
                    f"no room in the shared Asana budget within {max_wait:g} s "
                    f"({self.lane} lane, {reason[code]}; {wait:.1f} s to go)",
                    retry_after=wait,
                )
            time.sleep(wait)

    def release(self, grant: Grant) -> None:
        """The answer is back: date the grant's per-minute slots now (they stay used for a
        minute from here: Asana counted the request on its arrival, before now) and free the
        read slot."""
        self._release(
            keys=[self._budget_key, self._reads_key],
            args=[grant.token, grant.n, int(grant.read), WINDOW_MS],
        )

    def pause_for(self, seconds: float) -> float:
        """Nobody calls for ``seconds`` (a 429's Retry-After); returns the end, epoch seconds."""
        until_ms = self._pause(keys=[self._paused_key], args=[max(1, int(seconds * 1000))])
        log.warning("asana.paused connection=%s seconds=%.1f", self.connection_id, seconds)
        return int(until_ms) / 1000

    def paused_until(self) -> float | None:
        """The end of the current pause as epoch seconds (Redis's clock), or None."""
        now_ms, until_ms = self._paused_until(keys=[self._paused_key])
        return int(until_ms) / 1000 if int(until_ms) > int(now_ms) else None

    def used(self) -> int:
        """Requests counted in the last minute (by every process)."""
        now_ms = int(time.time() * 1000)
        return int(self._redis.zcount(self._budget_key, now_ms - WINDOW_MS, "+inf"))

    def reads_in_flight(self) -> int:
        now_ms = int(time.time() * 1000)
        return int(self._redis.zcount(self._reads_key, now_ms, "+inf"))

    def reject_token(self) -> None:
        """Asana answered 401: every process stops calling with this connection until the flag
        expires (or is cleared when its token is replaced)."""
        self._redis.set(self._rejected_key, "1", ex=TOKEN_REJECTED_TTL_SECONDS)

    def token_rejected(self) -> bool:
        return bool(self._redis.exists(self._rejected_key))

    def clear_token_rejected(self) -> None:
        self._redis.delete(self._rejected_key)


def _rejected_message(connection_id: str) -> str:
    if connection_id == keys.DEFAULT_CONNECTION:
        return (
            "Asana rejected the access token (401) a moment ago; fix ASANA_ACCESS_TOKEN "
            "and restart, or wait for the flag to expire"
        )
    return (
        f"Asana rejected the token of connection {connection_id} (401) a moment ago; give it "
        f"a new one with `asana-hooks connections token {connection_id}`"
    )
