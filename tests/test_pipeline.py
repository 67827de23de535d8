"""The workers end to end: real Redis, real RQ workers, the fake Asana over HTTP.

Deliveries are enqueued exactly as the receiver enqueues them (asana_hooks.queueing), with
the events the fake Asana's world produced; the output is read from the changes stream.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from rq import Queue, Worker
from rq.job import Job
from rq.registry import FailedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from asana_hooks import keys
from asana_hooks.dev.fake_asana import FakeAsana
from asana_hooks.events import format_timestamp
from asana_hooks.settings import Settings
from tests.helpers import wait_for
from tests.worker_support import (
    Recorder,
    changes,
    deliver,
    run_workers_until,
    worker_processes,
)
from workers.dedupe import Deduper
from workers.rq_worker import build_worker
from workers.window import DELIVERY_RECORD_BYTES, WRITE_INDEX, Window


def _world(fake: FakeAsana) -> tuple[str, str, str]:
    world = fake.world
    workspace = world.add_workspace("Acme")
    user = world.add_user("Greg", workspace=workspace)
    project = world.add_project("Launch", workspace=workspace)
    return workspace, user, project


def _calls_for(fake: FakeAsana, path: str) -> int:
    """Requests that fetched ``path``, directly or as an action of a /batch."""
    direct = sum(1 for call in fake.calls if call.path == path)
    batched = sum(1 for call in fake.calls for _, action in call.batch_actions if action == path)
    return direct + batched


class TestFolding:
    """A keystroke burst becomes one change with one GET."""

    def test_burst_of_40_edits_in_2_seconds_is_one_entry_and_one_get(
        self,
        fake_asana: FakeAsana,
        worker_environ: dict[str, str],
        redis_client: redis.Redis,
        tmp_path: Path,
    ) -> None:
        """40 name edits, 50 ms apart, each its own delivery, while a worker runs."""
        _, user, project = _world(fake_asana)
        task = fake_asana.world.add_task("Write docs", projects=[project], by=user)
        recorder = Recorder(fake_asana)
        environ = {**worker_environ, "HOOKS_MAX_DELAY_SECONDS": "10"}
        with worker_processes(environ, 1, log_dir=tmp_path):
            for index in range(40):
                fake_asana.world.update_task(task, by=user, name=f"Write docs {'!' * index}")
                deliver(redis_client, recorder.take(), digest=f"burst-{index}")
                time.sleep(0.05)
            wait_for(lambda: changes(redis_client), timeout=15)
            time.sleep(1.5)  # a second entry would be flushed by now
        entries = changes(redis_client)
        assert len(entries) == 1
        entry = entries[0]
        assert entry["resource"] == {"gid": task, "resource_type": "task"}
        assert entry["status"] == "ok"
        assert entry["events"] == 40
        assert entry["actions"] == ["changed"]
        assert entry["fields"] == ["name"]
        assert entry["data"]["name"] == "Write docs " + "!" * 39
        assert _calls_for(fake_asana, f"/tasks/{task}") == 1


class TestDedupe:
    """Repeated deliveries and events seen through both channels become one entry."""

    def test_same_delivery_three_times_gives_one_entry(
        self, fake_asana: FakeAsana, worker_settings: Settings, redis_client: redis.Redis
    ) -> None:
        """Asana's retries resend the same bytes: one entry, the repeats counted."""
        _, user, project = _world(fake_asana)
        recorder = Recorder(fake_asana)
        task = fake_asana.world.add_task("Ship", projects=[project], by=user)
        events = [e for e in recorder.take() if e["resource"]["gid"] == task]
        for _ in range(3):
            deliver(redis_client, events, digest="same-bytes")
        run_workers_until(worker_settings, lambda: changes(redis_client))
        time.sleep(worker_settings.debounce_seconds + 1.2)
        run_workers_until(worker_settings, lambda: True)
        entries = changes(redis_client)
        assert len(entries) == 1
        assert entries[0]["events"] == len(events)
        stats = redis_client.hgetall(keys.STATS)
        assert int(stats[b"duplicate_deliveries"]) == 2
        assert int(stats[b"duplicates"]) == 2 * len(events)

    def test_a_body_replayed_after_the_window_emits_nothing(
        self, fake_asana: FakeAsana, worker_settings: Settings, redis_client: redis.Redis
    ) -> None:
        """Asana's signatures carry no timestamp and it retries for 24 h: a webhook event
        that happened over the 25 h window before its delivery can only be a captured body
        posted again after its marks expired. It is dropped (counted as stale); one 23 h old,
        a late retry of Asana's, is taken."""
        _, user, project = _world(fake_asana)
        recorder = Recorder(fake_asana)
        replayed = fake_asana.world.add_task("Replayed", projects=[project], by=user)
        retried = fake_asana.world.add_task("Retried", projects=[project], by=user)
        events = recorder.take()
        now = datetime.now(UTC)

        def aged(gid: str, hours: float) -> list[dict[str, Any]]:
            stamp = format_timestamp(now - timedelta(hours=hours))
            return [e | {"created_at": stamp} for e in events if e["resource"]["gid"] == gid]

        deliver(redis_client, aged(replayed, 26), digest="captured-long-ago")
        deliver(redis_client, aged(retried, 23), digest="asana-retry")
        run_workers_until(worker_settings, lambda: changes(redis_client))
        time.sleep(worker_settings.debounce_seconds + 1.2)
        run_workers_until(worker_settings, lambda: True)
        assert [e["resource"]["gid"] for e in changes(redis_client)] == [retried]
        stats = redis_client.hgetall(keys.STATS)
        assert int(stats[b"stale"]) == len(aged(replayed, 26)) > 0
        assert b"duplicates" not in stats or int(stats[b"duplicates"]) == 0

    def test_webhook_and_events_api_forms_of_one_event_give_one_entry(
        self, fake_asana: FakeAsana, worker_settings: Settings, redis_client: redis.Redis
    ) -> None:
        """The poller's copy of an event the webhook brought first is a duplicate."""
        _, user, project = _world(fake_asana)
        task = fake_asana.world.add_task("Ship", projects=[project], by=user)
        recorder = Recorder(fake_asana)
        fake_asana.world.update_task(task, by=user, name="Ship it")
        webhook_form, api_form = recorder.webhook, recorder.events_api
        assert webhook_form != api_form  # the Events API form carries names
        deliver(redis_client, webhook_form, digest="from-webhook")
        deliver(redis_client, api_form, digest=None, source="poller", target_id=None)
        run_workers_until(worker_settings, lambda: changes(redis_client))
        entries = changes(redis_client)
        assert len(entries) == 1
        assert entries[0]["events"] == 1
        assert entries[0]["sources"] == ["webhook"]
        assert entries[0]["webhook_gid"] == "webhook-1"

    def test_events_through_both_channels_list_both_sources(
        self, fake_asana: FakeAsana, worker_settings: Settings, redis_client: redis.Redis
    ) -> None:
        """Two edits of one task, one only the poller saw: sources lists both channels."""
        _, user, project = _world(fake_asana)
        task = fake_asana.world.add_task("Ship", projects=[project], by=user)
        recorder = Recorder(fake_asana)
        fake_asana.world.update_task(task, by=user, name="Ship it")
        first = recorder.take()
        time.sleep(0.01)
        fake_asana.world.update_task(task, by=user, notes="soon")
        missed_by_webhook = recorder.events_api
        deliver(redis_client, first, digest="one")
        deliver(redis_client, missed_by_webhook, digest=None, source="poller")
        run_workers_until(worker_settings, lambda: changes(redis_client))
        (entry,) = changes(redis_client)
        assert entry["sources"] == ["webhook", "poller"]
        assert entry["fields"] == ["name", "notes"]


