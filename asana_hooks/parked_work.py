"""Work waiting for a connection Asana refuses, kept until it is connected again. I/O edge
(Redis, RQ by dotted name).

A flush whose batches belong to a connection Asana refused (a 401, a refused OAuth refresh,
a connection that is gone) does not retry them for twenty minutes and then give up: it parks
them. Parking moves the batches to an owner of their own, ``park-<connection>-<hex>``, kept
without expiry in ``keys.parked_work(connection)`` (oldest first) and frees their resources, so
the next batches of those resources close and park behind them instead of spinning.

When the connection turns ``ok`` again (`connections token`, the OAuth callback, a call that
succeeds after a 401) ``request_resume`` puts one ``workers.jobs.resume_connection`` job on the
queue, which flushes the parked owners in parking order (workers.flush). The poller asks for a
resume too, once a connection's 401 flag has lapsed, so work waits at most one poll interval
after that even if nobody said the connection is back. `connections remove` drops what a
connection parked (or hands it to the default connection with --keep-webhooks).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable
from typing import Any

import redis
from redis.exceptions import RedisError

from asana_hooks import keys, lua
from asana_hooks.queueing import (
    FAILURE_TTL_SECONDS,
    JOB_RETRY,
    UNREAD_RESULT_TTL_SECONDS,
    make_queue,
)
from asana_hooks.redis_conn import text

log = logging.getLogger(__name__)

PARKED_PREFIX = "park-"
RESUME_GUARD_SECONDS = 30
"""At most one resume job per connection is asked for in this time."""
RESUME_TIMEOUT_SECONDS = 1800
"""A resume flushes every parked owner of a connection in turn (each as a flush job would)."""

_PARK = lua.load(__file__, "park_batches")


def parked_owner(connection_id: str) -> str:
    """A new owner for batches parked for this connection."""
    return f"{PARKED_PREFIX}{connection_id}-{secrets.token_hex(6)}"


def connection_of(owner: str) -> str | None:
    """The connection a parked owner waits for; None for any other flush job id."""
    if not owner.startswith(PARKED_PREFIX):
        return None
    return owner.removeprefix(PARKED_PREFIX).rsplit("-", 1)[0] or None


def park(
    connection: redis.Redis,
    connection_id: str,
    *,
    owner: str,
    batches: Iterable[tuple[str, str]],
) -> str:
    """Move these (batch id, resource gid) batches, closed by flush job ``owner``, to a parked
    owner of ``connection_id`` (``owner`` itself when it is one already); returns that owner."""
    target = owner if connection_of(owner) == connection_id else parked_owner(connection_id)
    pairs = [part for batch_id, gid in batches for part in (batch_id, gid)]
    connection.register_script(_PARK)(
        keys=[
            keys.flush_owned(owner),
            keys.flush_owned(target),
            keys.parked_work(connection_id),
            keys.PARKED_CONNECTIONS,
        ],
        args=[
            connection_id,
            target,
            int(time.time() * 1000),
            keys.closed_batch(""),
            keys.batch_flushing(""),
            owner,
            *pairs,
        ],
    )
    return target


def owners(connection: redis.Redis, connection_id: str) -> list[str]:
    """The parked owners of a connection, oldest first."""
    found: Iterable[Any] = connection.zrange(keys.parked_work(connection_id), 0, -1)
    return [text(item) for item in found]


def settle(connection: redis.Redis, owner: str) -> None:
    """A parked owner whose batches are all out (emitted, or parked anew elsewhere): forget it."""
    connection_id = connection_of(owner)
    if connection_id is None or connection.scard(keys.flush_owned(owner)):
        return
    pipe = connection.pipeline(transaction=True)
    pipe.zrem(keys.parked_work(connection_id), owner)
    pipe.delete(keys.flush_owned(owner))
    pipe.zcard(keys.parked_work(connection_id))
    if not pipe.execute()[-1]:
        connection.srem(keys.PARKED_CONNECTIONS, connection_id)


def waiting_many(connection: redis.Redis, connection_ids: list[str]) -> dict[str, int]:
    """How many batches wait for each of these connections (those with none are left out),
    in two round trips (one when none has parked work)."""
    pipe = connection.pipeline(transaction=False)
    for connection_id in connection_ids:
        pipe.zrange(keys.parked_work(connection_id), 0, -1)
    owners_of = {
        connection_id: [text(item) for item in found]
        for connection_id, found in zip(connection_ids, pipe.execute(), strict=True)
        if found
    }
    if not owners_of:
        return {}
    pipe = connection.pipeline(transaction=False)
    for found in owners_of.values():
        for owner in found:
            pipe.scard(keys.flush_owned(owner))
    counts = iter(pipe.execute())
    return {
        connection_id: sum(int(next(counts)) for _ in found)
        for connection_id, found in owners_of.items()
    }


def connections_waiting(connection: redis.Redis) -> list[str]:
    return sorted(text(item) for item in connection.smembers(keys.PARKED_CONNECTIONS))


def drop(connection: redis.Redis, connection_id: str) -> int:
    """Forget what a connection parked (`connections remove` without --keep-webhooks: its
    webhooks are gone and nobody can fetch for it); returns how many batches."""
    dropped = 0
    for owner in owners(connection, connection_id):
        batch_ids = [text(item) for item in connection.smembers(keys.flush_owned(owner))]
        pipe = connection.pipeline(transaction=True)
        for batch_id in batch_ids:
            pipe.delete(keys.closed_batch(batch_id))
        pipe.delete(keys.flush_owned(owner))
        pipe.zrem(keys.parked_work(connection_id), owner)
        pipe.execute()
        dropped += len(batch_ids)
    connection.srem(keys.PARKED_CONNECTIONS, connection_id)
    if dropped:
        log.warning("parked.dropped connection=%s batches=%d", connection_id, dropped)
    return dropped


def request_resume(connection: redis.Redis, connection_id: str) -> bool:
    """Put a resume job for this connection on the queue if it has parked work and none was
    asked for in the last RESUME_GUARD_SECONDS. Never raises: a Redis error is logged, and the
    poller asks again."""
    try:
        if not connection.exists(keys.parked_work(connection_id)):
            return False
        guard = keys.resume_requested(connection_id)
        if not connection.set(guard, "1", nx=True, ex=RESUME_GUARD_SECONDS):
            return False
        make_queue(connection).enqueue_call(
            keys.RESUME_CONNECTION_JOB,
            kwargs={"connection_id": connection_id},
            job_id=f"resume-{connection_id}-{secrets.token_hex(4)}",
            description=f"resume the work parked for connection {connection_id}",
            retry=JOB_RETRY,
            timeout=RESUME_TIMEOUT_SECONDS,
            result_ttl=UNREAD_RESULT_TTL_SECONDS,
            failure_ttl=FAILURE_TTL_SECONDS,
        )
    except RedisError as exc:
        log.warning("parked.resume_not_queued connection=%s: %s", connection_id, exc)
        return False
    log.info("parked.resume_queued connection=%s", connection_id)
    return True
