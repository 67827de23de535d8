"""Flush due batches: close, rehydrate, emit, hand to sinks. I/O edge (Redis, RQ, Asana).

A flush job (scheduled for a second in which batches fall due, or enqueued at once after a
deletion) closes the batches due by then, up to FLUSH_MAX_BATCHES so that ``/batch``
requests fetch ten at a time, hands any rest to another flush job, and emits every batch it
closed. Closed batches are owned by the job: its retry (after a 5xx, a timeout, a crash)
finishes exactly those, and the emit script writes each one once. A batch whose previous
batch is still being flushed is left open and looked at again a second later. Batches of a
connection Asana refuses (a 401) are parked instead of retried (asana_hooks.parked_work): they
wait, without expiry, until the connection is connected again (workers.resume).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from asana_hooks import keys, parked_work
from asana_hooks.asana_errors import AsanaError, BadToken, BudgetExhausted
from asana_hooks.connections import UnknownConnection
from asana_hooks.redis_conn import text
from asana_hooks.settings import SettingsError
from workers.model import ClosedBatch, build_change, plan_by_connection
from workers.rehydrate import RATE_LIMITED_ATTEMPTS, Outcome, rehydrate
from workers.runtime import Runtime
from workers.scheduling import enqueue_sinks, flush_now, schedule_ticks
from workers.versions import redundancy

log = logging.getLogger(__name__)

FLUSH_MAX_BATCHES = 50
"""Batches one flush job takes at most: five /batch requests of ten."""

BUSY_RETRY_SECONDS = 1.0
"""A batch whose previous batch is still being flushed looks again this much later."""


@dataclass(frozen=True)
class FlushResult:
    """What one flush job did (kept as the RQ job's result)."""

    state: str
    emitted: int = 0
    batches: int = 0
    parked: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def flush(runtime: Runtime, *, job_id: str, take_due: bool = True) -> FlushResult:
    """Finish the batches an earlier attempt of this job closed, else take the due ones
    (unless ``take_due`` is False: a parked owner resumed finishes its own batches only)."""
    batcher = runtime.batcher
    closed: list[ClosedBatch] = []
    already_emitted: list[str] = []
    owned = batcher.owned(job_id)
    agains = batcher.close_many([(gid_of(i), i) for i in owned], owner=job_id) if owned else []
    for owned_id, again in zip(owned, agains, strict=True):
        if again.batch is not None:
            closed.append(again.batch)
        elif again.state == "emitted":
            already_emitted.append(owned_id)
    if not closed and not already_emitted and take_due:
        closed = _take_due(runtime, job_id=job_id)
    if not closed and not already_emitted:
        parked_work.settle(runtime.redis, job_id)
        return FlushResult("nothing")
    done = _emit_all(runtime, closed)
    for done_id in already_emitted:
        _resend_sinks(runtime, job_id, done_id)
    kept_here = _park(runtime, job_id, done.refused)
    if done.error is not None:
        raise done.error
    if not kept_here:
        batcher.forget_owned(job_id)
        parked_work.settle(runtime.redis, job_id)
    parked = sum(len(batches) for batches in done.refused.values())
    return FlushResult(
        "parked" if parked else "flushed", emitted=done.emitted, batches=len(closed), parked=parked
    )


def _park(runtime: Runtime, job_id: str, refused: dict[str, list[ClosedBatch]]) -> bool:
    """Park each refused connection's batches (asana_hooks.parked_work); True when some stay
    with this job's own owner (a parked owner refused again)."""
    kept_here = False
    for connection_id, batches in refused.items():
        owner = parked_work.park(
            runtime.redis,
            connection_id,
            owner=job_id,
            batches=[(batch.batch_id, batch.gid) for batch in batches],
        )
        kept_here = kept_here or owner == job_id
        log.warning(
            "flush.parked connection=%s batches=%d: Asana refuses this connection; its work "
            "waits until it is connected again (connections token, or /oauth/start)",
            connection_id,
            len(batches),
        )
    return kept_here


def _take_due(runtime: Runtime, *, job_id: str) -> list[ClosedBatch]:
    """Close up to FLUSH_MAX_BATCHES due batches; hand the rest to another flush job."""
    batcher = runtime.batcher
    candidates = batcher.due(limit=FLUSH_MAX_BATCHES + 1)
    taken: list[ClosedBatch] = []
    busy = False
    chosen = [(candidate.gid, candidate.batch_id) for candidate in candidates[:FLUSH_MAX_BATCHES]]
    for result in batcher.close_many(chosen, owner=job_id) if chosen else []:
        if result.batch is not None:
            taken.append(result.batch)
        busy = busy or result.state == "busy"
    if len(candidates) > FLUSH_MAX_BATCHES and taken:
        flush_now(runtime.queue, "more batches due")  # a second worker may take them
    if busy:
        second = math.ceil(time.time() + BUSY_RETRY_SECONDS)
        if batcher.claim_tick(second):
            schedule_ticks(runtime.queue, [second])
    return taken


@dataclass
class _Emitted:
    emitted: int = 0
    refused: dict[str, list[ClosedBatch]] = field(default_factory=dict)
    """Connection -> its batches Asana refused to fetch for it (a 401): parked."""
    error: AsanaError | None = None
    """The first other error (a 5xx, a 429 pause): the job's retry finishes those batches."""


def _emit_all(runtime: Runtime, closed: list[ClosedBatch]) -> _Emitted:
    """Fetch and emit every closed batch, each with its connection's client (the one whose
    webhook brought it); emit what succeeded and report the rest. When batches of several
    connections share the job, one paused by a 429 or revoked by a 401 is not waited for: its
    batches are left to the retry (or parked) and the other connections' go out now. A job of
    one connection waits for its 429 pause, as it always did."""
    needed = _settle_redundant(runtime, closed)
    targets = _targets(runtime, needed)
    done = _Emitted()
    groups = plan_by_connection(needed, targets.connections)
    for connection_id, batches in groups:
        outcomes = _rehydrate_as(runtime, connection_id, batches, alone=len(groups) == 1)
        for batch in batches:
            outcome = outcomes[batch.batch_id]
            if outcome.fetched is None:
                if isinstance(outcome.error, BadToken):
                    done.refused.setdefault(connection_id, []).append(batch)
                else:
                    done.error = done.error or outcome.error
                continue
            change = build_change(
                batch,
                outcome.fetched,
                watch=targets.watches.get(batch.target_id or ""),
                connection=connection_id,
            )
            _entry_id, new = runtime.emitter.emit(batch, change)
            done.emitted += int(new)
            if new:
                _send_sinks(runtime, batch.batch_id, change)
            else:
                _resend_sinks(runtime, batch.owner, batch.batch_id)
    if done.emitted:
        runtime.series.add({"changes": done.emitted})
    return done


def _rehydrate_as(
    runtime: Runtime, connection_id: str, batches: list[ClosedBatch], *, alone: bool
) -> dict[str, Outcome]:
    """The outcomes of one connection's batches, or its reason to wait for each of them."""
    try:
        clients = runtime.clients
        held = None if alone else clients.held_back(connection_id)
        if held is None:
            client = clients.get(connection_id)
            return rehydrate(
                client,
                batches,
                overrides=runtime.settings.opt_fields,
                attempts=RATE_LIMITED_ATTEMPTS if alone else 1,
            )
        error: AsanaError = (
            BadToken(f"connection {connection_id} is revoked (401); its batches wait", status=401)
            if held == "revoked"
            else BudgetExhausted(f"connection {connection_id} is paused after a 429")
        )
    except (UnknownConnection, SettingsError) as exc:
        error = BadToken(f"connection {connection_id} cannot call Asana: {exc}", status=401)
    if not isinstance(error, BadToken):
        log.warning(
            "flush.waiting connection=%s batches=%d: %s; the job's retry takes them",
            connection_id,
            len(batches),
            error,
        )
    return {batch.batch_id: Outcome(error=error) for batch in batches}


@dataclass(frozen=True)
class _Targets:
    connections: dict[str, str]
    """Target id -> the connection that registered it."""
    watches: dict[str, str]
    """Target id -> the watch its webhook belongs to, when it does."""


def _targets(runtime: Runtime, batches: list[ClosedBatch]) -> _Targets:
    """What the registrations of these batches' targets say (one round trip)."""
    targets = sorted({batch.target_id for batch in batches if batch.target_id})
    if not targets:
        return _Targets({}, {})
    pipe = runtime.redis.pipeline(transaction=False)
    for target_id in targets:
        pipe.hmget(keys.target(target_id), "connection", "watch")
    connections: dict[str, str] = {}
    watches: dict[str, str] = {}
    for target_id, (connection, watch) in zip(targets, pipe.execute(), strict=True):
        connections[target_id] = text(connection) if connection else keys.DEFAULT_CONNECTION
        if watch:
            watches[target_id] = text(watch)
    return _Targets(connections, watches)


def _settle_redundant(runtime: Runtime, closed: list[ClosedBatch]) -> list[ClosedBatch]:
    """Close without an entry (and without a GET) each batch that would repeat one; return
    the others. Sound because a resource's batches are flushed one at a time (its lease)."""
    known = runtime.emitter.versions(sorted({batch.gid for batch in closed}))
    needed = []
    for batch in closed:
        reason = redundancy(batch, known.get(batch.gid))
        if reason is None:
            needed.append(batch)
        elif runtime.emitter.settle_redundant(batch):
            log.info(
                "flush.redundant resource=%s batch=%s events=%d: %s",
                batch.gid,
                batch.batch_id,
                batch.count,
                reason,
            )
    return needed


def _send_sinks(runtime: Runtime, batch_id: str, change: dict[str, Any]) -> None:
    settings = runtime.settings
    if settings.handlers or settings.forward_url:
        enqueue_sinks(
            runtime.queue,
            batch_id=batch_id,
            change=change,
            handlers=settings.handlers,
            forward_url=settings.forward_url,
        )


def _resend_sinks(runtime: Runtime, owner: str, batch_id: str) -> None:
    """A retry after the emit: make sure the sinks got their jobs (ids make it at most once)."""
    settings = runtime.settings
    if not (settings.handlers or settings.forward_url):
        return
    found = runtime.emitter.emitted_change(owner, batch_id)
    if found is not None:
        _send_sinks(runtime, batch_id, found[1])


def gid_of(batch_id: str) -> str:
    """Batch ids are ``<resource gid>-<sequence>``."""
    return batch_id.rsplit("-", 1)[0]
