"""What the receiver needs to know about a target, cached for a second. I/O edge (Redis).

Each delivery needs the target's state and secret. Reading them from Redis and decrypting
the secret on every request would cost a round trip and a Fernet decryption; a one-second
cache keeps retire and re-create visible within a second, and a signature that does not
match a cached secret is checked once more against Redis before the answer is 401.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from asana_hooks import keys
from asana_hooks.redis_conn import text
from asana_hooks.secretbox import SecretBox

CACHE_SECONDS = 1.0
MAX_CACHED = 10_000


@dataclass(frozen=True)
class Target:
    target_id: str
    state: str
    secret: str | None
    webhook_gid: str | None
    fetched_at: float


class TargetLookup:
    def __init__(self, client: aioredis.Redis, box: SecretBox) -> None:
        self._client = client
        self._box = box
        self._cache: dict[str, Target] = {}

    async def get(self, target_id: str, *, fresh: bool = False) -> Target | None:
        cached = self._cache.get(target_id)
        if cached and not fresh and time.monotonic() - cached.fetched_at < CACHE_SECONDS:
            return cached
        state, token, webhook_gid = await self._client.hmget(
            keys.target(target_id), ["state", "secret", "webhook_gid"]
        )
        if state is None:
            self._cache.pop(target_id, None)
            return None
        target = Target(
            target_id=target_id,
            state=text(state),
            secret=self._box.decrypt(text(token)) if token else None,
            webhook_gid=text(webhook_gid) if webhook_gid else None,
            fetched_at=time.monotonic(),
        )
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[target_id] = target
        return target
