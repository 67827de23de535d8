"""Helpers for the workers' tests: real RQ workers (in process or as processes), the stream."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import redis

from asana_hooks import keys
from asana_hooks.dev.fake_asana import FakeAsana
from asana_hooks.events import format_timestamp
from asana_hooks.queueing import Delivery, enqueue_delivery, make_queue
from asana_hooks.settings import Settings
from workers.rq_worker import build_worker

ASANA_HOOKS = str(Path(sys.executable).with_name("asana-hooks"))


def now_iso() -> str:
    from datetime import UTC, datetime

    return format_timestamp(datetime.now(UTC))


def changes(connection: redis.Redis) -> list[dict[str, Any]]:
    """Every entry of the changes stream, decoded, in stream order."""
    entries: list[tuple[bytes, dict[bytes, bytes]]] = connection.xrange(keys.CHANGES_STREAM)  # type: ignore[assignment]
    return [json.loads(fields[b"change"]) for _, fields in entries]


def run_workers_until(
    settings: Settings,
    condition: Callable[[], Any],
    *,
    timeout: float = 15.0,
) -> Any:
    """Run burst workers (with the scheduler) in this process until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        build_worker(settings).work(burst=True, with_scheduler=True, logging_level="WARNING")
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.05)


def deliver(
    connection: redis.Redis,
    events: list[dict[str, Any]],
    *,
    digest: str | None = "digest-1",
    source: str = "webhook",
    target_id: str | None = "target-1",
    webhook_gid: str | None = "webhook-1",
) -> None:
    """Enqueue one delivery exactly as the receiver (or the poller) does."""
    delivery = Delivery(
        source="poller" if source == "poller" else "webhook",
        target_id=target_id,
        webhook_gid=webhook_gid,
        digest=digest,
        received_at=now_iso(),
        events=tuple(events),
    )
    enqueue_delivery(make_queue(connection), delivery)


class Recorder:
    """Collects the fake's events in webhook and Events API form as the world changes."""

    def __init__(self, fake: FakeAsana) -> None:
        self.webhook: list[dict[str, Any]] = []
        self.events_api: list[dict[str, Any]] = []
        fake.world.subscribe(self._on_event)

    def _on_event(self, event: Any, targets: Any) -> None:
        self.webhook.append(event.webhook_json())
        self.events_api.append(event.events_api_json())

    def take(self) -> list[dict[str, Any]]:
        taken, self.webhook = self.webhook, []
        self.events_api = []
        return taken


@contextmanager
def worker_processes(
    environ: dict[str, str], count: int, *, log_dir: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``asana-hooks worker`` processes, each in its own process group; killed at the end."""
    env = {**os.environ, **environ}
    processes = []
    try:
        for index in range(count):
            log = (log_dir / f"worker-{index}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [ASANA_HOOKS, "worker"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            log.close()
        yield processes
    finally:
        for process in processes:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def workers_registered(connection: redis.Redis) -> int:
    return int(connection.scard(f"rq:workers:{keys.QUEUE}"))
