"""Connections: many Asana identities with traffic at once, each within its own budget.

    .venv/bin/python -m bench.connections [--connections 20] [--webhooks-per-connection 2]
        [--tasks-per-connection 50] [--edits 3] [--seconds 25] [--budget 30] [--runs 1]
        [--scale-connections 1000] [--scale-webhooks 3]

Each run builds two fresh systems, each with an embedded redis-server, the fake Asana over
HTTP (one user per connection, each with its own token: the fake counts and limits per token,
as Asana does), our receiver and two `asana-hooks worker` processes:

1. Split: ``--connections`` connections, one per user, stored as `connections add` stores
   them (``ConnectionStore.add``), each with ``--webhooks-per-connection`` webhooks on its own
   projects registered through ``registration.register`` (what `webhooks create --connection
   ID` runs; every handshake reaches our receiver). ``ASANA_RATE_LIMIT_PER_MINUTE=--budget``,
   which each connection has for itself. For ``--seconds``, this process posts signed
   deliveries as Asana does (HMAC-SHA256 with each webhook's secret), one event each, to
   every connection's webhooks at once: each task is edited ``--edits`` times a fraction of a
   second apart (a keystroke burst: one entry, one GET) and then the next task. Every task
   needs its own GET, so each connection wants ``tasks-per-connection / seconds`` GETs a
   second (120 a minute by default) against its budget of 30: the budget bites.
2. Baseline, same run: the same webhooks, tasks and deliveries on ONE connection (the
   default, ``ASANA_ACCESS_TOKEN``) with ``--connections`` x ``--budget`` per minute: the
   same total budget, not split. The ratio of entries per second says what the split costs.

Measured in both: from the fake's own request log (what Asana sees), each token's requests in
every 60 s window (a ``/batch`` counts its actions, as Asana counts them), registrations
included; the most against the budget (a FAIL line when over) and 429s. Entries: every
task edited must be emitted, by its own connection, each edit counted once (tasks missing;
events doubled or short; tasks whose edits came out in two entries, one edit arriving after
its batch closed, are counted too); entries per second = entries / seconds from the first
delivery to the last entry. Redis's own CPU (``INFO cpu``, user + sys) idle for 5 s, then
while the deliveries come in, as a share of one core, against the events per second it took
in, and the commands that took it (``INFO commandstats``).

3. Scale point (once): ``--scale-connections`` connections with ``--scale-webhooks``
   registrations each, written through the stores (no Asana, no traffic): Redis memory
   (``used_memory_dataset``) per connection and per webhook, from before and after writing
   them (with 20 connections the difference drowns in what moves besides: a per-minute
   series, client buffers), and how long ``/status.json`` and `connections list --json`
   take with that many (the command's own start-up measured on an empty Redis beside it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis

from asana_hooks import keys
from asana_hooks.asana_client import AsanaClient
from asana_hooks.connections import ConnectionStore
from asana_hooks.dev.fake_asana import FakeAsana
from asana_hooks.dev.redis_server import EmbeddedRedis, free_port
from asana_hooks.events import format_timestamp
from asana_hooks.registration import register, target_url
from asana_hooks.registry import Registry, new_target_id, now_iso
from asana_hooks.secretbox import Secret, SecretBox, generate_key
from asana_hooks.settings import Settings
from bench.common import fullest_minute, start_processes, stop_all, wait_ready
from receiver.signatures import sign

DEFAULT_TOKEN = "bench-default-token"
"""The fake's token for the default connection; the others are random, never printed."""
IN_FLIGHT = 64
"""Deliveries this process keeps in flight at most (Asana sends many at once too)."""
IDLE_SECONDS = 5.0
"""Redis's CPU measured this long with everything running and no traffic, first."""
FIELDS = ("name", "notes", "due_on", "completed", "assignee")


@dataclass(frozen=True)
class Hook:
    """One registered webhook: whose it is, where it posts, what it signs with."""

    owner: str
    target_id: str
    secret: str


@dataclass(frozen=True)
class Send:
    at: float
    """Seconds after the start of the traffic."""
    hook: Hook
    task: str
    user: str
    edit: int


