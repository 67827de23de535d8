"""The receiver's decisions for one request to /hooks/asana/{target_id}. Synchronous I/O edge.

Runs in Starlette's thread pool: redis-py and RQ are blocking. Each method returns an
``Answer``; nothing here raises for anything a client sent. Redis errors propagate to the
app, which answers 503 so that Asana retries.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field

import redis
from rq import Queue

from asana_hooks import keys
from asana_hooks.events import MalformedEvent, delivery_digest, parse_events
from asana_hooks.queueing import enqueue_events
from asana_hooks.registry import Registry, now_iso
from receiver.signatures import signature_matches
from receiver.targets import TargetLookup

TARGET_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
GONE_STATES = frozenset({"retired", "deleted"})


@dataclass(frozen=True)
class Answer:
    status: int
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    events: int = 0


class DeliveryDesk:
    def __init__(
        self, connection: redis.Redis, queue: Queue, registry: Registry, targets: TargetLookup
    ) -> None:
        self._redis = connection
        self._queue = queue
        self._registry = registry
        self._targets = targets

    def handshake(self, target_id: str, secret: str) -> Answer:
        """Accept only while a registration we started for this target is pending."""
        if not TARGET_ID.match(target_id) or not secret or len(secret) > 256:
            return self._count(Answer(403, "no registration is pending for this target"))
        if not self._registry.accept_handshake(target_id, secret):
            return self._count(Answer(403, "no registration is pending for this target"))
        return self._count(Answer(200, headers={"X-Hook-Secret": secret}))

    def delivery(self, target_id: str, body: bytes, signature: str | None) -> Answer:
        if not TARGET_ID.match(target_id):
            return self._count(Answer(404, "unknown target"))
        target = self._targets.get(target_id)
        if target is None:
            return self._count(Answer(404, "unknown target"))
        if target.state in GONE_STATES:
            return self._count(Answer(410, "this webhook is retired"))
        if target.secret is None:
            return self._count(Answer(404, "this target has no confirmed webhook"))
        if not signature_matches(body, signature, target.secret):
            target = self._targets.get(target_id, fresh=True)
            if target is None or target.secret is None:
                return self._count(Answer(404, "unknown target"))
            if not signature_matches(body, signature, target.secret):
                return self._count(Answer(401, "missing or invalid X-Hook-Signature"))
        try:
            payload = json.loads(body)
            events = parse_events(payload)
        except (ValueError, RecursionError) as exc:
            detail = str(exc) if isinstance(exc, MalformedEvent) else "the body is not JSON"
            return self._count(Answer(400, detail))
        if not events:
            return self._heartbeat(target_id)
        return self._enqueue(target_id, target.webhook_gid, payload["events"], body)

    def _heartbeat(self, target_id: str) -> Answer:
        pipe = self._redis.pipeline(transaction=False)
        now = now_iso()
        pipe.hset(keys.target(target_id), mapping={"last_heartbeat_at": now})
        pipe.hincrby(keys.target(target_id), "heartbeats", 1)
        pipe.hincrby(keys.STATS, "http:200", 1)
        pipe.execute()
        return Answer(200)

    def _enqueue(
        self, target_id: str, webhook_gid: str | None, events: list[object], body: bytes
    ) -> Answer:
        now = now_iso()
        pipe = self._redis.pipeline(transaction=True)
        enqueue_events(
            self._queue,
            target_id=target_id,
            webhook_gid=webhook_gid,
            source="webhook",
            events=events,
            digest=delivery_digest(body),
            received_at=now,
            pipeline=pipe,
        )
        pipe.hset(keys.target(target_id), "last_delivery_at", now)
        pipe.hincrby(keys.target(target_id), "deliveries", 1)
        pipe.hincrby(keys.target(target_id), "events", len(events))
        pipe.hincrby(keys.STATS, "http:200", 1)
        pipe.execute()
        return Answer(200, events=len(events))

    def _count(self, answer: Answer) -> Answer:
        """Record refusals by status code (best effort: counting never changes the answer)."""
        with contextlib.suppress(redis.RedisError):
            self._redis.hincrby(keys.STATS, f"http:{answer.status}", 1)
        return answer