class TestUpgrade:
    """Jobs queued, or failed and replayed, across an upgrade still run."""

    def test_jobs_in_the_earlier_form_are_processed(
        self, fake_asana: FakeAsana, worker_settings: Settings, redis_client: redis.Redis
    ) -> None:
        """The receiver's and the poller's keyword arguments of before 0.2 give entries."""
        _, user, project = _world(fake_asana)
        recorder = Recorder(fake_asana)
        first = fake_asana.world.add_task("from the receiver", projects=[project], by=user)
        webhook_events = recorder.take()
        second = fake_asana.world.add_task("from the poller", projects=[project], by=user)
        poller_events = recorder.take()
        common = {"target_id": "target-1", "webhook_gid": "webhook-1", "received_at": "x"}
        queue = Queue(keys.QUEUE, connection=redis_client, serializer=JSONSerializer)
        for kwargs in (
            {**common, "source": "webhook", "digest": "d", "delivery": {"events": webhook_events}},
            {**common, "source": "poller", "digest": None, "events": poller_events},
        ):
            queue.enqueue_call(keys.PROCESS_DELIVERY_JOB, kwargs=kwargs)
        run_workers_until(worker_settings, lambda: len(changes(redis_client)) >= 2)
        by_gid = {entry["resource"]["gid"]: entry for entry in changes(redis_client)}
        assert by_gid[first]["sources"] == ["webhook"]
        assert by_gid[second]["sources"] == ["poller"]


