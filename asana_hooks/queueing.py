"""How work is put on the RQ queue: one queue, JSON job arguments, a Retry on every job.

Every delivery, whether Asana posted it to the receiver or the poller read it from the Events
API, reaches ``workers.jobs.process_delivery`` as one ``Delivery`` (``to_dict`` /
``from_dict``), enqueued by its dotted name so that neither the receiver nor the poller imports
``workers``. The receiver writes the same dict without RQ's per-call cost (``rqwire``). I/O edge
(Redis via RQ).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
"""Finished sink jobs are kept ten minutes: their ids (one per batch and sink) guard against
a second run of the same sink."""

UNREAD_RESULT_TTL_SECONDS = 1
"""Delivery and flush jobs: nothing reads their result, and nothing needs their record once
done (a flush is guarded by ``keys.flush_tick``, a delivery by the dedupe window), so the
worker unlinks them on success, and this is the TTL if it cannot. Not 0: with 0,
RQ 3.0 deletes the job on success and, for a job whose first worker was SIGKILLed, trips
over the dead execution (ValueError "Execution ... not found"), failing a retry that had
done its work. Failed ones stay FAILURE_TTL_SECONDS."""

FAILURE_TTL_SECONDS = 7 * 24 * 3600
"""Failed jobs stay a week for `asana-hooks failed replay`, not RQ's default year."""

JOB_TIMEOUT_SECONDS = 120


def make_queue(connection: redis.Redis) -> Queue:
    return Queue(keys.QUEUE, connection=connection, serializer=JSONSerializer)


@dataclass(frozen=True)
class Delivery:
    """One delivery, or one page of the Events API, as its job receives it.

    ``events`` are Asana's compact events as they came, parsed by the job (which keeps what it
    cannot parse aside instead of refusing the whole delivery). ``digest`` identifies a webhook
    delivery's exact bytes (Asana resends whole bodies); poller pages have none. ``webhook_gid``
    is None while the receiver does not know it yet (a webhook being re-created).
    """

    source: Source
    target_id: str | None
    webhook_gid: str | None
    digest: str | None
    received_at: str
    events: tuple[Any, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON for the job: the events inside ``body``, as Asana posts them."""
        return {
            "source": self.source,
            "target_id": self.target_id,
            "webhook_gid": self.webhook_gid,
            "digest": self.digest,
            "received_at": self.received_at,
            "body": {"events": list(self.events)},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Delivery:
        """Read ``to_dict``'s form back, checking each field's type."""
        body = data.get("body")
        events = body.get("events") if isinstance(body, Mapping) else None
        source = data.get("source")
        return cls(
            source="poller" if source == "poller" else "webhook",
            target_id=_optional_text(data.get("target_id")),
            webhook_gid=_optional_text(data.get("webhook_gid")),
            digest=_optional_text(data.get("digest")),
            received_at=str(data.get("received_at") or ""),
            events=tuple(events) if isinstance(events, list) else (),
        )

    @classmethod
    def from_job(cls, kwargs: Mapping[str, Any]) -> Delivery:
        """A job's keyword arguments, ``{"delivery": to_dict()}``; or the form delivery jobs
        had before 0.2 (the receiver's ``delivery`` holding the body, the poller's ``events``),
        for jobs queued or failed across an upgrade."""
        current = kwargs.get("delivery")
        if isinstance(current, Mapping) and "body" in current:
            return cls.from_dict(current)
        events = current.get("events") if isinstance(current, Mapping) else kwargs.get("events")
        return cls.from_dict({**kwargs, "body": {"events": events}})


def _optional_text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def enqueue_delivery(queue: Queue, delivery: Delivery, *, pipeline: Pipeline | None = None) -> Job:
    """One ``process_delivery`` job for one delivery (or one Events API page)."""
    return queue.enqueue_call(
        keys.PROCESS_DELIVERY_JOB,
        kwargs={"delivery": delivery.to_dict()},
        description=(
            f"{delivery.source} delivery: {len(delivery.events)} events "
            f"for target {delivery.target_id}"
        ),
        retry=JOB_RETRY,
        result_ttl=UNREAD_RESULT_TTL_SECONDS,
        failure_ttl=FAILURE_TTL_SECONDS,
        timeout=JOB_TIMEOUT_SECONDS,
        pipeline=pipeline,
    )