@dataclass
class Result:
    split: bool
    connections: int
    budget: int
    """Per minute, per connection."""
    tasks: int
    deliveries: int
    answers: Counter[int]
    send_seconds: float
    out_seconds: float
    entries: int
    missing: int
    """Tasks edited with no entry."""
    doubled: int
    """Events counted more than once (entries' ``events`` over the edits sent)."""
    short: int
    """Events sent that no entry counts."""
    in_two: int
    """Tasks whose edits came out in more than one entry (an edit after its batch closed)."""
    wrong_connection: int
    not_ok: int
    requests: dict[str, int]
    busiest: dict[str, int]
    throttled: dict[str, int]
    redis_cpu_idle: float
    commands_per_event: dict[str, float]
    """Redis's microseconds per event sent, in its four costliest commands while sending."""
    """Share of one core with the workers and receiver idle, before the traffic."""
    redis_cpu_sending: float
    redis_cpu_to_end: float
    budget_gave_up: int
    tokens_in_logs: int
    per_connection: list[tuple[str, int, int, float, int]] = field(default_factory=list)
    """(connection, requests, the most in a 60 s window, that window's first to last, 429s)"""

    @property
    def entries_per_second(self) -> float:
        return self.entries / self.out_seconds if self.out_seconds else 0.0

    @property
    def events_per_second(self) -> float:
        return self.deliveries / self.send_seconds if self.send_seconds else 0.0


def _cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _command_usec(client: redis.Redis) -> Counter[str]:
    """Microseconds Redis has spent in each command (``INFO commandstats``)."""
    spent: Counter[str] = Counter()
    for name, stats in client.info("commandstats").items():
        spent[name.removeprefix("cmdstat_")] = int(stats["usec"])
    return spent


def _memory(client: redis.Redis) -> int:
    """``used_memory_dataset``: ``used_memory`` without Redis's own overhead (client buffers,
    scripts, the replication backlog), which moves with the processes connected, not with
    what is stored."""
    return int(client.info("memory")["used_memory_dataset"])


def _schedule(
    owned: list[tuple[list[str], list[Hook], str]], seconds: float, edits: int
) -> list[Send]:
    """Every connection's tasks edited ``edits`` times each, one after another, at an even
    pace over ``seconds``; connections interleaved. ``owned``: per connection, its tasks
    (task i in webhook i mod len(hooks)), its hooks and its user."""
    sends = []
    count = len(owned)
    for index, (tasks, hooks, user) in enumerate(owned):
        per_second = len(tasks) * edits / seconds
        offset = index / (count * per_second)
        for number, task in enumerate(tasks):
            hook = hooks[number % len(hooks)]
            for edit in range(edits):
                at = offset + (number * edits + edit) / per_second
                sends.append(Send(at, hook, task, user, edit))
    return sorted(sends, key=lambda send: send.at)


def _body(send: Send) -> bytes:
    event = {
        "action": "changed",
        "created_at": format_timestamp(datetime.now(UTC)),
        "resource": {"gid": send.task, "resource_type": "task", "resource_subtype": "default_task"},
        "user": {"gid": send.user, "resource_type": "user"},
        "parent": None,
        "change": {"field": FIELDS[send.edit % len(FIELDS)], "action": "changed"},
    }
    return json.dumps({"events": [event]}).encode()


async def _drive(base_url: str, sends: list[Send]) -> tuple[Counter[int], float]:
    """Post every delivery at its moment; the answers' codes and the seconds it took."""
    codes: Counter[int] = Counter()
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        room = asyncio.Semaphore(IN_FLIGHT)

        async def one(send: Send) -> None:
            body = _body(send)
            try:
                answer = await http.post(
                    f"{base_url}/hooks/asana/{send.hook.target_id}",
                    content=body,
                    headers={"X-Hook-Signature": sign(body, send.hook.secret)},
                )
                codes[answer.status_code] += 1
            except httpx.HTTPError:
                codes[0] += 1
            finally:
                room.release()

        began = time.monotonic()
        pending = []
        for send in sends:
            delay = began + send.at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await room.acquire()
            pending.append(asyncio.create_task(one(send)))
        await asyncio.gather(*pending)
        return codes, time.monotonic() - began


def _changes(client: redis.Redis) -> list[dict[str, Any]]:
    entries = client.xrange(keys.CHANGES_STREAM) or []
    return [json.loads(fields[b"change"]) for _, fields in entries if fields]


