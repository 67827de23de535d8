"""The receiver's decisions for one request to /hooks/asana/{target_id}. I/O edge.

Deliveries run on the event loop (redis.asyncio, group-committed through ``Inbox``); the
rare handshake runs the synchronous registry in the thread pool. Each method returns an
``Answer``; nothing here raises for anything a client sent. Redis errors propagate to the
app, which answers 503 so that Asana retries.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from asana_hooks import keys, rqwire
from asana_hooks.events import MalformedEvent, delivery_digest, delivery_events, format_timestamp
from asana_hooks.registry import Registry
from receiver.inbox import Inbox
from receiver.signatures import signature_matches
from receiver.targets import TargetLookup

TARGET_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
GONE_STATES = frozenset({"retired", "deleted"})
NO_PENDING = "no registration is pending for this target"


@dataclass(frozen=True)
class Answer:
    status: int
    error: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    events: int = 0


class DeliveryDesk:
    def __init__(
        self, client: aioredis.Redis, registry: Registry, targets: TargetLookup, inbox: Inbox
    ) -> None:
        self._client = client
        self._registry = registry
        self._targets = targets
        self._inbox = inbox

    async def handshake(self, target_id: str, secret: str) -> Answer:
        """Accept only while a registration we started for this target is pending."""
        if not TARGET_ID.match(target_id) or not secret or len(secret) > 256:
            return await self._counted(Answer(403, NO_PENDING))
        if not await run_in_threadpool(self._registry.accept_handshake, target_id, secret):
            return await self._counted(Answer(403, NO_PENDING))
        return await self._counted(Answer(200, headers={"X-Hook-Secret": secret}))

    async def delivery(self, target_id: str, body: bytes, signature: str | None) -> Answer:
        if not TARGET_ID.match(target_id):
            return await self._counted(Answer(404, "unknown target"))
        target = await self._targets.get(target_id)
        if target is None:
            return await self._counted(Answer(404, "unknown target"))
        if target.state in GONE_STATES:
            return await self._counted(Answer(410, "this webhook is retired"))
        if target.secret is None:
            return await self._counted(Answer(404, "this target has no confirmed webhook"))
        if not signature_matches(body, signature, target.secret):
            target = await self._targets.get(target_id, fresh=True)
            if target is None or target.secret is None:
                return await self._counted(Answer(404, "unknown target"))
            if not signature_matches(body, signature, target.secret):
                return await self._counted(Answer(401, "missing or invalid X-Hook-Signature"))
        try:
            events = delivery_events(decode_json(body))
        except MalformedEvent as exc:
            return await self._counted(Answer(400, str(exc)))
        except ValueError:
            return await self._counted(Answer(400, "the body is not UTF-8 JSON"))
        if not events:
            await self._heartbeat(target_id)
            return Answer(200)
        await self._enqueue(target_id, target.webhook_gid, len(events), body)
        return Answer(200, events=len(events))

    async def _heartbeat(self, target_id: str) -> None:
        pipe = self._client.pipeline(transaction=False)
        pipe.hset(keys.target(target_id), "last_heartbeat_at", format_timestamp(_now()))
        pipe.hincrby(keys.target(target_id), "heartbeats", 1)
        pipe.hincrby(keys.STATS, "http:200", 1)
        await pipe.execute()

    async def _enqueue(
        self, target_id: str, webhook_gid: str | None, events: int, body: bytes
    ) -> None:
        rq_stamp = rqwire.rq_timestamp(_now())
        kwargs = rqwire.delivery_kwargs(
            target_id=target_id,
            webhook_gid=webhook_gid,
            digest=delivery_digest(body),
            received_at=rq_stamp[:23] + "Z",
            body=body,
        )
        await self._inbox.put(
            rqwire.frame(kwargs, target_id=target_id, events=events, rq_stamp=rq_stamp)
        )

    async def _counted(self, answer: Answer) -> Answer:
        """Count an answer the inbox does not count (all but an enqueued delivery's 200), best
        effort: a Redis error never changes the answer."""
        with contextlib.suppress(RedisError):
            await self._client.hincrby(keys.STATS, f"http:{answer.status}", 1)
        return answer


def decode_json(body: bytes) -> object:
    """orjson, and the standard library for the JSON orjson refuses (integers past 64 bits):
    what Asana signed is read if it is JSON at all. ValueError if it is not (NaN and Infinity
    are not JSON; nesting past Python's recursion limit is refused too)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body, parse_constant=_not_json)
    except (RecursionError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None


def _not_json(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _now() -> datetime:
    return datetime.now(UTC)
