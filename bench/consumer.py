"""Consumers: entries per second through a no-op handler, against raw XREADGROUP. Prints a table.

    .venv/bin/python -m bench.consumer [--entries 20000] [--runs 3]

An embedded Redis holds ``--entries`` changes shaped as the workers write them (a task with
its data, about 700 bytes). Each run drains them through a fresh consumer group with 1, then 4
processes of each kind, started and connected before the clock starts:

- raw: the loop one writes by hand, ``XREADGROUP COUNT 100`` then one ``XACK`` per entry;
- Consumer: ``asana_hooks.consumer.Consumer(group).run(handler)`` with a handler that returns.

The clock runs from "go" until the group has no lag and nothing pending. The Consumer does
more per entry than the raw loop: each resource's lease, taken in the script that reads and
freed in the script that acknowledges, and an entry read for a resource another consumer
holds moved to that one. It acknowledges the entries it handled in runs (one script call per
read batch with this no-op handler; see ``ACK_SECONDS`` in ``asana_hooks.consumer``), where
the raw loop sends one ``XACK`` per entry, and the goal is at least 0.7 of raw. Medians of
``--runs`` runs; the ratio is Consumer / raw.

Above 1 on 2026-12-04 (README "Benchmarks"): the raw loop's round trip per entry costs more
than the Consumer's leases. A raw loop that acknowledges each batch with one ``XACK`` (not
measured here: about 34,000/s with 1 process and 54,000/s with 4, once, ad hoc) is several
times faster than the Consumer on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from asana_hooks import keys
from asana_hooks.consumer import Consumer
from asana_hooks.dev.redis_server import EmbeddedRedis

ROOT = Path(__file__).resolve().parents[1]
GO = "bench:go"
READY = "bench:ready"


def change(n: int) -> str:
    gid = str(1_200_000_000_000 + n % 500)
    return json.dumps(
        {
            "resource": {"gid": gid, "resource_type": "task"},
            "parent": {"gid": "1200000000001", "resource_type": "project"},
            "status": "ok",
            "actions": ["changed"],
            "fields": ["name", "notes"],
            "events": 3,
            "first_event_at": "2026-12-04T10:00:00.000Z",
            "last_event_at": "2026-12-04T10:00:01.500Z",
            "sources": ["webhook"],
            "webhook_gid": "1200000000002",
            "data": {
                "gid": gid,
                "name": f"Task {n}",
                "notes": "Customer reports the export button does nothing. " * 5,
                "completed": False,
                "assignee": {"gid": "1200000000003", "name": "Ada"},
                "modified_at": "2026-12-04T10:00:01.500Z",
            },
        },
        separators=(",", ":"),
    )


def fill(client: redis.Redis, entries: int) -> None:
    with client.pipeline(transaction=False) as pipe:
        for n in range(entries):
            pipe.xadd(keys.CHANGES_STREAM, {"change": change(n)})
            if n % 1000 == 999:
                pipe.execute()
        pipe.execute()


def _wait_go(client: redis.Redis) -> None:
    client.incr(READY)
    while not client.exists(GO):
        time.sleep(0.005)


def run_raw(url: str, group: str, name: str) -> None:
    client = redis.Redis.from_url(url)
    _wait_go(client)
    while True:
        answer: Any = client.xreadgroup(group, name, {keys.CHANGES_STREAM: ">"}, 100, 500)
        for _stream, entries in answer or []:
            for entry_id, fields in entries:
                json.loads(fields[b"change"])
                client.xack(keys.CHANGES_STREAM, group, entry_id)


def run_consumer(url: str, group: str, name: str) -> None:
    consumer = Consumer(group, redis_url=url, name=name)
    _wait_go(redis.Redis.from_url(url))
    consumer.run(lambda _change: None)


def measure(url: str, kind: str, processes: int, entries: int, run: int) -> float:
    """Entries per second for ``processes`` processes of ``kind`` draining a new group."""
    client = redis.Redis.from_url(url)
    group = f"{kind}-{processes}-{run}"
    client.delete(GO, READY)
    client.xgroup_create(keys.CHANGES_STREAM, group, "0")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.consumer",
                "--role",
                kind,
                "--group",
                group,
                "--name",
                f"{group}-{n}",
                "--redis-url",
                url,
            ],
            env=env,
            cwd=ROOT,
        )
        for n in range(processes)
    ]
    try:
        while int(client.get(READY) or 0) < processes:
            time.sleep(0.01)
        started = time.perf_counter()
        client.set(GO, "1")
        while True:
            (info,) = [
                g for g in client.xinfo_groups(keys.CHANGES_STREAM) if g["name"] == group.encode()
            ]
            if info["lag"] == 0 and info["pending"] == 0:
                break
            time.sleep(0.005)
        elapsed = time.perf_counter() - started
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(10)
    return entries / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--role", choices=("raw", "consumer"))
    parser.add_argument("--group")
    parser.add_argument("--name")
    parser.add_argument("--redis-url")
    args = parser.parse_args()
    if args.role == "raw":
        run_raw(args.redis_url, args.group, args.name)
        return
    if args.role == "consumer":
        run_consumer(args.redis_url, args.group, args.name)
        return
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        fill(client, args.entries)
        print(f"{args.entries} entries, {args.runs} runs, medians (entries/s)")
        print(f"{'processes':>9}  {'raw XREADGROUP':>14}  {'Consumer':>9}  {'ratio':>6}")
        for processes in (1, 4):
            raw: list[float] = []
            ours: list[float] = []
            for run in range(args.runs):
                raw.append(measure(server.url, "raw", processes, args.entries, run))
                ours.append(measure(server.url, "consumer", processes, args.entries, run))
            raw_median, ours_median = statistics.median(raw), statistics.median(ours)
            print(
                f"{processes:>9}  {raw_median:>14,.0f}  {ours_median:>9,.0f}  "
                f"{ours_median / raw_median:>6.2f}"
            )


if __name__ == "__main__":
    main()
