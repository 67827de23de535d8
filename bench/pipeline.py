"""Benchmark the workers: dedupe + batching throughput, end to end, API calls per entry.

Runs the real pipeline: an embedded Redis, the fake Asana over HTTP, and ``asana-hooks
worker`` processes (two by default, one per core). Deliveries are enqueued exactly as the
receiver enqueues them. Not a test; prints numbers and ratios against a baseline measured
in the same run (RQ enqueue + a no-op job on the same workers).

    .venv/bin/python -m bench.pipeline [--events 20000] [--tasks 2000] [--workers 2]
                                       [--per-delivery 20] [--burst-tasks 100]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from rq import Queue

from asana_hooks import keys
from asana_hooks.dev.fake_asana import FakeAsana
from asana_hooks.dev.redis_server import EmbeddedRedis
from asana_hooks.events import format_timestamp
from asana_hooks.queueing import Delivery, enqueue_delivery, make_queue

ASANA_HOOKS = str(Path(sys.executable).with_name("asana-hooks"))
EVENTS_PER_DELIVERY = 20
BENCH_TOKEN = "bench-token"


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.005)
    return time.monotonic()


@contextmanager
def workers(environ: dict[str, str], count: int, log_dir: Path) -> Iterator[None]:
    env = {**os.environ, **environ}
    processes = []
    try:
        for index in range(count):
            with (log_dir / f"worker-{index}.log").open("wb") as log:
                processes.append(
                    subprocess.Popen(
                        [ASANA_HOOKS, "worker"],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        yield
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def _events(
    tasks: list[str],
    per_task: int,
    *,
    user: str,
    base: datetime,
    per_delivery: int = EVENTS_PER_DELIVERY,
) -> list[list[Any]]:
    """Deliveries of EVENTS_PER_DELIVERY events; each task's edits spread over all of them."""
    fields = ["name", "notes", "due_on", "completed", "assignee"]
    flat = []
    for step in range(per_task):
        for index, task in enumerate(tasks):
            moment = base + timedelta(milliseconds=step * 1000 + index % 1000)
            flat.append(
                {
                    "action": "changed",
                    "created_at": format_timestamp(moment),
                    "resource": {"gid": task, "resource_type": "task"},
                    "user": {"gid": user, "resource_type": "user"},
                    "parent": None,
                    "change": {"field": fields[step % len(fields)], "action": "changed"},
                }
            )
    return [flat[i : i + per_delivery] for i in range(0, len(flat), per_delivery)]


def _enqueue(connection: redis.Redis, deliveries: list[list[Any]], tag: str) -> float:
    queue = make_queue(connection)
    started = time.monotonic()
    now = format_timestamp(datetime.now(UTC))
    for start in range(0, len(deliveries), 100):
        with connection.pipeline(transaction=False) as pipe:
            for index, events in enumerate(deliveries[start : start + 100]):
                delivery = Delivery(
                    source="webhook",
                    target_id="bench",
                    webhook_gid="bench-webhook",
                    digest=f"{tag}-{start + index}",
                    received_at=now,
                    events=tuple(events),
                )
                enqueue_delivery(queue, delivery, pipeline=pipe)
            pipe.execute()
    return time.monotonic() - started


def _stat(connection: redis.Redis, name: str) -> int:
    return int(connection.hget(keys.STATS, name) or 0)


def baseline(connection: redis.Redis, jobs: int) -> float:
    """No-op jobs per second through the same workers (RQ's own floor)."""
    queue = Queue(keys.QUEUE, connection=connection, serializer=make_queue(connection).serializer)
    finished_before = queue.finished_job_registry.count
    started = time.monotonic()
    for start in range(0, jobs, 100):
        with connection.pipeline(transaction=False) as pipe:
            for _ in range(min(100, jobs - start)):
                queue.enqueue_call("builtins.len", args=[[]], result_ttl=60, pipeline=pipe)
            pipe.execute()
    ended = _wait(
        lambda: queue.finished_job_registry.count >= finished_before + jobs, 120, "no-op jobs"
    )
    return jobs / (ended - started)


