"""A worker process outlives a Redis outage that hits it in the middle of a job."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from asana_hooks.queueing import make_queue
from asana_hooks.redis_server import EmbeddedRedis
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
        time.sleep(3)  # the job ends while Redis is away
        redis_server.start()
        after = queue.enqueue("builtins.len", [1, 2, 3], result_ttl=60)
        wait_for(lambda: after.get_status(refresh=True) == "finished", timeout=30, every=0.1)
        assert process.poll() is None, "the worker process exited"
        log = (tmp_path / "worker-0.log").read_text()
        assert "worker.loop_ended" in log
