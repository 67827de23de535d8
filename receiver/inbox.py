"""Group commit of deliveries into Redis. I/O edge (redis.asyncio).

Deliveries that arrive while a round trip is in flight wait for the next one and then share
it: under load one atomic script call stores many deliveries (their RQ jobs, their places in
the queue, their targets' counters); alone, a delivery pays one round trip. ``put`` returns
only once Redis has answered for the batch that holds the delivery, so an acknowledgement
always means the work is stored; if Redis fails, only that batch's deliveries answer 503.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from asana_hooks.rqwire import ENQUEUE_SCRIPT, enqueue_command

MAX_BATCH = 256


@dataclass
class _Waiting:
    frame: bytes
    stored: asyncio.Future[None]


class Inbox:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._script = client.register_script(ENQUEUE_SCRIPT)
        self._waiting: list[_Waiting] = []
        self._flusher: asyncio.Task[None] | None = None

    async def put(self, frame: bytes) -> None:
        """Store one framed delivery (``rqwire.frame``); return once Redis holds it."""
        stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(frame, stored))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all())
        await stored

    async def _flush_all(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
            error: RedisError | None = None
            try:
                await self._store([waiting.frame for waiting in batch])
            except RedisError as exc:
                error = exc
            for waiting in batch:
                if waiting.stored.done():
                    continue  # the request went away; its delivery is stored all the same
                if error is None:
                    waiting.stored.set_result(None)
                else:
                    waiting.stored.set_exception(error)

    async def _store(self, frames: list[bytes]) -> None:
        script_keys, argv = enqueue_command(frames)
        try:
            await self._client.evalsha(self._script.sha, len(script_keys), *script_keys, *argv)
        except NoScriptError:
            # Redis restarted and forgot the script: load it and send the same batch again.
            await self._client.script_load(ENQUEUE_SCRIPT)
            await self._client.evalsha(self._script.sha, len(script_keys), *script_keys, *argv)
