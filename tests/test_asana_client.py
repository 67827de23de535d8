"""The shared Asana client against the fake Asana over HTTP, with the real Redis budget."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from asana_hooks import keys
from asana_hooks.asana_client import AsanaClient, BatchAction
from asana_hooks.asana_errors import (
    AsanaUnavailable,
    BadToken,
    NotFound,
    RateLimited,
    SyncTokenExpired,
)
from asana_hooks.dev.fake_asana import FakeAsana
from asana_hooks.settings import Settings


@pytest.fixture
def client(worker_settings: Settings, redis_client: redis.Redis) -> Iterator[AsanaClient]:
    with AsanaClient(worker_settings, redis_client, timeout=5, max_wait=5) as client:
        yield client


def _tasks(fake: FakeAsana, count: int) -> tuple[str, list[str]]:
    workspace = fake.world.add_workspace("Acme")
    user = fake.world.add_user("Greg", workspace=workspace)
    project = fake.world.add_project("Launch", workspace=workspace)
    return project, [
        fake.world.add_task(f"Task {i}", projects=[project], by=user) for i in range(count)
    ]


class TestReads:
    def test_get_returns_asana_body_with_requested_fields(
        self, client: AsanaClient, fake_asana: FakeAsana, redis_client: redis.Redis
    ) -> None:
        _, (task,) = _tasks(fake_asana, 1)
        body = client.get(f"/tasks/{task}", {"opt_fields": "name,completed"})
        assert body["data"]["name"] == "Task 0"
        assert fake_asana.calls[-1].query["opt_fields"] == "name,completed"
        assert client.budget.used() == 1
        assert redis_client.hget(keys.STATS, "api:200") == b"1"

    def test_paginate_follows_next_page(self, client: AsanaClient, fake_asana: FakeAsana) -> None:
        project, tasks = _tasks(fake_asana, 5)
        found = list(client.paginate("/tasks", {"project": project}, limit=2))
        assert [item["gid"] for item in found] == tasks
        assert len([c for c in fake_asana.calls if c.path == "/tasks"]) == 3

    def test_batch_chunks_by_ten_and_counts_each_action(
        self, client: AsanaClient, fake_asana: FakeAsana
    ) -> None:
        """23 GETs: three /batch requests, 23 slots of the budget."""
        _, tasks = _tasks(fake_asana, 23)
        results = client.batch([BatchAction.get(f"/tasks/{t}", fields=["name"]) for t in tasks])
        assert [r.data["name"] for r in results] == [f"Task {i}" for i in range(23)]
        assert len([c for c in fake_asana.calls if c.path == "/batch"]) == 3
        assert client.budget.used() == 23

    def test_batch_reports_each_action_status(
        self, client: AsanaClient, fake_asana: FakeAsana
    ) -> None:
        _, (task,) = _tasks(fake_asana, 1)
        ok, missing = client.batch([BatchAction.get(f"/tasks/{task}"), BatchAction.get("/tasks/1")])
        assert ok.ok
        assert isinstance(missing.error("/tasks/1"), NotFound)

    def test_events_without_sync_token_raises_with_a_fresh_one(
        self, client: AsanaClient, fake_asana: FakeAsana
    ) -> None:
        project, _ = _tasks(fake_asana, 1)
        with pytest.raises(SyncTokenExpired) as caught:
            client.events(project, None)
        assert caught.value.sync
        page = client.events(project, caught.value.sync)
        assert page.sync
        assert page.data == []


class TestErrors:
    def test_404_raises_not_found(self, client: AsanaClient, fake_asana: FakeAsana) -> None:
        with pytest.raises(NotFound):
            client.get("/tasks/12345")

    def test_500_raises_retryable_unavailable(
        self, client: AsanaClient, fake_asana: FakeAsana
    ) -> None:
        fake_asana.knobs.chaos_500_rate = 1.0
        with pytest.raises(AsanaUnavailable) as caught:
            client.get("/users/me")
        assert caught.value.retryable

    def test_429_pauses_every_caller_for_its_retry_after(
        self, client: AsanaClient, fake_asana: FakeAsana, redis_client: redis.Redis
    ) -> None:
        """The pause is in Redis: a second client (another process) waits it out too."""
        workspace = fake_asana.world.add_workspace("Acme")
        fake_asana.knobs.chaos_429_rate = 1.0
        with pytest.raises(RateLimited) as caught:
            client.get(f"/workspaces/{workspace}")
        assert caught.value.retry_after >= 1
        fake_asana.knobs.chaos_429_rate = 0.0
        assert client.budget.paused_until() is not None
        settings = Settings.from_environ(
            {
                "REDIS_URL": "redis://unused",
                "ASANA_ACCESS_TOKEN": "test-token",
                "ASANA_API_URL": fake_asana.api_url,
            }
        )
        with AsanaClient(settings, redis_client, max_wait=5) as other:
            started = time.monotonic()
            other.get(f"/workspaces/{workspace}")
            assert time.monotonic() - started >= 0.9
        assert len(fake_asana.calls) == 2

    def test_401_stops_every_caller(self, fake_asana: FakeAsana, redis_client: redis.Redis) -> None:
        """After one 401 nobody calls Asana again, and the message names the variable."""
        settings = Settings.from_environ(
            {
                "REDIS_URL": "redis://unused",
                "ASANA_ACCESS_TOKEN": "wrong",
                "ASANA_API_URL": fake_asana.api_url,
            }
        )
        with AsanaClient(settings, redis_client) as client:
            with pytest.raises(BadToken, match="ASANA_ACCESS_TOKEN"):
                client.get("/users/me")
            with pytest.raises(BadToken):
                client.get("/users/me")
        assert len(fake_asana.calls) == 1
        assert redis_client.exists(keys.API_TOKEN_REJECTED)

    def test_unreachable_asana_is_retryable(
        self, worker_environ: dict[str, str], redis_client: redis.Redis
    ) -> None:
        from asana_hooks.dev.redis_server import free_port

        settings = Settings.from_environ(
            {**worker_environ, "ASANA_API_URL": f"http://127.0.0.1:{free_port()}/api/1.0"}
        )
        with (
            AsanaClient(settings, redis_client, timeout=1) as client,
            pytest.raises(AsanaUnavailable),
        ):
            client.get("/users/me")
        assert redis_client.hget(keys.STATS, "api:unreachable") == b"1"
