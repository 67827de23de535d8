"""Resource endpoints, error shapes, opt_fields, pagination and batch, over real HTTP."""

from __future__ import annotations

import logging
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from asana_hooks.dev.fake_asana import FakeAsana
from asana_hooks.dev.fake_asana.util import iso_now

from .conftest import TOKEN, Seed

TASK_FIELDS = {
    "gid",
    "resource_type",
    "resource_subtype",
    "name",
    "notes",
    "completed",
    "completed_at",
    "assignee",
    "due_on",
    "custom_fields",
    "projects",
    "memberships",
    "parent",
    "modified_at",
    "created_at",
    "permalink_url",
    "workspace",
}


def test_task_full_representation(fake: FakeAsana, seed: Seed, api: httpx.Client) -> None:
    w = fake.world
    task = w.add_task(
        "Write docs",
        projects=[seed.project],
        section=seed.section,
        by=seed.user,
        notes="hello",
        assignee=seed.user,
        due_on="2026-12-01",
    )
    w.set_custom_field(task, seed.field, "abc", by=seed.user)
    w.update_task(task, by=seed.user, completed=True)
    data = api.get(f"/tasks/{task}").json()["data"]
    assert set(data) >= TASK_FIELDS
    assert data["resource_subtype"] == "default_task"
    assert data["completed"] is True
    assert data["completed_at"].endswith("Z")
    assert data["assignee"] == {"gid": seed.user, "resource_type": "user", "name": "Greg Sanchez"}
    assert data["memberships"] == [
        {
            "project": {"gid": seed.project, "resource_type": "project", "name": "Launch"},
            "section": {"gid": seed.section, "resource_type": "section", "name": "To do"},
        }
    ]
    (field,) = data["custom_fields"]
    assert field["gid"] == seed.field
    assert field["resource_subtype"] == "text"
    assert field["text_value"] == "abc"
    assert field["display_value"] == "abc"


def test_enum_and_number_custom_fields(fake: FakeAsana, seed: Seed, api: httpx.Client) -> None:
    w = fake.world
    enum = w.add_custom_field(seed.ws, "Priority", type="enum", enum_options=["Low", "High"])
    number = w.add_custom_field(seed.ws, "Points", type="number", project=seed.project)
    task = w.add_task("T", projects=[seed.project])
    w.set_custom_field(task, enum, "High")
    fields = api.get(f"/tasks/{task}").json()["data"]["custom_fields"]
    by_gid = {f["gid"]: f for f in fields}
    assert by_gid[number]["number_value"] is None
    assert by_gid[number]["display_value"] is None
    assert by_gid[enum]["enum_value"]["name"] == "High"
    assert by_gid[enum]["display_value"] == "High"
    w.set_custom_field(task, number, 3)
    points = api.get(f"/tasks/{task}", params={"opt_fields": "custom_fields.display_value"})
    assert {"gid": number, "display_value": "3"} in points.json()["data"]["custom_fields"]


def test_opt_fields(fake: FakeAsana, seed: Seed, api: httpx.Client) -> None:
    task = fake.world.add_task("T", projects=[seed.project], section=seed.section)
    fields = "name,memberships.section.name,projects.workspace.name,parent"
    data = api.get(f"/tasks/{task}", params={"opt_fields": fields}).json()["data"]
    assert data == {
        "gid": task,
        "name": "T",
        "memberships": [{"section": {"gid": seed.section, "name": "To do"}}],
        "projects": [{"gid": seed.project, "workspace": {"gid": seed.ws, "name": "Acme"}}],
        "parent": None,
    }


def test_errors_404_403(fake: FakeAsana, seed: Seed, api: httpx.Client) -> None:
    w = fake.world
    task = w.add_task("T", projects=[seed.project])
    story = w.add_comment(task, "Looks good", by=seed.user)
    assert api.get(f"/stories/{story}").json()["data"]["type"] == "comment"
    w.remove_story(story)
    gone = api.get(f"/stories/{story}")
    assert gone.status_code == 404
    assert gone.json() == {
        "errors": [
            {"message": f"story: Unknown object: {story}", "help": gone.json()["errors"][0]["help"]}
        ]
    }
    w.delete_task(task)
    deleted = api.get(f"/tasks/{task}")
    assert deleted.status_code == 404
    assert deleted.json()["errors"][0]["message"] == f"task: Unknown object: {task}"
    w.undelete_task(task)
    assert api.get(f"/tasks/{task}").status_code == 200
    w.hide(task)
    hidden = api.get(f"/tasks/{task}")
    assert hidden.status_code == 403
    assert hidden.json()["errors"][0]["message"]
    assert api.get("/tasks/not-a-gid").status_code == 400
    assert api.get("/nothing/here").status_code == 404


