"""Webhook creation (handshake), signatures, and the /webhooks endpoints, over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx

from asana_hooks.dev.fake_asana import FakeAsana

from .conftest import WEBHOOK_FIELDS, Receiver, Seed, create_webhook, wait_for


def test_handshake_then_201_with_secret(
    fake: FakeAsana, seed: Seed, api: httpx.Client, receiver: Receiver
) -> None:
    response = create_webhook(api, seed.project, receiver.url)
    assert response.status_code == 201
    body = response.json()
    secret = body["X-Hook-Secret"]
    assert len(secret) == 64
    int(secret, 16)
    assert receiver.secret == secret  # the handshake reached the target before the answer
    handshake = receiver.received[0]
    assert handshake.body == b""
    assert handshake.path == "/hook?app=1"  # the full target URL, parameters included
    webhook = body["data"]
    assert set(webhook) == WEBHOOK_FIELDS
    # the 201 shows the resource as createWebhook's documented example: no resource_type
    assert webhook["resource"] == {"gid": seed.project, "name": "Launch"}
    assert webhook["resource_type"] == "webhook"
    assert webhook["active"] is True
    assert webhook["target"] == receiver.url
    assert webhook["created_at"].endswith("Z")
    assert len(webhook["created_at"]) == 24
    assert webhook["last_success_at"] is None
    assert webhook["delivery_retry_count"] == 0
    assert fake.deliveries[0].handshake  # the first heartbeat may follow within milliseconds


def test_handshake_refused_without_echo(seed: Seed, api: httpx.Client, receiver: Receiver) -> None:
    receiver.echo_secret = False
    response = create_webhook(api, seed.project, receiver.url)
    assert response.status_code == 400
    assert "handshake secret" in response.json()["errors"][0]["message"]
    listed = api.get("/webhooks", params={"workspace": seed.ws}).json()["data"]
    assert listed == []


def test_handshake_refused_on_error_status(
    seed: Seed, api: httpx.Client, receiver: Receiver
) -> None:
    receiver.handshake_status = 500
    response = create_webhook(api, seed.project, receiver.url)
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"]


def test_handshake_accepts_204(seed: Seed, api: httpx.Client, receiver: Receiver) -> None:
    receiver.handshake_status = 204
    assert create_webhook(api, seed.project, receiver.url).status_code == 201


def test_handshake_refused_when_target_is_down(seed: Seed, api: httpx.Client) -> None:
    response = create_webhook(api, seed.project, "http://127.0.0.1:9/nothing-here")
    assert response.status_code == 400


def test_duplicate_webhook_is_403(seed: Seed, api: httpx.Client, receiver: Receiver) -> None:
    assert create_webhook(api, seed.project, receiver.url).status_code == 201
    response = create_webhook(api, seed.project, receiver.url)
    assert response.status_code == 403
    assert "Duplicated webhook" in response.json()["errors"][0]["message"]


def test_localhost_refused_when_disallowed(
    fake: FakeAsana, seed: Seed, api: httpx.Client, receiver: Receiver
) -> None:
    fake.knobs.allow_localhost = False
    response = create_webhook(api, seed.project, receiver.url)
    assert response.status_code == 403
    assert receiver.received == []


def test_signatures_verify_independently(
    fake: FakeAsana, seed: Seed, api: httpx.Client, receiver: Receiver
) -> None:
    secret = create_webhook(api, seed.project, receiver.url).json()["X-Hook-Secret"]
    task = fake.world.add_task("Write docs", projects=[seed.project], by=seed.user)
    fake.world.update_task(task, by=seed.user, name="Write better docs", notes="n")
    fake.world.add_comment(task, "Looks good", by=seed.user)
    fake.wait_idle()
    deliveries = receiver.deliveries()
    assert deliveries, "expected the heartbeat and event deliveries"
    for got in deliveries:
        expected = hmac.new(secret.encode(), got.body, hashlib.sha256).hexdigest()
        assert got.headers["x-hook-signature"] == expected
        assert got.headers["content-type"] == "application/json"
    payloads = [json.loads(d.body) for d in deliveries]
    assert payloads[0] == {"events": []}  # the heartbeat right after the handshake
    events = [e for p in payloads for e in p["events"]]
    assert [(e["action"], (e.get("change") or {}).get("field")) for e in events] == [
        ("added", None),
        ("changed", "name"),
        ("changed", "notes"),
        ("added", None),
    ]
    comment = events[-1]
    assert comment["resource"]["resource_type"] == "story"
    assert comment["resource"]["resource_subtype"] == "comment_added"
    assert comment["parent"] == {"gid": task, "resource_type": "task"}
    for event in events:  # webhook events carry only gid and resource_type
        assert set(event["user"]) == {"gid", "resource_type"}
        assert "name" not in event["resource"]
    webhook = next(iter(fake.webhooks.values()))
    assert webhook.last_success_at is not None


def test_events_close_together_share_one_delivery(
    fake: FakeAsana, seed: Seed, api: httpx.Client, receiver: Receiver
) -> None:
    create_webhook(api, seed.project, receiver.url)
    fake.wait_idle()
    with fake.world.lock:  # all five events happen inside one batching window
        task = fake.world.add_task("T", projects=[seed.project], by=seed.user)
        for i in range(4):
            fake.world.update_task(task, by=seed.user, name=f"name {i}")
    fake.wait_idle()
    sent = [d for d in fake.deliveries if d.events]
    assert len(sent) == 1
    assert len(sent[0].events) == 5


def test_get_list_update_delete(
    fake: FakeAsana, seed: Seed, api: httpx.Client, receiver: Receiver
) -> None:
    gids = []
    for name in ("A", "B", "C"):
        task = fake.world.add_task(name, projects=[seed.project])
        gids.append(create_webhook(api, task, receiver.url).json()["data"]["gid"])
    assert api.get("/webhooks").status_code == 400  # workspace is required
    page = api.get("/webhooks", params={"workspace": seed.ws, "limit": 2}).json()
    assert [w["gid"] for w in page["data"]] == gids[:2]
    assert set(page["data"][0]) == WEBHOOK_FIELDS  # full objects, as GET /webhooks/{gid}
    assert page["data"][0]["resource"]["resource_type"] == "task"
    rest = api.get(
        "/webhooks",
        params={"workspace": seed.ws, "limit": 2, "offset": page["next_page"]["offset"]},
    ).json()
    assert [w["gid"] for w in rest["data"]] == gids[2:]
    assert rest["next_page"] is None
    assert page["next_page"]["uri"].startswith(fake.api_url + "/webhooks?")
    one = api.get(f"/webhooks/{gids[0]}").json()["data"]
    assert set(one) == WEBHOOK_FIELDS
    new_filters = [{"resource_type": "task", "action": "changed", "fields": ["name"]}]
    updated = api.put(f"/webhooks/{gids[0]}", json={"data": {"filters": new_filters}})
    assert updated.status_code == 200
    assert updated.json()["data"]["filters"] == new_filters
    assert api.delete(f"/webhooks/{gids[0]}").json() == {"data": {}}
    missing = api.get(f"/webhooks/{gids[0]}")
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["message"]
    assert gids[0] not in fake.webhooks


def test_heartbeat_on_demand_and_silent_deletion(
    fake: FakeAsana, seed: Seed, api: httpx.Client, receiver: Receiver
) -> None:
    gid = create_webhook(api, seed.project, receiver.url).json()["data"]["gid"]
    fake.wait_idle()
    before = len(receiver.deliveries())
    assert fake.send_heartbeat(gid) == [gid]
    fake.wait_idle()
    assert len(receiver.deliveries()) == before + 1
    assert json.loads(receiver.deliveries()[-1].body) == {"events": []}
    assert fake.deliveries[-1].heartbeat
    fake.delete_webhook_silently(gid)
    assert api.get(f"/webhooks/{gid}").status_code == 404


def test_periodic_heartbeat_every_scaled_8_hours(seed: Seed, receiver: Receiver) -> None:
    with FakeAsana(time_scale=0.00001) as fake:  # 8 h -> 0.29 s
        w = fake.world
        ws = w.add_workspace("W")
        project = w.add_project("P", workspace=ws)
        headers = {"Authorization": "Bearer test-token"}
        with httpx.Client(base_url=fake.api_url, headers=headers, trust_env=False) as client:
            assert create_webhook(client, project, receiver.url).status_code == 201
        wait_for(lambda: sum(d.heartbeat for d in fake.deliveries) >= 3, timeout=5)
