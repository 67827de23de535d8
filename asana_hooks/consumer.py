"""Read the changes stream reliably: ``Consumer(group).run(handler)``. I/O edge (Redis).

At-least-once delivery through a Redis consumer group on ``asana-hooks:changes``:

- ``handler(change)`` returning acknowledges the entry (XACK); raising retries it after a
  backoff (``backoff_seconds``, doubling up to 30 s); after ``max_deliveries`` deliveries it
  goes to ``asana-hooks:dead:<group>`` with the error, the count and ``dead_at``, and is
  acknowledged. Acknowledgements go in runs, one script call each (``ACK_SECONDS``): before
  the next read, before waiting or stopping, before an entry handed out before (a retry, or
  one claimed from a consumer that died), and as a handler returns once the run's first
  handler call started ``ACK_SECONDS`` ago (so a slow handler's entry is acknowledged as it
  returns). The change the handler gets carries its entry id as ``"id"``: handle each id once
  (a crash between the handler's return and the XACK delivers it again: the entries of that
  run, handled within the ``ACK_SECONDS`` before the crash or the call in hand).
- Entries a consumer held when it died are claimed by the others after
  ``claim_after_seconds`` (XAUTOCLAIM). A running consumer refreshes a heartbeat key and the
  idle time of what it holds every quarter of that, so a slow handler is never robbed.
- SIGTERM and SIGINT (or ``stop()`` from another thread) finish the entry in hand and stop.
- One resource, one consumer at a time: the Lua script that reads new entries gives each
  resource to the consumer holding its lease (a hash per resource gid) and moves an entry
  read by any other consumer to that holder's pending list, in the same atomic step, so the
  holder sees the resource's entries in stream order (and its wake stream tells it to look
  again at once); the lease goes when the holder acknowledges the newest one it was given,
  or to another consumer when its heartbeat stops (with everything it still held). Each
  consumer handles what it holds oldest first and holds back a resource's later entries
  while an earlier one waits for its retry.
- A group that falls behind the retention (changes trimmed before it read them) is logged
  as a warning at start and at every claim pass.
- ``changes dead --group G --replay`` puts G's dead letters on ``asana-hooks:retry:<group>``,
  which only G's consumers read (beside the changes, with the same group name).

The group is created at the end of the stream (new changes only) unless ``start`` is
``"0"`` (everything retained), an entry id, a Unix time or an aware datetime; an existing
group keeps its position.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import redis

from asana_hooks import consumer_groups, keys, lua, stream_ids
from asana_hooks.consumer_plan import Held, Step, backoff_seconds, plan
from asana_hooks.redis_conn import connect, decode_pairs, text
from asana_hooks.settings import DEFAULT_REDIS_URL
from asana_hooks.stop_signals import stop_on_signals

logger = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], object]

BATCH = 100
"""Entries read per round trip."""
ACK_SECONDS = 0.05
"""Handled entries are acknowledged in runs, one script call each. A run is sent when a
handler returns ACK_SECONDS or more after its first entry's handler started (so a slow
handler's entry is acknowledged as it returns), after BATCH entries, before an entry handed
out before, and whenever the consumer reads, waits or stops."""
BLOCK_SECONDS = 0.5
"""Longest wait for new entries before looking again at retries, claims and stop()."""
LEASE_TTL_SECONDS = 24 * 3600
"""A lease outlives any handler; it is deleted when its resource's last entry is settled."""
ERROR_CHARS = 2000

_TAKE = lua.load(__file__, "consumer_take")
_DONE = lua.load(__file__, "consumer_done")
_TOUCH = lua.load(__file__, "consumer_touch")
_DONE_VALUES = 8
"""consumer_done's ARGV values per entry."""


