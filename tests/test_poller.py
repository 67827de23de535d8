"""The poller's Events API subscriptions and locks, against the fake Asana and real Redis.

No workers run here: what the poller feeds is read back from the RQ queue, where it waits
for ``process_delivery`` exactly as a webhook delivery does (tests/test_poller_e2e.py runs
the whole path).
"""

from __future__ import annotations

import itertools
import logging
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from asana_hooks import keys
from asana_hooks.asana_errors import AsanaError
from asana_hooks.queueing import make_queue
from tests.helpers import wait_for
from tests.poller_stage import CLI, Stage, polling, running_stage
from workers.poller.store import PollLock, PollStore


@pytest.fixture
def stage(environ: dict[str, str]) -> Iterator[Stage]:
    with running_stage(environ, HOOKS_POLL_INTERVAL_SECONDS="0.3") as running:
        yield running


def fed(stage: Stage) -> list[dict[str, Any]]:
    """Every event the poller put on the queue, in order."""
    return [
        event
        for job in make_queue(stage.redis).jobs
        if job.kwargs["delivery"]["source"] == "poller"
        for event in job.kwargs["delivery"]["body"]["events"]
    ]


def events_calls(stage: Stage, resource: str) -> list[Any]:
    return [
        call
        for call in stage.fake.calls
        if call.path == "/events" and call.query.get("resource") == resource
    ]