def run(
    events: int,
    tasks: int,
    worker_count: int,
    burst_tasks: int,
    per_delivery: int = EVENTS_PER_DELIVERY,
) -> None:
    per_task = max(1, events // tasks)
    with (
        tempfile.TemporaryDirectory() as scratch,
        EmbeddedRedis() as server,
        FakeAsana(token=BENCH_TOKEN, time_scale=0.001) as fake,
    ):
        fake.knobs.max_concurrent_reads = 1000
        world = fake.world
        workspace = world.add_workspace("Bench")
        user = world.add_user("Bencher", workspace=workspace)
        project = world.add_project("Load", workspace=workspace)
        gids = [world.add_task(f"Task {i}", projects=[project], by=user) for i in range(tasks)]
        burst_gids = [
            world.add_task(f"Burst {i}", projects=[project], by=user) for i in range(burst_tasks)
        ]
        environ = {
            "REDIS_URL": server.url,
            "ASANA_ACCESS_TOKEN": BENCH_TOKEN,
            "ASANA_API_URL": fake.api_url,
            "ASANA_RATE_LIMIT_PER_MINUTE": "1000000",
            "HOOKS_DEBOUNCE_SECONDS": "1",
            "HOOKS_MAX_DELAY_SECONDS": "60",
        }
        connection = redis.Redis.from_url(server.url)
        with workers(environ, worker_count, Path(scratch)):
            _wait(
                lambda: connection.scard(f"rq:workers:{keys.QUEUE}") >= worker_count, 30, "workers"
            )
            noop_rate = baseline(connection, 2000)

            base = datetime.now(UTC) - timedelta(seconds=30)
            deliveries = _events(gids, per_task, user=user, base=base, per_delivery=per_delivery)
            total = sum(len(d) for d in deliveries)
            fake.reset_records()
            started = time.monotonic()
            enqueue_seconds = _enqueue(connection, deliveries, "load")
            batched = _wait(lambda: _stat(connection, "events") >= total, 300, "dedupe+batching")
            done = _wait(lambda: connection.xlen(keys.CHANGES_STREAM) >= tasks, 300, "entries")
            calls = fake.calls
            entries = connection.xlen(keys.CHANGES_STREAM)
            intake_rate = total / (batched - started)
            job_rate = len(deliveries) / (batched - started)
            print(
                f"load: {total} events over {tasks} tasks in {len(deliveries)} deliveries, "
                f"{worker_count} worker processes"
            )
            print(f"  enqueue (receiver side):      {total / enqueue_seconds:10.0f} events/s")
            print(
                f"  dedupe + batching:            {intake_rate:10.0f} events/s "
                f"({job_rate:.0f} delivery jobs/s)"
            )
            print(
                f"  baseline no-op RQ jobs:       {noop_rate:10.0f} jobs/s  "
                f"-> delivery jobs at {job_rate / noop_rate:.2f}x the no-op rate"
            )
            print(
                f"  end to end, {entries} entries:   {done - started:10.2f} s "
                f"(debounce 1 s included)"
            )
            actions = sum(max(1, len(c.batch_actions)) for c in calls)
            print(
                f"  API requests per entry:       {len(calls) / entries:10.3f} "
                f"({len(calls)} requests, {actions} GETs incl. /batch actions)"
            )

            fake.reset_records()
            before = connection.xlen(keys.CHANGES_STREAM)
            burst = _events(
                burst_gids,
                50,
                user=user,
                base=base + timedelta(seconds=5),
                per_delivery=per_delivery,
            )
            burst_total = sum(len(d) for d in burst)
            _enqueue(connection, burst, "burst")
            _wait(
                lambda: connection.xlen(keys.CHANGES_STREAM) >= before + burst_tasks, 300, "burst"
            )
            burst_calls = fake.calls
            burst_actions = sum(max(1, len(c.batch_actions)) for c in burst_calls)
            print(f"burst: {burst_total} keystroke events, 50 per task over {burst_tasks} tasks")
            print(
                f"  entries:                      {connection.xlen(keys.CHANGES_STREAM) - before:10d}"  # noqa: E501
            )
            print(
                f"  events per API request:       {burst_total / max(1, len(burst_calls)):10.1f} "
                f"({len(burst_calls)} requests)"
            )
            print(
                f"  events per resource GET:      {burst_total / max(1, burst_actions):10.1f} "
                f"(a burst folded to one fetch)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--tasks", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--burst-tasks", type=int, default=100)
    parser.add_argument("--per-delivery", type=int, default=EVENTS_PER_DELIVERY)
    args = parser.parse_args()
    run(args.events, args.tasks, args.workers, args.burst_tasks, args.per_delivery)


if __name__ == "__main__":
    main()
