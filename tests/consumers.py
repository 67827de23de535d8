"""Helpers for the consumer tests: changes written as the workers write them, consumer and
CLI processes that run this checkout's code (PYTHONPATH set to it), what handlers saw."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import redis

from asana_hooks import keys
from tests.consumer_process import HANDLED
from tests.operator_system import invoke_cli

ROOT = Path(__file__).resolve().parents[1]


def process_env(redis_url: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "REDIS_URL": redis_url,
        "NO_COLOR": "1",
        "COLUMNS": "200",
        "LANG": "C.UTF-8",
    }


def write_change(client: redis.Redis, gid: str, **extra: Any) -> str:
    """One entry as workers/emit.py writes it (field ``change``, compact JSON, resource first)."""
    entry_id = client.xadd(keys.CHANGES_STREAM, change_fields(gid, **extra))
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def change_fields(gid: str, **extra: Any) -> dict[Any, Any]:
    """The fields of ``write_change``'s entry (to write many in one pipeline)."""
    change = {
        "resource": {"gid": gid, "resource_type": "task"},
        "parent": None,
        "status": "ok",
        "actions": ["changed"],
        "fields": ["name"],
        "sources": ["webhook"],
        "data": {"gid": gid, "name": f"Task {gid}"},
        **extra,
    }
    return {"change": json.dumps(change, separators=(",", ":"))}


def handled(client: redis.Redis, phase: str = "done") -> list[dict[str, Any]]:
    """What the handlers of every consumer process recorded, in the order they did it."""
    found = [json.loads(raw) for raw in client.lrange(HANDLED, 0, -1)]
    return [record for record in found if record["phase"] == phase]


@dataclass
class ConsumerProcess:
    process: subprocess.Popen[str]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(10)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)


@contextmanager
def consumer(redis_url: str, group: str, log_dir: Path, *args: str) -> Iterator[ConsumerProcess]:
    """``python -m tests.consumer_process GROUP ARGS`` with its log in ``log_dir``; stopped
    (SIGKILL) on the way out if the test did not stop it."""
    log_path = log_dir / f"consumer-{group}-{len(list(log_dir.iterdir()))}.log"
    log: IO[str] = log_path.open("w", encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.consumer_process", group, "--redis-url", redis_url, *args],
        env=process_env(redis_url),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield ConsumerProcess(process, log_path)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        log.close()


@dataclass
class Cli:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def cli(redis_url: str, *args: str) -> Cli:
    """`asana-hooks ARGS` through its real entry point, in this process."""
    done = invoke_cli(*args, env=process_env(redis_url))
    return Cli(done.code, done.stdout, done.stderr)


def wait_alive(client: redis.Redis, group: str, name: str) -> None:
    """Until consumer ``name`` of ``group`` has created its group and beats."""
    from tests.helpers import wait_for

    wait_for(lambda: client.exists(keys.consumer_alive(group, name)), timeout=15)
