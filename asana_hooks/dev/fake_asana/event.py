"""The event value object and its two wire forms (webhook payload, Events API). No I/O.

Asana documents that webhook events carry only ``gid`` and ``resource_type`` for every
resource they mention (the ``resource`` itself may also carry ``resource_subtype``), while
the Events API returns the compact representation (with ``name``). Everything else is the
same event: same ``created_at``, ``user``, ``parent`` and ``change``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Change", "Event", "Ref"]

JSON = dict[str, Any]


@dataclass(frozen=True)
class Ref:
    """A reference to an Asana object, as captured when the event happened."""

    gid: str
    resource_type: str
    name: str | None = None
    resource_subtype: str | None = None

    def webhook_form(self, *, with_subtype: bool = False) -> JSON:
        out: JSON = {"gid": self.gid, "resource_type": self.resource_type}
        if with_subtype and self.resource_subtype is not None:
            out["resource_subtype"] = self.resource_subtype
        return out

    def compact_form(self, *, with_subtype: bool = False) -> JSON:
        out: JSON = {"gid": self.gid, "resource_type": self.resource_type}
        if self.name is not None:
            out["name"] = self.name
        if with_subtype and self.resource_subtype is not None:
            out["resource_subtype"] = self.resource_subtype
        return out


@dataclass(frozen=True)
class Change:
    """``Event.change``: which field changed and how.

    ``new_value``/``added_value``/``removed_value`` are only set when the value is an Asana
    resource, as documented.
    """

    field: str
    action: str = "changed"
    new_value: Ref | None = None
    added_value: Ref | None = None
    removed_value: Ref | None = None

    def render(self, *, compact: bool) -> JSON:
        out: JSON = {"field": self.field, "action": self.action}
        for key, ref in (
            ("new_value", self.new_value),
            ("added_value", self.added_value),
            ("removed_value", self.removed_value),
        ):
            if ref is not None:
                out[key] = ref.compact_form() if compact else ref.webhook_form()
        return out


@dataclass(frozen=True)
class Event:
    action: str
    resource: Ref
    created_at: str
    user: Ref | None = None
    parent: Ref | None = None
    change: Change | None = None

    def webhook_json(self) -> JSON:
        """The form sent in webhook deliveries."""
        out: JSON = {
            "user": self.user.webhook_form() if self.user else None,
            "created_at": self.created_at,
            "action": self.action,
            "resource": self.resource.webhook_form(with_subtype=True),
            "parent": self.parent.webhook_form() if self.parent else None,
        }
        if self.change is not None:
            out["change"] = self.change.render(compact=False)
        return out

    def events_api_json(self) -> JSON:
        """The form returned by ``GET /events`` (compact objects, deprecated ``type``)."""
        out: JSON = {
            "user": self.user.compact_form() if self.user else None,
            "created_at": self.created_at,
            "action": self.action,
            "resource": self.resource.compact_form(with_subtype=True),
            "parent": self.parent.compact_form() if self.parent else None,
            "type": self.resource.resource_type,
        }
        if self.change is not None:
            out["change"] = self.change.render(compact=True)
        return out
