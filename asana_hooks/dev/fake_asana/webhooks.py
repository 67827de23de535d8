"""Webhook subscription state and its JSON representations. No I/O."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .event import Event
from .filters import HIGHER_LEVEL_TYPES, WebhookFilter, matches

__all__ = ["Delivery", "Webhook"]


@dataclass(eq=False)
class Delivery:
    """One POST to a webhook's target: a batch of events or a heartbeat (no events)."""

    events: list[dict[str, Any]]
    heartbeat: bool = False
    attempts: int = 0
    not_before: float = 0.0  # time.monotonic() before which it must not be sent
    body: bytes = b""  # fixed at the first attempt, so retries resend the same bytes


@dataclass(eq=False)
class Webhook:
    """One webhook, as Asana keeps it; timestamps are ISO strings, deadlines monotonic."""

    gid: str
    resource_gid: str
    resource_type: str
    resource_name: str | None
    target: str
    secret: str
    filters: list[WebhookFilter]
    token: str
    created_at: str
    workspace: str | None
    active: bool = True
    last_success_at: str | None = None
    last_failure_at: str | None = None
    last_failure_content: str | None = None
    delivery_retry_count: int = 0
    next_attempt_after: str | None = None
    failure_deletion_timestamp: str | None = None
    # delivery machinery (monotonic clock)
    deleted: bool = False
    deletion_deadline: float | None = None
    next_heartbeat_at: float = 0.0
    buffer: list[dict[str, Any]] = field(default_factory=list)
    buffer_since: float | None = None
    queue: deque[Delivery] = field(default_factory=deque)
    current: Delivery | None = None
    sending: bool = False

    @property
    def higher_level(self) -> bool:
        return self.resource_type in HIGHER_LEVEL_TYPES

    def wants(self, event: Event) -> bool:
        return self.active and matches(self.filters, event, higher_level=self.higher_level)

    @property
    def idle(self) -> bool:
        return not (self.buffer or self.queue or self.current or self.sending)

    def resource_json(self) -> dict[str, Any]:
        return {
            "gid": self.resource_gid,
            "resource_type": self.resource_type,
            "name": self.resource_name,
        }

    def to_json(self) -> dict[str, Any]:
        """The full representation (``GET /webhooks/{gid}``, creation, update)."""
        return {
            "gid": self.gid,
            "resource_type": "webhook",
            "active": self.active,
            "resource": self.resource_json(),
            "target": self.target,
            "created_at": self.created_at,
            "filters": [f.to_json() for f in self.filters],
            "last_success_at": self.last_success_at,
            "last_failure_at": self.last_failure_at,
            "last_failure_content": self.last_failure_content,
            "delivery_retry_count": self.delivery_retry_count,
            "next_attempt_after": self.next_attempt_after,
            "failure_deletion_timestamp": self.failure_deletion_timestamp,
        }

    def creation_json(self) -> dict[str, Any]:
        """The 201 answer of ``POST /webhooks``: the full form, but ``resource`` as
        ``{"gid", "name"}`` without ``resource_type``, as the example response in the
        description of Asana's ``createWebhook`` (asana-openapi-subset.yaml) shows.

        Asana's docs disagree with themselves here: the ``WebhookResponse`` schema
        (``resource``: AsanaNamedResource) and the handshake example in the webhooks guide
        include ``resource.resource_type``. The fake follows the endpoint's own example, the
        stricter choice: a client must not rely on ``resource_type`` in this answer (it
        knows what it subscribed to). ``GET /webhooks/{gid}``, ``GET /webhooks`` and
        ``PUT`` keep it, as the schema and the guide's GET example show.
        """
        out = self.to_json()
        out["resource"] = {"gid": self.resource_gid, "name": self.resource_name}
        return out