@contextmanager
def _system(
    users: int, budget: int, fake_limit: int, log_dir: Path
) -> Iterator[tuple[EmbeddedRedis, FakeAsana, dict[str, str], str, list[str], str]]:
    """Redis, the fake with a workspace and ``users`` users, our receiver (a process).
    Yields the server, the fake, the environment, the receiver's URL, the users and the
    workspace."""
    with ExitStack() as stack:
        server = stack.enter_context(EmbeddedRedis())
        fake = stack.enter_context(FakeAsana(token=DEFAULT_TOKEN))
        fake.knobs.rate_limit_per_minute = fake_limit
        workspace = fake.world.add_workspace("Bench")
        people = [fake.world.add_user(f"User {n}", workspace=workspace) for n in range(users)]
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = os.environ | {
            "REDIS_URL": server.url,
            "HOOKS_ENCRYPTION_KEY": generate_key(),
            "ASANA_API_URL": fake.api_url,
            "ASANA_ACCESS_TOKEN": DEFAULT_TOKEN,
            "HOOKS_PUBLIC_URL": base_url,
            "HOOKS_LOG_LEVEL": "WARNING",
            "HOOKS_DEBOUNCE_SECONDS": "1",
            "HOOKS_MAX_DELAY_SECONDS": "5",
            "ASANA_RATE_LIMIT_PER_MINUTE": str(budget),
        }
        receiver = start_processes(
            env, [("receiver", ["serve", "--host", "127.0.0.1", "--port", str(port)])], log_dir
        )
        stack.callback(stop_all, receiver)
        wait_ready(base_url)
        yield server, fake, env, base_url, people, workspace


