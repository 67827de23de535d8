"""Per-resource batches that fold keystroke bursts into one change. I/O edge (Redis, Lua).

RQ has no debounce, so the batch lives in Redis and every transition is one Lua script,
atomic against every other worker:

- ``add``: put new events into their resource's open batch (opening it if needed), record
  each event (and the delivery) as done in the dedupe window (workers.window) and drop its
  claim, in one step. The batch is due ``debounce`` after its latest event, but never later
  than ``max_delay`` after it opened; a ``deleted`` event makes it due at once. Due times
  live in ``keys.OPEN_BATCHES``.
  ``add`` also reports each due second that has no flush job yet (``keys.flush_tick``), so
  a burst of thousands of events schedules one flush per second, not one per batch.
- ``close``: a flush job takes a due batch by renaming its hash to ``keys.closed_batch``,
  owned by that job. An event arriving afterwards opens the next batch, never lost. A batch
  whose previous batch is still being flushed waits (``busy``), so entries keep event order;
  it is due again a second later, behind the batches due now.

Times are Redis's own clock (``TIME``), the same for every worker.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import redis

from asana_hooks import keys, lua
from asana_hooks.redis_conn import text
from workers.model import BatchEvent, ClosedBatch
from workers.window import WRITE_INDEX, Window, job_tag

SEQ_TTL_SECONDS = 48 * 3600
CLOSED_TTL_SECONDS = 7 * 24 * 3600
"""A closed batch waits this long for its flush (as long as RQ keeps the failed job)."""

FLUSH_LEASE_MS = 300_000
"""A resource's next batch waits at most this long for the previous one to be emitted."""

BUSY_RETRY_MS = 1000
"""A batch found waiting for its resource's earlier batch is due again this much later, so
it goes behind the batches due now instead of staying at the head of the line."""

_ADD = lua.load(__file__, "marks") + lua.load(__file__, "batch_add")
_CLOSE = lua.load(__file__, "batch_close")
_DUE = lua.load(__file__, "batch_due")


@dataclass(frozen=True)
class Opened:
    """A batch that needs a flush job: newly opened, or made due at once by a deletion."""

    gid: str
    batch_id: str
    due_ms: int


@dataclass(frozen=True)
class Added:
    """What ``Batcher.add`` did with one delivery's new events."""

    added: int
    late: int
    opened: tuple[Opened, ...]
    urgent: tuple[Opened, ...]
    ticks: tuple[int, ...] = ()
    """Seconds (epoch) at which a flush must run and none was scheduled yet."""
    duplicates: int = 0
    """Events of the delivery dropped as duplicates (by the claim)."""
    unclaimed: tuple[int, ...] = ()
    """Indices of events left alone because this job no longer held their claim (it expired
    while the job stalled): claim them again (the claim looks in the window), then add."""


CloseState = Literal["closed", "taken", "emitted", "gone", "not_due", "busy"]


@dataclass(frozen=True)
class CloseResult:
    """The answer of ``Batcher.close``: ``batch`` when ``state == "closed"``, else why not."""

    state: CloseState
    batch: ClosedBatch | None = None
    wait_ms: int = 0