class Consumer:
    """One consumer of group ``group``; run several (any processes) to share the work."""

    def __init__(
        self,
        group: str,
        *,
        redis_url: str | None = None,
        name: str | None = None,
        max_deliveries: int = 5,
        claim_after_seconds: float = 60,
        start: str | float | datetime = "$",
        backoff_seconds: float = 1.0,
    ) -> None:
        if not group or any(char.isspace() for char in group):
            raise ValueError("group must be a non-empty name without spaces")
        if max_deliveries < 1:
            raise ValueError("max_deliveries must be at least 1")
        if claim_after_seconds <= 0 or backoff_seconds < 0:
            raise ValueError("claim_after_seconds must be > 0 and backoff_seconds >= 0")
        self.group = group
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.max_deliveries = max_deliveries
        self.claim_after_seconds = float(claim_after_seconds)
        self.backoff_seconds = backoff_seconds
        self.start = stream_ids.group_start(start)
        url = redis_url or os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
        self._redis = connect(url, socket_timeout=BLOCK_SECONDS + 5.0)
        self._take = self._redis.register_script(_TAKE)
        self._done = self._redis.register_script(_DONE)
        self._touch = self._redis.register_script(_TOUCH)
        self._stop = threading.Event()
        self._settled: list[Any] = []
        """The consumer_done script's per-entry values of what was handled, not yet acked."""
        self._settled_since = 0.0
        self._attempted: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        self._warned_behind: str | None = None

    def stop(self) -> None:
        """Finish the entry in hand, then return from ``run``."""
        self._stop.set()

    def run(self, handler: Handler) -> None:
        """Hand every change to ``handler`` until stopped; see the module docstring."""
        consumer_groups.create(self._redis, self.group, self.start)
        self._reclaim_own()
        logger.info("consumer.start group=%s name=%s", self.group, self.name)
        with (
            stop_on_signals(self._stop, f"consumer.stopping group={self.group}"),
            self._heartbeat(),
        ):
            next_claim = 0.0
            while not self._stop.is_set():
                claim = time.monotonic() >= next_claim
                if claim:
                    self._warn_if_behind()
                    next_claim = time.monotonic() + self.claim_after_seconds / 4
                held, last_ids, read_any = self._hand_out(claim=claim)
                steps, next_due = plan(
                    held,
                    attempted=self._attempted,
                    retry_at=self._retry_at,
                    now=time.monotonic(),
                    max_deliveries=self.max_deliveries,
                )
                if not self._settle(steps, handler) and not read_any:
                    self._wait(last_ids, next_due, next_claim)
        self._redis.delete(
            keys.consumer_alive(self.group, self.name), keys.consumer_wake(self.group, self.name)
        )
        logger.info("consumer.stop group=%s name=%s", self.group, self.name)

    def close(self) -> None:
        self._redis.close()

    # The loop's parts -----------------------------------------------------------------------

    def _reclaim_own(self) -> None:
        """A consumer restarted under the same name finds its earlier self's entries pending:
        claiming them (not JUSTID) counts this as a new delivery, so an entry whose handler
        kills the process is dead-lettered after max_deliveries restarts, not retried forever."""
        for stream in (keys.CHANGES_STREAM, keys.retry_stream(self.group)):
            held = self._redis.xpending_range(stream, self.group, "-", "+", 10_000, self.name)
            ids = [text(entry["message_id"]) for entry in held]
            for first in range(0, len(ids), 500):
                chunk: list[Any] = ids[first : first + 500]
                self._redis.xclaim(stream, self.group, self.name, 0, chunk)

    def _hand_out(self, *, claim: bool) -> tuple[list[Held], list[str], bool]:
        """What this consumer holds, the newest id of each stream it waits on, and whether
        this call read new entries (then there may be more to read: no waiting)."""
        min_idle = int(self.claim_after_seconds * 1000) if claim else 0
        pending, last_ids, read_any = self._take(
            keys=[
                keys.CHANGES_STREAM,
                keys.retry_stream(self.group),
                keys.consumer_wake(self.group, self.name),
            ],
            args=[
                self.group,
                self.name,
                BATCH,
                keys.consumer_lease_prefix(self.group),
                keys.consumer_alive_prefix(self.group),
                LEASE_TTL_SECONDS,
                min_idle,
                keys.consumer_wake_prefix(self.group),
            ],
        )
        held = [
            Held(
                stream="changes" if int(index) == 1 else "retry",
                id=text(entry_id),
                deliveries=int(deliveries),
                fields=decode_pairs(fields) if fields else None,
            )
            for index, entry_id, deliveries, fields in pending
        ]
        return held, [text(value) for value in last_ids], bool(read_any)

    def _settle(self, steps: list[Step], handler: Handler) -> bool:
        """Take each step in order; False when none was taken. Stops after the entry in hand
        when stop() was called; a resource whose entry failed skips its later entries.
        Everything handled is acknowledged before it returns."""
        try:
            return self._take_steps(steps, handler)
        finally:
            self._flush()

    def _take_steps(self, steps: list[Step], handler: Handler) -> bool:
        failed: set[tuple[str, str]] = set()
        done_any = False
        for step in steps:
            if self._stop.is_set():
                break
            entry = step.entry
            lane = (entry.stream, entry.resource)
            if entry.resource and lane in failed:
                continue
            done_any = True
            if entry.deliveries > 1 or step.action == "redeliver":
                # Handed out before: it may be what killed a consumer. Settle what was handled
                # first, so that another crash on it charges them no delivery.
                self._flush()
            if step.action == "gone":
                logger.warning(
                    "consumer.trimmed group=%s id=%s: the stream was trimmed before it was handled",
                    self.group,
                    entry.id,
                )
                self._finish(entry)
            elif step.action == "dead":
                error = self._redis.hget(keys.consumer_errors(self.group), entry.id)
                self._finish(
                    entry,
                    dead=text(error)
                    if error
                    else "no consumer answered: each stopped or died while handling it",
                )
            elif not self._deliver(step, handler):
                failed.add(lane)
            if self._settled and (
                len(self._settled) >= BATCH * _DONE_VALUES
                or time.monotonic() - self._settled_since >= ACK_SECONDS
            ):
                self._flush()
        return done_any

    def _deliver(self, step: Step, handler: Handler) -> bool:
        entry = step.entry
        if step.action == "redeliver":
            stream = self._stream_key(entry)
            claimed: list[Any] = [entry.id]
            if not self._redis.xclaim(stream, self.group, self.name, 0, claimed):
                return True  # trimmed meanwhile: Redis dropped it from the pending list
            entry = Held(entry.stream, entry.id, entry.deliveries + 1, entry.fields)
        self._attempted[entry.id] = entry.deliveries
        started = time.monotonic()
        try:
            handler(entry.change)
        except Exception as exc:  # the handler's failure is the entry's, never the loop's
            return self._failed(entry, exc)
        self._finish(entry, started=started)
        return True

    def _failed(self, entry: Held, exc: Exception) -> bool:
        error = f"{type(exc).__name__}: {exc}"[:ERROR_CHARS]
        if entry.deliveries >= self.max_deliveries:
            logger.error(
                "consumer.dead group=%s id=%s deliveries=%d error=%s",
                self.group,
                entry.original_id,
                entry.deliveries,
                error,
                exc_info=exc,
            )
            self._finish(entry, dead=error)
            return True
        wait = backoff_seconds(entry.deliveries, base=self.backoff_seconds)
        self._retry_at[entry.id] = time.monotonic() + wait
        self._redis.hset(keys.consumer_errors(self.group), entry.id, error)
        logger.warning(
            "consumer.retry group=%s id=%s deliveries=%d in=%.1fs error=%s",
            self.group,
            entry.original_id,
            entry.deliveries,
            wait,
            error,
        )
        return False

    def _finish(
        self, entry: Held, *, dead: str | None = None, started: float | None = None
    ) -> None:
        """Settle an entry (dead-lettering it first when ``dead`` holds the error): queued for
        the next run of acknowledgements (``_flush``), which also frees its lease. A run's age
        counts from when its first entry's handler started (``started``), so a handler call of
        ``ACK_SECONDS`` or longer has its entry acknowledged as it returns."""
        dead_args: list[Any] = [""] * 4
        if dead is not None:
            dead_args = [
                entry.original_id,
                (entry.fields or {}).get("change", "null"),
                entry.deliveries,
                consumer_groups.now_iso(),
            ]
        if not self._settled:
            self._settled_since = time.monotonic() if started is None else started
        self._settled += [
            "1" if entry.stream == "changes" else "2",
            entry.id,
            entry.resource if entry.stream == "changes" else "",
            dead if dead is not None else "",
            *dead_args,
        ]
        self._attempted.pop(entry.id, None)
        self._retry_at.pop(entry.id, None)

    def _flush(self) -> None:
        """Acknowledge what was settled, in one script call."""
        if not self._settled:
            return
        settled, self._settled = self._settled, []
        self._done(
            keys=[
                keys.CHANGES_STREAM,
                keys.retry_stream(self.group),
                keys.consumer_errors(self.group),
                keys.dead_letters(self.group),
            ],
            args=[
                self.group,
                self.name,
                keys.consumer_lease_prefix(self.group),
                consumer_groups.DEAD_LETTERS_KEPT,
                *settled,
            ],
        )

    def _wait(self, last_ids: list[str], next_due: float | None, next_claim: float) -> None:
        """Block until a new entry arrives, a retry falls due, or it is time to claim."""
        until = min(next_claim, time.monotonic() + BLOCK_SECONDS)
        if next_due is not None:
            until = min(until, next_due)
        block_ms = int(max(0.0, until - time.monotonic()) * 1000)
        if block_ms <= 0 or self._stop.is_set():
            return
        streams: dict[Any, Any] = {
            keys.CHANGES_STREAM: last_ids[0],
            keys.retry_stream(self.group): last_ids[1],
            keys.consumer_wake(self.group, self.name): last_ids[2],
        }
        self._redis.xread(streams, count=1, block=block_ms)

    def _warn_if_behind(self) -> None:
        try:
            found = consumer_groups.status(self._redis, self.group)
        except consumer_groups.UnknownGroup:
            return
        if found.warning and found.last_delivered_id != self._warned_behind:
            logger.warning("consumer.behind_retention %s", found.warning)
            self._warned_behind = found.last_delivered_id

    def _stream_key(self, entry: Held) -> str:
        return keys.CHANGES_STREAM if entry.stream == "changes" else keys.retry_stream(self.group)

    @contextmanager
    def _heartbeat(self) -> Iterator[None]:
        """A thread that says every quarter of claim_after_seconds: alive, holding these."""
        done = threading.Event()
        ttl = max(1, int(self.claim_after_seconds + 0.999))

        def beat() -> None:
            self._touch(
                keys=[
                    keys.consumer_alive(self.group, self.name),
                    keys.CHANGES_STREAM,
                    keys.retry_stream(self.group),
                ],
                args=[self.group, self.name, ttl],
            )

        def loop() -> None:
            while not done.wait(self.claim_after_seconds / 4):
                try:
                    beat()
                except redis.RedisError as exc:
                    logger.warning("consumer.heartbeat_failed group=%s error=%s", self.group, exc)

        beat()
        thread = threading.Thread(target=loop, name=f"consumer-heartbeat-{self.name}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(5)
