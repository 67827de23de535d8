"""How work is put on the RQ queue: one queue, JSON job arguments, a Retry on every job.

The receiver and the poller enqueue ``workers.jobs.process_delivery`` by its dotted name
through ``enqueue_events``, so neither imports ``workers``. I/O edge (Redis via RQ).
"""

from __future__ import annotations

from typing import Any

import redis
from redis.client import Pipeline
from rq import Queue, Retry
from rq.job import Job
from rq.serializers import JSONSerializer

from asana_hooks import keys
from asana_hooks.events import Source

JOB_RETRY = Retry(max=8, interval=[2, 5, 15, 30, 60, 120, 300, 600])
"""Every job carries a Retry: RQ re-runs a SIGKILLed worker's job only if it has one."""

RESULT_TTL_SECONDS = 600
"""Finished flush and sink jobs are kept ten minutes (their ids guard against doubles)."""

DELIVERY_RESULT_TTL_SECONDS = 1
"""A finished delivery job lingers one second: nothing reads its result. Not 0: with 0,
RQ 3.0 deletes the job on success and, for a job whose first worker was SIGKILLed, trips
over the dead execution (ValueError "Execution ... not found"), failing a retry that had
done its work. Failed ones stay FAILURE_TTL_SECONDS."""

FAILURE_TTL_SECONDS = 7 * 24 * 3600
"""Failed jobs stay a week for `asana-hooks failed replay`, not RQ's default year."""

JOB_TIMEOUT_SECONDS = 120


def make_queue(connection: redis.Redis) -> Queue:
    return Queue(keys.QUEUE, connection=connection, serializer=JSONSerializer)


def enqueue_events(
    queue: Queue,
    *,
    target_id: str | None,
    webhook_gid: str | None,
    source: Source,
    events: list[Any],
    digest: str | None,
    received_at: str,
    pipeline: Pipeline | None = None,
) -> Job:
    """One job for one delivery (or one Events API page): its compact events as received."""
    return queue.enqueue_call(
        keys.PROCESS_DELIVERY_JOB,
        kwargs={
            "target_id": target_id,
            "webhook_gid": webhook_gid,
            "source": source,
            "events": events,
            "digest": digest,
            "received_at": received_at,
        },
        description=f"{source} delivery: {len(events)} events for target {target_id}",
        retry=JOB_RETRY,
        result_ttl=DELIVERY_RESULT_TTL_SECONDS,
        failure_ttl=FAILURE_TTL_SECONDS,
        timeout=JOB_TIMEOUT_SECONDS,
        pipeline=pipeline,
    )
