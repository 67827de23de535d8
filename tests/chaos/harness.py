"""A whole running system for chaos scenarios: real processes, a real Redis, the fake Asana.

``ChaosSystem`` starts an ``EmbeddedRedis`` (appendonly on) in its own folder, the fake Asana
over HTTP, and as child processes, each in its own session so that a signal reaches only it:
the receiver (``python -m asana_hooks serve``), workers (``... worker``) and pollers
(``... poll``), all on 127.0.0.1. It registers one webhook on one project, records every
event the fake generates for that project (the ground truth, with the world's final state),
drives a load of task edits, comments and deletions, and compares the stream with
``tests.chaos.verdict.compare``. Processes that exit on their own are restarted by
``keep_alive`` (as a supervisor would) and counted. Does I/O; used by tests/chaos and
bench/chaos.py.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from rq.registry import StartedJobRegistry

from asana_hooks import keys
from asana_hooks.asana_client import AsanaClient
from asana_hooks.dev.fake_asana import FakeAsana
from asana_hooks.dev.fake_asana.model import Story, Task
from asana_hooks.dev.redis_server import EmbeddedRedis, free_port
from asana_hooks.events import parse_event
from asana_hooks.redis_conn import connect, text
from asana_hooks.registration import register
from asana_hooks.registry import Registration, Registry
from asana_hooks.secretbox import SecretBox, generate_key
from asana_hooks.settings import Settings
from tests.chaos.verdict import Expected, Verdict, compare

HOST = "127.0.0.1"
DEBOUNCE_SECONDS = 0.3
MAX_DELAY_SECONDS = 2.0
POLL_INTERVAL_SECONDS = 1.0
QUIET_SECONDS = 1.0
RERUNS = ("scheduled_retries=", "intermediate=")
"""The system counts as settled once nothing is queued, running or open for this long."""

POLLER_WITH_LOCK_TTL = """
import sys, threading
from asana_hooks import logs
from asana_hooks.asana_client import AsanaClient
from asana_hooks.redis_conn import connect
from asana_hooks.settings import Settings
from workers.poller.loop import Poller
import os, signal
settings = Settings.from_environ(os.environ)
logs.configure()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
connection = connect(settings.redis_url, socket_timeout=5.0)
with AsanaClient(settings, connection) as client:
    Poller(settings, connection, client, lock_ttl_ms=int(sys.argv[1])).run(stop=stop)
