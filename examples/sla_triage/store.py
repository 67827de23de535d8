"""The integration's state in Redis, under its own prefix. I/O edge (Redis).

- ``<prefix>task:<gid>``: a hash, the task's ``TaskState`` (kept 90 days after its last
  change).
- ``<prefix>deadlines``: a sorted set, task gid -> SLA deadline (Unix seconds) of every task
  that may need a warning; the sweep reads what falls due.
- ``<prefix>lock:<gid>``: held while one sweeper checks and warns one task, so two running
  copies of the integration never post the same warning at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import redis

from asana_hooks.redis_conn import text
from examples.sla_triage.config import DEFAULT_GROUP
from examples.sla_triage.core import Plan, TaskState

STATE_TTL_SECONDS = 90 * 24 * 3600
"""A task's state outlives any SLA; a task unchanged for this long is forgotten."""
LOCK_SECONDS = 60


class Store:
    def __init__(self, connection: redis.Redis, *, prefix: str = f"{DEFAULT_GROUP}:") -> None:
        self._redis = connection
        self.prefix = prefix
        self._deadlines = f"{prefix}deadlines"

    def _task(self, gid: str) -> str:
        return f"{self.prefix}task:{gid}"

    def load(self, gid: str) -> TaskState:
        raw = self._redis.hgetall(self._task(gid))
        return TaskState.from_hash({text(k): text(v) for k, v in raw.items()})

    def save(self, plan: Plan) -> None:
        """Keep the plan's state and track (or stop tracking) its deadline, in one step."""
        key = self._task(plan.task)
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping=plan.state.to_hash())  # type: ignore[arg-type]
        pipe.expire(key, STATE_TTL_SECONDS)
        if plan.deadline is not None:
            pipe.zadd(self._deadlines, {plan.task: plan.deadline.timestamp()})
        else:
            pipe.zrem(self._deadlines, plan.task)
        pipe.execute()

    def due(self, before: datetime) -> list[str]:
        """Tracked tasks whose deadline is at or before ``before``, soonest first."""
        found: Any = self._redis.zrangebyscore(self._deadlines, "-inf", before.timestamp())
        return [text(gid) for gid in found]

    def settle(self, gid: str, *, warned: str | None = None, responded: bool = False) -> None:
        """The sweep is done with a task: warned for ``warned`` (a due date), or responded."""
        pipe = self._redis.pipeline(transaction=True)
        if warned is not None:
            pipe.hset(self._task(gid), "warned", warned)
        if responded:
            pipe.hset(self._task(gid), "responded", "1")
        pipe.zrem(self._deadlines, gid)
        pipe.execute()

    @contextmanager
    def lock(self, gid: str) -> Iterator[bool]:
        """True when this caller holds the task's sweep lock (released on exit)."""
        key = f"{self.prefix}lock:{gid}"
        held = bool(self._redis.set(key, "1", nx=True, ex=LOCK_SECONDS))
        try:
            yield held
        finally:
            if held:
                self._redis.delete(key)