class TestFootprint:
    """What a delivery leaves in Redis once its job is done: the dedupe marks, nothing more."""

    def test_a_finished_delivery_job_leaves_no_record(
        self, fake_asana: FakeAsana, worker_settings: Settings, redis_client: redis.Redis
    ) -> None:
        """Its job record and result are deleted at once: a key left to expire waits until
        Redis happens to meet it, and beside a day of dedupe marks many would wait. The
        delivery itself stays recorded in the dedupe window, its claim gone."""
        _, user, project = _world(fake_asana)
        recorder = Recorder(fake_asana)
        fake_asana.world.add_task("Ship", projects=[project], by=user)
        deliver(redis_client, recorder.take(), digest="once")
        queue = Queue(keys.QUEUE, connection=redis_client, serializer=JSONSerializer)
        (job_id,) = queue.get_job_ids()
        build_worker(worker_settings).work(burst=True, logging_level="WARNING")
        assert redis_client.exists(f"rq:job:{job_id}", f"rq:results:{job_id}") == 0
        assert redis_client.exists(keys.delivery_claim("target-1", "once")) == 0
        window = Window()
        mark = window.delivery("target-1", "once", window.span())
        assert redis_client.strlen(mark.keys[WRITE_INDEX]) == DELIVERY_RECORD_BYTES
        again = Deduper(redis_client).claim(
            job_id="another", target_id="target-1", digest="once", fingerprints=[]
        )
        assert again.duplicate_delivery


class TestStatuses:
    """The entry's status says what became of the resource."""

    def test_removed_story_is_not_found_after_one_call(
        self, fake_asana: FakeAsana, worker_settings: Settings, redis_client: redis.Redis
    ) -> None:
        """A comment consolidated away answers 404 once; no retries, status not_found."""
        _, user, project = _world(fake_asana)
        task = fake_asana.world.add_task("Ship", projects=[project], by=user)
        recorder = Recorder(fake_asana)
        story = fake_asana.world.add_comment(task, "looks good", by=user)
        events = [e for e in recorder.take() if e["resource"]["gid"] == story]
        fake_asana.world.remove_story(story)
        deliver(redis_client, events)
        run_workers_until(worker_settings, lambda: changes(redis_client))
        (entry,) = changes(redis_client)
        assert entry["resource"] == {"gid": story, "resource_type": "story"}
        assert entry["parent"] == {"gid": task, "resource_type": "task"}
        assert entry["status"] == "not_found"
        assert entry["data"] is None
        assert _calls_for(fake_asana, f"/stories/{story}") == 1

    def test_deleted_task_is_deleted_without_a_get(
        self, fake_asana: FakeAsana, worker_settings: Settings, redis_client: redis.Redis
    ) -> None:
        """A deleted event closes the batch at once and costs no request."""
        _, user, project = _world(fake_asana)
        task = fake_asana.world.add_task("Ship", projects=[project], by=user)
        recorder = Recorder(fake_asana)
        fake_asana.world.update_task(task, by=user, name="Ship it")
        fake_asana.world.delete_task(task, by=user)
        deliver(redis_client, [e for e in recorder.take() if e["resource"]["gid"] == task])
        run_workers_until(worker_settings, lambda: changes(redis_client))
        (entry,) = changes(redis_client)
        assert entry["status"] == "deleted"
        assert entry["data"] is None
        assert "deleted" in entry["actions"]
        assert _calls_for(fake_asana, f"/tasks/{task}") == 0

    def test_hidden_task_is_forbidden(
        self, fake_asana: FakeAsana, worker_settings: Settings, redis_client: redis.Redis
    ) -> None:
        """403 is an answer, not a failure: status forbidden."""
        _, user, project = _world(fake_asana)
        task = fake_asana.world.add_task("Ship", projects=[project], by=user)
        recorder = Recorder(fake_asana)
        fake_asana.world.update_task(task, by=user, name="Secret")
        fake_asana.world.hide(task)
        deliver(redis_client, recorder.take())
        run_workers_until(worker_settings, lambda: changes(redis_client))
        (entry,) = changes(redis_client)
        assert entry["status"] == "forbidden"
        assert int(redis_client.hget(keys.STATS, "status:forbidden") or 0) == 1


