"""The event model: parse Asana's compact events and fingerprint them. Pure, no I/O.

Asana events carry no id. The same change reaches us through a webhook delivery, whose
values carry ``gid`` and ``resource_type``, and through the Events API, whose values carry the
compact form (``gid``, ``resource_type``, ``name``). ``fingerprint`` keeps only what both
forms share, so one change gives one fingerprint whichever way it came.
See ../shared/reference/asana-events.md for the event object.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from asana_hooks.errors import HooksError

Source = Literal["webhook", "poller"]
MAX_GID_LENGTH = 64
RESYNC_MARKER = "asana_hooks_resync"
"""Key the poller sets on the synthetic events of a resync (workers.poller.resync): such an event
says "this resource was modified at ``created_at``", not which change happened."""
MAX_NAME_LENGTH = 128


class MalformedEvent(HooksError, ValueError):
    """An event does not have the shape Asana documents."""

    def __init__(self, problem: str, *, index: int | None = None) -> None:
        where = f"events[{index}]: " if index is not None else ""
        super().__init__(where + problem)
        self.problem = problem
        self.index = index


@dataclass(frozen=True)
class Ref:
    """A reference to an Asana object: its gid and its resource type."""

    gid: str
    resource_type: str

    def to_dict(self) -> dict[str, str]:
        return {"gid": self.gid, "resource_type": self.resource_type}


@dataclass(frozen=True)
class Event:
    """One compact Asana event, reduced to what identifies it and what we report."""

    resource: Ref
    action: str
    created_at: str
    user_gid: str | None = None
    parent: Ref | None = None
    resource_subtype: str | None = None
    change_field: str | None = None
    change_action: str | None = None
    value_gids: tuple[str | None, str | None, str | None] = (None, None, None)
    """The gids of change.new_value, change.added_value and change.removed_value."""
    resync: bool = False
    """A resync's synthetic event (``RESYNC_MARKER``); not part of the fingerprint."""

    @property
    def fingerprint(self) -> str:
        """Same for the webhook and the Events API form of one event.

        A story is added once, so its gid alone names its ``added`` event: a resync that
        finds the story afterwards (workers.poller.resync) rebuilds the same fingerprint without
        knowing the event's exact ``created_at``."""
        if self.action == "added" and self.resource.resource_type == "story":
            return _digest([self.resource.gid, self.action])
        return _digest(
            [
                self.resource.gid,
                self.action,
                self.created_at,
                self.user_gid,
                self.parent.gid if self.parent else None,
                self.change_field,
                self.change_action,
                *self.value_gids,
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        """The Asana-shaped compact form (what from_dict and parse_event read back)."""
        event: dict[str, Any] = {
            "action": self.action,
            "created_at": self.created_at,
            "resource": self.resource.to_dict(),
            "user": {"gid": self.user_gid, "resource_type": "user"} if self.user_gid else None,
            "parent": self.parent.to_dict() if self.parent else None,
        }
        if self.resource_subtype:
            event["resource"]["resource_subtype"] = self.resource_subtype
        if self.change_field is not None:
            change: dict[str, Any] = {"field": self.change_field, "action": self.change_action}
            for key, gid in zip(_VALUE_KEYS, self.value_gids, strict=True):
                if gid is not None:
                    change[key] = {"gid": gid}
            event["change"] = change
        if self.resync:
            event[RESYNC_MARKER] = True
        return event

    @classmethod
    def from_dict(cls, data: object) -> Event:
        return parse_event(data)


_VALUE_KEYS = ("new_value", "added_value", "removed_value")


def _digest(identity: list[object]) -> str:
    encoded = json.dumps(identity, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()[:32]


def delivery_events(payload: object) -> list[Any]:
    """The receiver's check of a delivery body: an object with a list under ``events``.

    That is all it refuses (400). What each event holds is the workers' business
    (``parse_event``): an event Asana signed that does not parse is kept aside
    (``asana_hooks.quarantine``), not answered 4xx, which would have Asana retry the whole
    delivery for a day and then delete the webhook.
    """
    if not isinstance(payload, dict):
        raise MalformedEvent('the body must be a JSON object {"events": [...]}')
    events = payload.get("events")
    if not isinstance(events, list):
        raise MalformedEvent('the body must hold a list under "events"')
    return events


def parse_events(payload: object) -> list[Event]:
    """Parse a delivery body's decoded JSON: an object with one list ``events``."""
    if not isinstance(payload, Mapping):
        raise MalformedEvent('the body must be a JSON object {"events": [...]}')
    events = payload.get("events")
    if not isinstance(events, list):
        raise MalformedEvent('the body must hold a list under "events"')
    parsed = []
    for index, raw in enumerate(events):
        try:
            parsed.append(parse_event(raw))
        except MalformedEvent as exc:
            raise MalformedEvent(exc.problem, index=index) from None
    return parsed


def parse_event(raw: object) -> Event:
    """Parse one event in webhook or Events API form."""
    if not isinstance(raw, Mapping):
        raise MalformedEvent("an event must be a JSON object")
    resource = _ref(raw.get("resource"), "resource")
    subtype = raw["resource"].get("resource_subtype")
    action = _short_string(raw.get("action"), "action")
    created_at = _timestamp(raw.get("created_at"))
    user = _optional_ref(raw.get("user"), "user")
    parent = _optional_ref(raw.get("parent"), "parent")
    change = raw.get("change")
    change_field = change_action = None
    value_gids: tuple[str | None, str | None, str | None] = (None, None, None)
    if change is not None:
        if not isinstance(change, Mapping):
            raise MalformedEvent("change must be an object or null")
        change_field = _short_string(change.get("field"), "change.field")
        # A change without an action is still a change of its field.
        action_of_change = change.get("action")
        change_action = (
            None if action_of_change is None else _short_string(action_of_change, "change.action")
        )
        new, added, removed = (_value_gid(change.get(key)) for key in _VALUE_KEYS)
        value_gids = (new, added, removed)
    return Event(
        resource=resource,
        action=action,
        created_at=created_at,
        user_gid=user.gid if user else None,
        parent=parent,
        resource_subtype=subtype if isinstance(subtype, str) and subtype else None,
        change_field=change_field,
        change_action=change_action,
        value_gids=value_gids,
        resync=raw.get(RESYNC_MARKER) is True,
    )


def _optional_ref(value: object, name: str) -> Ref | None:
    return None if value is None else _ref(value, name)


def _ref(value: object, name: str) -> Ref:
    if not isinstance(value, Mapping):
        raise MalformedEvent(f"{name} must be an object")
    # Asana's older form: a numeric ``id`` and no ``gid``; the gid is that number as a string.
    gid = _gid(value["gid"] if "gid" in value else value.get("id"), f"{name}.gid")
    resource_type = value.get("resource_type", value.get("type", "user" if name == "user" else ""))
    if not isinstance(resource_type, str) or not resource_type:
        if name == "resource":
            raise MalformedEvent("resource.resource_type must be a non-empty string")
        resource_type = ""
    return Ref(gid=gid, resource_type=resource_type[:MAX_NAME_LENGTH])


def _gid(value: object, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise MalformedEvent(f"{name} must be a string")
    gid = str(value)
    if not gid or len(gid) > MAX_GID_LENGTH or not gid.isascii() or not gid.isalnum():
        raise MalformedEvent(f"{name} must be 1 to {MAX_GID_LENGTH} letters or digits")
    return gid


def _short_string(value: object, name: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_LENGTH:
        raise MalformedEvent(f"{name} must be a non-empty string")
    return value


def _value_gid(value: object) -> str | None:
    """The gid of a change value when it is an Asana object; plain values have none."""
    if isinstance(value, Mapping):
        gid = value["gid"] if "gid" in value else value.get("id")
        if isinstance(gid, int) and not isinstance(gid, bool):
            gid = str(gid)
        if isinstance(gid, str) and gid:
            return gid[:MAX_GID_LENGTH]
    return None


def _timestamp(value: object) -> str:
    """Normalise to UTC with milliseconds and Z, Asana's own form."""
    if not isinstance(value, str) or len(value) > 40:
        raise MalformedEvent("created_at must be an ISO 8601 timestamp")
    moment = parse_timestamp(value)
    if moment is None:
        raise MalformedEvent("created_at must be an ISO 8601 timestamp")
    try:
        return format_timestamp(moment)
    except (OverflowError, ValueError):
        raise MalformedEvent("created_at is out of range") from None


def parse_timestamp(value: object) -> datetime | None:
    """An ISO 8601 timestamp (Asana's ...Z form or ours) as an aware datetime, else None.
    A value without a zone is UTC, as Asana's are."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def format_timestamp(moment: datetime) -> str:
    """UTC with milliseconds and Z: Asana's form, and one that sorts as text."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def normal_timestamp(value: object) -> str | None:
    """Any timestamp Asana gives, in ``format_timestamp``'s form (comparable as text)."""
    moment = parse_timestamp(value)
    if moment is None:
        return None
    try:
        return format_timestamp(moment)
    except (OverflowError, ValueError):
        return None


def delivery_digest(body: bytes) -> str:
    """Identifies one delivery's exact bytes (Asana's retries resend the same body)."""
    return hashlib.sha256(body).hexdigest()[:32]
