"""The in-memory world: the events mutations produce and where they propagate (no HTTP)."""

from __future__ import annotations

import pytest

from asana_hooks.dev.fake_asana import World, WorldError
from asana_hooks.dev.fake_asana.event import Event


@pytest.fixture
def world() -> tuple[World, list[tuple[Event, frozenset[str]]]]:
    w = World()
    seen: list[tuple[Event, frozenset[str]]] = []
    w.subscribe(lambda event, targets: seen.append((event, targets)))
    return w, seen


def test_moves_and_memberships(world: tuple[World, list[tuple[Event, frozenset[str]]]]) -> None:
    w, seen = world
    ws = w.add_workspace("Acme")
    user = w.add_user("Greg", workspace=ws)
    p1 = w.add_project("One", ws)
    p2 = w.add_project("Two", ws)
    doing = w.add_section(p1, "Doing")
    task = w.add_task("T", projects=[p1], by=user)
    seen.clear()
    w.move_task_to_section(task, doing, by=user)
    w.add_task_to_project(task, p2, by=user)
    w.remove_task_from_project(task, p2, by=user)
    summary = [(e.action, e.parent.gid if e.parent else None) for e, _ in seen]
    default_section = w.sections_of(p1)[0].gid
    assert summary == [
        ("removed", default_section),
        ("added", doing),
        ("added", p2),
        ("removed", p2),
    ]
    assert all(e.resource.gid == task and e.user and e.user.gid == user for e, _ in seen)
    assert p2 in seen[-1][1]  # the project it left still hears about it
    assert ws not in seen[0][1]  # task events never reach the workspace


def test_project_events_reach_higher_levels(
    world: tuple[World, list[tuple[Event, frozenset[str]]]],
) -> None:
    w, seen = world
    ws = w.add_workspace("Acme")
    team = w.add_team(ws, "Team")
    folio = w.add_portfolio(ws, "Folio")
    project = w.add_project("P", ws, team=team)
    w.add_project_to_portfolio(folio, project)
    (created, created_targets), (filed, filed_targets) = seen
    assert created.parent is not None
    assert created.parent.gid == team
    assert {project, ws, team} <= created_targets
    assert filed.parent is not None
    assert filed.parent.gid == folio
    assert folio in filed_targets


def test_story_and_subtask_targets(world: tuple[World, list[tuple[Event, frozenset[str]]]]) -> None:
    w, seen = world
    ws = w.add_workspace("Acme")
    project = w.add_project("P", ws)
    parent = w.add_task("Parent", projects=[project])
    child = w.add_subtask(parent, "Child")
    grandchild = w.add_subtask(child, "Grandchild")
    story = w.add_comment(grandchild, "hi")
    event, targets = seen[-1]
    assert event.resource.gid == story
    assert {story, grandchild, child, parent, project} <= targets
    w.edit_comment(story, "edited")
    assert seen[-1][0].change is not None
    assert seen[-1][0].change.field == "text"
    w.delete_comment(story)
    assert seen[-1][0].action == "removed"


def test_invalid_mutations_raise(world: tuple[World, list[tuple[Event, frozenset[str]]]]) -> None:
    w, _ = world
    ws = w.add_workspace("Acme")
    task = w.add_task("T", workspace=ws)
    field = w.add_custom_field(ws, "Pri", type="enum", enum_options=["Low"])
    with pytest.raises(WorldError):
        w.update_task("123", name="x")
    with pytest.raises(WorldError):
        w.set_custom_field(task, field, "Nope")
    with pytest.raises(WorldError):
        w.add_custom_field(ws, "Bad", type="formula")
    w.delete_task(task)
    with pytest.raises(WorldError):
        w.update_task(task, name="x")
    w.undelete(task)
    assert w.update_task(task, name="x") == task
