"""Group commit of deliveries into Redis. I/O edge (redis.asyncio).

Deliveries that arrive while a round trip is in flight wait for the next one and then share
it: under load one atomic script call stores many deliveries (their RQ jobs, their places in
the queue, their targets' counters); alone, a delivery pays one round trip. ``put`` returns
only once Redis has answered for the batch that holds the delivery, so an acknowledgement
always means the work is stored; if Redis fails, only that batch's deliveries answer 503.

With ``fsync`` (HOOKS_DURABILITY=fsync) "stored" means on disk: the batch's script call and a
``WAITAOF 1 0`` go down one connection in one round trip (WAITAOF waits for the writes of its
own connection), and the batch is acknowledged only once Redis says its AOF holds them.
WAITAOF waits for Redis's next fsync (about 1 ms under ``appendfsync always``, about 100 ms
under ``everysec``), so up to ``FSYNC_IN_FLIGHT`` batches wait at once on their own
connections, and the deliveries that arrive meanwhile gather into the next batch.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

from asana_hooks.rqwire import ENQUEUE_SCRIPT, enqueue_command

MAX_BATCH = 256
FSYNC_IN_FLIGHT = 8
"""Batches waiting for their fsync at once (each holds one Redis connection)."""
FSYNC_WAIT_MS = 3000
"""How long WAITAOF may wait for the disk before the batch answers 503 (Asana retries)."""


class NotOnDisk(RedisError):
    """Redis took the batch but did not confirm it reached its AOF in time."""


@dataclass
class _Waiting:
    frame: bytes
    stored: asyncio.Future[None]


class Inbox:
    def __init__(self, client: aioredis.Redis, *, fsync: bool = False) -> None:
        self._client = client
        self._script = client.register_script(ENQUEUE_SCRIPT)
        self._waiting: list[_Waiting] = []
        self._flusher: asyncio.Task[None] | None = None
        self._fsync = fsync
        self._slots = asyncio.Semaphore(FSYNC_IN_FLIGHT)
        self._in_flight: set[asyncio.Task[None]] = set()

    async def put(self, frame: bytes) -> None:
        """Store one framed delivery (``rqwire.frame``); return once Redis holds it."""
        stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(frame, stored))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all())
        await stored

    async def _flush_all(self) -> None:
        while self._waiting:
            if not self._fsync:
                await self._commit(self._take())
                continue
            await self._slots.acquire()
            task = asyncio.create_task(self._commit(self._take()))
            self._in_flight.add(task)
            task.add_done_callback(self._done)

    def _take(self) -> list[_Waiting]:
        batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
        return batch

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slots.release()

    async def _commit(self, batch: list[_Waiting]) -> None:
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
            await self._send(script_keys, argv)
        except NoScriptError:
            # Redis restarted and forgot the script: load it and send the same batch again.
            await self._client.script_load(ENQUEUE_SCRIPT)
            await self._send(script_keys, argv)

    async def _send(self, script_keys: list[str], argv: list[Any]) -> None:
        if not self._fsync:
            await self._client.evalsha(self._script.sha, len(script_keys), *script_keys, *argv)
            return
        pipe = self._client.pipeline(transaction=False)
        pipe.evalsha(self._script.sha, len(script_keys), *script_keys, *argv)
        pipe.execute_command("WAITAOF", 1, 0, FSYNC_WAIT_MS)
        _stored, (local, _replicas) = await pipe.execute()
        if int(local) < 1:
            raise NotOnDisk(f"Redis did not confirm the AOF fsync within {FSYNC_WAIT_MS} ms")
