"""Every change once, from the webhook's first second, whatever Asana drops (DESIGN.md §6.1).

The whole path with real processes: the fake Asana over HTTP, our receiver, two
`asana-hooks worker` processes, pollers in threads. Each test makes one kind of hole (edits
right after `webhooks create`, a sync token lost from Redis, a webhook Asana deleted, a token
Asana expired while webhooks deliver) and counts the entries per task: one per change, none
missing, none doubled.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from asana_hooks import keys
from tests.helpers import wait_for
from tests.poller_stage import CLI, Stage, polling, running_stage
from workers.poller.store import PollStore

POLL_INTERVAL = 1.0
DEBOUNCE = 0.3
SETTLED = POLL_INTERVAL * 2 + DEBOUNCE + 1.5
"""Long enough for two more poll cycles and a flush: anything doubled would show by then."""


@pytest.fixture
def stage(environ: dict[str, str]) -> Iterator[Stage]:
    with running_stage(
        environ,
        HOOKS_POLL_INTERVAL_SECONDS=str(POLL_INTERVAL),
        HOOKS_DEBOUNCE_SECONDS=str(DEBOUNCE),
    ) as running:
        running.start_workers(2)
        yield running


def task_entries(stage: Stage, start: int) -> list[dict[str, Any]]:
    return [c for c in stage.changes()[start:] if c["resource"]["resource_type"] == "task"]


def counts(stage: Stage, start: int) -> Counter[str]:
    return Counter(c["resource"]["gid"] for c in task_entries(stage, start))


def make_tasks(stage: Stage, project: str, number: int) -> list[str]:
    return [
        stage.fake.world.add_task(f"task {n}", projects=[project], by=stage.user)
        for n in range(number)
    ]


def settled(stage: Stage, tasks: list[str]) -> int:
    """Wait until every task's creation is in the stream; the stream's length then."""
    wait_for(lambda: set(counts(stage, 0)) >= set(tasks), timeout=15)
    stage.fake.wait_idle()
    time.sleep(DEBOUNCE * 2)
    return len(stage.changes())


def rename_all(stage: Stage, tasks: list[str]) -> None:
    for task in tasks:
        stage.fake.world.update_task(task, by=stage.user, name=f"{task} renamed")
        time.sleep(0.01)


def assert_each_once(stage: Stage, start: int, tasks: list[str]) -> list[dict[str, Any]]:
    """Every task has an entry carrying its rename; after a settling time, exactly one."""
    wait_for(lambda: set(counts(stage, start)) >= set(tasks), timeout=SETTLED + 5)
    time.sleep(SETTLED)
    found = counts(stage, start)
    assert set(found) == set(tasks)
    assert [gid for gid, n in found.items() if n > 1] == []
    entries = task_entries(stage, start)
    for entry in entries:
        assert entry["data"]["name"] == f"{entry['resource']['gid']} renamed"
    return entries


def wait_for_good_poll(stage: Stage, project: str) -> None:
    wait_for(lambda: PollStore(stage.redis).record(project).last_good_poll_at, timeout=10)


class TestFirstSecond:
    """The Events API subscription starts before the webhook exists."""

    def test_edits_right_after_create_with_every_delivery_dropped(self, stage: Stage) -> None:
        """`webhooks create` returns, edits follow within 0.2 s and Asana drops every
        delivery: each task still gets exactly one entry, through the poller."""
        project = stage.project()
        tasks = make_tasks(stage, project, 10)
        with polling(stage.poller()):
            created = subprocess.run(
                [CLI, "webhooks", "create", "--resource", project],
                env=stage.env,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            returned = time.monotonic()
            stage.fake.knobs.drop_rate = 1.0
            rename_all(stage, tasks)
            assert time.monotonic() - returned < 0.2 + 0.01 * len(tasks)
            assert created.returncode == 0, created.stderr
            entries = assert_each_once(stage, 0, tasks)
        assert {tuple(entry["sources"]) for entry in entries} == {("poller",)}


class TestLostToken:
    """A registered resource whose sync token is gone is crawled, never just re-subscribed."""

    def test_a_deleted_token_then_dropped_deliveries(self, stage: Stage) -> None:
        """The token deleted from Redis (a restore, a flush), then every delivery dropped:
        the resync recovers every rename, and repeats none of the creations it also finds."""
        project = stage.project()
        stage.register(project)
        with polling(stage.poller()):
            tasks = make_tasks(stage, project, 12)
            wait_for_good_poll(stage, project)
            start = settled(stage, tasks)
        # Between two runs of the poller, so that no pass in flight stores a token again.
        stage.redis.delete(keys.sync_token(project))
        stage.fake.knobs.drop_rate = 1.0
        renamed = tasks[::2]
        rename_all(stage, renamed)
        with polling(stage.poller()):
            entries = assert_each_once(stage, start, renamed)
        assert {tuple(entry["sources"]) for entry in entries} == {("poller",)}
        state = PollStore(stage.redis).raw(project)
        assert state["resync_state"] == "done"


class TestRecreation:
    """A webhook Asana deleted is re-created, and the time without it is covered."""

    @pytest.mark.parametrize("token_lost", [False, True], ids=["token-kept", "token-lost"])
    def test_edits_while_the_webhook_is_gone(self, stage: Stage, token_lost: bool) -> None:
        """Asana deletes the webhook; renames meanwhile reach nobody. After the re-creation
        every rename has one entry, whether the Events API token survived or not."""
        project = stage.project()
        registration = stage.register(project)
        assert registration.webhook_gid is not None
        with polling(stage.poller()):
            tasks = make_tasks(stage, project, 8)
            wait_for_good_poll(stage, project)
            start = settled(stage, tasks)
        stage.fake.delete_webhook_silently(registration.webhook_gid)
        if token_lost:
            stage.redis.delete(keys.sync_token(project))
        renamed = tasks[:5]
        rename_all(stage, renamed)
        with polling(stage.poller()):
            entries = assert_each_once(stage, start, renamed)
        found = stage.registry.get(registration.target_id)
        assert found is not None
        assert found.state == "active"
        assert found.webhook_gid != registration.webhook_gid
        assert {tuple(entry["sources"]) for entry in entries} == {("poller",)}


class TestResyncWhileWebhooksDeliver:
    """Asana expires the sync token while webhooks deliver half their deliveries."""

    @pytest.mark.parametrize("pollers", [1, 2])
    def test_every_rename_once(self, stage: Stage, pollers: int) -> None:
        """Renames whose deliveries half arrive, then a 412: the resync finds every task
        renamed since the last good poll; those the webhook brought are not emitted again,
        the dropped ones are recovered. More renames go on while the resync runs."""
        project = stage.project()
        stage.register(project)
        tasks = make_tasks(stage, project, 30)
        before_gap, during_resync = tasks[:20], tasks[20:]
        with polling(stage.poller()):
            wait_for_good_poll(stage, project)
            start = settled(stage, tasks)
        stage.fake.knobs.drop_rate = 0.5
        rename_all(stage, before_gap)
        stage.fake.wait_idle()
        dropped = {
            event["resource"]["gid"] for record in stage.fake.dropped for event in record.events
        }
        delivered = set(before_gap) - dropped
        assert dropped & set(before_gap)
        assert delivered
        wait_for(lambda: set(counts(stage, start)) >= delivered, timeout=10)
        stage.fake.expire_sync_tokens()
        with ExitStack() as running:
            for _ in range(pollers):
                running.enter_context(polling(stage.poller()))
            rename_all(stage, during_resync)
            entries = assert_each_once(stage, start, tasks)
        by_task = {entry["resource"]["gid"]: entry for entry in entries}
        for gid in delivered:
            assert by_task[gid]["sources"] == ["webhook"]
        for gid in dropped & set(before_gap):
            assert by_task[gid]["sources"] == ["poller"]
        state = PollStore(stage.redis).raw(project)
        assert state["resync_state"] == "done"
        assert int(state["resync_items"]) >= len(before_gap)
