"""List and requeue jobs that failed after all their retries. I/O edge (Redis via RQ).

For ``asana-hooks failed list|replay``. A failed job keeps its id, function, JSON arguments
and the last exception (RQ keeps it FAILURE_TTL_SECONDS). Requeueing runs the same job id
again, so its claims and the batches it closed are recognised as its own: a delivery is not
mistaken for a duplicate of itself and a closed batch is emitted exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from asana_hooks import keys
from asana_hooks.events import format_timestamp
from asana_hooks.redis_conn import text

EXCEPTION_LINES = 3
"""The last lines of the traceback shown per job."""


@dataclass(frozen=True)
class FailedJob:
    """One job in RQ's failed registry, with what an operator needs to decide on a replay."""

    job_id: str
    function: str
    description: str
    kwargs: dict[str, Any]
    enqueued_at: datetime | None
    ended_at: datetime | None
    error: str
    batches: tuple[str, ...] = ()
    """For a flush job: the batches it closed and will emit when replayed."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.job_id,
            "function": self.function,
            "description": self.description,
            "kwargs": self.kwargs,
            "enqueued_at": self.enqueued_at.isoformat() if self.enqueued_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "error": self.error,
            "batches": list(self.batches),
        }

    def summary(self) -> dict[str, Any]:
        """The status page's row: what it was, when it failed, the last line of its error."""
        return {
            "id": self.job_id,
            "func_name": self.function,
            "description": self.description,
            "enqueued_at": _stamp(self.enqueued_at),
            "ended_at": _stamp(self.ended_at),
            "error": self.error.splitlines()[-1][:200] if self.error.strip() else None,
        }


def _stamp(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


def _registry(connection: redis.Redis) -> FailedJobRegistry:
    return FailedJobRegistry(keys.QUEUE, connection=connection, serializer=JSONSerializer)


def list_failed(
    connection: redis.Redis, *, limit: int = 100, newest_first: bool = False
) -> list[FailedJob]:
    """The failed jobs of our queue, oldest first (or newest first)."""
    registry = _registry(connection)
    ids = registry.get_job_ids(0, limit - 1, desc=newest_first)
    found = []
    for job_id in ids:
        try:
            job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
        except NoSuchJobError:
            continue
        owned = connection.smembers(keys.flush_owned(job.id))
        found.append(_describe(job, sorted(text(b) for b in owned)))
    return found


def _describe(job: Job, batches: list[str]) -> FailedJob:
    result = job.latest_result()
    trace = (result.exc_string if result is not None else None) or job.exc_info or ""
    tail = "\n".join(line for line in trace.strip().splitlines()[-EXCEPTION_LINES:])
    return FailedJob(
        job_id=job.id,
        function=job.func_name or "",
        description=job.description or "",
        kwargs=dict(job.kwargs),
        enqueued_at=job.enqueued_at,
        ended_at=job.ended_at,
        error=tail,
        batches=tuple(batches),
    )


def replay_failed(connection: redis.Redis, job_ids: list[str] | None = None) -> list[str]:
    """Put failed jobs (all of them, or the ids given) back on the queue; returns the ids."""
    registry = _registry(connection)
    wanted = job_ids if job_ids is not None else registry.get_job_ids()
    replayed = []
    for job_id in wanted:
        try:
            registry.requeue(job_id)
        except (NoSuchJobError, InvalidJobOperation):
            continue
        replayed.append(job_id)
    return replayed