class Batcher:
    """Opens, extends and closes batches; every method is one atomic script."""

    def __init__(
        self,
        connection: redis.Redis,
        *,
        debounce_seconds: float,
        max_delay_seconds: float,
        window: Window | None = None,
    ) -> None:
        self.window = window or Window()
        self.debounce_ms = max(1, int(debounce_seconds * 1000))
        self.max_delay_ms = max(self.debounce_ms, int(max_delay_seconds * 1000))
        self._redis = connection
        self._add = connection.register_script(_ADD)
        self._close = connection.register_script(_CLOSE)
        self._due = connection.register_script(_DUE)

    def add(
        self,
        events: Sequence[BatchEvent],
        *,
        job_id: str,
        digest: str | None = None,
        received: int | None = None,
        claim_duplicates: int = 0,
        target_id: str | None = None,
    ) -> Added:
        """Put events (claimed by job ``job_id``) into their batches, in this order, record
        them and the delivery (``digest``, if any) as done, and count ``received`` events of
        which ``claim_duplicates`` were dropped before."""
        span = self.window.span()
        script_keys: list[str | bytes] = [
            keys.OPEN_BATCHES,
            keys.STATS,
            keys.target(target_id) if target_id else "",
        ]
        delivery_record: bytes = b""
        if digest:
            target = target_id or "-"
            delivery = self.window.delivery(target, digest, span)
            script_keys += [keys.delivery_claim(target, digest), delivery.keys[WRITE_INDEX]]
            delivery_record = delivery.record + job_tag(job_id)
        else:
            script_keys += ["", ""]
        event_args: list[str | bytes] = []
        for event in events:
            mark = self.window.event(event.fingerprint, span)
            script_keys += [
                keys.batch(event.gid),
                keys.batch_seq(event.gid),
                keys.event_claim(event.fingerprint),
                mark.keys[WRITE_INDEX],
            ]
            event_args += [mark.record, *event.args()]
        raw = self._add(
            keys=script_keys,
            args=[
                self.debounce_ms,
                self.max_delay_ms,
                SEQ_TTL_SECONDS,
                keys.flush_tick(0).removesuffix("0"),
                len(events) if received is None else received,
                claim_duplicates,
                job_id,
                self.window.expire_at(span.bucket),
                delivery_record,
                *event_args,
            ],
        )
        result = json.loads(raw)
        ticks = result["ticks"]
        unclaimed = result["unclaimed"]
        return Added(
            added=int(result["added"]),
            late=int(result["late"]),
            opened=_openings(result["opened"]),
            urgent=_openings(result["urgent"]),
            ticks=tuple(int(t) for t in ticks) if isinstance(ticks, list) else (),
            duplicates=int(result["duplicates"]),
            unclaimed=tuple(int(i) for i in unclaimed) if isinstance(unclaimed, list) else (),
        )

    def close(self, gid: str, batch_id: str, *, owner: str) -> CloseResult:
        """Take the batch for flushing if it is due; idempotent for the same owner."""
        return self.close_many([(gid, batch_id)], owner=owner)[0]

    def close_many(self, batches: Sequence[tuple[str, str]], *, owner: str) -> list[CloseResult]:
        """``close`` for each (gid, batch id), in one round trip; each close is atomic."""
        with self._redis.pipeline(transaction=False) as pipe:
            for gid, batch_id in batches:
                self._close(
                    keys=[
                        keys.batch(gid),
                        keys.closed_batch(batch_id),
                        keys.flush_emitted(owner),
                        keys.batch_flushing(gid),
                        keys.OPEN_BATCHES,
                        keys.flush_owned(owner),
                        keys.STATS,
                        keys.batch_emitted(batch_id),
                    ],
                    args=[
                        batch_id,
                        owner,
                        CLOSED_TTL_SECONDS,
                        FLUSH_LEASE_MS,
                        keys.target(""),
                        BUSY_RETRY_MS,
                    ],
                    client=pipe,
                )
            answers = pipe.execute()
        return [_close_result(answer) for answer in answers]

    def hold_resources(self, batches: Sequence[tuple[str, str]]) -> None:
        """Take each (gid, batch id)'s resource lease again, where nobody holds it: a parked
        batch about to be resumed goes out before the resource's later batches close."""
        with self._redis.pipeline(transaction=False) as pipe:
            for gid, batch_id in batches:
                pipe.set(keys.batch_flushing(gid), batch_id, nx=True, px=FLUSH_LEASE_MS)
            pipe.execute()

    def claim_tick(self, second: int) -> bool:
        """True if no flush was scheduled for ``second`` yet (the caller schedules it)."""
        return bool(self._redis.set(keys.flush_tick(second), "1", nx=True, ex=600))

    def owned(self, owner: str) -> list[str]:
        """Batch ids this flush job closed in an earlier attempt (its retry finishes them)."""
        return sorted(text(item) for item in self._redis.smembers(keys.flush_owned(owner)))

    def keep_owned(self, owner: str, batch_ids: Sequence[str]) -> None:
        """This flush job owns only these batches now (the others are emitted or parked)."""
        others = set(self.owned(owner)) - set(batch_ids)
        if others:
            self._redis.srem(keys.flush_owned(owner), *sorted(others))

    def forget_owned(self, owner: str) -> None:
        self._redis.delete(keys.flush_owned(owner))

    def due(self, *, limit: int, overdue_ms: int = 0) -> list[Opened]:
        """Batches due now (or overdue by ``overdue_ms``), oldest first."""
        flat = self._due(keys=[keys.OPEN_BATCHES], args=[limit, overdue_ms, keys.batch("")])
        items = [text(item) for item in flat]
        return [
            Opened(gid=items[i], batch_id=items[i + 1], due_ms=int(float(items[i + 2])))
            for i in range(0, len(items), 3)
        ]


def _close_result(answer: list[Any]) -> CloseResult:
    state = text(answer[0])
    if state == "closed":
        flat = [text(item) for item in answer[1]]
        raw = dict(zip(flat[::2], flat[1::2], strict=True))
        return CloseResult("closed", ClosedBatch.from_hash(raw))
    if state in ("not_due", "busy"):
        return CloseResult(state, wait_ms=max(0, int(answer[1])))  # type: ignore[arg-type]
    return CloseResult(state)  # type: ignore[arg-type]


def _openings(items: list[list[object]] | dict[str, object]) -> tuple[Opened, ...]:
    if not isinstance(items, list):  # cjson encodes an empty Lua table as {}
        return ()
    return tuple(
        Opened(gid=str(gid), batch_id=str(batch_id), due_ms=int(float(str(due))))
        for gid, batch_id, due in items
    )