class TestRateLimit:
    """A 429 pauses every worker for its Retry-After; then the work continues."""

    def test_retry_after_is_honoured_by_two_workers(
        self, worker_environ: dict[str, str], redis_client: redis.Redis, tmp_path: Path
    ) -> None:
        """No request leaves either worker inside a 2 s Retry-After window."""
        with FakeAsana(token="test-token", time_scale=2.0) as fake:  # Retry-After: 2
            _, user, project = _world(fake)
            recorder = Recorder(fake)
            tasks = [
                fake.world.add_task(f"Task {i}", projects=[project], by=user) for i in range(12)
            ]
            events = {t: [e for e in recorder.webhook if e["resource"]["gid"] == t] for t in tasks}
            fake.knobs.chaos_429_rate = 1.0
            fake.knobs.api_latency = 0.05

            def calm_after_first_429() -> None:
                wait_for(lambda: any(c.status == 429 for c in fake.calls), timeout=30)
                fake.knobs.chaos_429_rate = 0.0

            calm = threading.Thread(target=calm_after_first_429, daemon=True)
            calm.start()
            environ = {**worker_environ, "ASANA_API_URL": fake.api_url}
            with worker_processes(environ, 2, log_dir=tmp_path):
                for index, task in enumerate(tasks):
                    deliver(redis_client, events[task], digest=f"d{index}")
                    time.sleep(0.25)
                wait_for(lambda: len(changes(redis_client)) == len(tasks), timeout=30)
                queue = Queue(keys.QUEUE, connection=redis_client, serializer=JSONSerializer)
                done_by = [w.successful_job_count for w in Worker.all(queue=queue)]
            calm.join(1)
            calls = fake.calls
        assert {entry["status"] for entry in changes(redis_client)} == {"ok"}
        rejected = [call for call in calls if call.status == 429]
        assert rejected
        for refusal in rejected:
            inside = [
                call
                for call in calls
                if refusal.ended_at + 0.05 < call.started_at < refusal.ended_at + 1.95
            ]
            assert inside == [], f"{len(inside)} request(s) sent inside the Retry-After window"
        assert int(redis_client.hget(keys.STATS, "rate_limit_waits") or 0) >= 1
        assert len(done_by) == 2
        assert min(done_by) >= 1, f"jobs done per worker: {done_by}"


class TestCrash:
    """A worker killed with SIGKILL in the middle of a job loses nothing."""

    def test_sigkill_during_a_flush_loses_nothing(
        self,
        fake_asana: FakeAsana,
        worker_environ: dict[str, str],
        redis_client: redis.Redis,
        tmp_path: Path,
    ) -> None:
        """The flush job's entry expires, maintenance re-queues it, its retry emits once."""
        _, user, project = _world(fake_asana)
        recorder = Recorder(fake_asana)
        tasks = [
            fake_asana.world.add_task(f"Task {i}", projects=[project], by=user) for i in range(5)
        ]
        events = [e for e in recorder.webhook if e["resource"]["gid"] in tasks]
        fake_asana.knobs.api_latency = 30.0  # every flush hangs in its GET
        queue = Queue(keys.QUEUE, connection=redis_client, serializer=JSONSerializer)
        started = StartedJobRegistry(queue=queue)
        with worker_processes(worker_environ, 2, log_dir=tmp_path):
            deliver(redis_client, events)
            flush_id = wait_for(
                lambda: next((j for j in started.get_job_ids() if j.startswith("flush-")), None),
                timeout=15,
            )
            job = Job.fetch(flush_id, connection=redis_client, serializer=JSONSerializer)

            def worker_pid() -> int:
                job.refresh()  # type: ignore[no-untyped-call]
                return int(redis_client.hget(f"rq:worker:{job.worker_name}", "pid") or 0)

            # RQ puts the job in the started registry a moment before it names its worker.
            os.kill(wait_for(worker_pid, timeout=5), signal.SIGKILL)
            fake_asana.knobs.api_latency = 0.0
            wait_for(lambda: len(changes(redis_client)) == len(tasks), timeout=40)
            time.sleep(0.5)
        entries = changes(redis_client)
        assert sorted(entry["resource"]["gid"] for entry in entries) == sorted(tasks)
        assert {entry["status"] for entry in entries} == {"ok"}
        # Its retry finished it: a finished flush job is deleted, a failed one would be kept.
        assert not redis_client.exists(job.key)
        assert FailedJobRegistry(queue=queue).count == 0