def run_once(args: argparse.Namespace, *, split: bool) -> Result:
    """One fresh system: ``split`` gives each user a connection of its own with ``--budget``;
    otherwise every webhook is the default connection's, with the sum of those budgets."""
    count, per = args.connections, args.webhooks_per_connection
    budget = args.budget if split else args.budget * count
    with (
        tempfile.TemporaryDirectory() as scratch,
        _system(count, budget, max(1500, args.budget * count), Path(scratch)) as (
            server,
            fake,
            env,
            base_url,
            users,
            workspace,
        ),
    ):
        world = fake.world
        tokens = [secrets.token_urlsafe(18) for _ in users]
        for token, user in zip(tokens, users, strict=True):
            fake.add_token(token)
            fake.context.token_users[token] = user
        projects = [
            [world.add_project(f"P{n}.{k}", workspace, by=user) for k in range(per)]
            for n, user in enumerate(users)
        ]
        tasks = [
            [
                world.add_task(f"T{n}.{i}", projects=[own[i % per]], by=user)
                for i in range(args.tasks_per_connection)
            ]
            for n, (own, user) in enumerate(zip(projects, users, strict=True))
        ]
        client = redis.Redis.from_url(server.url)
        settings = Settings.from_environ(env)
        box = SecretBox(settings.encryption_keys)
        store = ConnectionStore(client, box)
        registry = Registry(client, box)
        if split:
            owners = [
                store.add(
                    name=f"user-{n}", token=Secret(token), user_gid=user, user_name=f"User {n}"
                ).id
                for n, (token, user) in enumerate(zip(tokens, users, strict=True))
            ]
        else:
            owners = [keys.DEFAULT_CONNECTION] * count
        hooks: list[list[Hook]] = []
        for owner, own in zip(owners, projects, strict=True):
            credentials = None if owner == keys.DEFAULT_CONNECTION else store.credentials(owner)
            with AsanaClient(settings, client, credentials=credentials) as asana:
                made = [
                    register(
                        asana,
                        registry,
                        resource_gid=project,
                        public_url=base_url,
                        filters=[],
                    )
                    for project in own
                ]
            hooks.append(
                [Hook(owner, r.target_id, registry.secret(r.target_id) or "") for r in made]
            )
        log_dir = Path(scratch)
        workers = start_processes(
            env, [("worker-1", ["worker"]), ("worker-2", ["worker"])], log_dir
        )
        try:
            deadline = time.monotonic() + 30
            while client.scard(f"rq:workers:{keys.QUEUE}") < 2:
                if time.monotonic() > deadline:
                    raise SystemExit("the workers did not start")
                time.sleep(0.05)
            sends = _schedule(
                [(t, h, u) for t, h, u in zip(tasks, hooks, users, strict=True)],
                args.seconds,
                args.edits,
            )
            owner_of = {
                task: owner for owner, own in zip(owners, tasks, strict=True) for task in own
            }
            idle_start, idle_began = _cpu(client), time.monotonic()
            time.sleep(IDLE_SECONDS)
            idle = (_cpu(client) - idle_start) / (time.monotonic() - idle_began)
            cpu_start, began = _cpu(client), time.monotonic()
            commands_start = _command_usec(client)
            answers, send_seconds = asyncio.run(_drive(base_url, sends))
            cpu_sent = _cpu(client)
            commands = _command_usec(client)
            commands.subtract(commands_start)
            out_seconds = _wait_out(client, set(owner_of), began, timeout=args.timeout)
            cpu_end = _cpu(client)
            time.sleep(3)  # anything doubled would show by now
            found = _changes(client)
        finally:
            stop_all(workers)
        logs = "".join(p.read_text(errors="replace") for p in log_dir.glob("*.log"))

    seen = Counter(c["resource"]["gid"] for c in found)
    counted: Counter[str] = Counter()
    for change in found:
        counted[change["resource"]["gid"]] += int(change.get("events", 0))
    label = {token: owner for token, owner in zip(tokens, owners, strict=True) if split}
    label[DEFAULT_TOKEN] = keys.DEFAULT_CONNECTION
    moments: dict[str, list[float]] = {}
    requests: Counter[str] = Counter()
    throttled: Counter[str] = Counter()
    for call in fake.calls:
        token = call.headers.get("authorization", "").removeprefix("Bearer ")
        who = label.get(token, "unknown")
        cost = max(1, len(call.batch_actions))
        moments.setdefault(who, []).extend([call.started_at] * cost)
        requests[who] += cost
        throttled[who] += int(call.status == 429)
    fullest = {who: fullest_minute(found_at) for who, found_at in moments.items()}
    busiest = {who: most for who, (most, _) in fullest.items()}
    result = Result(
        split=split,
        connections=count if split else 1,
        budget=budget,
        tasks=len(owner_of),
        deliveries=len(sends),
        answers=answers,
        send_seconds=send_seconds,
        out_seconds=out_seconds,
        entries=len(found),
        missing=sum(1 for task in owner_of if not seen[task]),
        doubled=sum(max(0, counted[task] - args.edits) for task in owner_of),
        short=sum(max(0, args.edits - counted[task]) for task in owner_of),
        in_two=sum(1 for task in owner_of if seen[task] > 1),
        wrong_connection=sum(
            1 for c in found if c.get("connection") != owner_of.get(c["resource"]["gid"])
        ),
        not_ok=sum(1 for c in found if c.get("status") != "ok"),
        requests=dict(requests),
        busiest=busiest,
        throttled=dict(throttled),
        redis_cpu_idle=idle,
        commands_per_event={
            name: usec / len(sends) for name, usec in commands.most_common(4) if usec > 0
        },
        redis_cpu_sending=(cpu_sent - cpu_start) / send_seconds,
        redis_cpu_to_end=(cpu_end - cpu_start) / out_seconds,
        budget_gave_up=logs.count("per-minute budget used"),
        tokens_in_logs=sum(1 for token in [*tokens, DEFAULT_TOKEN] if token in logs),
    )
    result.per_connection = [
        (who, requests[who], *fullest.get(who, (0, 0.0)), throttled[who])
        for who in sorted(requests)
    ]
    return result


def _wait_out(client: redis.Redis, tasks: set[str], began: float, *, timeout: float) -> float:
    """Seconds from ``began`` until every task has an entry (or the timeout)."""
    deadline = began + timeout
    while time.monotonic() < deadline:
        if client.xlen(keys.CHANGES_STREAM) >= len(tasks) and tasks <= {
            c["resource"]["gid"] for c in _changes(client)
        }:
            return time.monotonic() - began
        time.sleep(0.2)
    print(f"   not every change was out after {timeout:.0f} s", flush=True)
    return time.monotonic() - began


