"""The dedupe window: where "already done" marks live and for how long. Pure (a clock), no I/O.

A done mark is a short binary record appended to a string, one string per time bucket and
shard, so a mark costs about 11 bytes instead of a ~160-byte key:

- **Window**: 25 h. Asana retries a delivery for at most 24 hours and keeps Events API events
  for 24 hours, so nothing older than that can come back; the extra hour covers delays and
  clock skew between our hosts. A mark is found for at least ``WINDOW_SECONDS`` after it was
  written (less the skew between the clocks of the writing and the reading worker).
- **Buckets** of 12.5 h (``BUCKET_SECONDS``, half the window): a lookup reads the 2 buckets
  behind the current one and the current one, and in the last hour of a bucket the one ahead
  too (a worker whose clock runs ahead may be writing there already): 3 or 4 strings per
  mark, in one ``MGET`` of the same script, so one round trip per job. A bucket expires
  (``EXPIREAT``) a window, plus an hour for skew, after it ends, so a mark is kept 26 to
  38.5 h (32 h on average). Smaller buckets keep marks for less (5 h buckets: 26 to 31 h,
  11 % less memory) but cost more keys per mark (6 or 7 with 5 h, 26 or 27 with hour
  buckets), and every key is an argument the job sends and the script reads: with 7 the
  claim of a 20-event delivery took about twice as long as before.
- **Shards**: the record's digest picks one of ``EVENT_SHARDS`` (``DELIVERY_SHARDS``) strings
  per bucket, so a lookup scans a few kilobytes (at 10 deliveries/s, about 2 KB per string).
  Strings, not sets or hashes: those stay compact (listpack, intset) only below 128 or 512
  members, which a fixed shard count cannot promise at every rate, and a hashtable costs
  50+ bytes per member. A string has no such cliff; ``APPEND`` over-allocates by up to 2x
  below 1 MB, so a record costs 8 to 16 bytes, about 11 on average.
- **Records**: 80 bits of BLAKE2b over the fingerprint (or target and body digest): 16 bits
  choose the shard (12 used for events, 10 for deliveries), 64 bits are stored. A false match
  would drop a new event as a duplicate, so no Bloom filter: with 76 effective bits and the
  soak's 150 deliveries/s (330 events/s, 46 million marks kept at most 38.5 h), the odds that
  a new event matches any stored mark are 46e6 / 2^76 ≈ 6e-16; over a year of that traffic
  (1e10 events), about 6e-6 that any one change is dropped. A delivery record adds 4 bytes
  naming the job that took it (32 bits of BLAKE2b of the RQ job id), so a retried job is not
  its own duplicate; a clash there only hands the events to the event-level marks, which
  still drop each one.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from asana_hooks import keys

WINDOW_SECONDS = 25 * 3600
BUCKET_SECONDS = WINDOW_SECONDS // 2
SKEW_SECONDS = 3600
"""Clock skew between workers we tolerate: the bucket ahead is read, expiry waits this long."""

BUCKETS_BEHIND = WINDOW_SECONDS // BUCKET_SECONDS
READ_BUCKETS = BUCKETS_BEHIND + 2
"""Buckets read per mark at most: the window's, the current one, one ahead."""

WRITE_INDEX = BUCKETS_BEHIND
"""Index of the current bucket among the ``READ_BUCKETS`` keys of a mark."""

EVENT_SHARDS = 4096
DELIVERY_SHARDS = 1024
EVENT_RECORD_BYTES = 8
DELIVERY_RECORD_BYTES = 12
"""8 bytes of digest, then 4 bytes naming the job that took the delivery."""


@dataclass(frozen=True)
class Span:
    """The buckets a job reads now: the current one, those behind it, and maybe one ahead."""

    bucket: int
    ahead: bool = False

    @property
    def reads(self) -> int:
        return READ_BUCKETS if self.ahead else READ_BUCKETS - 1


@dataclass(frozen=True)
class Mark:
    """One record and the bucket keys it is looked up in (the current one at WRITE_INDEX),
    encoded once: a job sends dozens of them, and redis-py encodes a str each time."""

    record: bytes
    keys: tuple[bytes, ...]


class Window:
    """Turns fingerprints and delivery digests into records and bucket keys, at ``clock()``."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock()

    def span(self) -> Span:
        now = int(self._clock())
        bucket = now // BUCKET_SECONDS
        return Span(bucket, ahead=now >= (bucket + 1) * BUCKET_SECONDS - SKEW_SECONDS)

    def expire_at(self, bucket: int) -> int:
        """When a bucket may go: the last lookup that reads it ends a window after it ends."""
        return (bucket + 1) * BUCKET_SECONDS + WINDOW_SECONDS + SKEW_SECONDS

    def event(self, fingerprint: str, span: Span) -> Mark:
        digest = hashlib.blake2b(fingerprint.encode(), digest_size=10).digest()
        shard = int.from_bytes(digest[:2], "big") % EVENT_SHARDS
        return Mark(digest[2:], _bucket_keys(keys.event_marks, span, shard))

    def delivery(self, target_id: str, digest: str, span: Span) -> Mark:
        """The record without its job tag (``job_tag`` gives it)."""
        raw = hashlib.blake2b(f"{target_id}\n{digest}".encode(), digest_size=10).digest()
        shard = int.from_bytes(raw[:2], "big") % DELIVERY_SHARDS
        return Mark(raw[2:], _bucket_keys(keys.delivery_marks, span, shard))


def job_tag(job_id: str) -> bytes:
    return hashlib.blake2b(job_id.encode(), digest_size=4).digest()


@lru_cache(maxsize=2 * (EVENT_SHARDS + DELIVERY_SHARDS))
# Two spans' worth (a bucket change, the bucket ahead joining): about 4 MiB at most.
def _bucket_keys(name: Callable[[int, int], str], span: Span, shard: int) -> tuple[bytes, ...]:
    first = span.bucket - BUCKETS_BEHIND
    return tuple(name(b, shard).encode() for b in range(first, first + span.reads))
