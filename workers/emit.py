"""Write one entry per closed batch to the changes stream, exactly once. I/O edge (Redis, Lua).

Retention: each XADD trims by count (MAXLEN ~ HOOKS_STREAM_MAXLEN) and then by age (XTRIM
MINID ~ now - HOOKS_STREAM_RETENTION_HOURS, from Redis's clock, which also makes the ids);
whichever cuts more wins. Both are approximate (``~``): Redis drops whole nodes of about 100
entries, so a few entries past either bound may stay a little longer.

The XADD, the batch's emitted mark (its entry id, in its flush job's hash), the deletion of
the closed batch, the end of the resource's flush lease, the resource's version
(workers.versions) and every counter are one Lua script: a flush job that runs twice, or
dies anywhere and is retried, emits each batch once. A redundant batch is settled the same
way without an entry.

Counters in ``keys.STATS`` (one hash for every process, rendered by /metrics):

- ``events``: events the workers took from deliveries and poller pages (duplicates included)
- ``duplicates``: events dropped as already seen (every event of a repeated delivery counts)
- ``duplicate_deliveries``: whole deliveries dropped because their body digest was seen
- ``late``: new events that reached us more than HOOKS_LATE_EVENT_SECONDS after they happened
- ``stale``: webhook events dropped because they happened over the dedupe window before their
  delivery (a replayed body; workers.intake)
- ``batches``: batches closed by a flush job
- ``changes``: entries written to the stream (one per batch)
- ``redundant``: batches not emitted because an entry already carried their resource's state
  (a resync finding what a webhook brought; workers.versions)
- ``status:<status>``: entries by status (ok, deleted, not_found, forbidden)
- ``api:<code>``: Asana HTTP answers by status code, plus ``api:timeout``/``api:unreachable``
  (counted by asana_hooks.asana_client)
- ``rate_limit_waits``: callers that found the API paused by a 429 and waited (counted by
  asana_hooks.ratelimit), and flushes deferred because their connection had no room
  (workers.flush)

The per-target hash (``keys.target``) gets ``duplicates``, ``late``, ``batches`` and ``changes``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis

from asana_hooks import keys, lua
from asana_hooks.redis_conn import text
from workers.model import ClosedBatch, summary
from workers.versions import Version, carried_version

EMITTED_TTL_SECONDS = 6 * 3600
"""How long a flush job's emitted marks (``keys.flush_emitted``) live. Only that job reads
them: a closed batch belongs to the job that closed it, and the emit deletes it, so once
emitted no other job can reach it (a later close finds it gone). What needs the mark is the
job's own retry, which resends the sinks' jobs of batches emitted before a crash, and a
second copy of the job still running with the batch in hand (a worker that missed its
heartbeat): RQ's Retry schedule (asana_hooks.queueing) spans about 19 minutes, an attempt
can wait out API timeouts and 429 pauses for a few more; six hours covers both with room,
and at 1 delivery/s costs about 0.5 MiB (48 h keys of ~160 bytes cost 14 MiB)."""
DEFAULT_RETENTION_HOURS = 168.0
"""HOOKS_STREAM_RETENTION_HOURS's default: a week of changes, whatever their number."""
RECENT_CHANGES_KEPT = 50
REDUNDANT = "redundant"
"""What a batch's emitted mark holds when it was settled without an entry."""

_EMIT = lua.load(__file__, "emit")
_SETTLE = lua.load(__file__, "emit_settle")


class Emitter:
    """Appends changes to ``keys.CHANGES_STREAM``; see the module docstring for the counters."""

    def __init__(
        self,
        connection: redis.Redis,
        *,
        stream_maxlen: int,
        retention_hours: float = DEFAULT_RETENTION_HOURS,
    ) -> None:
        self._redis = connection
        self.stream_maxlen = stream_maxlen
        self.retention_ms = int(retention_hours * 3_600_000)
        self._emit = connection.register_script(_EMIT)
        self._settle = connection.register_script(_SETTLE)

    def emit(self, batch: ClosedBatch, change: dict[str, Any]) -> tuple[str, bool]:
        """Write the entry unless this batch was written before; returns (entry id, new)."""
        recent = summary(change, entry_id="__ID__")
        result = self._emit(
            keys=[
                keys.flush_emitted(batch.owner),
                keys.closed_batch(batch.batch_id),
                keys.batch_flushing(batch.gid),
                keys.CHANGES_STREAM,
                keys.STATS,
                keys.RECENT_CHANGES,
                keys.target(batch.target_id) if batch.target_id else "",
                keys.resource_version(batch.gid),
                keys.batch_emitted(batch.batch_id),
            ],
            args=[
                batch.batch_id,
                json.dumps(change, separators=(",", ":")),
                self.stream_maxlen,
                EMITTED_TTL_SECONDS,
                json.dumps(recent, separators=(",", ":")),
                change["status"],
                RECENT_CHANGES_KEPT,
                carried_version(change.get("data")) or "",
                "1" if batch.resync_only else "0",
                self.retention_ms,
            ],
        )
        entry_id = text(result)
        if entry_id.startswith("="):
            return entry_id[1:], False
        return entry_id, True

    def settle_redundant(self, batch: ClosedBatch) -> bool:
        """Close a batch without an entry (workers.versions said it repeats one); once."""
        return bool(
            self._settle(
                keys=[
                    keys.flush_emitted(batch.owner),
                    keys.closed_batch(batch.batch_id),
                    keys.batch_flushing(batch.gid),
                    keys.STATS,
                    keys.batch_emitted(batch.batch_id),
                ],
                args=[batch.batch_id, EMITTED_TTL_SECONDS, REDUNDANT],
            )
        )

    def versions(self, gids: Sequence[str]) -> dict[str, Version]:
        """The remembered version of each resource that has one, in one round trip."""
        with self._redis.pipeline(transaction=False) as pipe:
            for gid in gids:
                pipe.hgetall(keys.resource_version(gid))
            answers = pipe.execute()
        found = {}
        for gid, raw in zip(gids, answers, strict=True):
            version = Version.from_hash({text(k): text(v) for k, v in raw.items()})
            if version is not None:
                found[gid] = version
        return found

    def emitted_change(self, owner: str, batch_id: str) -> tuple[str, dict[str, Any]] | None:
        """The entry flush job ``owner`` emitted a batch as, while the stream still holds it."""
        raw_id = self._redis.hget(keys.flush_emitted(owner), batch_id)
        if raw_id is None:
            raw_id = self._redis.get(keys.batch_emitted(batch_id))
        if raw_id is None:
            return None
        entry_id = text(raw_id)
        if entry_id == REDUNDANT:
            return None
        found = self._redis.xrange(keys.CHANGES_STREAM, entry_id, entry_id)
        if not found:
            return None
        fields = found[0][1] or {}
        payload = fields.get(b"change") or fields.get("change")
        if payload is None:
            return None
        return entry_id, json.loads(payload)
