"""Take one delivery (or poller page): dedupe, batch, schedule flushes. I/O edge (Redis, RQ).

Steps, each atomic in Redis: claim the delivery and its events for this job; put the
claimed events into their batches (which marks them done and drops the claims); schedule a
flush for every due second that has none yet, and one at once after a deletion. If anything
fails after the claim, the claims are given back before the error propagates, so RQ's retry
of this job starts clean.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import Any

from asana_hooks import keys, quarantine
from asana_hooks.errors import HooksError
from asana_hooks.events import Event, MalformedEvent, parse_event
from asana_hooks.queueing import Delivery
from asana_hooks.redis_conn import optional_text
from workers.batching import Added
from workers.model import BatchEvent, is_beyond_window, is_late
from workers.runtime import Runtime
from workers.scheduling import flush_now, schedule_ticks
from workers.scope_events import follow_scope
from workers.window import WINDOW_SECONDS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IntakeResult:
    """What one process_delivery job did (kept as the RQ job's result)."""

    events: int
    duplicates: int
    added: int
    late: int
    batches_opened: int
    quarantined: int = 0
    duplicate_delivery: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def take_delivery(runtime: Runtime, delivery: Delivery, *, job_id: str) -> IntakeResult:
    events = list(delivery.events)
    target_id = delivery.target_id
    parsed, unread = _parse_all(events)
    parsed = _without_replays(runtime, delivery, parsed)
    fingerprints = [event.fingerprint for event in parsed]
    claim = runtime.deduper.claim(
        job_id=job_id, target_id=target_id, digest=delivery.digest, fingerprints=fingerprints
    )
    if claim.duplicate_delivery:
        _count_duplicate_delivery(runtime, target_id, events=len(events))
        log.info("intake.duplicate_delivery target=%s events=%d", target_id, len(events))
        return IntakeResult(len(events), len(events), 0, 0, 0, 0, True)
    webhook_gid = delivery.webhook_gid or _current_webhook(runtime, target_id)
    if unread:
        # Before anything else: a failure below gives the claims back, and a retry keeps
        # the same entries (ids come from the events), so nothing is kept or counted twice.
        quarantine.keep(runtime.redis, replace(delivery, webhook_gid=webhook_gid), unread)
    late_after = runtime.settings.late_event_seconds
    fresh = [
        BatchEvent.of(
            event,
            source=delivery.source,
            webhook_gid=webhook_gid,
            target_id=target_id,
            late=is_late(event.created_at, delivery.received_at, late_after),
        )
        for event, claimed in zip(parsed, claim.claimed, strict=True)
        if claimed
    ]
    try:
        added = runtime.batcher.add(
            fresh,
            job_id=job_id,
            digest=delivery.digest,
            received=len(events),
            claim_duplicates=claim.duplicates,
            target_id=target_id,
        )
        added = _add_unclaimed(runtime, added, fresh, job_id=job_id, target_id=target_id)
        if added.ticks:
            with runtime.redis.pipeline(transaction=True) as pipe:
                schedule_ticks(runtime.queue, added.ticks, pipe)
                pipe.execute()
        if added.urgent:
            flush_now(runtime.queue, "a resource was deleted")
        follow_scope(
            runtime, target_id, [e for e, ok in zip(parsed, claim.claimed, strict=True) if ok]
        )
    except BaseException:
        runtime.deduper.release(
            job_id=job_id, target_id=target_id, digest=delivery.digest, fingerprints=fingerprints
        )
        raise
    follow_scope(
        runtime, target_id, [e for e, new in zip(parsed, claim.claimed, strict=True) if new]
    )
    return IntakeResult(
        events=len(events),
        duplicates=added.duplicates,
        added=added.added,
        late=added.late,
        batches_opened=len(added.opened),
        quarantined=len(unread),
    )


RECLAIMS = 3
"""Times a job claims again events whose claim expired while it stalled, before it fails."""


def _add_unclaimed(
    runtime: Runtime,
    added: Added,
    events: list[BatchEvent],
    *,
    job_id: str,
    target_id: str | None,
) -> Added:
    """Claim again (and add) the events whose claim this job no longer held: one that
    expired while the job stalled. The claim looks in the dedupe window, so an event another
    job took meanwhile is a duplicate now. Rare: a job runs for milliseconds, a claim 5 min."""
    for _ in range(RECLAIMS):
        if not added.unclaimed:
            return added
        events = [events[i] for i in added.unclaimed]
        claim = runtime.deduper.claim(
            job_id=job_id,
            target_id=target_id,
            digest=None,
            fingerprints=[event.fingerprint for event in events],
        )
        events = [event for event, ok in zip(events, claim.claimed, strict=True) if ok]
        again = runtime.batcher.add(
            events,
            job_id=job_id,
            received=0,
            claim_duplicates=claim.duplicates,
            target_id=target_id,
        )
        added = Added(
            added=added.added + again.added,
            late=added.late + again.late,
            opened=added.opened + again.opened,
            urgent=added.urgent + again.urgent,
            ticks=added.ticks + again.ticks,
            duplicates=added.duplicates + again.duplicates,
            unclaimed=again.unclaimed,
        )
    if added.unclaimed:
        raise ClaimsExpired(f"{len(added.unclaimed)} event(s) lost their claim {RECLAIMS} times")
    return added


class ClaimsExpired(HooksError):
    """A job kept losing its claims (it stalls longer than a claim lives): RQ retries it."""


def _without_replays(runtime: Runtime, delivery: Delivery, parsed: list[Event]) -> list[Event]:
    """Drop a webhook delivery's events that happened more than the dedupe window before we
    received them (workers.model.is_beyond_window): Asana never sends those, so they are a
    captured body posted again. Counted (``stale``) and logged; the delivery stays accepted."""
    if delivery.source != "webhook":
        return parsed
    kept = [e for e in parsed if not is_beyond_window(e.created_at, delivery.received_at)]
    stale = len(parsed) - len(kept)
    if stale:
        runtime.redis.hincrby(keys.STATS, "stale", stale)
        log.warning(
            "intake.stale target=%s events=%d: signed events from over %d h before their "
            "delivery, older than the dedupe window (a replayed body, or a clock far off); "
            "dropped",
            delivery.target_id,
            stale,
            WINDOW_SECONDS // 3600,
        )
    return kept


def _current_webhook(runtime: Runtime, target_id: str | None) -> str | None:
    """A delivery taken while its webhook was being re-created names no webhook: the
    registration names the new one by now."""
    if target_id is None:
        return None
    return optional_text(runtime.redis.hget(keys.target(target_id), "webhook_gid"))


def _parse_all(raw_events: list[Any]) -> tuple[list[Event], list[tuple[Any, str]]]:
    """The events we can read, and the others with the reason (for the quarantine)."""
    parsed: list[Event] = []
    unread: list[tuple[Any, str]] = []
    for index, raw in enumerate(raw_events):
        try:
            parsed.append(parse_event(raw))
        except MalformedEvent as exc:
            unread.append((raw, exc.problem))
            log.warning("intake.quarantined index=%d reason=%s", index, exc.problem)
    return parsed, unread


def _count_duplicate_delivery(runtime: Runtime, target_id: str | None, *, events: int) -> None:
    """Counters in keys.STATS (names documented in workers.emit) and on the target."""
    with runtime.redis.pipeline(transaction=False) as pipe:
        pipe.hincrby(keys.STATS, "events", events)
        pipe.hincrby(keys.STATS, "duplicates", events)
        pipe.hincrby(keys.STATS, "duplicate_deliveries", 1)
        pipe.execute()
    if target_id and runtime.redis.exists(keys.target(target_id)):
        runtime.redis.hincrby(keys.target(target_id), "duplicates", events)
