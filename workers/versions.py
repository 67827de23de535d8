"""When a batch would only repeat what the stream already told consumers. Pure, no I/O.

Webhook deliveries and the Events API describe one change with one event, so dedupe
(asana_hooks.events fingerprints) sees it twice and keeps it once. A resync cannot do that:
after Asana's 412 the events of the gap are gone, and the crawl only learns that a task was
modified at ``modified_at`` (workers.poller.resync). So entries remember, per resource, the newest
``modified_at`` their data carried (``keys.resource_version``), and a batch is redundant when:

- every event in it came from a resync and the resource was already emitted as modified at
  that time or later (the crawl found what a webhook had brought); or
- a resync's entry already carried the resource as modified at or after the batch's newest
  event (a webhook delivery retried late, after the resync found its change).

Missing nothing comes first: without a remembered version, a timestamp, or with a deletion in
the batch, the batch is emitted. Timestamps are compared as ``format_timestamp`` text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from asana_hooks.events import normal_timestamp
from workers.model import ClosedBatch


@dataclass(frozen=True)
class Version:
    """The newest modification time of a resource an entry carried."""

    modified_at: str
    by_resync: bool

    @classmethod
    def from_hash(cls, raw: Mapping[str, str]) -> Version | None:
        modified_at = normal_timestamp(raw.get("modified_at"))
        if modified_at is None:
            return None
        return cls(modified_at, raw.get("by_resync") == "1")


def carried_version(data: Mapping[str, Any] | None) -> str | None:
    """The ``modified_at`` a fetched resource carries, normalised; None when it has none."""
    return normal_timestamp(data.get("modified_at")) if data else None


def redundancy(batch: ClosedBatch, known: Version | None) -> str | None:
    """Why this batch would repeat an entry already emitted, or None when it must be emitted."""
    newest = normal_timestamp(batch.last_event_at)
    if known is None or newest is None or batch.deleted or newest > known.modified_at:
        return None
    if batch.resync_only:
        return f"an entry already carried it as modified at {known.modified_at}"
    if known.by_resync:
        return f"a resync's entry already carried it as modified at {known.modified_at}"
    return None
