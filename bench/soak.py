"""Soak: minutes of mixed traffic through the real processes; memory must stay flat.

    .venv/bin/python -m bench.soak [--seconds 600] [--rate 150] [--window 60]

Starts an embedded Redis, the fake Asana (which answers the workers' GETs), the receiver,
two workers and the poller as separate processes, registers a webhook through the real
`asana-hooks webhooks create`, then sends signed deliveries at a steady rate from this
process: edits of 1 to 5 events, keystroke bursts (one event per delivery on one task),
heartbeats, and repeats of earlier deliveries (as Asana's retries would). Every window it
prints throughput, ack latency (p50/p99), the queue, the worker lag (age of the oldest
queued job), the RSS of each process and Redis's memory. At the end: memory at start and
end, every key without a TTL grouped by kind (each must be bounded), and the keys with a TTL
by kind (what the dedupe window holds for this traffic) with their bytes (``MEMORY USAGE``)
per delivery acknowledged, and what the dedupe window would hold at a sustained 10/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis

from asana_hooks import keys
from asana_hooks.dev.fake_asana import FakeAsana
from asana_hooks.dev.redis_server import EmbeddedRedis, free_port
from asana_hooks.events import format_timestamp
from asana_hooks.registry import Registry
from asana_hooks.secretbox import SecretBox, generate_key
from asana_hooks.settings import Settings
from bench.common import server_pid, start_processes, stop_all, wait_ready
from receiver.signatures import sign
from workers import window
from workers.emit import EMITTED_TTL_SECONDS

TOKEN = "soak-token"
DEDUPE_MARKS_KEPT = {
    "asana-hooks:seen-": window.WINDOW_SECONDS + window.SKEW_SECONDS + window.BUCKET_SECONDS / 2,
    "asana-hooks:flush-emitted:": EMITTED_TTL_SECONDS,
    "asana-hooks:delivery:": 48 * 3600,
    "asana-hooks:event-done:": 48 * 3600,
    "asana-hooks:batch-emitted:": 48 * 3600,
}
"""The long-lived marks by key prefix, and how long each is kept on average (a window mark
to 26 h after its 12.5 h bucket ends; the last three: the layout before issue 14)."""


def rss_mib(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(found.group(1)) / 1024 if found else 0.0


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


class Traffic:
    """What Asana would send: edits, bursts, heartbeats and repeated deliveries."""

    def __init__(self, tasks: list[str], user: str, secret: str) -> None:
        self.tasks = tasks
        self.user = user
        self.secret = secret
        self.sent: list[bytes] = []
        self.random = random.Random(7)

    def next_body(self) -> tuple[bytes, str]:
        roll = self.random.random()
        if roll < 0.02:
            return b'{"events": []}', "heartbeat"
        if roll < 0.07 and self.sent:
            return self.random.choice(self.sent[-500:]), "repeat"
        if roll < 0.37:
            task = self.tasks[self.random.randrange(10)]  # a few tasks someone types into
            events = [self._event(task, "custom_fields")]
            kind = "burst"
        else:
            count = self.random.randint(1, 5)
            events = [
                self._event(self.random.choice(self.tasks), self.random.choice(["name", "notes"]))
                for _ in range(count)
            ]
            kind = "edit"
        body = json.dumps({"events": events}).encode()
        self.sent.append(body)
        return body, kind

    def _event(self, task: str, field: str) -> dict[str, Any]:
        return {
            "action": "changed",
            "created_at": format_timestamp(datetime.now(UTC)),
            "resource": {"gid": task, "resource_type": "task", "resource_subtype": "default_task"},
            "user": {"gid": self.user, "resource_type": "user"},
            "parent": None,
            "change": {"field": field, "action": "changed"},
        }


async def drive(
    url: str, traffic: Traffic, *, rate: float, seconds: float, window: float, report: Any
) -> int:
    """Send for ``seconds``; returns the deliveries acknowledged (2xx)."""
    latencies: list[float] = []
    codes: Counter[int] = Counter()
    sent = acked = 0
    async with httpx.AsyncClient(timeout=10) as client:
        began = time.monotonic()
        window_began = began
        in_flight: set[asyncio.Task[None]] = set()

        async def one(body: bytes) -> None:
            started = time.perf_counter()
            answer = await client.post(
                url, content=body, headers={"X-Hook-Signature": sign(body, traffic.secret)}
            )
            latencies.append(time.perf_counter() - started)
            codes[answer.status_code] += 1
            nonlocal acked
            acked += int(200 <= answer.status_code < 300)

        while (now := time.monotonic()) - began < seconds:
            due = int((now - began) * rate)
            while sent < due and len(in_flight) < 64:
                body, _kind = traffic.next_body()
                task = asyncio.create_task(one(body))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
                sent += 1
            if now - window_began >= window:
                report(now - began, latencies, codes, now - window_began)
                latencies, codes, window_began = [], Counter(), now
            await asyncio.sleep(0.002)
        await asyncio.gather(*in_flight)
        report(time.monotonic() - began, latencies, codes, time.monotonic() - window_began)
    return acked


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--rate", type=float, default=150, help="deliveries per second")
    parser.add_argument("--window", type=float, default=60)
    args = parser.parse_args()

    with ExitStack() as stack:
        server = stack.enter_context(EmbeddedRedis())
        fake = stack.enter_context(FakeAsana(token=TOKEN))
        fake.knobs.rate_limit_per_minute = 100_000
        workspace = fake.world.add_workspace("Soak")
        user = fake.world.add_user("Load", workspace=workspace)
        project = fake.world.add_project("Soak", workspace, by=user)
        tasks = [fake.world.add_task(f"task {n}", projects=[project], by=user) for n in range(300)]
        port = free_port()
        env = os.environ | {
            "REDIS_URL": server.url,
            "HOOKS_ENCRYPTION_KEY": generate_key(),
            "ASANA_API_URL": fake.api_url,
            "ASANA_ACCESS_TOKEN": TOKEN,
            "HOOKS_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "HOOKS_LOG_LEVEL": "WARNING",
            "HOOKS_DEBOUNCE_SECONDS": "1",
            "HOOKS_MAX_DELAY_SECONDS": "5",
            "HOOKS_POLL_INTERVAL_SECONDS": "30",
            "ASANA_RATE_LIMIT_PER_MINUTE": "100000",
            "HOOKS_STREAM_MAXLEN": "20000",
        }
        processes = start_processes(
            env,
            [
                ("receiver", ["serve", "--host", "127.0.0.1", "--port", str(port)]),
                ("worker-1", ["worker"]),
                ("worker-2", ["worker"]),
                ("poller", ["poll"]),
            ],
        )
        stack.callback(stop_all, processes)
        wait_ready(f"http://127.0.0.1:{port}")
        created = subprocess.run(
            [
                sys.executable,
                "-m",
                "asana_hooks",
                "webhooks",
                "create",
                "--resource",
                project,
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        target_id = json.loads(created.stdout)["target_id"]
        client = redis.Redis.from_url(server.url)
        settings = Settings.from_environ(env)
        secret = Registry(client, SecretBox(settings.encryption_keys)).secret(target_id)
        assert secret is not None
        pids = {name: p.pid for name, p in processes.items()} | {"redis": server_pid(server)}
        memory_start = client.info("memory")["used_memory"]
        rss_start = {name: rss_mib(pid) for name, pid in pids.items()}

        print(
            f"soak: {args.seconds:.0f} s at {args.rate:.0f} deliveries/s; "
            f"{len(tasks)} tasks; 2 workers; window {args.window:.0f} s"
        )
        print(
            f"{'t s':>6} {'acked/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>8} "
            f"{'queued':>7} {'lag s':>6} {'redis MiB':>9}  rss MiB "
            + " ".join(f"{name}" for name in pids)
        )

        series_sizes: list[tuple[float, int, int]] = []

        def report(at: float, latencies: list[float], codes: Counter[int], span: float) -> None:
            series_sizes.append((at, *series_footprint(client)))
            oldest = oldest_job_age(client)
            bad = sum(count for code, count in codes.items() if not 200 <= code < 300)
            print(
                f"{at:6.0f} {len(latencies) / max(span, 1e-9):8.0f} "
                f"{percentile(latencies, 0.5) * 1000:7.1f} "
                f"{percentile(latencies, 0.99) * 1000:7.1f} "
                f"{bad:8d} {client.llen('rq:queue:' + keys.QUEUE):7d} {oldest:6.1f} "
                f"{client.info('memory')['used_memory'] / 2**20:9.1f}  "
                + " ".join(f"{rss_mib(pid):.0f}" for pid in pids.values()),
                flush=True,
            )

        traffic = Traffic(tasks, user, secret)
        acked = asyncio.run(
            drive(
                f"http://127.0.0.1:{port}/hooks/asana/{target_id}",
                traffic,
                rate=args.rate,
                seconds=args.seconds,
                window=args.window,
                report=report,
            )
        )
        drain_deadline = time.monotonic() + 60
        while client.llen("rq:queue:" + keys.QUEUE) and time.monotonic() < drain_deadline:
            time.sleep(0.5)
        time.sleep(8)  # the last batches close after their quiet window
        memory_end = client.info("memory")["used_memory"]
        print(
            "per-minute series (asana_hooks.series), keys and bytes at each window: "
            + ", ".join(f"{at:.0f} s: {count} keys {size:,} B" for at, count, size in series_sizes)
        )
        print(
            f"redis memory: {memory_start / 2**20:.1f} MiB at start, "
            f"{memory_end / 2**20:.1f} MiB at end; stream entries "
            f"{client.xlen(keys.CHANGES_STREAM)} (cap {settings.stream_maxlen})"
        )
        print(
            "rss MiB start -> end: "
            + ", ".join(
                f"{name} {rss_start[name]:.0f} -> {rss_mib(pid):.0f}" for name, pid in pids.items()
            )
        )
        stats = client.memory_stats()
        stream_bytes = client.memory_usage(keys.CHANGES_STREAM, samples=0) or 0
        others = stats["total.allocated"] - stats["startup.allocated"] - stream_bytes
        print(
            f"redis at end: the stream {stream_bytes / 2**20:.1f} MiB, {stats['keys.count'] - 1} "
            f"other keys {others / 2**20:.1f} MiB ({others / max(stats['keys.count'] - 1, 1):.0f} "
            "bytes per key)"
        )
        print(
            f"deliveries acknowledged: {acked}; Redis besides the stream: "
            f"{others / max(acked, 1):.0f} bytes per delivery"
        )
        census, usage = key_census(client)
        print("keys without a TTL (each must be bounded):")
        for kind, count in sorted(census[False].items()):
            print(f"  {count:8d}  {kind}")
        print(
            f"keys with a TTL (they expire; {args.seconds:.0f} s of this traffic holds), "
            "bytes per delivery:"
        )
        for kind, count in sorted(census[True].items()):
            print(f"  {count:8d}  {usage[kind] / max(acked, 1):7.1f}  {kind}")
        per_delivery = held = 0.0
        for prefix, kept in DEDUPE_MARKS_KEPT.items():
            share = sum(usage[k] for k in census[True] if k.startswith(prefix)) / max(acked, 1)
            per_delivery += share
            held += share * 10 * kept / 2**20
        print(
            f"dedupe marks (seen-*, flush-emitted:*; before: delivery:*, event-done:*, "
            f"batch-emitted:*): {per_delivery:.0f} bytes per delivery; a sustained 10 "
            f"deliveries/s holds about {held:.0f} MiB of them"
        )
        fixed = max(0.0, others - per_delivery * acked)
        print(
            f"Redis per delivery, held for the dedupe window: {per_delivery:.0f} bytes (goal: at "
            f"most 100); the rest, {fixed / 2**20:.1f} MiB, does not grow with deliveries (the "
            "registration, the API budget's minute, the window's shard keys, RQ's own keys)"
        )


def series_footprint(client: redis.Redis) -> tuple[int, int]:
    """How many per-minute series keys exist, and their total length."""
    found = list(client.scan_iter(match=keys.series("*"), count=100))
    return len(found), sum(int(client.strlen(key)) for key in found)


def oldest_job_age(client: redis.Redis) -> float:
    head = client.lindex("rq:queue:" + keys.QUEUE, 0)
    if head is None:
        return 0.0
    job_id = head.decode() if isinstance(head, bytes) else str(head)
    stamp = client.hget(f"rq:job:{job_id}", "enqueued_at")
    if not stamp:
        return 0.0
    text = stamp.decode() if isinstance(stamp, bytes) else str(stamp)
    enqueued = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (datetime.now(UTC) - enqueued).total_seconds()


def key_census(client: redis.Redis) -> tuple[dict[bool, Counter[str]], Counter[str]]:
    """Keys grouped by kind (ids, buckets and shards replaced by *), split by whether they
    have a TTL, and the bytes of each kind."""
    census: dict[bool, Counter[str]] = {True: Counter(), False: Counter()}
    usage: Counter[str] = Counter()
    for key in client.scan_iter(count=1000):
        name = key.decode() if isinstance(key, bytes) else str(key)
        kind = re.sub(r"[0-9a-f]{8,}[-0-9a-f]*|\d{6,}", "*", name)
        kind = re.sub(r"^(asana-hooks:seen-[a-z]+):\d+:[0-9a-f]+$", r"\1:*:*", kind)
        census[client.ttl(key) != -1][kind] += 1
        usage[kind] += client.memory_usage(key, samples=0) or 0
    return census, usage


if __name__ == "__main__":
    main()
