"""Workers as processes under crashes: Redis lost mid-job, the scheduler's worker killed."""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from pathlib import Path

import redis

from asana_hooks.dev.redis_server import EmbeddedRedis
from asana_hooks.queueing import make_queue
from tests.helpers import wait_for
from tests.worker_support import worker_processes


def test_worker_comes_back_after_redis_goes_away_mid_job(
    redis_server: EmbeddedRedis, redis_client: redis.Redis, environ: dict[str, str], tmp_path: Path
) -> None:
    """Redis stops while a job runs, so RQ's bookkeeping after the job fails and RQ's loop
    ends; the same process starts a new worker once Redis is back and runs new work."""
    queue = make_queue(redis_client)
    with worker_processes(environ, 1, log_dir=tmp_path) as (process,):
        slow = queue.enqueue("time.sleep", 2)
        wait_for(lambda: slow.get_status(refresh=True) == "started", timeout=15)
        redis_server.stop()
        log = tmp_path / "worker-0.log"
        # The job ends while Redis is away, and RQ's loop with it.
        wait_for(lambda: "worker.loop_ended" in log.read_text(), timeout=20, every=0.1)
        redis_server.start()
        after = queue.enqueue("builtins.len", [1, 2, 3], result_ttl=60)
        wait_for(lambda: after.get_status(refresh=True) == "finished", timeout=30, every=0.1)
        assert process.poll() is None, "the worker process exited"
        assert "worker.loop_ended" in log.read_text()


def test_scheduled_work_resumes_soon_after_the_scheduler_worker_is_killed(
    redis_client: redis.Redis, environ: dict[str, str], tmp_path: Path
) -> None:
    """Kill the worker (and its scheduler process) holding RQ's scheduler lock: another
    worker takes the lock within a few seconds, not when the 61 s lock expires, so
    scheduled jobs (batch flushes, retries) keep running."""
    queue = make_queue(redis_client)
    with worker_processes(environ, 2, log_dir=tmp_path):
        scheduler_pid = wait_for(lambda: queue.scheduler_pid, timeout=20)
        os.killpg(os.getpgid(scheduler_pid), signal.SIGKILL)
        wait_for(lambda: queue.scheduler_pid not in (None, scheduler_pid), timeout=15, every=0.2)
        job = queue.enqueue_in(timedelta(seconds=1), "builtins.len", [1], result_ttl=60)
        wait_for(lambda: job.get_status(refresh=True) == "finished", timeout=10, every=0.1)
