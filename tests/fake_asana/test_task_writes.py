"""Task writes an integration makes (addProject, addFollowers, PUT due_on/assignee) and the
events each one sends, over real HTTP; events read back through the Events API."""

from __future__ import annotations

from typing import Any

import httpx

from asana_hooks.dev.fake_asana import FakeAsana

from .conftest import Seed


def events_since(api: httpx.Client, resource: str, sync: str) -> list[dict[str, Any]]:
    answer = api.get("/events", params={"resource": resource, "sync": sync}).json()
    events: list[dict[str, Any]] = answer["data"]
    return events


def sync_of(api: httpx.Client, resource: str) -> str:
    sync: str = api.get("/events", params={"resource": resource}).json()["sync"]
    return sync


class TestAddProject:
    """``POST /tasks/{gid}/addProject``."""

    def test_adds_the_task_and_sends_added_with_the_project_as_parent(
        self, fake: FakeAsana, seed: Seed, api: httpx.Client
    ) -> None:
        """200 ``{data: {}}``; both projects' streams get task ``added`` (parent: the new one)."""
        combined = fake.world.add_project("Combined", workspace=seed.ws)
        task = fake.world.add_task("T", projects=[seed.project], by=seed.user)
        syncs = {project: sync_of(api, project) for project in (seed.project, combined)}
        answer = api.post(f"/tasks/{task}/addProject", json={"data": {"project": combined}})
        assert answer.status_code == 200
        assert answer.json() == {"data": {}}
        data = api.get(f"/tasks/{task}", params={"opt_fields": "memberships.project"}).json()
        assert [m["project"]["gid"] for m in data["data"]["memberships"]] == [
            seed.project,
            combined,
        ]
        for project, sync in syncs.items():
            (event,) = events_since(api, project, sync)
            assert (event["action"], event["resource"]["gid"]) == ("added", task)
            assert event["parent"]["gid"] == combined
            assert event["user"]["gid"] == seed.user

    def test_again_is_harmless_and_silent(
        self, fake: FakeAsana, seed: Seed, api: httpx.Client
    ) -> None:
        """A task already in the project: 200, no event."""
        task = fake.world.add_task("T", projects=[seed.project], by=seed.user)
        sync = sync_of(api, seed.project)
        again = api.post(f"/tasks/{task}/addProject", json={"data": {"project": seed.project}})
        assert again.status_code == 200
        assert events_since(api, seed.project, sync) == []

    def test_bad_input(self, fake: FakeAsana, seed: Seed, api: httpx.Client) -> None:
        """No project: 400; an unknown project: 404; a section of another project: 400."""
        task = fake.world.add_task("T", projects=[seed.project], by=seed.user)
        other = fake.world.add_project("Other", workspace=seed.ws)
        path = f"/tasks/{task}/addProject"
        assert api.post(path, json={"data": {}}).status_code == 400
        assert api.post(path, json={"data": {"project": "999999"}}).status_code == 404
        wrong = {"project": other, "section": seed.section}
        assert api.post(path, json={"data": wrong}).status_code == 400


class TestAddFollowers:
    """``POST /tasks/{gid}/addFollowers`` and a real ``followers`` list."""

    def test_followers_are_kept_and_each_new_one_is_an_event(
        self, fake: FakeAsana, seed: Seed, api: httpx.Client
    ) -> None:
        """The creator follows; added users follow (by gid, email or "me"), each one
        ``changed`` field ``followers`` with ``added_value`` and no parent."""
        ana = fake.world.add_user("Ana", workspace=seed.ws)
        bo = fake.world.add_user("Bo", workspace=seed.ws, email="bo@example.com")
        task = fake.world.add_task("T", projects=[seed.project], by=ana)
        sync = sync_of(api, seed.project)
        answer = api.post(
            f"/tasks/{task}/addFollowers",
            params={"opt_fields": "followers.name"},
            json={"data": {"followers": ["bo@example.com", "me", ana]}},
        )
        assert answer.status_code == 200
        assert answer.json()["data"]["followers"] == [
            {"gid": ana, "name": "Ana"},
            {"gid": bo, "name": "Bo"},
            {"gid": seed.user, "name": "Greg Sanchez"},
        ]
        events = events_since(api, seed.project, sync)
        assert [(e["action"], e["parent"]) for e in events] == [("changed", None)] * 2
        assert [e["change"]["field"] for e in events] == ["followers"] * 2
        assert [e["change"]["action"] for e in events] == ["added"] * 2
        assert [e["change"]["added_value"]["gid"] for e in events] == [bo, seed.user]

    def test_again_is_silent_and_unknown_users_are_refused(
        self, fake: FakeAsana, seed: Seed, api: httpx.Client
    ) -> None:
        """Following twice: 200, no event; an unknown user or no list: 400."""
        task = fake.world.add_task("T", projects=[seed.project], by=seed.user)
        sync = sync_of(api, seed.project)
        path = f"/tasks/{task}/addFollowers"
        assert api.post(path, json={"data": {"followers": [seed.user]}}).status_code == 200
        assert events_since(api, seed.project, sync) == []
        assert api.post(path, json={"data": {"followers": ["999999"]}}).status_code == 400
        assert api.post(path, json={"data": {"followers": []}}).status_code == 400


class TestTriageWrites:
    """``PUT /tasks/{gid}`` with ``due_on`` and ``assignee``, and custom fields in GET."""

    def test_due_on_and_assignee(self, fake: FakeAsana, seed: Seed, api: httpx.Client) -> None:
        """One ``changed`` per field; the assignee becomes a follower; the enum custom field
        reads back with its ``display_value``."""
        ana = fake.world.add_user("Ana", workspace=seed.ws)
        priority = fake.world.add_custom_field(
            seed.ws, "Priority", type="enum", enum_options=["Low", "High"], project=seed.project
        )
        task = fake.world.add_task("T", projects=[seed.project], by=seed.user)
        fake.world.set_custom_field(task, priority, "High", by=ana)
        sync = sync_of(api, seed.project)
        answer = api.put(
            f"/tasks/{task}",
            params={"opt_fields": "due_on,assignee,followers,custom_fields.display_value"},
            json={"data": {"due_on": "2026-12-10", "assignee": ana}},
        )
        assert answer.status_code == 200
        data = answer.json()["data"]
        assert data["due_on"] == "2026-12-10"
        assert data["assignee"]["gid"] == ana
        assert [f["gid"] for f in data["followers"]] == [seed.user, ana]
        assert data["custom_fields"] == [{"gid": priority, "display_value": "High"}]
        events = events_since(api, seed.project, sync)
        assert [(e["action"], e["change"]["field"]) for e in events] == [
            ("changed", "assignee"),
            ("changed", "due_on"),
        ]
