"""Redis connections with bounded timeouts and no hidden retries. I/O edge.

A process that cannot reach Redis must find out within about a second (the receiver then
answers 503 so Asana retries); redis-py reconnects by itself on the next command once
Redis is back, so no process needs a restart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry


def connect(
    url: str,
    *,
    socket_timeout: float = 1.0,
    connect_timeout: float = 0.5,
    max_connections: int | None = None,
) -> redis.Redis:
    """A client whose every command fails within ``socket_timeout`` when Redis is away."""
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
        max_connections=max_connections,
    )


def connect_async(
    url: str, *, socket_timeout: float = 1.0, connect_timeout: float = 0.5
) -> aioredis.Redis:
    """The asyncio twin of ``connect``, for the receiver's hot path."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect_timeout,
        retry=AsyncRetry(NoBackoff(), 0),
        health_check_interval=30,
    )


def text(value: bytes | str | int) -> str:
    """A Redis reply as str (our clients do not decode responses)."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def optional_text(value: bytes | str | None) -> str | None:
    """``text`` for a reply that may be nil."""
    return None if value is None else text(value)


def decode_hash(raw: Mapping[Any, Any]) -> dict[str, str]:
    """An HGETALL reply as str to str."""
    return {text(k): text(v) for k, v in raw.items()}


def decode_pairs(raw: Sequence[Any]) -> dict[str, str]:
    """A flat [field, value, field, value ...] reply (a Lua script's, say) as a dict."""
    return {text(raw[i]): text(raw[i + 1]) for i in range(0, len(raw) - 1, 2)}


def describe(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def unreachable_message(url: str) -> str:
    return (
        f"Redis at {describe(url)} is unreachable: start it, or set REDIS_URL to one that runs "
        "(`asana-hooks dev` starts its own)"
    )


def fsync_problem(connection: redis.Redis) -> str | None:
    """Why this Redis cannot confirm writes on disk (HOOKS_DURABILITY=fsync), or None.

    It needs WAITAOF (Redis 7.2, Valkey 8) and its append-only file turned on."""
    try:
        connection.execute_command("WAITAOF", 0, 0, 0)  # type: ignore[no-untyped-call]
    except redis.ResponseError:
        return (
            "HOOKS_DURABILITY=fsync needs WAITAOF (Redis 7.2+ or Valkey 8+), which this Redis "
            "lacks: upgrade it, or set HOOKS_DURABILITY=memory"
        )
    if not int(connection.info("persistence").get("aof_enabled", 0)):
        return (
            "HOOKS_DURABILITY=fsync needs Redis's append-only file, which is off: set "
            "`appendonly yes` in its configuration, or set HOOKS_DURABILITY=memory"
        )
    return None


def fsync_advice(connection: redis.Redis) -> str | None:
    """A warning for HOOKS_DURABILITY=fsync on a Redis that fsyncs only once a second: each
    acknowledgement then waits for that background fsync (about 100 ms). None when it fsyncs
    every write, or when CONFIG is not ours to read (managed Redis)."""
    try:
        found = connection.config_get("appendfsync")
    except redis.RedisError:
        return None
    mode = optional_text(dict(found or {}).get("appendfsync")) or "always"
    if mode == "always":
        return None
    return (
        f"HOOKS_DURABILITY=fsync on a Redis with appendfsync {mode}: every 200 waits for its "
        "background fsync (about 100 ms); `appendfsync always` takes about 1 ms"
    )
