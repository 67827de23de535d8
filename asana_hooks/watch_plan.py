"""What a watch must change at Asana, decided from what Asana lists and what we hold. Pure.

A watch (DESIGN.md §6.2) keeps one project webhook per project in its scope (a team, a
workspace or a portfolio), because Asana sends no task or story events to higher-level
webhooks (../shared/reference/asana-webhooks.md, "Filtering: Higher-level Webhooks"), plus
one scope webhook filtered to project lifecycle events. This module decides, with no I/O:
which projects are wanted, which need a webhook and which lost their place, whether Asana's
caps allow the new webhooks, and the watch's state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from asana_hooks.events import parse_timestamp

SCOPE_TYPES = ("team", "workspace", "portfolio")
"""The resources a watch can follow."""

SCOPE_FILTERS: tuple[dict[str, str], ...] = tuple(
    {"resource_type": "project", "action": action}
    for action in ("added", "removed", "deleted", "undeleted", "changed")
)
"""The scope webhook's filters: every project lifecycle action Asana's table allows on a
higher-level webhook (a project archived or moved is ``changed``)."""

MAX_WEBHOOKS_PER_RESOURCE = 1_000
MAX_WEBHOOKS_PER_USER_APP = 10_000
"""Asana's caps: 1,000 webhooks on one resource, 10,000 per user per app."""

NOT_IN_A_PROJECT = frozenset(
    {"workspace", "team", "portfolio", "goal", "team_membership", "workspace_membership"}
)
"""Resource types whose events never reach a project: a project webhook refuses filters on
them (they would never match)."""

NEEDS_WEBHOOK = frozenset({None, "pending", "deleted"})
"""Registration states (None: none yet) after which a wanted project needs ``register``. A
``lost`` webhook is the poller's to re-create (asana_hooks.health), a ``retired`` one the
operator's choice."""

HAS_WEBHOOK = frozenset({"active", "failing"})


@dataclass(frozen=True)
class ScopeProject:
    """A project of a scope as Asana lists it."""

    gid: str
    name: str = ""
    archived: bool = False
    created_at: str = ""

    @classmethod
    def from_asana(cls, data: Mapping[str, Any]) -> ScopeProject:
        return cls(
            gid=str(data["gid"]),
            name=str(data.get("name") or ""),
            archived=bool(data.get("archived")),
            created_at=str(data.get("created_at") or ""),
        )


@dataclass(frozen=True)
class Plan:
    create: tuple[ScopeProject, ...]
    """Wanted projects without a webhook of ours, in Asana's order."""
    remove: tuple[str, ...]
    """Projects we hold a webhook for that left the scope (deleted, moved out, archived)."""
    keep: int


def wanted(projects: Iterable[ScopeProject], *, include_archived: bool) -> dict[str, ScopeProject]:
    """The projects a watch follows, by gid (archived ones only when asked)."""
    return {p.gid: p for p in projects if include_archived or not p.archived}


def plan(wanted_projects: Mapping[str, ScopeProject], held: Mapping[str, str | None]) -> Plan:
    """``held``: project gid -> the state of the webhook we hold for it (None: no
    registration yet)."""
    create = tuple(p for gid, p in wanted_projects.items() if held.get(gid) in NEEDS_WEBHOOK)
    remove = tuple(sorted(gid for gid in held if gid not in wanted_projects))
    keep = sum(1 for gid in wanted_projects if held.get(gid) not in NEEDS_WEBHOOK)
    return Plan(create=create, remove=remove, keep=keep)


def joined_since(
    project: ScopeProject, last_reconciled_at: datetime | None, *, margin: timedelta
) -> datetime | None:
    """Where a project found by a reconciliation must be crawled from, so that its changes are
    covered from the moment it entered the scope: its creation, or for an older project moved
    in or unarchived, the last reconciliation that did not see it. None before the first."""
    if last_reconciled_at is None:
        return None
    created = parse_timestamp(project.created_at)
    entered = max(created, last_reconciled_at) if created is not None else last_reconciled_at
    return entered - margin


def cap_problem(
    existing: Iterable[str],
    new: Iterable[str],
    *,
    per_resource: int = MAX_WEBHOOKS_PER_RESOURCE,
    per_user_app: int = MAX_WEBHOOKS_PER_USER_APP,
) -> str | None:
    """Would these webhooks break Asana's caps? ``existing``: the resource gid of every
    webhook this token holds (Asana's list); ``new``: one resource gid per webhook to create.
    Returns the one line to print, or None."""
    counts: dict[str, int] = {}
    for gid in existing:
        counts[gid] = counts.get(gid, 0) + 1
    adding = list(new)
    total = sum(counts.values()) + len(adding)
    if total > per_user_app:
        return (
            f"this needs {len(adding)} new webhooks and this token already holds "
            f"{total - len(adding)}: Asana allows {per_user_app:,} per user per app; "
            "nothing was created (remove other webhooks or watch a smaller scope)"
        )
    for gid in adding:
        counts[gid] = counts.get(gid, 0) + 1
        if counts[gid] > per_resource:
            return (
                f"resource {gid} already has {counts[gid] - 1} webhooks: Asana allows "
                f"{per_resource:,} per resource; nothing was created"
            )
    return None


def refused_filter(filters: Iterable[Mapping[str, Any]]) -> str | None:
    """The first filter a project webhook refuses, as a message, or None."""
    for found in filters:
        kind = str(found.get("resource_type", ""))
        if kind in NOT_IN_A_PROJECT:
            return (
                f"a watch's webhooks are on projects, and {kind} events never reach a "
                f"project: drop the {kind} filter"
            )
    return None


def watch_state(
    *, removed: bool, project_states: Iterable[str | None], scope_state: str | None
) -> str:
    """``removed``; ``failing`` when a webhook of the watch fails or is lost; ``syncing``
    while a wanted project has no webhook yet; else ``active``."""
    if removed:
        return "removed"
    states = list(project_states)
    if "failing" in states or "lost" in states or scope_state in ("failing", "lost"):
        return "failing"
    if any(state not in HAS_WEBHOOK and state != "retired" for state in states):
        return "syncing"
    if scope_state not in HAS_WEBHOOK:
        return "syncing"
    return "active"
