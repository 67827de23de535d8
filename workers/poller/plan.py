"""The fallback poller's decisions: what to poll, what to feed on, where a resync starts.
Pure, no I/O.

The poller keeps one Events API subscription per *resource* (several webhooks may watch
the same project; their events share one dedupe). This module groups registrations into
subscriptions, applies the webhooks' filters to Events API events (the Events API returns
everything; a webhook only what its filters let through), builds the synthetic ``changed``
events a resync feeds into the shared pipeline (for crawled tasks and for their new stories),
and says from when a resync must crawl.
See ../shared/reference/asana-events.md and asana-webhooks.md ("Filtering").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from asana_hooks.events import RESYNC_MARKER, format_timestamp, parse_timestamp
from asana_hooks.queueing import Delivery
from asana_hooks.registry import Registration
from asana_hooks.subscription import has_event_stream, resync_from

POLLED_STATES = frozenset({"active", "failing", "lost"})
"""Registrations whose resource the poller follows; pending ones have no webhook yet."""

WATCHED_STATES = frozenset({"active", "failing", "lost", "retired"})
"""Registrations whose webhook the health check asks Asana about each cycle."""

CRAWLED_TYPES = frozenset({"project"})
"""Resources whose tasks a resync crawls (``GET /tasks?project=&modified_since=``)."""

_STATE_RANK = {"active": 0, "failing": 1, "lost": 2}


@dataclass
class CycleReport:
    """What one pass did, for the log line that closes it."""

    resources: int = 0
    polled: int = 0
    busy: int = 0
    not_due: int = 0
    events: int = 0
    resyncs: int = 0
    errors: int = 0
    health_only: int = 0
    """Resources with no Events API stream (teams, workspaces, portfolios): health alone."""
    watches: int = 0
    """Watches reconciled (their scopes listed) in this pass."""
    held: int = 0
    """Resources skipped because a connection of theirs is paused (429) or revoked (401)."""

    def __str__(self) -> str:
        return " ".join(f"{name}={value}" for name, value in vars(self).items())

    @property
    def noteworthy(self) -> bool:
        """Whether the pass found something to say (events, a resync, an error)."""
        return bool(self.events or self.resyncs or self.errors)


@dataclass(frozen=True)
class Subscription:
    """One resource the poller follows, with every registration that watches it."""

    resource_gid: str
    resource_type: str
    registrations: tuple[Registration, ...]

    @property
    def polled(self) -> tuple[Registration, ...]:
        return tuple(r for r in self.registrations if r.state in POLLED_STATES)

    @property
    def watched(self) -> tuple[Registration, ...]:
        return tuple(r for r in self.registrations if r.state in WATCHED_STATES and r.webhook_gid)

    @property
    def streams_events(self) -> bool:
        """Whether Asana keeps an Events API stream for this resource (tasks, projects, goals;
        never a team, workspace or portfolio): only then is it polled and resynced."""
        return has_event_stream(self.resource_type)

    @property
    def lead(self) -> Registration | None:
        """The registration whose target and webhook gid the poller's events are sent under."""
        polled = sorted(self.polled, key=lambda r: (_STATE_RANK[r.state], r.target_id))
        return polled[0] if polled else None

    @property
    def wants_stories(self) -> bool:
        """Whether any polled webhook's filters could let a story's ``added`` event through
        (whatever its subtype): if none can, a resync need not list the tasks' stories."""
        return any(
            not r.filters
            or any(
                item.get("resource_type") in (None, "story")
                and item.get("action") in (None, "added")
                for item in r.filters
            )
            for r in self.polled
        )

    def wants(self, event: Mapping[str, Any], *, ignore_fields: bool = False) -> bool:
        """Whether any polled webhook's filters let this event through. A resync's synthetic
        events name no field, so for them only type, subtype and action are compared."""
        return any(
            passes_filters(event, r.filters, ignore_fields=ignore_fields) for r in self.polled
        )


def poller_delivery(lead: Registration, events: Sequence[Any], *, now: datetime) -> Delivery:
    """Events the poller found, sent under the lead registration's target and webhook."""
    return Delivery(
        source="poller",
        target_id=lead.target_id,
        webhook_gid=lead.webhook_gid,
        digest=None,
        received_at=format_timestamp(now),
        events=tuple(events),
    )


def subscriptions(registrations: Iterable[Registration]) -> list[Subscription]:
    """Group registrations by resource; a resource only retired or deleted webhooks watch
    is kept while one of them still needs a health check (retired -> deleted)."""
    grouped: dict[str, list[Registration]] = {}
    for registration in registrations:
        if registration.resource_gid and registration.state in WATCHED_STATES:
            grouped.setdefault(registration.resource_gid, []).append(registration)
    found = []
    for resource_gid in sorted(grouped):
        members = tuple(sorted(grouped[resource_gid], key=lambda r: r.target_id))
        resource_type = next((r.resource_type for r in members if r.resource_type), "")
        found.append(Subscription(resource_gid, resource_type, members))
    return found


