"""Webhook filters: validation (including higher-level rules) and matching. No I/O.

From Asana's documentation: when filters are given, an event is delivered if it passes
*any* filter. Webhooks on workspaces, teams, portfolios and goals ("higher-level") must
have filters, each naming a resource_type and action from the table below, and may not use
``fields``. ``fields`` is only valid for ``action: changed``. A project webhook refuses
filters on resource types that never reach a project (workspace, team, portfolio, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .event import Event

__all__ = [
    "ACTIONS",
    "HIGHER_LEVEL_ALLOWED",
    "HIGHER_LEVEL_TYPES",
    "NEVER_REACH_PROJECT",
    "FilterError",
    "WebhookFilter",
    "matches",
    "parse_filters",
]

ACTIONS = frozenset({"added", "changed", "deleted", "removed", "undeleted"})
HIGHER_LEVEL_TYPES = frozenset({"workspace", "team", "portfolio", "goal"})
HIGHER_LEVEL_ALLOWED: dict[str, frozenset[str]] = {
    "goal": frozenset({"added", "removed", "deleted", "undeleted", "changed"}),
    "portfolio": frozenset({"added", "removed", "deleted"}),
    "project": frozenset({"added", "removed", "deleted", "undeleted", "changed"}),
    "project_template": frozenset({"added", "removed", "deleted", "undeleted", "changed"}),
    "team_membership": frozenset({"added", "removed"}),
    "workspace_membership": frozenset({"added", "removed"}),
}

# Resource types whose events never propagate to a project (checked for project webhooks).
NEVER_REACH_PROJECT = frozenset(
    {"workspace", "team", "portfolio", "goal", "team_membership", "workspace_membership"}
)


class FilterError(ValueError):
    """Invalid filters; the message is what the API answers with (400)."""


@dataclass(frozen=True)
class WebhookFilter:
    resource_type: str | None = None
    resource_subtype: str | None = None
    action: str | None = None
    fields: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"resource_type": self.resource_type}
        if self.resource_subtype is not None:
            out["resource_subtype"] = self.resource_subtype
        if self.action is not None:
            out["action"] = self.action
        if self.fields is not None:
            out["fields"] = list(self.fields)
        return out

    def passes(self, event: Event) -> bool:
        if self.resource_type is not None and self.resource_type != event.resource.resource_type:
            return False
        if (
            self.resource_subtype is not None
            and self.resource_subtype != event.resource.resource_subtype
        ):
            return False
        if self.action is not None and self.action != event.action:
            return False
        if self.fields is not None:
            return event.change is not None and event.change.field in self.fields
        return True


def _optional_str(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise FilterError(f"filters.{key}: Must be a string")
    return value


def _parse_one(raw: Any) -> WebhookFilter:
    if not isinstance(raw, dict):
        raise FilterError("filters: Each filter must be an object")
    unknown = set(raw) - {"resource_type", "resource_subtype", "action", "fields"}
    if unknown:
        raise FilterError(f"filters: Unknown field {sorted(unknown)[0]!r}")
    action = _optional_str(raw, "action")
    if action is not None and action not in ACTIONS:
        raise FilterError(f"filters.action: Not a valid action: {action}")
    fields_raw = raw.get("fields")
    fields: tuple[str, ...] | None = None
    if fields_raw is not None:
        if not isinstance(fields_raw, list) or not all(isinstance(f, str) for f in fields_raw):
            raise FilterError("filters.fields: Must be an array of strings")
        if action is not None and action != "changed":
            raise FilterError("filters.fields: Only valid for filters with action 'changed'")
        fields = tuple(fields_raw)
    return WebhookFilter(
        resource_type=_optional_str(raw, "resource_type"),
        resource_subtype=_optional_str(raw, "resource_subtype"),
        action=action,
        fields=fields,
    )


def parse_filters(raw: Any, webhook_resource_type: str) -> list[WebhookFilter]:
    """Validate ``filters`` for a webhook on a resource of the given type."""
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise FilterError("filters: Must be an array")
    parsed = [_parse_one(item) for item in raw]
    if webhook_resource_type in HIGHER_LEVEL_TYPES:
        _check_higher_level(parsed, webhook_resource_type)
    elif webhook_resource_type == "project":
        _check_project(parsed)
    return parsed


def _check_project(filters: list[WebhookFilter]) -> None:
    """Events propagate *up* (task -> project -> team...), never down: a filter on a project
    webhook naming a type that lives above or beside the project can never match. Asana
    refuses such filters as invalid (400); its docs do not give the wording."""
    for item in filters:
        if item.resource_type in NEVER_REACH_PROJECT:
            raise FilterError(
                f"Invalid filter: resource_type {item.resource_type} can never match events "
                "on a webhook for a project."
            )


def _check_higher_level(filters: list[WebhookFilter], webhook_resource_type: str) -> None:
    if not filters:
        raise FilterError(
            f"Webhooks on a {webhook_resource_type} are higher-level webhooks and must "
            "specify filters."
        )
    for item in filters:
        if item.fields is not None:
            raise FilterError(
                f"filters.fields: Not supported for webhooks on a {webhook_resource_type}."
            )
        allowed = HIGHER_LEVEL_ALLOWED.get(item.resource_type or "")
        if allowed is None or item.action not in allowed:
            raise FilterError(
                f"Filter (resource_type: {item.resource_type}, action: {item.action}) is not "
                f"supported for webhooks on a {webhook_resource_type}."
            )


def matches(filters: list[WebhookFilter], event: Event, *, higher_level: bool = False) -> bool:
    """Whether ``event`` is delivered to a webhook with ``filters``."""
    if higher_level and event.resource.resource_type in {"task", "story"}:
        return False
    if not filters:
        return True
    return any(f.passes(event) for f in filters)