def _print_run(result: Result) -> None:
    name = (
        f"{result.connections} connections, {result.budget}/min each"
        if result.split
        else f"1 connection (default), {result.budget}/min"
    )
    print(
        f"   {name}: {result.tasks} tasks, {result.deliveries} deliveries in "
        f"{result.send_seconds:.1f} s (answers {dict(sorted(result.answers.items()))}); "
        f"{result.entries} entries, all out at {result.out_seconds:.1f} s: "
        f"{result.entries_per_second:.1f} entries/s; tasks missing {result.missing}, in two "
        f"entries {result.in_two}; events doubled {result.doubled}, short {result.short}; wrong "
        f"connection {result.wrong_connection}, not ok {result.not_ok}"
    )
    print(f"   {'connection':<12} {'requests':>8} {'busiest 60 s':>12} {'budget':>6} {'429':>4}")
    over = []
    for who, sent, most, span, throttled in result.per_connection:
        print(f"   {who:<12} {sent:8d} {most:12d} {result.budget:6d} {throttled:4d}")
        if most > result.budget:
            over.append(f"{who} {most}/{result.budget} (first to last {span:.3f} s)")
    if over:
        print(f"   FAIL: over the budget in some 60 s window: {', '.join(over)}")
    print(
        f"   Redis CPU {100 * result.redis_cpu_idle:.1f} % of one core idle, "
        f"{100 * result.redis_cpu_sending:.1f} % while "
        f"{result.events_per_second:.0f} events/s came in ("
        + ", ".join(f"{name} {usec:.0f}" for name, usec in result.commands_per_event.items())
        + f" µs per event), {100 * result.redis_cpu_to_end:.1f} % to the last entry; "
        f"budget waits given up (job retried): {result.budget_gave_up}; tokens in logs: "
        f"{result.tokens_in_logs}",
        flush=True,
    )


def _med(values: list[float]) -> float:
    return statistics.median(values)


def summarize(splits: list[Result], singles: list[Result]) -> None:
    print(f"\nMedians of {len(splits)} runs")
    header = (
        f"{'system':<34} {'tasks':>6} {'entries':>7} {'missing':>7} {'in 2':>5} {'doubled':>7} "
        f"{'seconds':>7} {'entries/s':>9} {'busiest/budget':>14} {'429':>4} "
        f"{'events/s':>8} {'Redis CPU':>9}"
    )
    print(header)
    for results in (splits, singles):
        first = results[0]
        name = (
            f"{first.connections} connections x {first.budget}/min"
            if first.split
            else f"1 connection x {first.budget}/min"
        )
        busiest = _med([max(r.busiest.values()) for r in results])
        print(
            f"{name:<34} {first.tasks:6d} {_med([r.entries for r in results]):7.0f} "
            f"{_med([r.missing for r in results]):7.0f} {_med([r.in_two for r in results]):5.0f} "
            f"{_med([r.doubled for r in results]):7.0f} "
            f"{_med([r.out_seconds for r in results]):7.1f} "
            f"{_med([r.entries_per_second for r in results]):9.1f} "
            f"{f'{busiest:.0f}/{first.budget}':>14} "
            f"{_med([sum(r.throttled.values()) for r in results]):4.0f} "
            f"{_med([r.events_per_second for r in results]):8.0f} "
            f"{100 * _med([r.redis_cpu_sending for r in results]):8.1f}%"
        )
    ratios = [
        s.entries_per_second / b.entries_per_second for s, b in zip(splits, singles, strict=True)
    ]
    print(
        f"ratio entries/s, {splits[0].connections} connections / 1: {_med(ratios):.2f} "
        f"(runs: {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    worst = max(max(r.busiest.values()) - r.budget for r in splits + singles)
    print(
        "every connection within its budget in every 60 s window"
        if worst <= 0
        else f"FAIL: a connection went {worst} over its budget in some 60 s window"
    )
    cpu = _med([r.redis_cpu_sending for r in splits + singles])
    idle = _med([r.redis_cpu_idle for r in splits + singles])
    events = _med([r.events_per_second for r in splits + singles])
    print(
        f"Redis: {100 * cpu:.1f} % of one core at {events:.0f} events/s, {100 * idle:.1f} % idle "
        f"(one core: about {events / cpu if cpu else 0:,.0f} events/s at this mix counting "
        f"the idle share as if it grew with the load, "
        f"{events / (cpu - idle) if cpu > idle else 0:,.0f} without it)"
    )


def _cli_seconds(env: dict[str, str], *args: str, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        began = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "asana_hooks", *args],
            env=env,
            capture_output=True,
            check=True,
            timeout=300,
        )
        times.append(time.monotonic() - began)
    return statistics.median(times)


