"""Per-minute series of the last 24 hours, written by every process to Redis.

DESIGN.md §6.7: operators look at how things moved (did the 429s begin an hour ago, is the
acknowledgement latency creeping up), and a rate computed in the browser from two snapshots
is lost on every reload. So each process adds what it saw: receivers their deliveries,
events and acknowledgement latencies (a histogram per minute, so the p99 is computed across
every receiver), workers their changes and API requests and 429s, and a sampler the queue
depth and the poller's lag (the highest sample of the minute). Each series is one string of
fixed size (``keys.series``): a record per minute-of-the-day slot, overwritten when the
slot's minute comes round again, so the keys never grow, whatever the traffic.

``pack``, ``decode`` and ``percentile`` are pure; ``SeriesWriter`` and ``read`` do the I/O.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import redis

from asana_hooks import keys, lua
from asana_hooks.events import format_timestamp

RESOLUTION_SECONDS = 60
SLOTS = 24 * 60
TTL_SECONDS = 25 * 3600

COUNTERS = ("deliveries", "events", "changes", "api_requests", "api_429")
GAUGES = ("queue_depth", "poller_lag_seconds")
ACK = "ack"

ACK_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
"""Upper bounds of the acknowledgement latency histogram; one more bucket holds the rest."""
BUCKETS = len(ACK_BUCKETS_MS) + 1

VALUE_RECORD = struct.Struct("<Id")
"""A counter's or gauge's slot: the minute it holds (0: never written) and its value."""
ACK_RECORD = struct.Struct("<I" + "I" * BUCKETS)
"""The latency histogram's slot: the minute, then one count per bucket."""

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
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if count and seen >= q * total:
            return float(
                ACK_BUCKETS_MS[index] if index < len(ACK_BUCKETS_MS) else ACK_BUCKETS_MS[-1] * 2
            )
    return float(ACK_BUCKETS_MS[-1] * 2)


def pack(
    counters: Mapping[str, float],
    gauges: Mapping[str, float] | None = None,
    ack: Sequence[int] | None = None,
) -> tuple[list[str], list[str]]:
    """The script's KEYS and its ARGV triples (mode, value, buckets); zero counters are left
    out."""
    names: list[str] = []
    args: list[str] = []
    for name, value in counters.items():
        if value:
            names.append(name)
            args += ["add", f"{value:g}", "0"]
    for name, value in (gauges or {}).items():
        names.append(name)
        args += ["max", f"{value:g}", "0"]
    if ack and any(ack):
        names.append(ACK)
        args += ["hist", ",".join(str(count) for count in ack), str(BUCKETS)]
    return [keys.series(name) for name in names], args


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
        names, args = pack(counters, gauges, ack)
        if names:
            self._put(keys=names, args=[SLOTS, TTL_SECONDS, *args])


def decode(
    raw: Mapping[str, bytes | None], *, now_minute: int, minutes: int = SLOTS
) -> dict[str, Any]:
    """The contract's ``series`` object (DESIGN.md §6.7) from each series' string: one value
    per minute, oldest first, ending with the current minute. Counters without data are 0,
    gauges and latencies None."""
    first = now_minute - minutes + 1
    found: dict[str, list[Any]] = {name: [0] * minutes for name in COUNTERS}
    found.update({name: [None] * minutes for name in GAUGES})
    for name in (*COUNTERS, *GAUGES):
        for minute, value in _records(raw.get(name), VALUE_RECORD):
            if 0 <= minute - first < minutes:
                found[name][minute - first] = int(value) if value.is_integer() else value
    histograms: list[tuple[int, ...] | None] = [None] * minutes
    for minute, *counts in _records(raw.get(ACK), ACK_RECORD):
        if 0 <= minute - first < minutes:
            histograms[minute - first] = tuple(counts)
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
    names = (*COUNTERS, *GAUGES, ACK)
    pipe = connection.pipeline(transaction=False)
    pipe.time()
    for name in names:
        pipe.get(keys.series(name))
    (seconds, _), *values = pipe.execute()
    raw = dict(zip(names, values, strict=True))
    return decode(raw, now_minute=int(seconds) // RESOLUTION_SECONDS)


def _records(data: bytes | None, record: struct.Struct) -> list[tuple[Any, ...]]:
    """Every written slot of a series string (minute 0: never written)."""
    if not data:
        return []
    usable = len(data) - len(data) % record.size
    return [found for found in record.iter_unpack(data[:usable]) if found[0]]
