"""The `dev --demo` script: a small team edits a project in the fake Asana. I/O edge.

Each step is logged as it is played, and every entry that lands in the changes stream is
printed, so someone watching the terminal (or /status) sees each step become a change: edits,
a comment, a keystroke burst folded into one change, a deleted task, a delivery the fake
drops (recovered by the poller at its next pass) and a heartbeat.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from typing import Any

import redis

from asana_hooks import keys
from asana_hooks.dev.fake_asana import FakeAsana

log = logging.getLogger("asana_hooks.dev.demo")
PAUSE_SECONDS = 3.0


def play(fake: FakeAsana, env: dict[str, str]) -> None:
    """Build a world, register a webhook through the real CLI, then edit things."""
    world = fake.world
    workspace = world.add_workspace("Acme Rockets")
    ada = world.add_user("Ada Lovelace", workspace=workspace)
    grace = world.add_user("Grace Hopper", workspace=workspace)
    project = world.add_project("Launch plan", workspace, by=ada)
    todo = world.add_section(project, "To do", by=ada)
    note = world.add_custom_field(workspace, "Status note", type="text", project=project)
    names = ("Draft the launch post", "Book the venue", "Order the cake", "Invite the press")
    post, venue, cake, press = (
        world.add_task(name, projects=[project], section=todo, by=ada) for name in names
    )

    _step("register a webhook on project 'Launch plan' with `asana-hooks webhooks create`")
    created = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "asana_hooks", "webhooks", "create", "--resource", project],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if created.returncode != 0:
        log.error("demo: webhooks create failed: %s", created.stderr.strip() or created.stdout)
        return
    for line in created.stdout.strip().splitlines():
        log.info("demo: %s", line)
    time.sleep(PAUSE_SECONDS)

    _step("Ada renames a task")
    world.update_task(post, by=ada, name="Write the launch post")
    _step("Grace takes a task and completes it")
    world.update_task(venue, by=grace, assignee=grace)
    world.update_task(venue, by=grace, completed=True)
    _step("Grace comments on a task")
    world.add_comment(post, "First draft is in the doc.", by=grace)
    _step("Ada types a status note, one event per keystroke (folded into one change)")
    typed = ""
    for character in "Shipping next Tuesday":
        typed += character
        world.set_custom_field(cake, note, typed, by=ada)
        time.sleep(0.06)
    time.sleep(PAUSE_SECONDS)
    _step("Ada deletes a task")
    world.delete_task(press, by=ada)
    _step("the fake Asana drops the next delivery (the poller recovers it at its next pass)")
    fake.knobs.drop_rate = 1.0
    world.update_task(cake, by=grace, due_on="2026-12-24")
    _wait_until(lambda: bool(fake.dropped), seconds=10)
    fake.knobs.drop_rate = 0.0
    time.sleep(PAUSE_SECONDS)
    _step("Asana sends a heartbeat")
    fake.send_heartbeat()
    log.info("demo: script done; the service keeps running (Ctrl-C stops it)")


def print_changes(redis_url: str, stop: threading.Event) -> None:
    """Print each new entry of the changes stream, one line each."""
    client = redis.Redis.from_url(redis_url)
    last = "$"
    while not stop.is_set():
        try:
            answer: Any = client.xread({keys.CHANGES_STREAM: last}, block=1000, count=100)
        except redis.RedisError:
            time.sleep(1)
            continue
        for _stream, entries in answer or []:
            for entry_id, fields in entries:
                last = entry_id
                log.info("change: %s", describe(json.loads(fields[b"change"])))


def describe(change: dict[str, Any]) -> str:
    resource = change.get("resource") or {}
    data = change.get("data") or {}
    name = data.get("name") or data.get("text") or ""
    fields = ", ".join(change.get("fields") or [])
    actions = ", ".join(change.get("actions") or [])
    return (
        f"{resource.get('resource_type')} {resource.get('gid')} {name!r} {change.get('status')} "
        f"[{actions}{': ' + fields if fields else ''}] {change.get('events')} event(s) "
        f"via {' + '.join(change.get('sources') or [])}"
    )


def _step(text: str) -> None:
    log.info("demo: %s", text)
    time.sleep(PAUSE_SECONDS / 3)


def _wait_until(condition: Any, *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
