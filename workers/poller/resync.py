"""Catch up on a gap the Events API can no longer fill. I/O edge (Asana API, Redis, RQ).

A 412 on a stored sync token means events were lost (../shared/reference/asana-events.md:
"this signals you may need to re-crawl the data"). The resync feeds synthetic ``changed``
events into the same ``process_delivery`` job as everything else, so dedupe, batching,
rehydration and emit stay shared: one for the resource itself when it was modified in the gap
(or has no ``modified_at`` to tell), and for a project one per task modified since the gap
began (``GET /tasks?project=&modified_since=``, paginated) plus one ``added`` per story made
on such a task since then (``GET /tasks/{gid}/stories``: a comment counts as modifying its
task), when the webhooks' filters let stories through. A synthetic event carries the task's
``modified_at``; what webhooks already brought is not emitted again (workers.versions).
Progress goes to the log and to ``poll_state(gid)`` after every page, for the status page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rq import Queue

from asana_hooks.asana_client import AsanaClient
from asana_hooks.asana_errors import NotFound
from asana_hooks.events import format_timestamp, parse_timestamp
from asana_hooks.queueing import enqueue_delivery
from asana_hooks.registry import Registration, now_iso
from workers.poller.plan import (
    CRAWLED_TYPES,
    STORY_FIELDS,
    Subscription,
    poller_delivery,
    resync_event,
    story_events,
)
from workers.poller.store import PollLock, PollStore
from workers.resources import resource_path

log = logging.getLogger(__name__)

CRAWL_PAGE_SIZE = 100
"""Tasks per API page, and per job: one page of the crawl is one job."""

CRAWL_FIELDS = "name,resource_type,resource_subtype,modified_at"
"""What the crawl asks of each task: enough to build its synthetic event."""


@dataclass(frozen=True)
class ResyncResult:
    pages: int
    items: int
    fed: int


def resync(
    client: AsanaClient,
    queue: Queue,
    store: PollStore,
    lock: PollLock,
    *,
    subscription: Subscription,
    lead: Registration,
    since: datetime,
    reason: str,
    clock: Callable[[], datetime],
) -> ResyncResult:
    """Rehydrate the resource and crawl what changed since ``since``; raise on API errors
    (``resync_since`` stays in ``poll_state``, so the next cycle starts over)."""
    gid = subscription.resource_gid
    started = clock()
    log.warning(
        "resync.start resource=%s type=%s since=%s reason=%r",
        gid,
        subscription.resource_type or "?",
        format_timestamp(since),
        reason,
    )
    store.commit(
        lock,
        fields={
            "resync_state": "running",
            "resync_started_at": format_timestamp(started),
            "resync_pages": 0,
            "resync_items": 0,
        },
        clear=("resync_finished_at",),
    )
    feed = _Feeder(queue, subscription=subscription, lead=lead, clock=clock)
    itself = _resource_itself(client, subscription, since)
    if itself is not None:
        feed([itself])
    pages = 0
    items = 0
    if subscription.resource_type in CRAWLED_TYPES:
        params = {
            "project": gid,
            "modified_since": format_timestamp(since),
            "opt_fields": CRAWL_FIELDS,
        }
        stories = _StoryCrawl(client, feed, since) if subscription.wants_stories else None
        page: list[dict[str, Any]] = []
        for task in client.paginate("/tasks", params, limit=CRAWL_PAGE_SIZE):
            page.append(task)
            if len(page) == CRAWL_PAGE_SIZE:
                pages, items = _progress(store, lock, feed, stories, page, pages, items, gid)
                page = []
        if page or pages == 0:
            pages, items = _progress(store, lock, feed, stories, page, pages, items, gid)
    store.commit(
        lock,
        fields={
            "resync_state": "done",
            "resync_finished_at": now_iso(),
            "resync_pages": pages,
            "resync_items": items,
            "last_resync_fed": feed.fed,
        },
        clear=("resync_since", "resync_reason"),
    )
    seconds = (clock() - started).total_seconds()
    log.warning(
        "resync.done resource=%s pages=%d tasks=%d fed=%d seconds=%.1f",
        gid,
        pages,
        items,
        feed.fed,
        seconds,
    )
    return ResyncResult(pages=pages, items=items, fed=feed.fed)


def _resource_itself(
    client: AsanaClient, subscription: Subscription, since: datetime
) -> dict[str, Any] | None:
    """The watched resource, when it may have changed in the gap: None when its
    ``modified_at`` says it did not; as a bare reference when nothing can tell."""
    kind = subscription.resource_type
    if not kind:
        return None
    itself: dict[str, Any] = {"gid": subscription.resource_gid, "resource_type": kind}
    path = resource_path(kind, subscription.resource_gid)
    if path is None:
        return itself
    try:
        data = client.get(path, {"opt_fields": "name,modified_at"}).get("data") or {}
    except NotFound:
        return itself  # its own entry will say not_found
    modified = parse_timestamp(data.get("modified_at"))
    if modified is not None and modified < since:
        return None
    return {**itself, "name": data.get("name"), "modified_at": data.get("modified_at")}


def _progress(
    store: PollStore,
    lock: PollLock,
    feed: _Feeder,
    stories: _StoryCrawl | None,
    page: list[dict[str, Any]],
    pages: int,
    items: int,
    gid: str,
) -> tuple[int, int]:
    feed(page)
    if stories is not None:
        stories(page)
    pages += 1
    items += len(page)
    store.commit(lock, fields={"resync_pages": pages, "resync_items": items})
    log.info("resync.progress resource=%s pages=%d tasks=%d", gid, pages, items)
    return pages, items


class _Feeder:
    """Turns crawled resources into synthetic events and enqueues them, one job per call."""

    def __init__(
        self,
        queue: Queue,
        *,
        subscription: Subscription,
        lead: Registration,
        clock: Callable[[], datetime],
    ) -> None:
        self._queue = queue
        self._subscription = subscription
        self._lead = lead
        self._clock = clock
        self.fed = 0

    def __call__(self, resources: list[dict[str, Any]]) -> None:
        now = self._clock()
        self.events(
            [
                resync_event(resource, modified_at=_modified_at(resource), now=now)
                for resource in resources
                if resource.get("gid")
            ]
        )

    def events(self, events: list[dict[str, Any]]) -> None:
        """Enqueue the events the webhooks' filters let through, as one job."""
        wanted = [e for e in events if self._subscription.wants(e, ignore_fields=True)]
        if not wanted:
            return
        enqueue_delivery(self._queue, poller_delivery(self._lead, wanted, now=self._clock()))
        self.fed += len(wanted)


class _StoryCrawl:
    """Lists the stories of each crawled task and feeds those made since the gap began,
    one job per page of tasks. Stories come oldest first and the API has no ``since``
    filter for them, so every page of a task's stories is read."""

    def __init__(self, client: AsanaClient, feed: _Feeder, since: datetime) -> None:
        self._client = client
        self._feed = feed
        self._since = since

    def __call__(self, tasks: list[dict[str, Any]]) -> None:
        found: list[dict[str, Any]] = []
        for task in tasks:
            task_gid = task.get("gid")
            if not task_gid:
                continue
            path = f"/tasks/{task_gid}/stories"
            try:
                listed = list(
                    self._client.paginate(path, {"opt_fields": STORY_FIELDS}, limit=CRAWL_PAGE_SIZE)
                )
            except NotFound:
                continue  # deleted since it was listed: its own event says so
            found.extend(story_events(listed, task_gid=str(task_gid), since=self._since))
        if found:
            self._feed.events(found)


def _modified_at(resource: dict[str, Any]) -> str | None:
    value = resource.get("modified_at")
    return value if isinstance(value, str) and value else None
