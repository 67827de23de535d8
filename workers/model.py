"""The values that flow through the workers, and the change entry built from them. Pure.

An ``Event`` (asana_hooks.events) becomes a ``BatchEvent`` (what the batching script needs);
a closed batch comes back from Redis as a ``ClosedBatch``; its GET outcome is a ``Fetched``;
``build_change`` turns the two into the entry DESIGN.md §2 "Output" describes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from asana_hooks.events import Event, Source, parse_timestamp
from asana_hooks.keys import DEFAULT_CONNECTION
from workers.window import WINDOW_SECONDS

Status = Literal["ok", "deleted", "not_found", "forbidden"]


@dataclass(frozen=True)
class BatchEvent:
    """One new (not duplicate) event, in the form the batching Lua script reads."""

    fingerprint: str
    gid: str
    resource_type: str
    action: str
    field: str | None
    created_at: str
    parent: dict[str, str] | None
    source: Source
    webhook_gid: str | None
    target_id: str | None
    late: bool
    resync: bool = False
    """A resync's synthetic event: "modified at created_at", not a change Asana reported."""

    def args(self) -> tuple[str, ...]:
        """The eleven positional values the batching Lua script reads per event."""
        return (
            self.gid,
            self.resource_type,
            self.action,
            self.field or "",
            self.created_at,
            json.dumps(self.parent, separators=(",", ":")) if self.parent else "",
            self.source,
            self.webhook_gid or "",
            self.target_id or "",
            "1" if self.late else "0",
            "1" if self.resync else "0",
        )

    @classmethod
    def of(
        cls,
        event: Event,
        *,
        source: Source,
        webhook_gid: str | None,
        target_id: str | None,
        late: bool,
    ) -> BatchEvent:
        """Only the poller's own resync marks events as synthetic: a webhook never does."""
        return cls(
            fingerprint=event.fingerprint,
            gid=event.resource.gid,
            resource_type=event.resource.resource_type,
            action=event.action,
            field=event.change_field,
            created_at=event.created_at,
            parent=event.parent.to_dict() if event.parent else None,
            source=source,
            webhook_gid=webhook_gid,
            target_id=target_id,
            late=late,
            resync=event.resync and source == "poller",
        )


def is_late(created_at: str, received_at: str, late_after_seconds: float) -> bool:
    """Did the event reach us more than ``late_after_seconds`` after it happened?"""
    created, received = parse_timestamp(created_at), parse_timestamp(received_at)
    if created is None or received is None:
        return False
    return (received - created).total_seconds() > late_after_seconds


def is_beyond_window(created_at: str, received_at: str) -> bool:
    """Did this webhook event reach us more than the dedupe window after it happened? Asana
    retries for 24 hours, and the mark of an event taken at its first arrival is found for a
    whole window (workers.window), so such an event can only be a signed body replayed after
    its mark expired (or a clock far off): taking it would emit a change twice."""
    created, received = parse_timestamp(created_at), parse_timestamp(received_at)
    if created is None or received is None:
        return False
    return (received - created).total_seconds() > WINDOW_SECONDS


def flush_time(due_ms: int) -> datetime:
    """When to schedule a flush due at ``due_ms``: RQ's scheduler keeps whole seconds and
    enqueues a job once the current second reaches its score, so round up, never early."""
    return datetime.fromtimestamp(math.ceil(due_ms / 1000), tz=UTC)


