"""Per-resource batches that fold keystroke bursts into one change. I/O edge (Redis, Lua).

RQ has no debounce, so the batch lives in Redis and every transition is one Lua script,
atomic against every other worker:

- ``add``: put new events into their resource's open batch (opening it if needed), mark
  each event done and drop its claim, in one step. The batch is due ``debounce`` after its
  latest event, but never later than ``max_delay`` after it opened; a ``deleted`` event
  makes it due at once. Due times live in ``keys.OPEN_BATCHES``.
  ``add`` also reports each due second that has no flush job yet (``keys.flush_tick``), so
  a burst of thousands of events schedules one flush per second, not one per batch.
- ``close``: a flush job takes a due batch by renaming its hash to ``keys.closed_batch``,
  owned by that job. An event arriving afterwards opens the next batch, never lost. A batch
  whose previous batch is still being flushed waits (``busy``), so entries keep event order.

Times are Redis's own clock (``TIME``), the same for every worker.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import redis

from asana_hooks import keys
from workers.model import BatchEvent, ClosedBatch

SEQ_TTL_SECONDS = 48 * 3600
CLOSED_TTL_SECONDS = 7 * 24 * 3600
"""A closed batch waits this long for its flush (as long as RQ keeps the failed job)."""

FLUSH_LEASE_MS = 300_000
"""A resource's next batch waits at most this long for the previous one to be emitted."""

# KEYS: open-batches, stats, target (or ''), then per event: batch, seq, done, claim.
# ARGV: debounce ms, max delay ms, done ttl, seq ttl, tick key prefix, events received,
#       duplicates found by the claim, then EVENT_ARGS values per event (see BatchEvent.args).
# Counts events, duplicates and late in stats (and duplicates, late on the target).
# Returns JSON: {"added": n, "late": n, "duplicates": n, "opened": [[gid, id, due]],
#   "urgent": [[gid, id, due]], "ticks": [second, ...]}: ticks are due seconds with no flush yet.
_ADD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local debounce, max_delay = tonumber(ARGV[1]), tonumber(ARGV[2])
local added, late, opened, urgent, ticks = 0, 0, {}, {}, {}
local function with_word(words, word)
  if word == '' or string.find(',' .. words .. ',', ',' .. word .. ',', 1, true) then
    return words
  end
  if words == '' then return word end
  return words .. ',' .. word
