"""What Asana signs is never refused: events we cannot read are kept aside, shown and replayed.

The receiver over real HTTP, real RQ workers in this process, the CLI as a subprocess, the
fake Asana for rehydration.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from asana_hooks import keys, quarantine
from asana_hooks.queueing import Delivery, make_queue
from asana_hooks.registry import Registry
from asana_hooks.secretbox import SecretBox
from asana_hooks.settings import Settings
from receiver.app import create_app
from receiver.signatures import sign
from tests.helpers import serve_in_thread
from tests.worker_support import ASANA_HOOKS, changes, now_iso, run_workers_until

SECRET = "3f1c0d7e5b9a4e2f8c6d1a0b7e3f5c9d2a8b4e6f1c0d7e5b9a4e2f8c6d1a0b7e"
READABLE = {
    "action": "changed",
    "created_at": "2026-12-04T10:00:00.000Z",
    "resource": {"gid": "1201", "resource_type": "task"},
    "user": {"gid": "42", "resource_type": "user"},
    "parent": None,
    "change": {"field": "name", "action": "changed"},
}
OLD_FORM = {
    "action": "changed",
    "created_at": "2026-12-04T10:00:01.000Z",
    "resource": {"id": 1202, "type": "task"},
    "user": {"id": 42, "type": "user"},
    "change": {"field": "assignee", "new_value": {"id": 42, "type": "user"}},
}
UNREADABLE: list[Any] = [
    7,
    {"action": "changed", "resource": {"gid": "1203", "resource_type": "task"}},
    {"action": "added", "created_at": "2026-12-04T10:00:02Z", "resource": "1204"},
]


@pytest.fixture
def stage(worker_environ: dict[str, str], redis_client: redis.Redis) -> Iterator[Any]:
    """A confirmed webhook (9001, target t1) on a receiver over HTTP."""
    settings = Settings.from_environ(worker_environ)
    registry = Registry(redis_client, SecretBox(settings.encryption_keys))
    registry.begin(target_id="t1", resource_gid="1200", target_url="https://x/t1", filters=[])
    with (
        serve_in_thread(create_app(settings)) as url,
        httpx.Client(base_url=url, timeout=5) as http,
    ):
        assert http.post("/hooks/asana/t1", headers={"X-Hook-Secret": SECRET}).status_code == 200
        assert registry.confirm("t1", webhook_gid="9001", asana_secret=SECRET)
        yield settings, http


def post(http: httpx.Client, events: list[Any], *, secret: str | None = SECRET) -> int:
    body = json.dumps({"events": events}).encode()
    headers = {"X-Hook-Signature": sign(body, secret)} if secret else {}
    return http.post("/hooks/asana/t1", content=body, headers=headers).status_code


def cli(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ASANA_HOOKS, *args], env=environ, capture_output=True, text=True, timeout=30, check=False
    )


def kept(environ: dict[str, str]) -> list[dict[str, Any]]:
    listed = cli(environ, "quarantine", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    found: list[dict[str, Any]] = json.loads(listed.stdout)
    return found


class TestNeverRefused:
    def test_unreadable_events_are_kept_and_the_rest_emitted(
        self, stage: Any, worker_environ: dict[str, str], redis_client: redis.Redis
    ) -> None:
        """One delivery: a readable event, an old numeric-id form, three unreadable ones.
        200; two entries; the three kept verbatim with their reasons, counted and shown."""
        settings, http = stage
        assert post(http, [READABLE, OLD_FORM, *UNREADABLE]) == 200
        run_workers_until(settings, lambda: len(changes(redis_client)) >= 2)
        entries = changes(redis_client)
        assert sorted(e["resource"]["gid"] for e in entries) == ["1201", "1202"]
        old = next(e for e in entries if e["resource"]["gid"] == "1202")
        assert old["fields"] == ["assignee"]
        assert old["webhook_gid"] == "9001"
        quarantined = kept(worker_environ)
        assert [q["event"] for q in quarantined] == UNREADABLE
        assert {q["target_id"] for q in quarantined} == {"t1"}
        assert {q["webhook_gid"] for q in quarantined} == {"9001"}
        assert all(q["reason"] and q["received_at"] and q["id"] for q in quarantined)
        assert "created_at" in quarantined[1]["reason"]
        status = http.get("/status.json").json()
        assert status["quarantine"]["count"] == 3
        [row] = status["webhooks"]
        assert row["quarantined"] == 3
        assert "quarantine list" in row["quarantine_note"]
        assert row["health"] == "ok"
        metrics = http.get("/metrics").text
        assert "asana_hooks_events_quarantined_total 3.0" in metrics
        assert "asana_hooks_quarantine_events 3.0" in metrics
        table = cli(worker_environ, "webhooks", "status")
        assert "3 event(s) we could not read" in table.stdout

    def test_a_repeated_delivery_keeps_nothing_twice(
        self, stage: Any, worker_environ: dict[str, str], redis_client: redis.Redis
    ) -> None:
        settings, http = stage
        for _ in range(3):
            assert post(http, [READABLE, *UNREADABLE]) == 200
        run_workers_until(settings, lambda: make_queue(redis_client).count == 0)
        assert len(kept(worker_environ)) == 3
        assert http.get("/status.json").json()["stats"]["quarantined"] == 3

    def test_json_past_64_bit_integers_is_still_read(
        self, stage: Any, redis_client: redis.Redis
    ) -> None:
        """orjson refuses integers past 64 bits; JSON does not, so neither do we."""
        settings, http = stage
        body = (
            b'{"events": [{"action": "changed", "created_at": "2026-12-04T10:00:00Z",'
            b' "resource": {"id": 1180591620717411303424, "type": "task"}}]}'
        )
        headers = {"X-Hook-Signature": sign(body, SECRET)}
        assert http.post("/hooks/asana/t1", content=body, headers=headers).status_code == 200
        run_workers_until(settings, lambda: changes(redis_client))
        [entry] = changes(redis_client)
        assert entry["resource"]["gid"] == "1180591620717411303424"

    @pytest.mark.parametrize("secret", [None, "0" * 64], ids=["unsigned", "wrong-secret"])
    def test_an_unsigned_body_is_401_and_kept_nowhere(
        self, stage: Any, redis_client: redis.Redis, secret: str | None
    ) -> None:
        _settings, http = stage
        assert post(http, [READABLE, *UNREADABLE], secret=secret) == 401
        assert make_queue(redis_client).count == 0
        assert not redis_client.exists(keys.QUARANTINE, keys.QUARANTINE_ORDER)

    @pytest.mark.parametrize(
        "body",
        [b"not json", b"[]", b'{"events": {}}', b"{}"],
        ids=["text", "array", "dict", "none"],
    )
    def test_only_a_body_without_an_events_list_is_400(
        self, stage: Any, redis_client: redis.Redis, body: bytes
    ) -> None:
        _settings, http = stage
        headers = {"X-Hook-Signature": sign(body, SECRET)}
        assert http.post("/hooks/asana/t1", content=body, headers=headers).status_code == 400
        assert make_queue(redis_client).count == 0
        assert not redis_client.exists(keys.QUARANTINE)


class TestReplay:
    def test_what_a_newer_version_reads_is_replayed_once(
        self, stage: Any, worker_environ: dict[str, str], redis_client: redis.Redis
    ) -> None:
        """An entry kept by an older version that this one reads goes through the pipeline,
        leaves the quarantine, and a second replay finds nothing; unreadable ones stay."""
        settings, http = stage
        assert post(http, UNREADABLE[:1]) == 200
        run_workers_until(settings, lambda: quarantine.count(redis_client) == 1)
        older = Delivery("webhook", "t1", "9001", None, now_iso(), ())
        quarantine.keep(redis_client, older, [(READABLE, "an older parser's reason")])
        entry = next(q for q in kept(worker_environ) if q["event"] == READABLE)

        replayed = cli(worker_environ, "quarantine", "replay", "--all", "--json")
        assert replayed.returncode == 0, replayed.stderr
        report = json.loads(replayed.stdout)
        assert report["replayed"] == [entry["id"]]
        assert list(report["still_unread"].values()) == ["an event must be a JSON object"]
        entries = run_workers_until(settings, lambda: changes(redis_client))
        assert [(e["resource"]["gid"], e["webhook_gid"]) for e in entries] == [("1201", "9001")]
        assert [q["event"] for q in kept(worker_environ)] == UNREADABLE[:1]

        again = cli(worker_environ, "quarantine", "replay", entry["id"])
        assert again.returncode != 0
        assert f"not in the quarantine: {entry['id']}" in again.stderr
        assert len(again.stderr.strip().splitlines()) == 1

    def test_replay_wants_ids_or_all(self, stage: Any, worker_environ: dict[str, str]) -> None:
        refused = cli(worker_environ, "quarantine", "replay")
        assert refused.returncode != 0
        assert "name the events to replay, or pass --all" in refused.stderr


class TestCap:
    def test_the_oldest_go_first_past_the_cap(self, redis_client: redis.Redis) -> None:
        delivery = Delivery("webhook", None, None, None, now_iso(), ())
        unread = [({"n": n}, "no resource") for n in range(quarantine.CAP + 5)]
        assert quarantine.keep(redis_client, delivery, unread) == quarantine.CAP + 5
        assert quarantine.count(redis_client) == quarantine.CAP
        assert int(redis_client.hlen(keys.QUARANTINE)) == quarantine.CAP
        assert int(redis_client.hget(keys.STATS, "quarantine_dropped") or 0) == 5
        [newest] = quarantine.entries(redis_client, limit=1, newest_first=True)
        [oldest] = quarantine.entries(redis_client, limit=1)
        assert (oldest.event, newest.event) == ({"n": 5}, {"n": quarantine.CAP + 4})