@dataclass(frozen=True)
class ClosedBatch:
    """Everything a batch gathered, as the close script hands it over."""

    batch_id: str
    gid: str
    resource_type: str
    count: int
    actions: tuple[str, ...]
    fields: tuple[str, ...]
    sources: tuple[str, ...]
    first_event_at: str
    last_event_at: str
    webhook_gid: str | None
    target_id: str | None
    parent: dict[str, str] | None
    deleted: bool
    late: int
    resynced: int = 0
    """How many of its events were a resync's synthetic ones."""
    owner: str = ""
    """The flush job that closed it (its emitted marks live under that job)."""

    @property
    def resync_only(self) -> bool:
        """Every event came from a resync crawl: the batch knows a modification time, not
        which change happened, so an entry already carrying that state makes it redundant."""
        return self.count > 0 and self.resynced >= self.count

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> ClosedBatch:
        parent = raw.get("parent") or ""
        return cls(
            batch_id=raw["id"],
            gid=raw["gid"],
            resource_type=raw.get("rtype", ""),
            count=int(raw.get("count", 0)),
            actions=_csv(raw.get("actions", "")),
            fields=_csv(raw.get("fields", "")),
            sources=_sources(raw.get("sources", "")),
            first_event_at=raw.get("first_at", ""),
            last_event_at=raw.get("last_at", ""),
            webhook_gid=raw.get("webhook_gid") or None,
            target_id=raw.get("target_id") or None,
            parent=json.loads(parent) if parent else None,
            deleted=raw.get("deleted") == "1",
            late=int(raw.get("late", 0)),
            resynced=int(raw.get("resynced", 0)),
            owner=raw.get("owner", ""),
        )


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part for part in value.split(",") if part)


def _sources(value: str) -> tuple[str, ...]:
    """Always in the contract's order: webhook before poller."""
    found = set(_csv(value))
    return tuple(source for source in ("webhook", "poller") if source in found)


@dataclass(frozen=True)
class Fetched:
    """The outcome of rehydrating one batch."""

    status: Status
    data: dict[str, Any] | None = None


def build_change(
    batch: ClosedBatch,
    fetched: Fetched,
    *,
    watch: str | None = None,
    connection: str = DEFAULT_CONNECTION,
) -> dict[str, Any]:
    """The stream entry for one closed batch (DESIGN.md §2 "Output"), with ``watch`` when the
    webhook that brought it belongs to one (§6.2) and the ``connection`` that fetched it
    (§6.5)."""
    change = {
        "resource": {"gid": batch.gid, "resource_type": batch.resource_type},
        "parent": batch.parent or _parent_from_data(batch.resource_type, fetched.data),
        "status": fetched.status,
        "actions": list(batch.actions),
        "fields": list(batch.fields),
        "events": batch.count,
        "first_event_at": batch.first_event_at,
        "last_event_at": batch.last_event_at,
        "sources": list(batch.sources),
        "webhook_gid": batch.webhook_gid,
        "data": fetched.data,
        "connection": connection,
    }
    if watch:
        change["watch"] = watch
    return change


def plan_by_connection(
    batches: list[ClosedBatch], connections: dict[str, str]
) -> list[tuple[str, list[ClosedBatch]]]:
    """The batches grouped by the connection of their target (``connections``: target id ->
    connection id; a batch without a known target is the default connection's), each group
    in the batches' order, groups in order of their first batch."""
    groups: dict[str, list[ClosedBatch]] = {}
    for batch in batches:
        connection = connections.get(batch.target_id or "", DEFAULT_CONNECTION)
        groups.setdefault(connection, []).append(batch)
    return list(groups.items())


_PARENT_FIELD = {"story": "target", "task": "parent", "section": "project", "attachment": "parent"}


def _parent_from_data(resource_type: str, data: dict[str, Any] | None) -> dict[str, str] | None:
    """When no event named a parent: a story's task, a subtask's task, a section's project."""
    if not data:
        return None
    parent = data.get(_PARENT_FIELD.get(resource_type, ""))
    if isinstance(parent, dict) and parent.get("gid"):
        default_type = "project" if resource_type == "section" else "task"
        return {
            "gid": str(parent["gid"]),
            "resource_type": str(parent.get("resource_type") or default_type),
        }
    return None


def summary(change: dict[str, Any], *, entry_id: str) -> dict[str, Any]:
    """The short form kept in keys.RECENT_CHANGES for the status page."""
    data = change.get("data") or {}
    return {
        "id": entry_id,
        "resource": change["resource"],
        "name": data.get("name") or (data.get("text") or "")[:80] or None,
        "status": change["status"],
        "actions": change["actions"],
        "fields": change["fields"],
        "events": change["events"],
        "sources": change["sources"],
        "last_event_at": change["last_event_at"],
    }
