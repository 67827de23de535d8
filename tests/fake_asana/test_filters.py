"""Webhook filters as Asana's documentation describes them (incl. higher-level webhooks)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from asana_hooks.dev.fake_asana import FakeAsana
from asana_hooks.dev.fake_asana.event import Change, Event, Ref
from asana_hooks.dev.fake_asana.filters import (
    HIGHER_LEVEL_ALLOWED,
    FilterError,
    matches,
    parse_filters,
)

from .conftest import Receiver, Seed, create_webhook

TASK = Ref("1", "task", "T", "default_task")
MILESTONE = Ref("2", "task", "M", "milestone")
STORY = Ref("3", "story", None, "comment_added")
PROJECT = Ref("4", "project", "P")


def event(action: str, resource: Ref = TASK, field: str | None = None) -> Event:
    change = Change(field) if field else None
    return Event(action, resource, "2026-01-01T00:00:00.000Z", change=change)


@pytest.mark.parametrize(
    ("filters", "ev", "expected"),
    [
        ([], event("changed", field="name"), True),
        ([{"resource_type": "task"}], event("added"), True),
        ([{"resource_type": "story"}], event("added"), False),
        ([{"resource_type": "task", "action": "changed"}], event("added"), False),
        (
            [{"resource_type": "task", "action": "changed", "fields": ["due_on"]}],
            event("changed", field="due_on"),
            True,
        ),
        (
            [{"resource_type": "task", "action": "changed", "fields": ["due_on"]}],
            event("changed", field="name"),
            False,
        ),
        ([{"resource_type": "task", "resource_subtype": "milestone"}], event("added"), False),
        (
            [{"resource_type": "task", "resource_subtype": "milestone"}],
            event("added", MILESTONE),
            True,
        ),
        (
            [{"resource_type": "story", "resource_subtype": "comment_added"}],
            event("added", STORY),
            True,
        ),
        # passing ANY filter is enough
        (
            [{"resource_type": "story"}, {"resource_type": "task", "action": "deleted"}],
            event("deleted"),
            True,
        ),
    ],
)
def test_lower_level_matching(filters: list[dict[str, Any]], ev: Event, expected: bool) -> None:
    assert matches(parse_filters(filters, "project"), ev) is expected


@pytest.mark.parametrize("kind", ["workspace", "team", "portfolio", "goal"])
def test_higher_level_requires_filters(kind: str) -> None:
    with pytest.raises(FilterError):
        parse_filters([], kind)
    with pytest.raises(FilterError):
        parse_filters(None, kind)


@pytest.mark.parametrize(("resource_type", "actions"), sorted(HIGHER_LEVEL_ALLOWED.items()))
def test_higher_level_table(resource_type: str, actions: frozenset[str]) -> None:
    for action in ["added", "changed", "deleted", "removed", "undeleted"]:
        filters = [{"resource_type": resource_type, "action": action}]
        if action in actions:
            assert parse_filters(filters, "workspace")
        else:
            with pytest.raises(FilterError):
                parse_filters(filters, "workspace")


def test_higher_level_table_is_asanas() -> None:
    assert {
        "goal": {"added", "removed", "deleted", "undeleted", "changed"},
        "portfolio": {"added", "removed", "deleted"},
        "project": {"added", "removed", "deleted", "undeleted", "changed"},
        "project_template": {"added", "removed", "deleted", "undeleted", "changed"},
        "team_membership": {"added", "removed"},
        "workspace_membership": {"added", "removed"},
    } == HIGHER_LEVEL_ALLOWED


@pytest.mark.parametrize(
    "filters",
    [
        [{"resource_type": "task", "action": "added"}],  # tasks never reach higher levels
        [{"resource_type": "project"}],  # action is required
        [{"resource_type": "project", "action": "changed", "fields": ["name"]}],  # no fields
    ],
)
def test_higher_level_rejects(filters: list[dict[str, Any]]) -> None:
    with pytest.raises(FilterError):
        parse_filters(filters, "team")


def test_fields_only_with_changed() -> None:
    with pytest.raises(FilterError):
        parse_filters([{"resource_type": "task", "action": "added", "fields": ["name"]}], "task")


def test_task_and_story_events_never_reach_higher_level() -> None:
    filters = parse_filters([{"resource_type": "project", "action": "added"}], "workspace")
    assert not matches(filters, event("added"), higher_level=True)
    assert not matches(filters, event("added", STORY), higher_level=True)
    assert matches(filters, event("added", PROJECT), higher_level=True)


def test_api_enforces_higher_level_rules(
    fake: FakeAsana, seed: Seed, api: httpx.Client, receiver: Receiver
) -> None:
    no_filters = create_webhook(api, seed.ws, receiver.url)
    assert no_filters.status_code == 400
    assert no_filters.json()["errors"][0]["message"]
    bad = create_webhook(api, seed.ws, receiver.url, [{"resource_type": "task", "action": "added"}])
    assert bad.status_code == 400
    assert receiver.received == []  # refused before any handshake
    good = create_webhook(
        api, seed.ws, receiver.url, [{"resource_type": "project", "action": "added"}]
    )
    assert good.status_code == 201
    fake.wait_idle()
    fake.world.add_task("not delivered", projects=[seed.project], by=seed.user)
    project = fake.world.add_project("Second", workspace=seed.ws, by=seed.user)
    fake.wait_idle()
    events = [e for d in fake.deliveries for e in d.events]
    assert [(e["action"], e["resource"]["gid"]) for e in events] == [("added", project)]
    assert events[0]["parent"] == {"gid": seed.ws, "resource_type": "workspace"}


def test_field_filter_end_to_end(
    fake: FakeAsana, seed: Seed, api: httpx.Client, receiver: Receiver
) -> None:
    task = fake.world.add_task("T", projects=[seed.project], by=seed.user)
    filters = [{"resource_type": "task", "action": "changed", "fields": ["due_on"]}]
    assert create_webhook(api, task, receiver.url, filters).status_code == 201
    fake.world.update_task(task, by=seed.user, name="renamed", due_on="2026-12-01")
    fake.world.add_comment(task, "hi", by=seed.user)
    fake.wait_idle()
    events = [e for d in fake.deliveries for e in d.events]
    assert [e["change"]["field"] for e in events] == ["due_on"]
