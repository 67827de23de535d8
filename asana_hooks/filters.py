"""Webhook filter SPECs as the CLI takes them, checked against Asana's rules. Pure, no I/O.

A SPEC is ``resource_type[.resource_subtype][:action[:field,field...]]``, for example
``task:changed:name,notes``, ``task.milestone:changed:due_on`` or ``story:added``. Each
becomes one filter object of ``POST /webhooks``. What we check before calling Asana comes
from ../shared/reference/asana-webhooks.md ("Filtering", "Filtering: Higher-level Webhooks"):
``fields`` only with ``changed``; webhooks on a workspace, team, portfolio or goal must have
filters, each naming a resource type and action from Asana's table, and no fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from asana_hooks.errors import HooksError

ACTIONS = ("added", "changed", "deleted", "removed", "undeleted")
"""Every action Asana's events and filters know."""

HIGHER_LEVEL_TYPES = frozenset({"workspace", "team", "portfolio", "goal"})
"""Resource types whose webhooks are "higher-level": filters required, from the table below."""

HIGHER_LEVEL_ALLOWED: Mapping[str, tuple[str, ...]] = {
    "goal": ("added", "removed", "deleted", "undeleted", "changed"),
    "portfolio": ("added", "removed", "deleted"),
    "project": ("added", "removed", "deleted", "undeleted", "changed"),
    "project_template": ("added", "removed", "deleted", "undeleted", "changed"),
    "team_membership": ("added", "removed"),
    "workspace_membership": ("added", "removed"),
}
"""Asana's table: the filters a higher-level webhook accepts, resource type -> actions."""

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class FilterSpecError(HooksError, ValueError):
    """A filter SPEC is malformed or breaks one of Asana's rules; the message says which."""

    def __init__(self, spec: str, problem: str) -> None:
        super().__init__(f"--filter {spec!r}: {problem}")
        self.spec = spec
        self.problem = problem


def parse_spec(spec: str) -> dict[str, Any]:
    """One SPEC to one Asana filter object (only the keys the SPEC names)."""
    text = spec.strip()
    parts = text.split(":")
    if len(parts) > 3:
        raise FilterSpecError(spec, "expected resource_type[.subtype][:action[:field,...]]")
    kind, _, subtype = parts[0].partition(".")
    found: dict[str, Any] = {"resource_type": _name(spec, kind, "resource type")}
    if subtype or "." in parts[0]:
        found["resource_subtype"] = _name(spec, subtype, "resource subtype")
    if len(parts) >= 2:
        action = parts[1]
        if action not in ACTIONS:
            raise FilterSpecError(
                spec, f"unknown action {action!r}; use one of {', '.join(ACTIONS)}"
            )
        found["action"] = action
    if len(parts) == 3:
        if found["action"] != "changed":
            raise FilterSpecError(spec, "fields are only allowed with the action 'changed'")
        fields = [field.strip() for field in parts[2].split(",")]
        if not all(_NAME.match(field) for field in fields):
            raise FilterSpecError(spec, "fields must be a comma-separated list of field names")
        found["fields"] = fields
    return found


def parse_specs(specs: Iterable[str], *, resource_type: str | None = None) -> list[dict[str, Any]]:
    """Every SPEC, checked together against the webhook's resource type when it is known."""
    raw = list(specs)
    filters = [parse_spec(spec) for spec in raw]
    if resource_type in HIGHER_LEVEL_TYPES:
        check_higher_level(filters, resource_type=resource_type, specs=raw)
    return filters


def check_higher_level(
    filters: Sequence[Mapping[str, Any]], *, resource_type: str, specs: Sequence[str] = ()
) -> None:
    """Asana's rules for webhooks on a workspace, team, portfolio or goal."""
    allowed_text = "; ".join(
        f"{kind}:{'|'.join(actions)}" for kind, actions in HIGHER_LEVEL_ALLOWED.items()
    )
    if not filters:
        raise FilterSpecError(
            "",
            f"a webhook on a {resource_type} needs at least one --filter, from: {allowed_text}",
        )
    for position, item in enumerate(filters):
        spec = specs[position] if position < len(specs) else format_filter(item)
        if "fields" in item:
            raise FilterSpecError(spec, f"a webhook on a {resource_type} takes no fields")
        allowed = HIGHER_LEVEL_ALLOWED.get(str(item.get("resource_type")), ())
        if item.get("action") not in allowed:
            raise FilterSpecError(
                spec,
                f"not allowed on a {resource_type} webhook; each filter needs a resource type "
                f"and an action from: {allowed_text}",
            )


def format_filter(item: Mapping[str, Any]) -> str:
    """An Asana filter object back to its SPEC, for tables."""
    text = str(item.get("resource_type") or "*")
    if item.get("resource_subtype"):
        text += f".{item['resource_subtype']}"
    if item.get("action"):
        text += f":{item['action']}"
        if item.get("fields"):
            text += ":" + ",".join(str(field) for field in item["fields"])
    return text


def _name(spec: str, value: str, what: str) -> str:
    if not _NAME.match(value):
        raise FilterSpecError(spec, f"{what} {value!r} is not a name like task or milestone")
    return value