end
local events = (#KEYS - 3) / 4
for i = 0, events - 1 do
  local bkey, skey, dkey, ckey = KEYS[4 + 4 * i], KEYS[5 + 4 * i], KEYS[6 + 4 * i], KEYS[7 + 4 * i]
  local a = 8 + 11 * i
  local gid, rtype, action, field = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local created_at, parent, source = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
  local is_late, is_resync = ARGV[a + 9] == '1', ARGV[a + 10] == '1'
  if redis.call('EXISTS', dkey) == 0 then
    local b = redis.call('HMGET', bkey, 'id', 'opened_ms', 'count', 'late', 'first_at',
      'last_at', 'actions', 'fields', 'sources', 'parent', 'deleted', 'due_ms', 'resynced')
    local id, opened_ms, count, nlate = b[1], tonumber(b[2]), tonumber(b[3]), tonumber(b[4])
    local first_at, last_at, actions, fields = b[5], b[6], b[7], b[8]
    local sources, bparent, deleted, due = b[9], b[10], b[11], tonumber(b[12])
    local resynced = tonumber(b[13]) or 0
    if not id then
      local seq = redis.call('INCR', skey)
      redis.call('EXPIRE', skey, tonumber(ARGV[4]))
      id = gid .. '-' .. seq
      opened_ms, count, nlate, first_at, last_at = now, 0, 0, created_at, created_at
      actions, fields, sources, bparent, deleted, due = '', '', '', parent, '0', now
      redis.call('HSET', bkey, 'id', id, 'seq', seq, 'gid', gid, 'rtype', rtype,
        'opened_ms', now, 'webhook_gid', ARGV[a + 7], 'target_id', ARGV[a + 8])
      opened[#opened + 1] = {gid, id}
    end
    count = count + 1
    if is_resync then resynced = resynced + 1 end
    if is_late then
      nlate = nlate + 1
      late = late + 1
    end
    if created_at < first_at then first_at = created_at end
    if created_at > last_at then last_at = created_at end
    if bparent == '' then bparent = parent end
    if action == 'deleted' and deleted ~= '1' then
      deleted = '1'
      urgent[#urgent + 1] = {gid, id}
    end
    if deleted == '1' then
      if due > now then due = now end
    else
      due = math.min(now + debounce, opened_ms + max_delay)
    end
    redis.call('HSET', bkey, 'count', count, 'late', nlate, 'first_at', first_at,
      'last_at', last_at, 'actions', with_word(actions, action),
      'fields', with_word(fields, field), 'sources', with_word(sources, source),
      'parent', bparent, 'deleted', deleted, 'due_ms', due, 'last_ms', now,
      'resynced', resynced)
    redis.call('ZADD', KEYS[1], due, gid)
    local second = math.ceil(due / 1000)
    if redis.call('SET', ARGV[5] .. second, '1', 'NX', 'EX', 600) then
      ticks[#ticks + 1] = second
    end
    redis.call('SET', dkey, '1', 'EX', tonumber(ARGV[3]))
    redis.call('DEL', ckey)
    added = added + 1
  end
end
local duplicates = tonumber(ARGV[7]) + events - added
redis.call('HINCRBY', KEYS[2], 'events', tonumber(ARGV[6]))
if duplicates > 0 then redis.call('HINCRBY', KEYS[2], 'duplicates', duplicates) end
if late > 0 then redis.call('HINCRBY', KEYS[2], 'late', late) end
if KEYS[3] ~= '' and redis.call('EXISTS', KEYS[3]) == 1 then
  if duplicates > 0 then redis.call('HINCRBY', KEYS[3], 'duplicates', duplicates) end
  if late > 0 then redis.call('HINCRBY', KEYS[3], 'late', late) end
end
local function with_due(list)
  for _, item in ipairs(list) do
    item[3] = tonumber(redis.call('ZSCORE', KEYS[1], item[1]))
  end
  return list
end
return cjson.encode({added = added, late = late, opened = with_due(opened),
  urgent = with_due(urgent), ticks = ticks, duplicates = duplicates})
"""

# KEYS: batch, closed, emitted, flushing, open-batches, owned, stats.
# ARGV: batch id, owner (job id), closed ttl, lease ms, target key prefix.
# Returns {'closed', flat hash} | {'taken'} | {'emitted'} | {'gone'} | {'not_due', due_ms}
#       | {'busy', retry_ms}.
_CLOSE = """
if redis.call('EXISTS', KEYS[3]) == 1 then return {'emitted'} end
if redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('HGET', KEYS[2], 'owner') == ARGV[2] then
    return {'closed', redis.call('HGETALL', KEYS[2])}
  end
  return {'taken'}
end
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return {'gone'} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = tonumber(redis.call('HGET', KEYS[1], 'due_ms'))
if due > now then return {'not_due', due} end
local flushing = redis.call('GET', KEYS[4])
if flushing and flushing ~= ARGV[1] then
  return {'busy', redis.call('PTTL', KEYS[4])}
end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[2], 'owner', ARGV[2], 'closed_ms', now)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
redis.call('ZREM', KEYS[5], redis.call('HGET', KEYS[2], 'gid'))
redis.call('SET', KEYS[4], ARGV[1], 'PX', tonumber(ARGV[4]))
redis.call('SADD', KEYS[6], ARGV[1])
redis.call('EXPIRE', KEYS[6], tonumber(ARGV[3]))
redis.call('HINCRBY', KEYS[7], 'batches', 1)
local target = redis.call('HGET', KEYS[2], 'target_id')
if target and target ~= '' and redis.call('EXISTS', ARGV[5] .. target) == 1 then
  redis.call('HINCRBY', ARGV[5] .. target, 'batches', 1)
end
return {'closed', redis.call('HGETALL', KEYS[2])}
"""

# KEYS: open-batches. ARGV: limit, lag ms (0: due now; >0: overdue by at least that much).
# Returns flat [gid, batch id, due, ...] of due batches, oldest first.
_DUE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]),
  'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[1]))
local found = {}
for i = 1, #gids, 2 do
  local id = redis.call('HGET', ARGV[3] .. gids[i], 'id')
  if id then
    found[#found + 1] = gids[i]
    found[#found + 1] = id
    found[#found + 1] = gids[i + 1]
  else
    redis.call('ZREM', KEYS[1], gids[i])
  end
end
return found
"""


@dataclass(frozen=True)
class Opened:
    """A batch that needs a flush job: newly opened, or made due at once by a deletion."""

    gid: str
    batch_id: str
    due_ms: int


@dataclass(frozen=True)
class Added:
    """What ``Batcher.add`` did with one delivery's new events."""

    added: int
    late: int
    opened: tuple[Opened, ...]
    urgent: tuple[Opened, ...]
    ticks: tuple[int, ...] = ()
    """Seconds (epoch) at which a flush must run and none was scheduled yet."""
    duplicates: int = 0
    """Events of the delivery dropped as duplicates (by the claim, or found done here)."""


CloseState = Literal["closed", "taken", "emitted", "gone", "not_due", "busy"]


@dataclass(frozen=True)
class CloseResult:
    """The answer of ``Batcher.close``: ``batch`` when ``state == "closed"``, else why not."""

    state: CloseState
    batch: ClosedBatch | None = None
    wait_ms: int = 0


class Batcher:
    """Opens, extends and closes batches; every method is one atomic script."""

    def __init__(
        self, connection: redis.Redis, *, debounce_seconds: float, max_delay_seconds: float
    ) -> None:
        self.debounce_ms = max(1, int(debounce_seconds * 1000))
        self.max_delay_ms = max(self.debounce_ms, int(max_delay_seconds * 1000))
        self._redis = connection
        self._add = connection.register_script(_ADD)
        self._close = connection.register_script(_CLOSE)
        self._due = connection.register_script(_DUE)

    def add(
        self,
        events: Sequence[BatchEvent],
        *,
        done_ttl: int,
        received: int | None = None,
        claim_duplicates: int = 0,
        target_id: str | None = None,
    ) -> Added:
        """Put events (already claimed by this job) into their batches, in this order, and
        count ``received`` events of which ``claim_duplicates`` were dropped before."""
        script_keys = [keys.OPEN_BATCHES, keys.STATS, keys.target(target_id) if target_id else ""]
        for event in events:
            script_keys += [
                keys.batch(event.gid),
                keys.batch_seq(event.gid),
                keys.event_done(event.fingerprint),
                keys.event_claim(event.fingerprint),
            ]
        raw = self._add(
            keys=script_keys,
            args=[
                self.debounce_ms,
                self.max_delay_ms,
                done_ttl,
                SEQ_TTL_SECONDS,
                keys.flush_tick(0).removesuffix("0"),
                len(events) if received is None else received,
                claim_duplicates,
                *(value for event in events for value in event.args()),
            ],
        )
        result = json.loads(raw)
        ticks = result["ticks"]
        return Added(
            added=int(result["added"]),
            late=int(result["late"]),
            opened=_openings(result["opened"]),
            urgent=_openings(result["urgent"]),
            ticks=tuple(int(t) for t in ticks) if isinstance(ticks, list) else (),
            duplicates=int(result["duplicates"]),
        )

    def close(self, gid: str, batch_id: str, *, owner: str) -> CloseResult:
        """Take the batch for flushing if it is due; idempotent for the same owner."""
        return self.close_many([(gid, batch_id)], owner=owner)[0]

    def close_many(self, batches: Sequence[tuple[str, str]], *, owner: str) -> list[CloseResult]:
        """``close`` for each (gid, batch id), in one round trip; each close is atomic."""
        with self._redis.pipeline(transaction=False) as pipe:
            for gid, batch_id in batches:
                self._close(
                    keys=[
                        keys.batch(gid),
                        keys.closed_batch(batch_id),
                        keys.batch_emitted(batch_id),
                        keys.batch_flushing(gid),
                        keys.OPEN_BATCHES,
                        keys.flush_owned(owner),
                        keys.STATS,
                    ],
                    args=[batch_id, owner, CLOSED_TTL_SECONDS, FLUSH_LEASE_MS, keys.target("")],
                    client=pipe,
                )
            answers = pipe.execute()
        return [_close_result(answer) for answer in answers]

    def claim_tick(self, second: int) -> bool:
        """True if no flush was scheduled for ``second`` yet (the caller schedules it)."""
        return bool(self._redis.set(keys.flush_tick(second), "1", nx=True, ex=600))

    def owned(self, owner: str) -> list[str]:
        """Batch ids this flush job closed in an earlier attempt (its retry finishes them)."""
        return sorted(_text(item) for item in self._redis.smembers(keys.flush_owned(owner)))

    def forget_owned(self, owner: str) -> None:
        self._redis.delete(keys.flush_owned(owner))

    def due(self, *, limit: int, overdue_ms: int = 0) -> list[Opened]:
        """Batches due now (or overdue by ``overdue_ms``), oldest first."""
        flat = self._due(keys=[keys.OPEN_BATCHES], args=[limit, overdue_ms, keys.batch("")])
        items = [_text(item) for item in flat]
        return [
            Opened(gid=items[i], batch_id=items[i + 1], due_ms=int(float(items[i + 2])))
            for i in range(0, len(items), 3)
        ]


def _close_result(answer: list[Any]) -> CloseResult:
    state = _text(answer[0])
    if state == "closed":
        flat = [_text(item) for item in answer[1]]
        raw = dict(zip(flat[::2], flat[1::2], strict=True))
        return CloseResult("closed", ClosedBatch.from_hash(raw))
    if state in ("not_due", "busy"):
        return CloseResult(state, wait_ms=max(0, int(answer[1])))  # type: ignore[arg-type]
    return CloseResult(state)  # type: ignore[arg-type]


def _openings(items: list[list[object]] | dict[str, object]) -> tuple[Opened, ...]:
    if not isinstance(items, list):  # cjson encodes an empty Lua table as {}
        return ()
    return tuple(
        Opened(gid=str(gid), batch_id=str(batch_id), due_ms=int(float(str(due))))
        for gid, batch_id, due in items
    )


def _text(value: bytes | str | int) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
