"""A scope webhook's project events start a reconciliation of its watch. I/O edge (Redis, RQ).

A watch's scope webhook (asana_hooks.watches) delivers project ``added``/``removed``/
``deleted``/``undeleted``/``changed`` events: a project created, moved in or out, archived.
Its events become entries like any other; in addition, a delivery to a scope target that
holds a project event enqueues ``reconcile_watch``, which lists the scope and brings the
project webhooks in line within seconds instead of at the next poll interval.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from asana_hooks import keys
from asana_hooks.events import Event
from asana_hooks.queueing import FAILURE_TTL_SECONDS, JOB_RETRY, UNREAD_RESULT_TTL_SECONDS
from asana_hooks.redis_conn import optional_text
from workers.runtime import Runtime

log = logging.getLogger(__name__)

RECONCILE_JOB = "workers.jobs.reconcile_watch"
RECONCILE_TIMEOUT_SECONDS = 600


def watch_of_scope(runtime: Runtime, target_id: str | None) -> str | None:
    """The watch whose scope webhook delivers to this target, if any."""
    if not target_id:
        return None
    watch_id = optional_text(runtime.redis.hget(keys.target(target_id), "watch"))
    if watch_id is None:
        return None
    scope_target = optional_text(runtime.redis.hget(keys.watch(watch_id), "scope_target"))
    return watch_id if scope_target == target_id else None


def follow_scope(runtime: Runtime, target_id: str | None, events: Iterable[Event]) -> str | None:
    """Enqueue a reconciliation when a scope webhook reported a project event."""
    if not any(event.resource.resource_type == "project" for event in events):
        return None
    watch_id = watch_of_scope(runtime, target_id)
    if watch_id is None:
        return None
    runtime.queue.enqueue_call(
        RECONCILE_JOB,
        kwargs={"watch_id": watch_id},
        description=f"reconcile watch {watch_id} (its scope reported a project change)",
        retry=JOB_RETRY,
        timeout=RECONCILE_TIMEOUT_SECONDS,
        result_ttl=UNREAD_RESULT_TTL_SECONDS,
        failure_ttl=FAILURE_TTL_SECONDS,
    )
    log.info("watch.scope_event watch=%s target=%s: reconciling", watch_id, target_id)
    return watch_id
