"""Sinks beside the stream, retries of Asana failures, and replay of failed jobs."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from rq.job import Job
from rq.serializers import JSONSerializer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from asana_hooks import keys
from asana_hooks.dev.fake_asana import FakeAsana
from asana_hooks.failed_jobs import list_failed, replay_failed
from asana_hooks.redis_conn import text
from asana_hooks.settings import Settings
from asana_hooks.snapshot import snapshot
from tests.helpers import serve_in_thread
from tests.worker_support import Recorder, changes, deliver, run_workers_until
from workers.sinks import SIGNATURE_HEADER

HANDLED: list[dict[str, Any]] = []


def collect(change: dict[str, Any]) -> None:
    """A HOOKS_HANDLERS sink for these tests."""
    HANDLED.append(change)


def _one_task_edit(fake: FakeAsana) -> tuple[str, list[dict[str, Any]]]:
    workspace = fake.world.add_workspace("Acme")
    user = fake.world.add_user("Greg", workspace=workspace)
    project = fake.world.add_project("Launch", workspace=workspace)
    task = fake.world.add_task("Ship", projects=[project], by=user)
    recorder = Recorder(fake)
    fake.world.update_task(task, by=user, name="Ship it")
    return task, recorder.take()


class _Forward:
    """A tiny HTTP endpoint that records forwarded bodies and answers ``status``."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, str | None]] = []
        self.status = 200

    async def endpoint(self, request: Request) -> Response:
        self.received.append((await request.body(), request.headers.get(SIGNATURE_HEADER)))
        return Response(status_code=self.status)


@pytest.fixture
def forward() -> Iterator[tuple[_Forward, str]]:
    target = _Forward()
    app = Starlette(routes=[Route("/changes", target.endpoint, methods=["POST"])])
    with serve_in_thread(app) as url:
        yield target, url + "/changes"


class TestSinks:
    def test_handler_and_signed_forward_each_get_the_change_once(
        self,
        fake_asana: FakeAsana,
        worker_environ: dict[str, str],
        redis_client: redis.Redis,
        forward: tuple[_Forward, str],
    ) -> None:
        target, url = forward
        HANDLED.clear()
        settings = Settings.from_environ(
            {
                **worker_environ,
                "HOOKS_HANDLERS": "tests.test_sinks:collect",
                "HOOKS_FORWARD_URL": url,
                "HOOKS_FORWARD_SECRET": "shh",
            }
        )
        task, events = _one_task_edit(fake_asana)
        deliver(redis_client, events)
        run_workers_until(settings, lambda: HANDLED and target.received)
        (entry,) = changes(redis_client)
        assert [entry] == HANDLED
        ((body, signature),) = target.received
        assert signature == hmac.new(b"shh", body, hashlib.sha256).hexdigest()
        assert entry["resource"]["gid"] == task

    def test_failing_forward_is_retried_alone(
        self,
        fake_asana: FakeAsana,
        worker_environ: dict[str, str],
        redis_client: redis.Redis,
        forward: tuple[_Forward, str],
    ) -> None:
        """The sink job waits for its retry; the stream keeps its one entry."""
        target, url = forward
        target.status = 500
        settings = Settings.from_environ({**worker_environ, "HOOKS_FORWARD_URL": url})
        _, events = _one_task_edit(fake_asana)
        deliver(redis_client, events)
        run_workers_until(settings, lambda: target.received)
        sink_id = next(
            name
            for key in redis_client.keys("rq:job:sink-*")
            if ":" not in (name := text(key).removeprefix("rq:job:"))
        )
        job = Job.fetch(sink_id, connection=redis_client, serializer=JSONSerializer)
        assert job.get_status() == "scheduled"
        assert job.retries_left == 4
        assert len(changes(redis_client)) == 1


class TestAsanaFailures:
    def test_5xx_is_retried_then_replayed_from_the_failed_registry(
        self, fake_asana: FakeAsana, worker_settings: Settings, redis_client: redis.Redis
    ) -> None:
        """A flush that keeps meeting 500s ends in RQ's failed registry with its context;
        replaying it after Asana recovers emits the batch once."""
        task, events = _one_task_edit(fake_asana)
        fake_asana.knobs.chaos_500_rate = 1.0
        deliver(redis_client, events)

        def flush_job() -> Job | None:
            for key in redis_client.keys("rq:job:flush-*"):
                name = text(key).removeprefix("rq:job:")
                if ":" in name:
                    continue
                job = Job.fetch(name, connection=redis_client, serializer=JSONSerializer)
                if job.retries_left is not None and job.retries_left < 8:
                    return job
            return None

        job = run_workers_until(worker_settings, flush_job)
        assert job.get_status() == "scheduled"  # RQ's Retry, with backoff
        assert changes(redis_client) == []
        job.retries_left = 0  # as if every retry had met a 500 too
        job.save()
        time.sleep(1.1)
        run_workers_until(worker_settings, lambda: list_failed(redis_client))
        (failed,) = list_failed(redis_client)
        assert failed.job_id == job.id
        assert failed.function == "workers.jobs.flush_due"
        assert [batch.rsplit("-", 1)[0] for batch in failed.batches] == [task]
        assert "AsanaUnavailable" in failed.error
        (shown,) = snapshot(redis_client, budget=1500).failed_jobs
        assert shown["id"] == job.id
        assert "AsanaUnavailable" in shown["error"]
        fake_asana.knobs.chaos_500_rate = 0.0
        assert replay_failed(redis_client) == [job.id]
        run_workers_until(worker_settings, lambda: changes(redis_client))
        (entry,) = changes(redis_client)
        assert entry["status"] == "ok"
        assert list_failed(redis_client) == []
        assert int(redis_client.hget(keys.STATS, "api:500") or 0) >= 2
