"""Events Asana signed that we could not read: kept verbatim with the reason, never refused.

A 4xx to Asana fails the whole delivery: Asana retries it for 24 hours and then deletes the
webhook. So the receiver answers 200 to every validly signed ``{"events": [...]}`` and the job
keeps each event it cannot parse here, counted on its webhook and in the totals, until an
operator replays it (`asana-hooks quarantine replay`) with a version that understands it.
Capped at ``CAP`` entries, the oldest dropped first (counted as ``quarantine_dropped``).
I/O edge (Redis, and RQ for a replay).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import redis

from asana_hooks import keys, lua
from asana_hooks.events import MalformedEvent, Source, parse_event
from asana_hooks.queueing import Delivery, enqueue_delivery, make_queue

CAP = 10_000
"""Entries kept at most: a whole delivery's worth of odd events many times over, a few MB."""

_PUT = lua.load(__file__, "quarantine_put")


@dataclass(frozen=True)
class QuarantinedEvent:
    """One kept event: the contract's `quarantine list --json` object."""

    id: str
    target_id: str | None
    webhook_gid: str | None
    received_at: str
    reason: str
    event: Any
    source: Source = "webhook"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> QuarantinedEvent:
        return cls(
            id=str(data.get("id", "")),
            target_id=data.get("target_id"),
            webhook_gid=data.get("webhook_gid"),
            received_at=str(data.get("received_at", "")),
            reason=str(data.get("reason", "")),
            event=data.get("event"),
            source="poller" if data.get("source") == "poller" else "webhook",
        )


def entry_id(target_id: str | None, event: Any) -> str:
    """The same event kept twice (a retried job, Asana resending it) is one entry."""
    identity = json.dumps([target_id, event], sort_keys=True, separators=(",", ":"), default=str)
    return "q" + hashlib.sha256(identity.encode("utf-8")).hexdigest()[:15]


def keep(connection: redis.Redis, delivery: Delivery, unread: Sequence[tuple[Any, str]]) -> int:
    """Keep each (event, reason) of one delivery; returns how many were not kept before."""
    if not unread:
        return 0
    target_key = keys.target(delivery.target_id) if delivery.target_id else ""
    args: list[Any] = [CAP, time.time_ns() // 1000]
    for event, reason in unread:
        record = QuarantinedEvent(
            id=entry_id(delivery.target_id, event),
            target_id=delivery.target_id,
            webhook_gid=delivery.webhook_gid,
            received_at=delivery.received_at,
            reason=reason,
            event=event,
            source=delivery.source,
        )
        args += [record.id, json.dumps(record.to_json(), default=str), target_key]
    keys_ = [keys.QUARANTINE, keys.QUARANTINE_ORDER, keys.STATS]
    return int(connection.register_script(_PUT)(keys=keys_, args=args))


def note(events: int) -> str | None:
    """The warning on a webhook's row (status page, `webhooks status`), or None."""
    if events <= 0:
        return None
    return f"{events} event(s) we could not read are kept aside: asana-hooks quarantine list"


def count(connection: redis.Redis) -> int:
    return int(connection.zcard(keys.QUARANTINE_ORDER))


def entries(
    connection: redis.Redis, *, limit: int | None = None, newest_first: bool = False
) -> list[QuarantinedEvent]:
    """Kept events in the order they came (or the newest ``limit`` first)."""
    stop = -1 if limit is None else limit - 1
    ids = (
        connection.zrevrange(keys.QUARANTINE_ORDER, 0, stop)
        if newest_first
        else connection.zrange(keys.QUARANTINE_ORDER, 0, stop)
    )
    return _read(connection, ids)


def _read(connection: redis.Redis, ids: Iterable[Any]) -> list[QuarantinedEvent]:
    ids = list(ids)
    if not ids:
        return []
    found = []
    for raw in connection.hmget(keys.QUARANTINE, ids):
        if raw is not None:
            try:
                found.append(QuarantinedEvent.from_json(json.loads(raw)))
            except ValueError:
                continue
    return found


@dataclass(frozen=True)
class ReplayReport:
    replayed: list[str]
    still_unread: dict[str, str]
    """id -> why this version still cannot read it (the entry stays)."""
    missing: list[str]


def replay(connection: redis.Redis, ids: Sequence[str] | None) -> ReplayReport:
    """Enqueue each kept event this version can read as a delivery of its own, then drop it.

    Enqueued before it is dropped, so a crash between the two replays it again, and the
    event's fingerprint makes the second one a duplicate. ``ids=None`` means all."""
    chosen = entries(connection) if ids is None else _read(connection, ids)
    known = {entry.id for entry in chosen}
    missing = [] if ids is None else [wanted for wanted in ids if wanted not in known]
    queue = make_queue(connection)
    replayed: list[str] = []
    still: dict[str, str] = {}
    for entry in chosen:
        try:
            parse_event(entry.event)
        except MalformedEvent as exc:
            still[entry.id] = exc.problem
            continue
        delivery = Delivery(
            source=entry.source,
            target_id=entry.target_id,
            webhook_gid=entry.webhook_gid,
            digest=None,
            received_at=entry.received_at,
            events=(entry.event,),
        )
        enqueue_delivery(queue, delivery)
        with connection.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.QUARANTINE, entry.id)
            pipe.zrem(keys.QUARANTINE_ORDER, entry.id)
            pipe.execute()
        replayed.append(entry.id)
    return ReplayReport(replayed=replayed, still_unread=still, missing=missing)
