"""A whole running system for the poller's tests and bench: fake Asana, receiver, workers.

Everything listens on 127.0.0.1: the fake Asana (its own uvicorn thread), our receiver
(``serve_in_thread``), and, when asked, real worker processes (`asana-hooks worker`). The
pollers under test run in this process, so tests can drive cycles and read their logs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from asana_hooks import keys
from asana_hooks.asana_client import AsanaClient
from asana_hooks.dev.fake_asana import FakeAsana
from asana_hooks.dev.redis_server import EmbeddedRedis
from asana_hooks.redis_conn import connect
from asana_hooks.registration import register
from asana_hooks.registry import Registration, Registry
from asana_hooks.secretbox import SecretBox, generate_key
from asana_hooks.settings import Settings
from receiver.app import create_app
from tests.helpers import serve_in_thread
from workers.poller.loop import Poller

CLI = str(Path(sys.executable).parent / "asana-hooks")


@dataclass
class Stage:
    fake: FakeAsana
    settings: Settings
    env: dict[str, str]
    redis: redis.Redis
    client: AsanaClient
    registry: Registry
    workspace: str
    user: str
    cleanup: ExitStack
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def project(self, name: str = "Launch") -> str:
        return self.fake.world.add_project(name, self.workspace, by=self.user)

    def register(self, project: str, **options: Any) -> Registration:
        return register(
            self.client,
            self.registry,
            resource_gid=project,
            public_url=self.settings.require_public_url(),
            filters=options.get("filters", []),
        )

    def poller(self, **options: Any) -> Poller:
        """A poller with its own Redis connection and API client (background lane), as a
        process would have."""
        settings = options.pop("settings", self.settings)
        connection = connect(settings.redis_url, socket_timeout=5.0)
        self.cleanup.callback(connection.close)
        client = self.cleanup.enter_context(AsanaClient(settings, connection, lane="background"))
        return Poller(settings, connection, client, **options)

    def changes(self) -> list[dict[str, Any]]:
        """Every change in the output stream, oldest first."""
        entries = self.redis.xrange(keys.CHANGES_STREAM) or []
        return [json.loads(fields[b"change"]) for _, fields in entries if fields]

    def start_workers(self, count: int = 2) -> None:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **self.env}
        if os.environ.get("PYTHONPATH"):  # a worktree's code, not the installed checkout's
            env["PYTHONPATH"] = os.environ["PYTHONPATH"]
        for _ in range(count):
            self.workers.append(
                subprocess.Popen(
                    [CLI, "worker"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def stop_workers(self) -> None:
        for process in self.workers:
            process.terminate()
        for process in self.workers:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.workers.clear()


@contextmanager
def running_stage(
    environ: dict[str, str], *, time_scale: float = 0.001, **env: str
) -> Iterator[Stage]:
    """Fake Asana with a workspace and a user, and our receiver; workers on request."""
    with ExitStack() as stack:
        fake = stack.enter_context(FakeAsana(token="test-token", time_scale=time_scale))
        full = {**environ, "ASANA_API_URL": fake.api_url, **env}
        receiver_url = stack.enter_context(serve_in_thread(create_app(Settings.from_environ(full))))
        full["HOOKS_PUBLIC_URL"] = receiver_url
        settings = Settings.from_environ(full)
        connection = connect(settings.redis_url, socket_timeout=5.0)
        stack.callback(connection.close)
        client = stack.enter_context(AsanaClient(settings, connection))
        workspace = fake.world.add_workspace("Acme")
        user = fake.world.add_user("Greg", workspace=workspace)
        stage = Stage(
            fake=fake,
            settings=settings,
            env=full,
            redis=connection,
            client=client,
            registry=Registry(connection, SecretBox(settings.encryption_keys)),
            workspace=workspace,
            user=user,
            cleanup=stack,
        )
        stack.callback(stage.stop_workers)
        yield stage


@contextmanager
def fresh_system(interval: float, budget: int = 1500) -> Iterator[Stage]:
    """For the benchmarks: a stage on its own embedded Redis, debounce 0.3 s, max delay 2 s."""
    with EmbeddedRedis() as redis_server:
        environ = {
            "REDIS_URL": redis_server.url,
            "HOOKS_ENCRYPTION_KEY": generate_key(),
            "ASANA_ACCESS_TOKEN": "test-token",
            "HOOKS_DEBOUNCE_SECONDS": "0.3",
            "HOOKS_MAX_DELAY_SECONDS": "2",
            "HOOKS_POLL_INTERVAL_SECONDS": str(interval),
            "ASANA_RATE_LIMIT_PER_MINUTE": str(budget),
        }
        with running_stage(environ) as stage:
            yield stage


@contextmanager
def polling(poller: Poller) -> Iterator[threading.Event]:
    """Run a poller's loop in a thread until the block ends."""
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, kwargs={"stop": stop}, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(30)
