"""Delivery behaviour: retries with backoff, deletion, 410, knobs, ordering, propagation."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import httpx

from asana_hooks.dev.fake_asana import FakeAsana

from .conftest import Receiver, Seed, create_webhook, wait_for


def _events(fake: FakeAsana) -> list[dict[str, Any]]:
    return [e for d in fake.deliveries if d.status == 200 for e in d.events]


def test_retry_with_backoff_then_success(
    fake: FakeAsana, seed: Seed, api: httpx.Client, receiver: Receiver
) -> None:
    receiver.statuses = [503, 503]  # the first heartbeat fails twice
    fake.timing.backoff_base = 0.12  # wide enough to observe the paused state
    gid = create_webhook(api, seed.project, receiver.url).json()["data"]["gid"]
    wait_for(lambda: fake.webhooks[gid].delivery_retry_count == 1)
    state = api.get(f"/webhooks/{gid}").json()["data"]
    assert state["last_failure_content"].startswith("503 Service Unavailable\n\n")
    assert state["last_failure_at"]
    assert state["next_attempt_after"]
    assert state["failure_deletion_timestamp"] > state["last_failure_at"]
    task = fake.world.add_task("blocked behind the failing heartbeat", projects=[seed.project])
    fake.wait_idle()
    attempts = [d for d in fake.deliveries if not d.handshake]
    assert [d.status for d in attempts] == [503, 503, 200, 200]
    assert attempts[0].body == attempts[1].body == attempts[2].body  # same bytes on retry
    assert attempts[3].events[0]["resource"]["gid"] == task  # in order, after the head
    base = fake.timing.backoff_base
    assert attempts[1].at - attempts[0].at >= base * 0.9
    assert attempts[2].at - attempts[1].at >= 2 * base * 0.9  # exponential
    state = api.get(f"/webhooks/{gid}").json()["data"]
    assert state["delivery_retry_count"] == 0
    assert state["failure_deletion_timestamp"] is None
    assert state["next_attempt_after"] is None
    assert state["last_success_at"] >= state["last_failure_at"]


def test_deleted_after_scaled_24_hours_of_failure(receiver: Receiver) -> None:
    receiver.status = 500
    with FakeAsana(time_scale=0.00001) as fake:  # 24 h -> 0.86 s
        ws = fake.world.add_workspace("W")
        project = fake.world.add_project("P", workspace=ws)
        headers = {"Authorization": "Bearer test-token"}
        with httpx.Client(base_url=fake.api_url, headers=headers, trust_env=False) as api:
            gid = create_webhook(api, project, receiver.url).json()["data"]["gid"]
            started = time.monotonic()
            wait_for(lambda: gid not in fake.webhooks, timeout=10)
            elapsed = time.monotonic() - started
            assert elapsed >= fake.timing.failure_deletion * 0.9
            assert api.get(f"/webhooks/{gid}").status_code == 404
        failures = [d for d in fake.deliveries if d.heartbeat]
        assert len(failures) > 3
        assert all(d.status == 500 for d in failures)
        fake.wait_idle()  # a deleted webhook has nothing pending


def test_410_deletes_the_webhook(
    fake: FakeAsana, seed: Seed, api: httpx.Client, receiver: Receiver
) -> None:
    receiver.status = 410
    gid = create_webhook(api, seed.project, receiver.url).json()["data"]["gid"]
    wait_for(lambda: gid not in fake.webhooks)
    assert api.get(f"/webhooks/{gid}").status_code == 404
    fake.world.add_task("nobody listens", projects=[seed.project])
    fake.wait_idle()
    assert len(receiver.deliveries()) == 1


def test_connection_refused_is_a_failure(fake: FakeAsana, seed: Seed, api: httpx.Client) -> None:
    import http.server
    import threading

    class Echo(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_POST(self) -> None:
            self.send_response(200)
            self.send_header("X-Hook-Secret", self.headers["X-Hook-Secret"])
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = http.server.HTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.handle_request)  # only the handshake
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    gid = create_webhook(api, seed.project, url).json()["data"]["gid"]
    thread.join()
    server.server_close()
    wait_for(lambda: fake.webhooks[gid].delivery_retry_count >= 1)
    webhook = fake.webhooks[gid]
    assert webhook.last_failure_content
    assert "Could not connect" in webhook.last_failure_content
    assert fake.deliveries[-1].status is None
    assert fake.deliveries[-1].error


def test_drop_rate_drops_but_events_api_keeps(
    fake: FakeAsana, seed: Seed, api: httpx.Client, receiver: Receiver
) -> None:
    create_webhook(api, seed.project, receiver.url)
    fake.wait_idle()
    sync = api.get("/events", params={"resource": seed.project}).json()["sync"]
    fake.knobs.drop_rate = 1.0
    for i in range(3):
        fake.world.add_task(f"T{i}", projects=[seed.project], by=seed.user)
        time.sleep(0.02)  # separate batches
    fake.wait_idle()
    assert len(receiver.deliveries()) == 1  # only the first heartbeat
    assert sum(len(d.events) for d in fake.dropped) == 3
    polled = api.get("/events", params={"resource": seed.project, "sync": sync}).json()
    assert [e["resource"]["name"] for e in polled["data"]] == ["T0", "T1", "T2"]


def test_duplicate_deliveries_same_bytes_and_signature(
    fake: FakeAsana, seed: Seed, api: httpx.Client, receiver: Receiver
) -> None:
    create_webhook(api, seed.project, receiver.url)
    fake.wait_idle()
    fake.knobs.duplicate_deliveries = 2
    fake.world.add_task("T", projects=[seed.project])
    fake.wait_idle()
    received = receiver.deliveries()[1:]
    assert len(received) == 3
    assert len({r.body for r in received}) == 1
    assert len({r.headers["x-hook-signature"] for r in received}) == 1
    assert [d.duplicate for d in fake.deliveries[-3:]] == [False, True, True]


def test_delivery_delay_and_reorder_deliver_everything(
    fake: FakeAsana, seed: Seed, api: httpx.Client, receiver: Receiver
) -> None:
    create_webhook(api, seed.project, receiver.url)
    fake.wait_idle()
    fake.knobs.delivery_delay = 0.03
    fake.knobs.reorder = True
    names = [f"T{i}" for i in range(6)]
    created = []
    for name in names:
        created.append(fake.world.add_task(name, projects=[seed.project]))
        time.sleep(0.01)
    fake.wait_idle()
    got = [
        e["resource"]["gid"]
        for d in receiver.deliveries()[1:]
        for e in json.loads(d.body)["events"]
    ]
    assert Counter(got) == Counter(created)
    assert receiver.deliveries()[1].at - receiver.deliveries()[0].at >= 0.03


def test_propagation_subtasks_and_comments(
    fake: FakeAsana, seed: Seed, api: httpx.Client, receiver: Receiver
) -> None:
    w = fake.world
    parent = w.add_task("Parent", projects=[seed.project], by=seed.user)
    other = w.add_project("Other", workspace=seed.ws)
    on_parent = create_webhook(api, parent, receiver.url).json()["data"]["gid"]
    on_project = create_webhook(api, seed.project, receiver.url + "&p").json()["data"]["gid"]
    on_other = create_webhook(api, other, receiver.url + "&o").json()["data"]["gid"]
    fake.wait_idle()
    child = w.add_subtask(parent, "Child", by=seed.user)
    w.update_task(child, by=seed.user, completed=True)
    story = w.add_comment(child, "done", by=seed.user)
    fake.wait_idle()

    def seen(gid: str) -> list[tuple[str, str]]:
        return [
            (e["action"], e["resource"]["gid"])
            for d in fake.deliveries
            if d.webhook_gid == gid and d.status == 200
            for e in d.events
        ]

    expected = [("added", child), ("changed", child), ("added", story)]
    assert seen(on_parent) == expected
    assert seen(on_project) == expected  # subtasks of its tasks and their comments
    assert seen(on_other) == []
    added = next(e for d in fake.deliveries for e in d.events if e["resource"]["gid"] == child)
    assert added["parent"] == {"gid": parent, "resource_type": "task"}


def test_update_task_one_event_per_field(
    fake: FakeAsana, seed: Seed, api: httpx.Client, receiver: Receiver
) -> None:
    task = fake.world.add_task("T", projects=[seed.project], by=seed.user)
    create_webhook(api, task, receiver.url)
    fake.wait_idle()
    w = fake.world
    w.update_task(
        task,
        by=seed.user,
        name="N",
        notes="x",
        completed=True,
        assignee=seed.user,
        due_on="2026-12-01",
    )
    w.update_task(task, by=seed.user, name="N")  # unchanged: no event
    w.set_custom_field(task, seed.field, "abc", by=seed.user)
    w.delete_task(task, by=seed.user)
    fake.wait_idle()
    events = _events(fake)
    assert [(e["action"], (e.get("change") or {}).get("field")) for e in events] == [
        ("changed", "name"),
        ("changed", "notes"),
        ("changed", "completed"),
        ("changed", "assignee"),
        ("changed", "due_on"),
        ("changed", "custom_fields"),
        ("deleted", None),
    ]
    assignee = events[3]["change"]
    assert isinstance(assignee, dict)
    assert assignee["new_value"] == {"gid": seed.user, "resource_type": "user"}
    custom = events[5]["change"]
    assert isinstance(custom, dict)
    assert custom["new_value"] == {"gid": seed.field, "resource_type": "custom_field"}
