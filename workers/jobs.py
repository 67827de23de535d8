"""The functions RQ runs, by these dotted names. I/O edge; each one only wires a step.

- ``process_delivery``: enqueued by the receiver and the poller (keys.PROCESS_DELIVERY_JOB)
- ``flush_due``: scheduled per due second (and after deletions) by workers.scheduling
- ``run_handler`` / ``forward_change``: one per sink per change

Arguments and results are JSON (RQ's JSONSerializer); every job carries a Retry.
"""

from __future__ import annotations

import secrets
from typing import Any

from rq import get_current_job

from asana_hooks import keys
from asana_hooks.events import Source
from asana_hooks.redis_conn import text
from workers import runtime, sinks
from workers.flush import flush
from workers.intake import take_delivery


def _job_id() -> str:
    job = get_current_job()
    return job.id if job is not None else "direct-" + secrets.token_hex(8)


def process_delivery(
    target_id: str | None,
    webhook_gid: str | None,
    source: Source,
    digest: str | None,
    received_at: str,
    events: list[Any] | None = None,
    delivery: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``delivery`` is a webhook body as the receiver took it; ``events`` a poller page."""
    if delivery is not None:
        events = delivery.get("events")
    if not isinstance(events, list):
        events = []
    current = runtime.current()
    if webhook_gid is None and target_id is not None:
        # A delivery taken while its webhook was being re-created: name the new webhook.
        found = current.redis.hget(keys.target(target_id), "webhook_gid")
        webhook_gid = text(found) if found else None
    return take_delivery(
        current,
        job_id=_job_id(),
        target_id=target_id,
        webhook_gid=webhook_gid,
        source=source,
        events=events,
        digest=digest,
        received_at=received_at,
    ).to_dict()


def flush_due(reason: str = "") -> dict[str, Any]:
    return flush(runtime.current(), job_id=_job_id()).to_dict()


def run_handler(spec: str, change: dict[str, Any]) -> None:
    sinks.load_handler(spec)(change)


def forward_change(change: dict[str, Any]) -> int:
    settings = runtime.current().settings
    if settings.forward_url is None:
        return 0
    secret = settings.forward_secret.reveal() if settings.forward_secret else None
    return sinks.forward(settings.forward_url, change, secret=secret)
