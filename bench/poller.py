"""How much the fallback poller recovers, and what it costs in API requests. Prints tables.

    .venv/bin/python -m bench.poller [--tasks 60] [--interval 1.0]

Part 1, recovery: for each drop rate (10 %, 30 %, 50 %) a fresh system (embedded Redis, the
fake Asana, our receiver, two real worker processes, one poller thread) renames every task of
a project once, one delivery per rename, while the fake drops that fraction of deliveries.
Counted from the fake's own records and the output stream: the changes whose delivery was
dropped, how many of them reached the stream anyway (recovered), and any task emitted twice.

Part 2, cost: API requests the poller spends per webhook per hour at the default interval
(300 s), measured as requests per cycle over several forced cycles on idle webhooks and on
webhooks with 150 events per interval (two Events API pages), times 3600 / 300.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from asana_hooks.redis_server import EmbeddedRedis
from asana_hooks.secretbox import generate_key
from tests.helpers import wait_for
from tests.poller_stage import Stage, polling, running_stage

DEFAULT_INTERVAL_SECONDS = 300.0
DROP_RATES = (0.1, 0.3, 0.5)


@dataclass
class Recovery:
    drop_rate: float
    changes: int
    dropped: int
    recovered: int
    duplicates: int
    missing: int
    worst_seconds: float


@contextmanager
def system(interval: float) -> Iterator[Stage]:
    with EmbeddedRedis() as redis_server:
        environ = {
            "REDIS_URL": redis_server.url,
            "HOOKS_ENCRYPTION_KEY": generate_key(),
            "ASANA_ACCESS_TOKEN": "test-token",
            "HOOKS_DEBOUNCE_SECONDS": "0.3",
            "HOOKS_MAX_DELAY_SECONDS": "2",
            "HOOKS_POLL_INTERVAL_SECONDS": str(interval),
        }
        with running_stage(environ) as stage:
            yield stage


def task_counts(stage: Stage, start: int) -> Counter[str]:
    return Counter(
        change["resource"]["gid"]
        for change in stage.changes()[start:]
        if change["resource"]["resource_type"] == "task"
    )


def measure_recovery(drop_rate: float, *, tasks: int, interval: float) -> Recovery:
    with system(interval) as stage:
        stage.start_workers(2)
        project = stage.project()
        stage.register(project)
        with polling(stage.poller()):
            gids = [
                stage.fake.world.add_task(f"task {n}", projects=[project], by=stage.user)
                for n in range(tasks)
            ]
            wait_for(lambda: set(task_counts(stage, 0)) >= set(gids), timeout=60)
            stage.fake.wait_idle()
            time.sleep(1.0)
            start = len(stage.changes())
            stage.fake.knobs.drop_rate = drop_rate
            dropped_before = len(stage.fake.dropped)
            changed_at = time.monotonic()
            for gid in gids:
                stage.fake.world.update_task(gid, by=stage.user, name=f"{gid} renamed")
                time.sleep(0.01)
            with suppress(AssertionError):
                wait_for(lambda: set(task_counts(stage, start)) >= set(gids), timeout=interval * 5)
            worst = time.monotonic() - changed_at
            time.sleep(interval + 1.0)
        counts = task_counts(stage, start)
        lost = {
            event["resource"]["gid"]
            for record in stage.fake.dropped[dropped_before:]
            for event in record.events
            if event["resource"]["gid"] in set(gids)
        }
        return Recovery(
            drop_rate=drop_rate,
            changes=len(gids),
            dropped=len(lost),
            recovered=len(lost & set(counts)),
            duplicates=sum(1 for n in counts.values() if n > 1),
            missing=len(set(gids) - set(counts)),
            worst_seconds=worst,
        )


def requests_per_cycle(*, webhooks: int, cycles: int, events_per_cycle: int) -> float:
    """Poller API requests per webhook per cycle (health check + Events API pages)."""
    with system(DEFAULT_INTERVAL_SECONDS) as stage:
        projects = [stage.project(f"P{n}") for n in range(webhooks)]
        for project in projects:
            stage.register(project)
        poller = stage.poller(force=True)
        poller.run_cycle()
        tasks = [stage.fake.world.add_task("busy", projects=[p], by=stage.user) for p in projects]
        counts = []
        for cycle in range(cycles):
            for task in tasks:
                for n in range(events_per_cycle):
                    stage.fake.world.update_task(task, by=stage.user, name=f"{cycle}.{n}")
            stage.fake.reset_records()
            poller.run_cycle()
            counts.append(len(stage.fake.calls) / webhooks)
        return statistics.mean(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--interval", type=float, default=1.0, help="poll interval in the runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    print(f"Recovery: {args.tasks} task renames, poll interval {args.interval:g} s, debounce 0.3 s")
    print(
        f"{'drop rate':>9} | {'changes':>7} | {'dropped':>7} | {'recovered':>9} | "
        f"{'recovered %':>11} | {'duplicates':>10} | {'missing':>7} | {'all seen after':>14}"
    )
    for rate in DROP_RATES:
        r = measure_recovery(rate, tasks=args.tasks, interval=args.interval)
        share = 100.0 * r.recovered / r.dropped if r.dropped else 100.0
        print(
            f"{r.drop_rate:>9.0%} | {r.changes:>7} | {r.dropped:>7} | {r.recovered:>9} | "
            f"{share:>10.1f}% | {r.duplicates:>10} | {r.missing:>7} | {r.worst_seconds:>12.2f} s"
        )

    per_hour = 3600 / DEFAULT_INTERVAL_SECONDS
    print()
    print(f"Cost at the default interval ({DEFAULT_INTERVAL_SECONDS:g} s, {per_hour:g} cycles/h)")
    print(
        f"{'activity per interval':>24} | {'requests/cycle/webhook':>22} | "
        f"{'requests/h/webhook':>18}"
    )
    for label, events in (("idle", 0), ("150 events", 150)):
        per_cycle = requests_per_cycle(webhooks=3, cycles=4, events_per_cycle=events)
        print(f"{label:>24} | {per_cycle:>22.2f} | {per_cycle * per_hour:>18.1f}")


if __name__ == "__main__":
    main()