def passes_filters(
    event: Mapping[str, Any],
    filters: Sequence[Mapping[str, Any]],
    *,
    ignore_fields: bool = False,
) -> bool:
    """Asana's filter rule: no filters passes all; else any one filter whose every given key
    matches (resource_type, resource_subtype, action, and change.field among fields)."""
    if not filters:
        return True
    return any(_passes_one(event, item, ignore_fields=ignore_fields) for item in filters)


def _passes_one(event: Mapping[str, Any], item: Mapping[str, Any], *, ignore_fields: bool) -> bool:
    resource = event.get("resource")
    resource = resource if isinstance(resource, Mapping) else {}
    wanted = {
        "resource_type": resource.get("resource_type"),
        "resource_subtype": resource.get("resource_subtype"),
        "action": event.get("action"),
    }
    for key, actual in wanted.items():
        expected = item.get(key)
        if expected is not None and expected != actual:
            return False
    fields = item.get("fields")
    if fields is not None and not ignore_fields:
        change = event.get("change")
        field = change.get("field") if isinstance(change, Mapping) else None
        return field in fields
    return True


def resync_event(
    resource: Mapping[str, Any], *, modified_at: str | None, now: datetime
) -> dict[str, Any]:
    """A synthetic ``changed`` event for a resource found by a resync crawl.

    Its ``created_at`` is the resource's ``modified_at`` when known, so a resource crawled
    twice without changing in between has one fingerprint and is emitted once; without it,
    the crawl's own time is used (each resync then rehydrates it again, which is its job).
    """
    ref: dict[str, Any] = {
        "gid": str(resource["gid"]),
        "resource_type": str(resource.get("resource_type") or "task"),
    }
    subtype = resource.get("resource_subtype")
    if isinstance(subtype, str) and subtype:
        ref["resource_subtype"] = subtype
    name = resource.get("name")
    if isinstance(name, str):
        ref["name"] = name
    return {
        "action": "changed",
        "created_at": modified_at or format_timestamp(now),
        "resource": ref,
        "parent": None,
        "user": None,
        RESYNC_MARKER: True,
    }


STORY_FIELDS = "created_at,resource_subtype,created_by"
"""What a resync asks of each story of a modified task: enough to build its event."""


def story_events(
    stories: Iterable[Mapping[str, Any]], *, task_gid: str, since: datetime
) -> list[dict[str, Any]]:
    """The ``added`` events of a task's stories created at or after ``since``, as a webhook
    would have delivered them (the story, the task as parent, its author as user).

    A comment or system story made in a 412 gap bumps the task's ``modified_at``, so the
    crawl finds the task; this finds the stories themselves. Their fingerprint is the
    story's gid (asana_hooks.events), so one already delivered is not emitted again.
    """
    found = []
    for story in stories:
        gid, created_at = story.get("gid"), parse_timestamp(story.get("created_at"))
        if not gid or created_at is None or created_at < since:
            continue
        ref: dict[str, Any] = {"gid": str(gid), "resource_type": "story"}
        subtype = story.get("resource_subtype")
        if isinstance(subtype, str) and subtype:
            ref["resource_subtype"] = subtype
        author = story.get("created_by")
        user = author.get("gid") if isinstance(author, Mapping) else None
        found.append(
            {
                "action": "added",
                "created_at": format_timestamp(created_at),
                "resource": ref,
                "parent": {"gid": task_gid, "resource_type": "task"},
                "user": {"gid": str(user), "resource_type": "user"} if user else None,
                RESYNC_MARKER: True,
            }
        )
    return found


class Gap(NamedTuple):
    """Where a resync crawl starts, and why one is needed."""

    since: datetime
    reason: str


def gap_after_412(
    *,
    had_token: bool,
    last_good: datetime | None,
    created_at: Iterable[object],
    margin: timedelta,
) -> Gap | None:
    """The gap an Events API 412 leaves: from the last good poll after an expired token;
    without a stored token, from the later of the webhook's creation and the last good poll
    (never just a fresh token). None when no time is known to start from."""
    since = resync_from(created_at, last_good, margin=margin)
    if since is None:
        return None
    if had_token:
        return Gap(since, "sync token expired (412)")
    if last_good is None:
        return Gap(since, "no stored sync token; resyncing from the webhook's creation")
    return Gap(since, "no stored sync token; resyncing from the last good poll")
