"""Per-minute series of the last 24 hours, written by every process to one Redis hash.

DESIGN.md §6.7: operators look at how things moved (did the 429s begin an hour ago, is the
acknowledgement latency creeping up), and a rate computed in the browser from two snapshots
is lost on every reload. So each process adds what it saw to ``keys.SERIES``: receivers
their deliveries, events and acknowledgement latencies (a histogram per minute, so the p99
is computed across every receiver), workers their changes and API requests and 429s, and a
sampler the queue depth and the poller's lag (the highest sample of the minute). The hash
has one field per series and minute-of-the-day slot, overwritten when the slot's minute
comes round again: a fixed number of fields whatever the traffic, and a TTL of 25 h.

``pack`` and ``unpack``/``percentile`` are pure; ``SeriesWriter`` and ``read`` are the I/O.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import redis

from asana_hooks import keys, lua
from asana_hooks.events import format_timestamp
from asana_hooks.redis_conn import decode_hash

RESOLUTION_SECONDS = 60
SLOTS = 24 * 60
TTL_SECONDS = 25 * 3600

COUNTERS = ("deliveries", "events", "changes", "api_requests", "api_429")
GAUGES = ("queue_depth", "poller_lag_seconds")
ACK = "ack"

ACK_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
"""Upper bounds of the acknowledgement latency histogram; one more bucket holds the rest."""

PUT_SCRIPT = lua.load(__file__, "series_put")


def ack_bucket(milliseconds: float) -> int:
    """The histogram bucket of one acknowledgement latency."""
    return bisect.bisect_left(ACK_BUCKETS_MS, milliseconds)


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The upper bound (ms) of the bucket holding the ``q`` quantile; None without data.
    The last bucket (above 5 s) reports twice the last bound."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank and count:
            return float(
                ACK_BUCKETS_MS[index] if index < len(ACK_BUCKETS_MS) else ACK_BUCKETS_MS[-1] * 2
            )
    return float(ACK_BUCKETS_MS[-1] * 2)


def pack(
    counters: Mapping[str, float],
    gauges: Mapping[str, float] | None = None,
    ack: Sequence[int] | None = None,
) -> list[str]:
    """The script's triples (name, mode, value); zero counters are left out."""
    args: list[str] = []
    for name, value in counters.items():
        if value:
            args += [name, "add", f"{value:g}"]
    for name, value in (gauges or {}).items():
        args += [name, "max", f"{value:g}"]
    if ack and any(ack):
        args += [ACK, "hist", ",".join(str(count) for count in ack)]
    return args


class SeriesWriter:
    """Adds one process's observations to the shared series (one script call)."""

    def __init__(self, connection: redis.Redis) -> None:
        self._put = connection.register_script(PUT_SCRIPT)

    def add(
        self,
        counters: Mapping[str, float],
        gauges: Mapping[str, float] | None = None,
        ack: Sequence[int] | None = None,
    ) -> None:
        args = pack(counters, gauges, ack)
        if args:
            self._put(keys=[keys.SERIES], args=[SLOTS, TTL_SECONDS, *args])


def unpack(fields: Mapping[str, str], *, now_minute: int, minutes: int = SLOTS) -> dict[str, Any]:
    """The contract's ``series`` object (DESIGN.md §6.7) from the hash's fields: one value per
    minute, oldest first, ending with the current minute. Counters without data are 0,
    gauges and latencies None."""
    first = now_minute - minutes + 1
    found: dict[str, list[Any]] = {name: [0] * minutes for name in COUNTERS}
    found.update({name: [None] * minutes for name in GAUGES})
    histograms: list[list[int] | None] = [None] * minutes
    for field, raw in fields.items():
        name, _, _slot = field.rpartition(":")
        stamp, _, value = raw.partition(" ")
        try:
            index = int(stamp) - first
        except ValueError:
            continue
        if not 0 <= index < minutes:
            continue
        if name in COUNTERS or name in GAUGES:
            found[name][index] = _number(value)
        elif name == ACK:
            histograms[index] = [int(count) for count in value.split(",") if count]
    return {
        "resolution_seconds": RESOLUTION_SECONDS,
        "since": format_timestamp(datetime.fromtimestamp(first * RESOLUTION_SECONDS, UTC)),
        **found,
        "ack_ms_p50": [percentile(h, 0.5) if h else None for h in histograms],
        "ack_ms_p99": [percentile(h, 0.99) if h else None for h in histograms],
    }


def read(connection: redis.Redis) -> dict[str, Any]:
    """The last 24 hours of every series, up to the current minute by Redis's clock (the one
    the writers' script uses)."""
    seconds, _ = connection.time()
    fields = decode_hash(connection.hgetall(keys.SERIES))
    return unpack(fields, now_minute=int(seconds) // RESOLUTION_SECONDS)


def _number(value: str) -> float | int:
    number = float(value)
    return int(number) if number.is_integer() else number