def test_lists_paginate_and_filter(fake: FakeAsana, seed: Seed, api: httpx.Client) -> None:
    w = fake.world
    tasks = [w.add_task(f"T{i}", projects=[seed.project]) for i in range(5)]
    first = api.get("/tasks", params={"project": seed.project, "limit": 2}).json()
    assert [t["gid"] for t in first["data"]] == tasks[:2]
    assert set(first["data"][0]) == {"gid", "resource_type", "name", "resource_subtype"}
    assert first["next_page"]["path"].startswith("/tasks?")
    second = api.get(first["next_page"]["uri"]).json()
    assert [t["gid"] for t in second["data"]] == tasks[2:4]
    assert "next_page" not in api.get(f"/projects/{seed.project}/tasks").json()
    assert api.get("/tasks", params={"project": seed.project, "limit": 101}).status_code == 400
    assert api.get("/tasks").status_code == 400
    time.sleep(0.01)
    since = iso_now()
    time.sleep(0.01)
    w.update_task(tasks[3], name="touched")
    recent = api.get("/tasks", params={"project": seed.project, "modified_since": since}).json()
    assert [t["gid"] for t in recent["data"]] == [tasks[3]]
    w.delete_task(tasks[0])
    remaining = api.get(f"/projects/{seed.project}/tasks").json()["data"]
    assert tasks[0] not in [t["gid"] for t in remaining]


def test_stories_list_and_other_objects(fake: FakeAsana, seed: Seed, api: httpx.Client) -> None:
    w = fake.world
    task = w.add_task("T", projects=[seed.project])
    stories = [w.add_comment(task, f"c{i}", by=seed.user) for i in range(3)]
    w.remove_story(stories[1])
    listed = api.get(f"/tasks/{task}/stories").json()["data"]
    assert [s["gid"] for s in listed] == [stories[0], stories[2]]
    assert listed[0]["resource_subtype"] == "comment_added"
    assert listed[0]["created_by"]["name"] == "Greg Sanchez"
    full = api.get(f"/stories/{stories[0]}").json()["data"]
    assert full["target"] == {
        "gid": task,
        "resource_type": "task",
        "name": "T",
        "resource_subtype": "default_task",
    }
    for path in (
        f"/projects/{seed.project}",
        f"/sections/{seed.section}",
        f"/users/{seed.user}",
        f"/workspaces/{seed.ws}",
        "/users/me",
    ):
        response = api.get(path)
        assert response.status_code == 200, path
        assert response.json()["data"]["gid"]


def test_batch(fake: FakeAsana, seed: Seed, api: httpx.Client) -> None:
    w = fake.world
    task = w.add_task("T", projects=[seed.project], notes="n")
    gone = w.add_task("gone", projects=[seed.project])
    w.delete_task(gone)
    actions = [
        {
            "relative_path": f"/tasks/{task}",
            "method": "get",
            "options": {"fields": ["name", "notes"]},
        },
        {"relative_path": f"/tasks/{gone}", "method": "get"},
        {
            "relative_path": "/tasks",
            "method": "get",
            "data": {"project": seed.project},
            "options": {"limit": 1},
        },
    ]
    response = api.post("/batch", json={"data": {"actions": actions}})
    assert response.status_code == 200
    results = response.json()["data"]
    assert [r["status_code"] for r in results] == [200, 404, 200]
    assert results[0]["body"] == {"data": {"gid": task, "name": "T", "notes": "n"}}
    assert results[1]["body"]["errors"][0]["message"] == f"task: Unknown object: {gone}"
    assert all(isinstance(r["headers"], dict) for r in results)
    assert len(results[2]["body"]["data"]) == 1
    too_many = api.post("/batch", json={"data": {"actions": [actions[0]] * 11}})
    assert too_many.status_code == 400
    assert fake.calls[-2].batch_actions[0] == ("GET", f"/tasks/{task}")


def test_writes_produce_events(fake: FakeAsana, seed: Seed, api: httpx.Client) -> None:
    sync = api.get("/events", params={"resource": seed.project}).json()["sync"]
    created = api.post("/tasks", json={"data": {"name": "via API", "projects": [seed.project]}})
    assert created.status_code == 201
    gid = created.json()["data"]["gid"]
    assert api.put(f"/tasks/{gid}", json={"data": {"completed": True}}).json()["data"]["completed"]
    story = api.post(f"/tasks/{gid}/stories", json={"data": {"text": "hi"}})
    assert story.status_code == 201
    assert story.json()["data"]["text"] == "hi"
    assert api.delete(f"/tasks/{gid}").json() == {"data": {}}
    assert api.get(f"/tasks/{gid}").status_code == 404
    events = api.get("/events", params={"resource": seed.project, "sync": sync}).json()["data"]
    assert [(e["action"], e["resource"]["resource_type"]) for e in events] == [
        ("added", "task"),
        ("changed", "task"),
        ("added", "story"),
        ("deleted", "task"),
    ]
    assert all(e["user"]["gid"] == seed.user for e in events)  # acting as the token's user


def test_a_caller_gone_mid_body_is_not_a_fake_failure(
    fake: FakeAsana, seed: Seed, api: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker killed while sending POST /batch leaves a half body: no traceback, no
    500 recorded as Asana's answer, and the fake keeps serving."""
    url = urlsplit(fake.api_url)
    head = (
        f"POST {url.path}/batch HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n"
    )
    with caplog.at_level(logging.ERROR):
        with socket.create_connection((url.hostname, url.port)) as raw:
            raw.sendall(head.encode() + b'{"data": {"actions"')
        time.sleep(0.3)
        assert api.get(f"/projects/{seed.project}").status_code == 200
    assert not [r for r in caplog.records if "fake Asana failed" in r.getMessage()]
    assert [c.path for c in fake.calls] == [f"/projects/{seed.project}"]
