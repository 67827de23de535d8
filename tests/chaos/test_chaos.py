"""Issue 7, chaos: real receiver, workers and pollers against faults; 0 lost, 0 doubled.

Each test runs one scenario of tests.chaos.scenarios (fast profile unless
HOOKS_CHAOS_FULL=1) and adds its row to the table printed at the end of the session.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from asana_hooks.queueing import Delivery, enqueue_delivery, make_queue
from tests.chaos.harness import ChaosSystem
from tests.chaos.scenarios import (
    SCENARIOS,
    Profile,
    Row,
    run_named,
)
from tests.helpers import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900), pytest.mark.xdist_group("chaos")]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_nothing_lost_nothing_doubled(
    name: str, profile: Profile, tmp_path: Path, record: list[Row]
) -> None:
    row = run_named(name, profile, tmp_path)
    record.append(row)
    assert row.verdict.expected > 0
    assert row.verdict.ok, row.problems()


def test_a_killed_delivery_job_finishes_on_its_retry(tmp_path: Path) -> None:
    """SIGKILL a worker in the middle of a delivery job; its retry must finish the job."""
    with ChaosSystem(tmp_path, workers=2, pollers=0) as system:
        connection = system.connection()
        queue = make_queue(connection)
        jobs = [
            enqueue_delivery(
                queue,
                Delivery(
                    source="webhook",
                    target_id=None,
                    webhook_gid=None,
                    digest=f"big-{batch}",
                    received_at="2026-01-01T00:00:00.000Z",
                    events=tuple(_event(batch * 10_000 + n) for n in range(10_000)),
                ),
            ).id
            for batch in range(5)
        ]
        victim = wait_for(lambda: system.busy_workers(connection), timeout=20, every=0.001)[0]
        victim.signal(signal.SIGKILL)
        victim.wait(5)
        victim.start(system.env)

        def outcome() -> str:
            logs = "".join(w.tail(2000) for w in system.role("worker"))
            if "not found in Redis" in logs:
                return "the retry failed: " + logs[logs.index("ValueError") :][:120]
            if not any(connection.exists(f"rq:job:{job}") for job in jobs):
                return "finished"  # a finished delivery job is kept one second
            return ""

        assert wait_for(outcome, timeout=45) == "finished"


def _event(n: int) -> dict[str, object]:
    return {
        "action": "changed",
        "created_at": f"2026-01-01T00:{n // 60000 % 60:02d}:{n // 1000 % 60:02d}.{n % 1000:03d}Z",
        "resource": {"gid": str(10**15 + n), "resource_type": "task"},
        "user": None,
        "parent": None,
        "change": {"field": "name", "action": "changed"},
    }
