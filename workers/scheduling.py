"""How flush and sink jobs are put on RQ. I/O edge (Redis via RQ).

Flushes are RQ scheduled jobs (``enqueue_at``), never a sleeping loop. One flush job per
second in which some batch falls due (``flush-tick-<second>``; the batching script tells
which seconds have none yet), and one at once when a deletion closes a batch. Each flush job
takes every batch due by then, so a burst over thousands of resources costs one scheduled
job per second, and the flushes of one second are fetched together through ``/batch``.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from redis.client import Pipeline
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError

from asana_hooks.queueing import (
    FAILURE_TTL_SECONDS,
    RESULT_TTL_SECONDS,
    UNREAD_RESULT_TTL_SECONDS,
)

log = logging.getLogger(__name__)

FLUSH_JOB = "workers.jobs.flush_due"
HANDLER_JOB = "workers.jobs.run_handler"
FORWARD_JOB = "workers.jobs.forward_change"

FLUSH_RETRY = Retry(max=8, interval=[1, 5, 15, 30, 60, 120, 300, 600])
"""Asana 5xx and timeouts: try again with backoff (about 19 minutes). A connection without room
in its budget is not retried but deferred (``flush_later``), a refused one parked."""

SINK_RETRY = Retry(max=5, interval=[5, 30, 120, 600, 1800])
"""A sink that fails is retried on its own, for about 40 minutes."""

FLUSH_TIMEOUT_SECONDS = 300
"""A flush may wait out a 429 pause and fetch up to FLUSH_MAX_BATCHES resources."""

SINK_TIMEOUT_SECONDS = 60


def _flush_options(job_id: str, reason: str, *, scheduled: bool) -> dict[str, Any]:
    """RQ options of a flush job (enqueue_at spells the timeout ``job_timeout``)."""
    return {
        "kwargs": {"reason": reason},
        "job_id": job_id,
        "description": f"flush due batches ({reason})",
        "retry": FLUSH_RETRY,
        ("job_timeout" if scheduled else "timeout"): FLUSH_TIMEOUT_SECONDS,
        "result_ttl": UNREAD_RESULT_TTL_SECONDS,
        "failure_ttl": FAILURE_TTL_SECONDS,
    }


def schedule_ticks(queue: Queue, seconds: Iterable[int], pipeline: Pipeline | None = None) -> int:
    """One flush job at each of these epoch seconds (each second claimed by the caller)."""
    count = 0
    for second in seconds:
        queue.enqueue_at(
            datetime.fromtimestamp(second, tz=UTC),
            FLUSH_JOB,
            pipeline=pipeline,
            **_flush_options(f"flush-tick-{second}", f"due at {second}", scheduled=True),
        )
        count += 1
    return count


def flush_now(queue: Queue, reason: str, pipeline: Pipeline | None = None) -> str:
    """A flush job at once: a deletion closed a batch, more batches are due, or a rescue."""
    job_id = f"flush-now-{secrets.token_hex(8)}"
    queue.enqueue_call(
        FLUSH_JOB, pipeline=pipeline, **_flush_options(job_id, reason, scheduled=False)
    )
    return job_id


def flush_later(queue: Queue, owner: str, at: float, pipeline: Pipeline | None = None) -> str:
    """Finish flush job ``owner``'s deferred batches at ``at`` (epoch seconds): a connection
    with no room in its budget, or paused by a 429, until then."""
    job_id = f"flush-later-{secrets.token_hex(8)}"
    options = _flush_options(job_id, f"deferred batches of {owner}", scheduled=True)
    options["kwargs"] = {**options["kwargs"], "owner": owner}
    queue.enqueue_at(
        datetime.fromtimestamp(math.ceil(at), tz=UTC), FLUSH_JOB, pipeline=pipeline, **options
    )
    return job_id


def enqueue_sinks(
    queue: Queue,
    *,
    batch_id: str,
    change: dict[str, Any],
    handlers: tuple[str, ...],
    forward_url: str | None,
) -> int:
    """One job per sink for one emitted change; ids are per batch, so at most once each."""
    jobs: list[tuple[str, str, dict[str, Any]]] = [
        (HANDLER_JOB, f"sink-{batch_id}-h{index}", {"spec": spec, "change": change})
        for index, spec in enumerate(handlers)
    ]
    if forward_url:
        jobs.append((FORWARD_JOB, f"sink-{batch_id}-forward", {"change": change}))
    enqueued = 0
    for function, job_id, kwargs in jobs:
        try:
            queue.enqueue_call(
                function,
                kwargs=kwargs,
                job_id=job_id,
                unique=True,
                description=f"sink for batch {batch_id}",
                retry=SINK_RETRY,
                timeout=SINK_TIMEOUT_SECONDS,
                result_ttl=RESULT_TTL_SECONDS,
                failure_ttl=FAILURE_TTL_SECONDS,
            )
            enqueued += 1
        except DuplicateJobError:
            continue
    return enqueued
