"""The whole path with the poller: fake Asana -> receiver and poller -> real RQ workers -> stream.

Real Redis, the fake Asana over HTTP, our receiver over HTTP (``serve_in_thread``), two real
worker processes (`asana-hooks worker`) and pollers running their loop in threads.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import wait_for
from tests.poller_stage import Stage, polling, running_stage
from workers.poller.store import PollStore

POLL_INTERVAL = 1.0
DEBOUNCE = 0.3
SCHEDULER_SLACK = 1.5
"""RQ's scheduler looks for due flush jobs about once a second, and the workers need a
moment to fetch and emit: allowed on top of one poll interval plus the debounce."""


@pytest.fixture
def stage(environ: dict[str, str]) -> Iterator[Stage]:
    with running_stage(
        environ,
        HOOKS_POLL_INTERVAL_SECONDS=str(POLL_INTERVAL),
        HOOKS_DEBOUNCE_SECONDS=str(DEBOUNCE),
    ) as running:
        running.start_workers(2)
        yield running


def task_changes(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in changes if c["resource"]["resource_type"] == "task"]


def seen(stage: Stage, start: int) -> Counter[str]:
    return Counter(c["resource"]["gid"] for c in task_changes(stage.changes()[start:]))


def settle(stage: Stage, tasks: list[str]) -> int:
    """Wait until every task's creation is in the stream; return the stream's length."""
    wait_for(lambda: set(seen(stage, 0)) >= set(tasks), timeout=15)
    stage.fake.wait_idle()
    time.sleep(DEBOUNCE * 2)
    return len(stage.changes())


class TestRecovery:
    """What webhooks miss, the poller brings in: every change once."""

    def test_dropped_deliveries_are_recovered_once(self, stage: Stage) -> None:
        """30% of deliveries dropped: every changed task appears within an interval, once."""
        project = stage.project()
        stage.register(project)
        with polling(stage.poller()):
            tasks = [
                stage.fake.world.add_task(f"task {n}", projects=[project], by=stage.user)
                for n in range(30)
            ]
            start = settle(stage, tasks)
            stage.fake.knobs.drop_rate = 0.3
            for task in tasks:
                stage.fake.world.update_task(task, by=stage.user, name=f"{task} renamed")
                time.sleep(0.01)
            changed_at = time.monotonic()
            wait_for(
                lambda: set(seen(stage, start)) == set(tasks),
                timeout=POLL_INTERVAL + DEBOUNCE + SCHEDULER_SLACK,
            )
            recovered_in = time.monotonic() - changed_at
            time.sleep(POLL_INTERVAL + DEBOUNCE)
        counts = seen(stage, start)
        assert set(counts) == set(tasks)
        assert max(counts.values()) == 1, [gid for gid, n in counts.items() if n > 1]
        dropped = {
            event["resource"]["gid"] for record in stage.fake.dropped for event in record.events
        }
        assert dropped & set(tasks)
        by_task = {c["resource"]["gid"]: c for c in task_changes(stage.changes()[start:])}
        for gid in dropped & set(tasks):
            assert by_task[gid]["sources"] == ["poller"]
            assert by_task[gid]["data"]["name"] == f"{gid} renamed"
        assert recovered_in <= POLL_INTERVAL + DEBOUNCE + SCHEDULER_SLACK

    def test_expired_sync_tokens_are_resynced(self, stage: Stage) -> None:
        """All tokens expired and no delivery in the gap: the resync finds every change."""
        project = stage.project()
        stage.register(project)
        poller = stage.poller()
        with polling(poller):
            tasks = [
                stage.fake.world.add_task(f"task {n}", projects=[project], by=stage.user)
                for n in range(5)
            ]
            wait_for(lambda: PollStore(stage.redis).record(project).last_good_poll_at, timeout=5)
            start = settle(stage, tasks)
            stage.fake.knobs.drop_rate = 1.0
            stage.fake.expire_sync_tokens()
            for task in tasks[:3]:
                stage.fake.world.update_task(task, by=stage.user, notes="changed in the gap")
            added = stage.fake.world.add_task("born in the gap", projects=[project], by=stage.user)
            gap = [*tasks[:3], added]
            wait_for(
                lambda: set(seen(stage, start)) >= set(gap),
                timeout=POLL_INTERVAL + DEBOUNCE + SCHEDULER_SLACK + 1,
            )
        by_task = {c["resource"]["gid"]: c for c in task_changes(stage.changes()[start:])}
        for gid in gap:
            assert by_task[gid]["sources"] == ["poller"]
            assert by_task[gid]["status"] == "ok"
        assert by_task[tasks[0]]["data"]["notes"] == "changed in the gap"
        state = PollStore(stage.redis).raw(project)
        assert state["resync_state"] == "done"
        assert int(state["resync_items"]) >= len(gap)


class TestRecreation:
    """A webhook Asana deleted is re-created, and changes flow through it again."""

    def test_changes_flow_through_the_recreated_webhook(self, stage: Stage) -> None:
        """After re-creation a change arrives by webhook, under the new webhook's gid."""
        project = stage.project()
        registration = stage.register(project)
        assert registration.webhook_gid is not None
        stage.fake.delete_webhook_silently(registration.webhook_gid)
        stage.poller(force=True).run_cycle()
        found = stage.registry.get(registration.target_id)
        assert found is not None
        assert found.state == "active"
        assert found.webhook_gid != registration.webhook_gid
        task = stage.fake.world.add_task("after", projects=[project], by=stage.user)
        wait_for(lambda: seen(stage, 0)[task] == 1, timeout=10)
        (change,) = [c for c in task_changes(stage.changes()) if c["resource"]["gid"] == task]
        assert change["sources"] == ["webhook"]
        assert change["webhook_gid"] == found.webhook_gid
