"""The Events API's sync-token rules, over real HTTP."""

from __future__ import annotations

import time

import httpx

from asana_hooks.dev.fake_asana import FakeAsana

from .conftest import Receiver, Seed, create_webhook


def _fresh_sync(api: httpx.Client, resource: str) -> str:
    response = api.get("/events", params={"resource": resource})
    assert response.status_code == 412
    body = response.json()
    assert body["errors"][0]["message"].startswith("Sync token invalid or too old")
    assert isinstance(body["sync"], str)
    assert body["sync"]
    return str(body["sync"])


def test_first_call_412_then_only_newer_events(
    fake: FakeAsana, seed: Seed, api: httpx.Client
) -> None:
    fake.world.add_task("before", projects=[seed.project])
    sync = _fresh_sync(api, seed.project)
    task = fake.world.add_task("after", projects=[seed.project], by=seed.user)
    body = api.get("/events", params={"resource": seed.project, "sync": sync}).json()
    assert body["has_more"] is False
    assert body["sync"] != sync
    (event,) = body["data"]
    assert event["action"] == "added"
    assert event["resource"] == {
        "gid": task,
        "resource_type": "task",
        "name": "after",
        "resource_subtype": "default_task",
    }
    assert event["user"] == {"gid": seed.user, "resource_type": "user", "name": "Greg Sanchez"}
    assert event["parent"] == {"gid": seed.project, "resource_type": "project", "name": "Launch"}
    assert event["type"] == "task"
    empty = api.get("/events", params={"resource": seed.project, "sync": body["sync"]}).json()
    assert empty["data"] == []
    assert empty["has_more"] is False


def test_has_more_pages_of_100(fake: FakeAsana, seed: Seed, api: httpx.Client) -> None:
    task = fake.world.add_task("T", projects=[seed.project])
    sync = _fresh_sync(api, task)
    for i in range(250):
        fake.world.update_task(task, notes=f"n{i}")
    pages = []
    while True:
        body = api.get("/events", params={"resource": task, "sync": sync}).json()
        pages.append(body)
        sync = body["sync"]
        if not body["has_more"]:
            break
    assert [len(p["data"]) for p in pages] == [100, 100, 50]
    assert [p["has_more"] for p in pages] == [True, True, False]


def test_same_token_twice_same_answer(fake: FakeAsana, seed: Seed, api: httpx.Client) -> None:
    sync = _fresh_sync(api, seed.project)
    fake.world.add_task("one", projects=[seed.project])
    first = api.get("/events", params={"resource": seed.project, "sync": sync}).json()
    fake.world.add_task("two", projects=[seed.project])
    again = api.get("/events", params={"resource": seed.project, "sync": sync}).json()
    assert again == first
    later = api.get("/events", params={"resource": seed.project, "sync": first["sync"]}).json()
    assert [e["resource"]["name"] for e in later["data"]] == ["two"]


def test_expire_sync_tokens(fake: FakeAsana, seed: Seed, api: httpx.Client) -> None:
    sync = _fresh_sync(api, seed.project)
    fake.expire_sync_tokens()
    response = api.get("/events", params={"resource": seed.project, "sync": sync})
    assert response.status_code == 412
    fresh = response.json()["sync"]
    assert fresh != sync
    assert api.get("/events", params={"resource": seed.project, "sync": fresh}).status_code == 200


def test_tokens_expire_after_scaled_24_hours(
    fake: FakeAsana, seed: Seed, api: httpx.Client
) -> None:
    assert fake.events.token_ttl == fake.timing.sync_token_ttl == 24 * 3600 * 0.001
    sync = _fresh_sync(api, seed.project)
    assert api.get("/events", params={"resource": seed.project, "sync": sync}).status_code == 200
    fake.events.token_ttl = 0.05  # shorten the (already scaled) 24 h to keep the test fast
    time.sleep(0.06)
    expired = api.get("/events", params={"resource": seed.project, "sync": sync})
    assert expired.status_code == 412
    assert expired.json()["sync"] != sync


def test_unknown_token_and_wrong_resource_412(
    fake: FakeAsana, seed: Seed, api: httpx.Client
) -> None:
    assert api.get("/events", params={"resource": seed.project, "sync": "nope"}).status_code == 412
    sync = _fresh_sync(api, seed.project)
    task = fake.world.add_task("T", projects=[seed.project])
    assert api.get("/events", params={"resource": task, "sync": sync}).status_code == 412
    assert api.get("/events").status_code == 400


def test_webhook_and_events_api_carry_the_same_event(
    fake: FakeAsana, seed: Seed, api: httpx.Client, receiver: Receiver
) -> None:
    create_webhook(api, seed.project, receiver.url)
    sync = _fresh_sync(api, seed.project)
    task = fake.world.add_task("T", projects=[seed.project], by=seed.user)
    fake.world.update_task(task, by=seed.user, assignee=seed.user)
    fake.wait_idle()
    pushed = [e for d in fake.deliveries for e in d.events]
    polled = api.get("/events", params={"resource": seed.project, "sync": sync}).json()["data"]
    assert len(pushed) == len(polled) == 2

    def strip(value: object) -> object:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("name", "type")}
        return value

    assert [strip(e) for e in polled] == [strip(e) for e in pushed]
    assert polled[1]["change"]["new_value"]["name"] == "Greg Sanchez"
    assert "name" not in pushed[1]["change"]["new_value"]