"""
"""The real poller loop with a shorter poll-lock TTL (the fast variant cannot wait out the
default 120 s after a poller is killed; ``asana-hooks poll`` has no setting for it)."""


@dataclass
class Child:
    """One child process of ours, restartable with the same command."""

    role: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    held_down: bool = False
    """Deliberately stopped: keep_alive leaves it down."""

    def start(self, env: dict[str, str]) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1} at {time.time():.3f}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.starts += 1
        self.held_down = False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)

    def wait(self, timeout: float) -> int | None:
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            return self.process.wait(5)

    def tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class GroundTruth:
    """Every event the fake generates for the watched project, by resource gid."""

    project: str
    fingerprints: dict[str, set[str]] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_event(self, event: Any, targets: frozenset[str]) -> None:
        if self.project not in targets:
            return
        parsed = parse_event(event.webhook_json())
        with self.lock:
            self.fingerprints.setdefault(parsed.resource.gid, set()).add(parsed.fingerprint)
            self.types[parsed.resource.gid] = parsed.resource.resource_type


@dataclass
class ChaosSystem:
    """Redis, the fake Asana, receiver, workers and pollers; see the module docstring."""

    work_dir: Path
    time_scale: float = 0.001
    workers: int = 3
    pollers: int = 1
    poll_lock_ttl_ms: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    redis_server: EmbeddedRedis = field(init=False)
    fake: FakeAsana = field(init=False)
    env: dict[str, str] = field(init=False)
    receiver: Child = field(init=False)
    children: list[Child] = field(default_factory=list)
    truth: GroundTruth = field(init=False)
    registration: Registration = field(init=False)
    workspace: str = ""
    user: str = ""
    project: str = ""
    sections: list[str] = field(default_factory=list)
    pending: str = ""
    """What was still in flight when ``settle`` last looked ('' once settled)."""
    restarts: int = 0
    """Processes that exited on their own and were started again by keep_alive."""
    crashes: list[str] = field(default_factory=list)
    _stack: ExitStack = field(default_factory=ExitStack)

    # lifecycle ------------------------------------------------------------------------------

    def start(self) -> ChaosSystem:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.redis_server = EmbeddedRedis(data_dir=self.work_dir / "redis")
        self.redis_server.start()
        self._stack.callback(self.redis_server.close)
        self.fake = FakeAsana(token="test-token", time_scale=self.time_scale).start()
        self._stack.callback(self.fake.stop)
        world = self.fake.world
        self.workspace = world.add_workspace("Acme")
        self.user = world.add_user("Greg", workspace=self.workspace)
        self.project = world.add_project("Launch", self.workspace, by=self.user)
        self.sections = [world.add_section(self.project, n, by=self.user) for n in ("A", "B")]
        self.truth = GroundTruth(self.project)
        world.subscribe(self.truth.on_event)
        port = free_port()
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/nonexistent"),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "REDIS_URL": self.redis_server.url,
            "HOOKS_ENCRYPTION_KEY": generate_key(),
            "ASANA_ACCESS_TOKEN": "test-token",
            "ASANA_API_URL": self.fake.api_url,
            "HOOKS_PUBLIC_URL": f"http://{HOST}:{port}",
            "HOOKS_DEBOUNCE_SECONDS": str(DEBOUNCE_SECONDS),
            "HOOKS_MAX_DELAY_SECONDS": str(MAX_DELAY_SECONDS),
            "HOOKS_POLL_INTERVAL_SECONDS": str(POLL_INTERVAL_SECONDS),
            **self.extra_env,
        }
        self._stack.callback(self._stop_children)
        self.receiver = self._child(
            "receiver", ["serve", "--host", HOST, "--port", str(port)], start=True
        )
        self._wait_answering()
        self.registration = self._register()
        for _ in range(self.workers):
            self.add_worker()
        for _ in range(self.pollers):
            self.add_poller()
        return self

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> ChaosSystem:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _child(self, role: str, args: list[str], *, start: bool) -> Child:
        index = sum(1 for c in self.children if c.role == role)
        child = Child(
            role, [sys.executable, "-m", "asana_hooks", *args], self.log_dir / f"{role}-{index}.log"
        )
        self.children.append(child)
        if start:
            child.start(self.env)
        return child

    @property
    def log_dir(self) -> Path:
        path = self.work_dir / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def add_worker(self) -> Child:
        return self._child("worker", ["worker"], start=True)

    def add_poller(self, *, start: bool = True) -> Child:
        child = self._child("poller", ["poll"], start=False)
        if self.poll_lock_ttl_ms is not None:
            child.argv = [sys.executable, "-c", POLLER_WITH_LOCK_TTL, str(self.poll_lock_ttl_ms)]
        if start:
            child.start(self.env)
        return child

    def role(self, role: str) -> list[Child]:
        return [c for c in self.children if c.role == role]

    def _stop_children(self) -> None:
        for child in self.children:
            child.signal(signal.SIGKILL)
        for child in self.children:
            child.wait(5)

    def _wait_answering(self, timeout: float = 20.0) -> None:
        url = self.env["HOOKS_PUBLIC_URL"] + "/healthz"
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=1.0) as client:
            while time.monotonic() < deadline:
                with suppress(httpx.HTTPError):
                    if client.get(url).status_code == 200:
                        return
                if not self.receiver.alive():
                    raise RuntimeError("receiver exited:\n" + self.receiver.tail())
                time.sleep(0.05)
        raise TimeoutError("receiver did not answer:\n" + self.receiver.tail())

    def _register(self) -> Registration:
        settings = Settings.from_environ(self.env)
        connection = connect(settings.redis_url, socket_timeout=5.0)
        try:
            with AsanaClient(settings, connection) as client:
                return register(
                    client,
                    Registry(connection, SecretBox(settings.encryption_keys)),
                    resource_gid=self.project,
                    public_url=settings.require_public_url(),
                    filters=[],
                )
        finally:
            connection.close()

    # process control --------------------------------------------------------------------------

    def keep_alive(self) -> None:
        """Start again every process that exited on its own (not one held down)."""
        for child in self.children:
            if child.held_down or child.alive():
                continue
            code = child.process.returncode if child.process is not None else None
            self.restarts += 1
            self.crashes.append(f"{child.role} exited with {code}: {child.tail(3)}")
            child.start(self.env)

    def restart_receiver(self, *, graceful: bool = True) -> None:
        """SIGTERM (uvicorn's graceful shutdown) or SIGKILL, then start on the same port."""
        self.receiver.held_down = True
        self.receiver.signal(signal.SIGTERM if graceful else signal.SIGKILL)
        self.receiver.wait(15)
        self.receiver.start(self.env)
        self._wait_answering()

    def busy_workers(self, connection: redis.Redis) -> list[Child]:
        """Our worker processes that RQ reports busy right now."""
        by_pid = {c.pid: c for c in self.role("worker") if c.alive()}
        busy = []
        for name in connection.smembers(f"rq:workers:{keys.QUEUE}"):
            state, pid = connection.hmget(text(name), "state", "pid")
            if state == b"busy" and pid is not None and int(pid) in by_pid:
                busy.append(by_pid[int(pid)])
        return busy

    def scheduler_worker(self, connection: redis.Redis) -> Child | None:
        """Our worker whose process group runs RQ's active scheduler (it holds the lock)."""
        holder = connection.get(f"rq:scheduler-lock:{keys.QUEUE}")
        if holder is None:
            return None
        pid = connection.hget(f"rq:scheduler:{text(holder)}", "pid")
        if not pid:
            return None
        try:
            group = os.getpgid(int(pid))
        except ProcessLookupError:
            return None
        return next((c for c in self.role("worker") if c.pid == group), None)

    # observations ---------------------------------------------------------------------------

    def connection(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_server.url, socket_timeout=5.0)

    def entries(self) -> list[dict[str, Any]]:
        with self.connection() as connection:
            raw: Any = connection.xrange(keys.CHANGES_STREAM)
        return [json.loads(fields[b"change"]) for _, fields in raw]

    def expected(self, *, extra_events: int = 0) -> dict[str, Expected]:
        """Every resource the fake changed in the project, in its final state."""
        world = self.fake.world
        with world.lock, self.truth.lock:
            found: dict[str, Expected] = {}
            for gid, fingerprints in self.truth.fingerprints.items():
                entity = world.objects.get(gid)
                if isinstance(entity, Task):
                    status = "deleted" if entity.deleted else "ok"
                    fields: dict[str, Any] = {"name": entity.name, "notes": entity.notes}
                elif isinstance(entity, Story):
                    status, fields = "ok", {"text": entity.text}
                else:
                    status, fields = "ok", {}
                found[gid] = Expected(
                    gid, len(fingerprints), status, fields, extra_events=extra_events
                )
            return found

    def verdict(self, *, extra_events: int = 0) -> Verdict:
        return compare(self.expected(extra_events=extra_events), self.entries())

    def unsettled(self, connection: redis.Redis) -> str:
        """What is still in flight ('' when nothing is queued, running, open or pending)."""
        queued = connection.llen(f"rq:queue:{keys.QUEUE}")
        stuck = connection.llen(f"rq:queue:{keys.QUEUE}:intermediate")
        started = StartedJobRegistry(keys.QUEUE, connection=connection).count
        closed = sum(1 for _ in connection.scan_iter(keys.closed_batch("*"), count=1000))
        counts = {
            "queued": queued,
            "intermediate": stuck,
            "open_batches": connection.zcard(keys.OPEN_BATCHES),
            "started": started,
            "closed_batches": closed,
            **self._scheduled_pending(connection),
            "fake_busy": int(not self.fake.engine.is_idle()),
        }
        return ", ".join(f"{name}={count}" for name, count in counts.items() if count)

    @staticmethod
    def _scheduled_pending(connection: redis.Redis) -> dict[str, int]:
        """Delivery jobs waiting for their retry, and flushes overdue (no scheduler running)."""
        now = time.time()
        found: Any = connection.zrange(f"rq:scheduled:{keys.QUEUE}", 0, -1, withscores=True)
        retries = sum(1 for raw_id, _ in found if not text(raw_id).startswith("flush-"))
        overdue = sum(1 for _, score in found if float(score) < now - 2)
        return {"scheduled_retries": retries, "scheduled_overdue": overdue}

    def settle(
        self,
        *,
        timeout: float,
        extra_events: int = 0,
        hold: float = QUIET_SECONDS,
        strict: bool = True,
    ) -> Verdict:
        """Wait (bounded) until nothing is lost and the system stayed quiet ``hold`` seconds.

        Unless ``strict``, jobs that only wait to run again (an RQ retry, or a job RQ's
        intermediate list holds for a minute after a Redis restart) do not keep it from
        settling once nothing is lost: they redo work already done."""
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while True:
            self.keep_alive()
            verdict = self.verdict(extra_events=extra_events)
            try:
                with self.connection() as connection:
                    self.pending = self.unsettled(connection)
            except redis.RedisError as exc:
                self.pending = f"redis: {exc}"
            now = time.monotonic()
            blocking = self.pending
            if not strict:
                parts = self.pending.split(", ")
                blocking = ", ".join(p for p in parts if not p.startswith(RERUNS))
            if not blocking and not verdict.lost:
                quiet_since = quiet_since if quiet_since is not None else now
                if now - quiet_since >= hold:
                    return verdict
            else:
                quiet_since = None
            if now > deadline:
                return verdict
            time.sleep(0.2)


class Load:
    """Edits the fake's world from a thread: new tasks, renames, notes, comments, deletions."""

    def __init__(self, system: ChaosSystem, *, seed: int = 7) -> None:
        self.system = system
        self.random = random.Random(seed)
        self.tasks: list[str] = []
        self.deleted: set[str] = set()
        self.ops = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    def create(self, count: int) -> list[str]:
        world, s = self.system.fake.world, self.system
        made = [
            world.add_task(
                f"task {len(self.tasks) + n}",
                projects=[s.project],
                section=s.sections[n % len(s.sections)],
                by=s.user,
            )
            for n in range(count)
        ]
        self.tasks.extend(made)
        self.ops += count
        return made

    def step(self) -> None:
        """One random edit of a live task (a new task now and then)."""
        world, user = self.system.fake.world, self.system.user
        live = [t for t in self.tasks if t not in self.deleted]
        if not live or self.random.random() < 0.05:
            self.create(1)
            return
        task = self.random.choice(live)
        roll = self.random.random()
        self.ops += 1
        if roll < 0.45:
            world.update_task(task, by=user, name=f"{task} v{self.ops}")
        elif roll < 0.7:
            world.update_task(task, by=user, notes=f"notes {self.ops}")
        elif roll < 0.85:
            world.add_comment(task, f"comment {self.ops}", by=user)
        else:
            completed = not world.objects[task].completed  # type: ignore[attr-defined]
            world.update_task(task, by=user, completed=completed)

    def delete_some(self, share: float) -> None:
        live = [t for t in self.tasks if t not in self.deleted]
        for task in self.random.sample(live, int(len(live) * share)):
            self.system.fake.world.delete_task(task, by=self.system.user)
            self.deleted.add(task)
            self.ops += 1

    def run(self, *, per_second: float) -> Load:
        """Edit in the background at about this rate until ``stop``."""

        def loop() -> None:
            while not self._stop.wait(1.0 / per_second):
                try:
                    self.step()
                except Exception as exc:  # the scenario reports it
                    self.errors.append(repr(exc))

        self._thread = threading.Thread(target=loop, name="chaos-load", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


def during(seconds: float, every: float, action: Callable[[], None]) -> Iterator[int]:
    """Call ``action`` every ``every`` seconds for ``seconds``; yields the count after each."""
    end = time.monotonic() + seconds
    count = 0
    while time.monotonic() < end:
        action()
        count += 1
        yield count
        time.sleep(every)
