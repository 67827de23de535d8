"""The receiver's share of the per-minute series (asana_hooks.series). I/O edge (Redis).

The hot path only counts in memory (``delivered``: no I/O, no lock, one event loop); every
few seconds ``run`` adds what was counted to Redis in one script call, and samples what
only a look at Redis tells: the queue's depth (each flush) and the poller's lag (the
longest time since a followed resource's last good poll, every 15 s). With several
receivers each adds its own counts and the gauges keep the highest sample of the minute.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from asana_hooks import keys, series
from asana_hooks.events import parse_timestamp
from asana_hooks.redis_conn import text
from asana_hooks.rqwire import QUEUE_KEY

log = logging.getLogger(__name__)

FLUSH_SECONDS = 5.0
LAG_EVERY_SECONDS = 15.0


class Trends:
    def __init__(self) -> None:
        self._deliveries = 0
        self._events = 0
        self._ack = [0] * (len(series.ACK_BUCKETS_MS) + 1)
        self._ack_sum_us = 0
        self._lag_sampled_at = 0.0

    def delivered(self, events: int, latency_ms: float) -> None:
        """One delivery acknowledged (2xx) after ``latency_ms``."""
        self._deliveries += 1
        self._events += events
        self._ack[series.ack_bucket(latency_ms)] += 1
        self._ack_sum_us += round(latency_ms * 1000)

    def _take(self) -> tuple[dict[str, float], list[int], int]:
        counters: dict[str, float] = {"deliveries": self._deliveries, "events": self._events}
        ack, ack_sum_us = self._ack, self._ack_sum_us
        self._deliveries = self._events = self._ack_sum_us = 0
        self._ack = [0] * len(ack)
        return counters, ack, ack_sum_us

    async def run(self, client: aioredis.Redis, *, every: float = FLUSH_SECONDS) -> None:
        put = client.register_script(series.PUT_SCRIPT)
        while True:
            await asyncio.sleep(every)
            counters, ack, ack_sum_us = self._take()
            try:
                gauges = await self._sample(client)
                names, args = series.pack(counters, gauges, ack)
                await put(keys=names, args=[series.SLOTS, series.TTL_SECONDS, *args])
                if ack_sum_us:
                    await self._count_latencies(client, ack, ack_sum_us)
            except RedisError as exc:
                log.warning("trends.unavailable error=%r: this interval's counts are lost", exc)

    @staticmethod
    async def _count_latencies(client: aioredis.Redis, ack: list[int], sum_us: int) -> None:
        """The all-time histogram beside the series, for /metrics (a Prometheus histogram
        must only grow): ``keys.STATS`` fields ``ack:<bucket>`` and ``ack:sum_us``."""
        pipe = client.pipeline(transaction=False)
        for bucket, count in enumerate(ack):
            if count:
                pipe.hincrby(keys.STATS, f"ack:{bucket}", count)
        pipe.hincrby(keys.STATS, "ack:sum_us", sum_us)
        await pipe.execute()

    async def _sample(self, client: aioredis.Redis) -> dict[str, float]:
        gauges: dict[str, float] = {"queue_depth": float(await client.llen(QUEUE_KEY))}
        now = time.time()
        if now - self._lag_sampled_at >= LAG_EVERY_SECONDS:
            self._lag_sampled_at = now
            lag = await poller_lag(client, now=now)
            if lag is not None:
                gauges["poller_lag_seconds"] = lag
        return gauges


async def poller_lag(client: aioredis.Redis, *, now: float) -> float | None:
    """Seconds since the least recently polled followed resource was last polled well."""
    targets = [text(t) for t in await client.smembers(keys.TARGETS)]
    if not targets:
        return None
    pipe = client.pipeline(transaction=False)
    for target_id in targets:
        pipe.hmget(keys.target(target_id), "resource_gid", "state", "resource_type")
    resources = {
        text(gid)
        for gid, state, kind in await pipe.execute()
        if gid
        and text(state or b"") in ("active", "failing", "lost")
        and text(kind or b"") not in ("team", "workspace", "portfolio")
    }
    if not resources:
        return None
    pipe = client.pipeline(transaction=False)
    for gid in sorted(resources):
        pipe.hget(keys.poll_state(gid), "last_good_poll_at")
    stamps = [parse(text(raw)) for raw in await pipe.execute() if raw]
    if not stamps:
        return None
    return max(0.0, now - min(stamps))


def parse(value: str) -> float:
    moment = parse_timestamp(value)
    return moment.timestamp() if moment is not None else time.time()
