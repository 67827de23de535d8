"""Pieces several benches share: our processes started and stopped, and the busiest minute.

Processes run ``python -m asana_hooks`` with this interpreter and the caller's environment
(``PYTHONPATH`` included, so a worktree's code runs), each in its own session so that a
stop reaches its children.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import redis

from asana_hooks.dev.redis_server import EmbeddedRedis


def start_processes(
    env: dict[str, str], commands: list[tuple[str, list[str]]], log_dir: Path | None = None
) -> dict[str, subprocess.Popen[bytes]]:
    """``asana-hooks COMMAND...`` per (name, command); output to ``log_dir/NAME.log`` when
    given, else inherited."""
    processes: dict[str, subprocess.Popen[bytes]] = {}
    for name, command in commands:
        output = None if log_dir is None else (log_dir / f"{name}.log").open("wb")
        processes[name] = subprocess.Popen(
            [sys.executable, "-m", "asana_hooks", *command],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            start_new_session=True,
        )
        if output is not None:
            output.close()
    return processes


def wait_ready(base_url: str, timeout: float = 20.0) -> None:
    """Until the receiver answers ``/readyz`` with 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the receiver at {base_url} did not become ready in {timeout:.0f} s")


def stop_all(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        os.killpg(process.pid, signal.SIGTERM)
    for process in processes.values():
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def server_pid(server: EmbeddedRedis) -> int:
    info = redis.Redis.from_url(server.url).info("server")
    return int(info["process_id"])


def busiest_minute(started: list[float]) -> int:
    """The most moments in any 60 s, a half-open window as Asana's minute and our budget's
    (a request costing n slots appears n times)."""
    return fullest_minute(started)[0]


def fullest_minute(started: list[float]) -> tuple[int, float]:
    """``busiest_minute``, and the seconds from the first to the last moment of that window
    (just under 60 when it is full because two requests met at its edges)."""
    started = sorted(started)
    most, span, low = 0, 0.0, 0
    for high, moment in enumerate(started):
        while moment - started[low] >= 60:
            low += 1
        if high - low + 1 > most:
            most, span = high - low + 1, moment - started[low]
    return most, span