def _http_seconds(url: str, runs: int = 3) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(runs):
        began = time.monotonic()
        answer = httpx.get(url, timeout=120)
        answer.raise_for_status()
        times.append(time.monotonic() - began)
        size = len(answer.content)
    return statistics.median(times), size


def scale_point(connections: int, webhooks: int) -> None:
    """Many connections and registrations written through the stores; memory, and how long
    the operator's views take."""
    with (
        tempfile.TemporaryDirectory() as scratch,
        _system(0, 1500, 1500, Path(scratch)) as (
            server,
            _fake,
            env,
            base_url,
            _users,
            _workspace,
        ),
    ):
        client = redis.Redis.from_url(server.url)
        box = SecretBox(Settings.from_environ(env).encryption_keys)
        store, registry = ConnectionStore(client, box), Registry(client, box)
        empty_cli = _cli_seconds(env, "connections", "list", "--json")
        empty_status, _ = _http_seconds(f"{base_url}/status.json")
        before = _memory(client)
        ids = [
            store.add(
                name=f"customer-{n}",
                token=Secret(secrets.token_urlsafe(18)),
                user_gid=str(1_300_000_000_000 + n),
                user_name=f"User {n}",
            ).id
            for n in range(connections)
        ]
        stored = _memory(client)
        gid = 1_400_000_000_000
        for connection_id in ids:
            for _ in range(webhooks):
                gid += 1
                target_id = new_target_id()
                registry.begin(
                    target_id=target_id,
                    resource_gid=str(gid),
                    target_url=target_url(base_url, target_id),
                    filters=[],
                    connection_id=connection_id,
                )
                secret = secrets.token_hex(32)
                registry.accept_handshake(target_id, secret)
                registry.confirm(target_id, webhook_gid=str(gid + 10**12), asana_secret=secret)
                registry.describe_resource(
                    target_id,
                    resource_type="project",
                    resource_name=f"Project {gid}",
                    created_at=now_iso(),
                )
        registered = _memory(client)
        status, size = _http_seconds(f"{base_url}/status.json")
        listed = _cli_seconds(env, "connections", "list", "--json")
    print(
        f"\nScale point: {connections} connections x {webhooks} webhooks, written through the "
        "stores (no Asana calls)"
    )
    print(
        f"   Redis memory: {(stored - before) / connections:,.0f} B per connection, "
        f"{(registered - stored) / (connections * webhooks):,.0f} B per webhook; "
        f"{(registered - before) / 2**20:.1f} MiB in all"
    )
    print(
        f"   /status.json: {status * 1000:.0f} ms ({size / 1024:.0f} KiB; "
        f"{empty_status * 1000:.0f} ms with none); `connections list --json`: {listed:.2f} s "
        f"({empty_cli:.2f} s with none, the command's start-up)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--webhooks-per-connection", type=int, default=2)
    parser.add_argument("--tasks-per-connection", type=int, default=50)
    parser.add_argument("--edits", type=int, default=3, help="edits per task, one entry")
    parser.add_argument("--seconds", type=float, default=25.0, help="of deliveries")
    parser.add_argument("--budget", type=int, default=30, help="per connection, per minute")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--scale-connections", type=int, default=1000)
    parser.add_argument("--scale-webhooks", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    wanted = args.tasks_per_connection / args.seconds * 60
    print(
        f"{args.connections} connections x {args.webhooks_per_connection} webhooks, "
        f"{args.tasks_per_connection} tasks each edited {args.edits} times over "
        f"{args.seconds:.0f} s: {wanted:.0f} GETs a minute wanted per connection, budget "
        f"{args.budget}; baseline 1 connection with {args.budget * args.connections}/min"
    )
    splits, singles = [], []
    for number in range(1, args.runs + 1):
        print(f"run {number}", flush=True)
        splits.append(run_once(args, split=True))
        _print_run(splits[-1])
        singles.append(run_once(args, split=False))
        _print_run(singles[-1])
    summarize(splits, singles)
    if args.scale_connections:
        scale_point(args.scale_connections, args.scale_webhooks)


if __name__ == "__main__":
    main()