class TestSubscription:
    """One Events API subscription per watched resource, its token kept in Redis."""

    def test_registration_takes_the_token_before_the_webhook(self, stage: Stage) -> None:
        """The 412 token is taken before POST /webhooks, so the first poll reads every event
        since; it is not a gap and crawls nothing."""
        project = stage.project()
        stage.register(project)
        order = [(c.method, c.path, c.status) for c in stage.fake.calls]
        assert order.index(("GET", "/events", 412)) < order.index(("POST", "/webhooks", 201))
        token = PollStore(stage.redis).token(project)
        assert token
        task = stage.fake.world.add_task("right away", projects=[project], by=stage.user)
        report = stage.poller(force=True).run_cycle()
        assert (report.polled, report.resyncs, report.events) == (1, 0, 1)
        assert [e["resource"]["gid"] for e in fed(stage)] == [task]
        assert [c.status for c in events_calls(stage, project)] == [412, 200]
        assert not [c for c in stage.fake.calls if c.path == "/tasks"]
        assert PollStore(stage.redis).record(project).last_good_poll_at is not None

    def test_a_stored_token_is_kept(self, stage: Stage) -> None:
        """A second registration on a followed resource keeps the older token (it covers
        more) and asks the Events API nothing."""
        project = stage.project()
        stage.register(project)
        token = PollStore(stage.redis).token(project)
        stage.fake.reset_records()
        stage.register(project)
        assert PollStore(stage.redis).token(project) == token
        assert not events_calls(stage, project)

    def test_without_a_token_the_first_poll_resyncs_from_creation(
        self, stage: Stage, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The Events API down during registration: creation goes on, and the first poll
        crawls everything since the webhook was made instead of taking a fresh token."""
        project = stage.project()
        stage.fake.knobs.unavailable_paths = "/events"
        registration = stage.register(project)
        stage.fake.knobs.unavailable_paths = ""
        assert registration.state == "active"
        assert PollStore(stage.redis).token(project) is None
        task = stage.fake.world.add_task("in the blind window", projects=[project], by=stage.user)
        with caplog.at_level(logging.WARNING, logger="workers.poller"):
            report = stage.poller(force=True, resync_margin=timedelta(0)).run_cycle()
        assert report.resyncs == 1
        crawled = {e["resource"]["gid"] for e in fed(stage) if e.get("asana_hooks_resync")}
        assert task in crawled
        crawl = next(c for c in stage.fake.calls if c.path == "/tasks")
        assert crawl.query["modified_since"] <= (registration.created_at or "")
        assert "resyncing from the webhook's creation" in caplog.text
        state = PollStore(stage.redis).raw(project)
        assert state["resync_state"] == "done"
        assert PollStore(stage.redis).token(project)

    def test_a_refused_registration_leaves_no_token(self, stage: Stage) -> None:
        """A token taken for a webhook Asana then refuses is dropped again: kept, it would
        one day feed events from before any webhook existed."""
        project = stage.project()
        stage.fake.knobs.allow_localhost = False
        with pytest.raises(AsanaError):
            stage.register(project)
        assert ("GET", "/events", 412) in [(c.method, c.path, c.status) for c in stage.fake.calls]
        assert PollStore(stage.redis).token(project) is None
        assert stage.registry.all() == []

    def test_new_events_are_fed_with_source_poller(self, stage: Stage) -> None:
        """Events since the stored token go into process_delivery jobs; the token moves on."""
        project = stage.project()
        stage.register(project)
        poller = stage.poller(force=True)
        poller.run_cycle()
        first_token = PollStore(stage.redis).token(project)
        task = stage.fake.world.add_task("Write docs", projects=[project], by=stage.user)
        stage.fake.world.update_task(task, by=stage.user, name="Write the docs")
        report = poller.run_cycle()
        assert report.events == 2
        assert [(e["action"], e["resource"]["gid"]) for e in fed(stage)] == [
            ("added", task),
            ("changed", task),
        ]
        assert PollStore(stage.redis).token(project) not in (None, first_token)
        job = next(
            j for j in make_queue(stage.redis).jobs if j.kwargs["delivery"]["source"] == "poller"
        )
        registration = stage.registry.all()[0]
        assert job.func_name == keys.PROCESS_DELIVERY_JOB
        assert job.kwargs["delivery"]["target_id"] == registration.target_id
        assert job.kwargs["delivery"]["webhook_gid"] == registration.webhook_gid
        assert job.retries_left

    def test_has_more_is_followed_in_one_cycle(self, stage: Stage) -> None:
        """More than 100 events are read page after page until has_more is false."""
        project = stage.project()
        stage.register(project)
        poller = stage.poller(force=True)
        poller.run_cycle()
        task = stage.fake.world.add_task("t", projects=[project], by=stage.user)
        for number in range(130):
            stage.fake.world.update_task(task, by=stage.user, name=f"t{number}")
        stage.fake.reset_records()
        report = poller.run_cycle()
        assert report.events == 131
        assert len(events_calls(stage, project)) == 2
        assert len(fed(stage)) == 131

    def test_webhook_filters_apply_to_polled_events(self, stage: Stage) -> None:
        """The poller feeds only what the webhook itself would have delivered."""
        project = stage.project()
        stage.register(
            project, filters=[{"resource_type": "task", "action": "changed", "fields": ["name"]}]
        )
        poller = stage.poller(force=True)
        poller.run_cycle()
        task = stage.fake.world.add_task("t", projects=[project], by=stage.user)
        stage.fake.world.update_task(task, by=stage.user, name="renamed", notes="n")
        stage.fake.world.add_comment(task, "hello", by=stage.user)
        poller.run_cycle()
        assert [(e["action"], e["change"]["field"]) for e in fed(stage)] == [("changed", "name")]

    def test_expired_token_resyncs_the_gap(self, stage: Stage) -> None:
        """A 412 on a stored token stores the fresh one and crawls tasks modified since; the
        project itself, unmodified in the gap (its modified_at says so), is not fed."""
        project = stage.project()
        stage.register(project)
        before = stage.fake.world.add_task("old", projects=[project], by=stage.user)
        poller = stage.poller(force=True, resync_margin=timedelta(0))
        poller.run_cycle()
        poller.run_cycle()
        time.sleep(0.01)
        stage.fake.expire_sync_tokens()
        changed = [
            stage.fake.world.add_task(f"gap {n}", projects=[project], by=stage.user)
            for n in range(3)
        ]
        stage.redis.delete(make_queue(stage.redis).key)
        report = poller.run_cycle()
        assert report.resyncs == 1
        crawled = {e["resource"]["gid"] for e in fed(stage) if e.get("asana_hooks_resync")}
        assert crawled == set(changed)
        assert before not in crawled
        crawl = next(c for c in stage.fake.calls if c.path == "/tasks")
        assert crawl.query["project"] == project
        assert "modified_since" in crawl.query
        state = PollStore(stage.redis).raw(project)
        assert state["resync_state"] == "done"
        assert state["resync_items"] == "3"
        assert "resync_since" not in state

    def test_comments_in_the_gap_are_fed_as_added_stories(self, stage: Stage) -> None:
        """A comment made while the token expired is found through its task and fed as the
        webhook would have sent it; an older comment on the same task is not fed again."""
        project = stage.project()
        stage.register(project)
        task = stage.fake.world.add_task("t", projects=[project], by=stage.user)
        old = stage.fake.world.add_comment(task, "before the gap", by=stage.user)
        poller = stage.poller(force=True, resync_margin=timedelta(0))
        poller.run_cycle()
        poller.run_cycle()
        time.sleep(0.01)
        stage.fake.expire_sync_tokens()
        new = stage.fake.world.add_comment(task, "in the gap", by=stage.user)
        stage.redis.delete(make_queue(stage.redis).key)
        assert poller.run_cycle().resyncs == 1
        stories = [e for e in fed(stage) if e["resource"]["resource_type"] == "story"]
        assert [(e["resource"]["gid"], e["action"]) for e in stories] == [(new, "added")]
        assert stories[0]["parent"] == {"gid": task, "resource_type": "task"}
        assert stories[0]["user"] == {"gid": stage.user, "resource_type": "user"}
        assert old not in {e["resource"]["gid"] for e in fed(stage)}

    def test_filters_without_stories_skip_the_story_listing(self, stage: Stage) -> None:
        """When no webhook lets stories through, a resync does not list any task's stories."""
        project = stage.project()
        stage.register(project, filters=[{"resource_type": "task", "action": "changed"}])
        poller = stage.poller(force=True, resync_margin=timedelta(0))
        poller.run_cycle()
        poller.run_cycle()
        time.sleep(0.01)
        stage.fake.expire_sync_tokens()
        task = stage.fake.world.add_task("t", projects=[project], by=stage.user)
        stage.fake.world.add_comment(task, "in the gap", by=stage.user)
        assert poller.run_cycle().resyncs == 1
        assert not [c for c in stage.fake.calls if c.path.endswith("/stories")]
        assert not [e for e in fed(stage) if e["resource"]["resource_type"] == "story"]


class TestLocking:
    """One poller per resource at a time; a crashed poller's resources are picked up."""

    def test_a_held_resource_is_skipped(self, stage: Stage) -> None:
        """While another poller holds the lock, this one does not touch the resource."""
        project = stage.project()
        stage.register(project)
        stage.fake.reset_records()
        assert PollLock(stage.redis, project, owner="someone else").acquire()
        report = stage.poller(force=True).run_cycle()
        assert (report.busy, report.polled) == (1, 0)
        assert not events_calls(stage, project)

    def test_a_crashed_pollers_lock_expires(self, stage: Stage) -> None:
        """A lock its holder never released stops blocking others after its TTL."""
        project = stage.project()
        stage.register(project)
        assert PollLock(stage.redis, project, owner="crashed", ttl_ms=300).acquire()
        poller = stage.poller(force=True)
        assert poller.run_cycle().busy == 1
        wait_for(lambda: poller.run_cycle().polled == 1, timeout=5, every=0.05)

    def test_two_pollers_never_poll_one_resource_at_once(
        self, stage: Stage, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Lock holders' begin/end logs never overlap per resource, nor do their API calls."""
        caplog.set_level(logging.DEBUG, logger="workers.poller")
        projects = [stage.project(f"P{n}") for n in range(4)]
        for project in projects:
            stage.register(project)
        stage.fake.knobs.api_latency = 0.02
        first, second = stage.poller(owner="first"), stage.poller(owner="second")
        with polling(first), polling(second):
            for round_ in range(6):
                for project in projects:
                    stage.fake.world.add_task(f"r{round_}", projects=[project], by=stage.user)
                time.sleep(0.25)
        intervals: dict[str, list[tuple[float, float, str]]] = {}
        open_: dict[tuple[str, str], float] = {}
        for record in caplog.records:
            kind, _, rest = record.getMessage().partition(" ")
            if kind not in ("poll.begin", "poll.end"):
                continue
            fields = dict(part.split("=", 1) for part in rest.split())
            key = (fields["resource"], fields["owner"])
            if kind == "poll.begin":
                open_[key] = record.created
            else:
                intervals.setdefault(key[0], []).append((open_.pop(key), record.created, key[1]))
        owners = {owner for spans in intervals.values() for _, _, owner in spans}
        assert owners == {"first", "second"}
        for project in projects:
            spans = sorted(intervals[project])
            assert len(spans) >= 2
            for (_, end, _), (start, _, _) in itertools.pairwise(spans):
                assert end <= start
            calls = sorted((c.started_at, c.ended_at) for c in events_calls(stage, project))
            for (_, end), (start, _) in itertools.pairwise(calls):
                assert end <= start

    def test_pollers_share_the_work(self, stage: Stage) -> None:
        """A resource polled by one poller is not polled again by another within the interval."""
        project = stage.project()
        stage.register(project)
        one, other = stage.poller(owner="one"), stage.poller(owner="other")
        assert one.run_cycle().polled == 1
        assert other.run_cycle().not_due == 1
        calls_before = len(events_calls(stage, project))
        threads = [threading.Thread(target=p.run_cycle) for p in (one, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(events_calls(stage, project)) == calls_before


class TestCommand:
    """`asana-hooks poll --once` is one pass in a real process."""

    def test_poll_once_does_one_pass_and_exits(self, stage: Stage) -> None:
        """The command subscribes every watched resource, logs the cycle and exits 0."""
        project = stage.project()
        stage.register(project)
        done = subprocess.run(
            [CLI, "poll", "--once"],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **stage.env},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "poll.cycle resources=1 polled=1" in done.stderr
        assert PollStore(stage.redis).token(project)
