"""The functions RQ runs, by these dotted names. I/O edge; each one only wires a step.

- ``process_delivery``: enqueued by the receiver and the poller (keys.PROCESS_DELIVERY_JOB)
- ``flush_due``: scheduled per due second (and after deletions) by workers.scheduling
- ``run_handler`` / ``forward_change``: one per sink per change
- ``reconcile_watch``: after a watch's scope webhook reported a project change
- ``resume_connection``: a connection's parked work, once it is connected again
  (asana_hooks.parked_work, keys.RESUME_CONNECTION_JOB)

Arguments and results are JSON (RQ's JSONSerializer); every job carries a Retry.
"""

from __future__ import annotations

import secrets
from typing import Any

from rq import get_current_job

from asana_hooks.queueing import Delivery
from workers import runtime, sinks
from workers.flush import flush
from workers.intake import take_delivery
from workers.resume import resume
from workers.watch_job import reconcile_now


def _job_id() -> str:
    job = get_current_job()
    return job.id if job is not None else "direct-" + secrets.token_hex(8)


def process_delivery(**kwargs: Any) -> dict[str, Any]:
    """``delivery``: a ``queueing.Delivery`` as ``to_dict`` writes it."""
    return take_delivery(runtime.current(), Delivery.from_job(kwargs), job_id=_job_id()).to_dict()


def flush_due(reason: str = "", owner: str | None = None) -> dict[str, Any]:
    """``owner``: finish that flush job's deferred batches (workers.scheduling.flush_later)."""
    if owner:
        return flush(runtime.current(), job_id=owner, take_due=False).to_dict()
    return flush(runtime.current(), job_id=_job_id()).to_dict()


def reconcile_watch(watch_id: str) -> str:
    return reconcile_now(runtime.current(), watch_id, owner=_job_id())


def resume_connection(connection_id: str) -> dict[str, Any]:
    return resume(runtime.current(), connection_id).to_dict()


def run_handler(spec: str, change: dict[str, Any]) -> None:
    sinks.load_handler(spec)(change)


def forward_change(change: dict[str, Any]) -> int:
    settings = runtime.current().settings
    if settings.forward_url is None:
        return 0
    secret = settings.forward_secret.reveal() if settings.forward_secret else None
    return sinks.forward(settings.forward_url, change, secret=secret)
