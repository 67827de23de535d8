"""Flush due batches: close, rehydrate, emit, hand to sinks. I/O edge (Redis, RQ, Asana).

A flush job (scheduled for a second in which batches fall due, or enqueued at once after a
deletion) closes the batches due by then, up to FLUSH_MAX_BATCHES so that ``/batch``
requests fetch ten at a time, hands any rest to another flush job, and emits every batch it
closed. Closed batches are owned by the job: its retry (after a 5xx, a timeout, a crash)
finishes exactly those, and the emit script writes each one once. A batch whose previous
batch is still being flushed is left open and looked at again a second later. Batches of a
connection Asana refuses (a 401) are parked instead of retried (asana_hooks.parked_work): they
wait, without expiry, until the connection is connected again (workers.resume). Batches of a
connection paused by a 429, or without room in its budget within a few seconds, are deferred
to a flush job scheduled for when it expects room: no worker sleeps on one connection's
budget while the others' work waits.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from asana_hooks import keys, parked_work
from asana_hooks.asana_clients import Clients
from asana_hooks.asana_errors import AsanaError, BadToken, BudgetExhausted, RateLimited
from asana_hooks.connections import UnknownConnection
from asana_hooks.redis_conn import text
from asana_hooks.settings import SettingsError
from workers.batching import BUSY_RETRY_MS
from workers.model import ClosedBatch, build_change, plan_by_connection
from workers.rehydrate import Outcome, rehydrate
from workers.runtime import Runtime
from workers.scheduling import enqueue_sinks, flush_later, flush_now, schedule_ticks
from workers.versions import redundancy

log = logging.getLogger(__name__)

FLUSH_MAX_BATCHES = 50
"""Batches one flush job takes at most: five /batch requests of ten."""


@dataclass(frozen=True)
class FlushResult:
    """What one flush job did (kept as the RQ job's result)."""

    state: str
    emitted: int = 0
    batches: int = 0
    parked: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def flush(
    runtime: Runtime, *, job_id: str, take_due: bool = True, defer: bool = True
) -> FlushResult:
    """Finish the batches an earlier attempt of this job closed, else take the due ones
    (unless ``take_due`` is False: a parked owner resumed, or deferred batches, finish their
    own batches only). ``defer``: batches whose connection has no room now go to a flush job
    scheduled for when it will (else the caller gets BudgetExhausted)."""
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
    parked = sum(len(batches) for batches in done.refused.values())
    if done.later:
        if not defer:
            raise BudgetExhausted(
                f"{len(done.later)} batch(es) wait for room in their connection's budget",
                retry_after=done.later_after,
            )
        _defer(runtime, job_id, done)
        return FlushResult("deferred", emitted=done.emitted, batches=len(closed), parked=parked)
    if not kept_here:
        batcher.forget_owned(job_id)
        parked_work.settle(runtime.redis, job_id)
    return FlushResult(
        "parked" if parked else "flushed", emitted=done.emitted, batches=len(closed), parked=parked
    )


def _defer(runtime: Runtime, job_id: str, done: _Emitted) -> None:
    """Keep only the deferred batches owned by this job and finish them in a flush job at
    the time their connection expects room (workers.scheduling.flush_later)."""
    waiting = [batch.batch_id for batch in done.later]
    runtime.batcher.keep_owned(job_id, waiting)
    at = time.time() + max(1.0, done.later_after)
    with runtime.redis.pipeline(transaction=True) as pipe:
        flush_later(runtime.queue, job_id, at, pipeline=pipe)
        pipe.hincrby(keys.STATS, "rate_limit_waits", 1)
        pipe.execute()
    log.info(
        "flush.deferred batches=%d for=%.1fs: no room in their connection's budget now",
        len(waiting),
        at - time.time(),
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
        second = math.ceil(time.time() + BUSY_RETRY_MS / 1000)
        if batcher.claim_tick(second):
            schedule_ticks(runtime.queue, [second])
    return taken


@dataclass
class _Emitted:
    emitted: int = 0
    refused: dict[str, list[ClosedBatch]] = field(default_factory=dict)
    """Connection -> its batches Asana refused to fetch for it (a 401): parked."""
    later: list[ClosedBatch] = field(default_factory=list)
    """Batches of a connection with no room in its budget, or paused by a 429: deferred."""
    later_after: float = math.inf
    """Seconds until the first of those connections expects room."""
    error: AsanaError | None = None
    """The first other error (a 5xx, a timeout): the job's retry finishes those batches."""


def _emit_all(runtime: Runtime, closed: list[ClosedBatch]) -> _Emitted:
    """Fetch and emit every closed batch, each with its connection's client (the one whose
    webhook brought it); emit what succeeded and report the rest. A connection paused by a 429,
    or without room in its budget within REHYDRATION_BUDGET_WAIT_SECONDS, is not waited for:
    its batches are deferred (and a revoked one's parked) while the others go out now."""
    needed = _settle_redundant(runtime, closed)
    targets = _targets(runtime, needed)
    done = _Emitted()
    groups = plan_by_connection(needed, targets.connections)
    for connection_id, batches in groups:
        outcomes = _rehydrate_as(runtime, connection_id, batches)
        for batch in batches:
            outcome = outcomes[batch.batch_id]
            if outcome.fetched is None:
                error = outcome.error
                if isinstance(error, BadToken):
                    done.refused.setdefault(connection_id, []).append(batch)
                elif isinstance(error, BudgetExhausted | RateLimited):
                    done.later.append(batch)
                    done.later_after = min(done.later_after, error.retry_after)
                else:
                    done.error = done.error or error
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
    runtime: Runtime, connection_id: str, batches: list[ClosedBatch]
) -> dict[str, Outcome]:
    """The outcomes of one connection's batches, or its reason to wait for each of them:
    revoked (parked), or paused by a 429 (deferred to the pause's end, never waited for)."""
    try:
        clients = runtime.rehydration_clients
        held = clients.held_back(connection_id)
        if held is None:
            client = clients.get(connection_id)
            return rehydrate(client, batches, overrides=runtime.settings.opt_fields)
        error: AsanaError
        if held == "revoked":
            error = BadToken(f"connection {connection_id} is revoked (401)", status=401)
        else:
            until = _pause_end(clients, connection_id)
            error = BudgetExhausted(
                f"connection {connection_id} is paused after a 429",
                retry_after=max(1.0, until - time.time()),
            )
    except (UnknownConnection, SettingsError) as exc:
        error = BadToken(f"connection {connection_id} cannot call Asana: {exc}", status=401)
    return {batch.batch_id: Outcome(error=error) for batch in batches}


def _pause_end(clients: Clients, connection_id: str) -> float:
    """When this connection's 429 pause ends (epoch seconds; now if it has ended)."""
    return clients.get(connection_id).budget.paused_until() or time.time()


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
