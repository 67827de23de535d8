"""How much the fallback poller recovers, and what it costs in API requests. Prints tables.

    .venv/bin/python -m bench.poller [--tasks 60] [--interval 1.0] [--runs 1]

Part 1, recovery: each scenario runs on a fresh system (embedded Redis, the fake Asana, our
receiver, two real worker processes, one poller thread) and renames every task of a project
once, one delivery per rename, while the fake drops deliveries:

- ``steady 10/30/50 %``: the webhook has been polled for a while, then that share is dropped;
- ``first second``: every delivery dropped from 0.1 s after `webhooks create` returns (the
  real command, in its own process), before the poller has ever run;
- ``token deleted``: the stored sync token deleted from Redis (a flush, a restore), then half
  of the deliveries dropped;
- ``412 resync``: half of the deliveries dropped and Asana's sync tokens expired, so the
  poller must crawl the gap while the webhook delivers the other half.

Counted from the fake's own records and the output stream: the renames (expected), those
whose delivery was dropped, how many of those reached the stream anyway (recovered), any task
emitted twice, and the delay from each rename to its entry (median and worst). The baseline
is the renames themselves: recovered/expected is the ratio that must be 100 %.

Part 2, cost: API requests the poller spends per webhook per hour at the default interval
(300 s), measured as requests per cycle over several forced cycles on idle webhooks and on
webhooks with 150 events per interval (two Events API pages), times 3600 / 300.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from asana_hooks import keys
from tests.helpers import wait_for
from tests.poller_stage import CLI, Stage, fresh_system, polling

DEFAULT_INTERVAL_SECONDS = 300.0


@dataclass
class Recovery:
    scenario: str
    changes: int
    dropped: int
    recovered: int
    emitted: int
    duplicates: int
    missing: int
    delays: list[float]


def task_counts(stage: Stage, start: int) -> Counter[str]:
    return Counter(
        change["resource"]["gid"]
        for change in stage.changes()[start:]
        if change["resource"]["resource_type"] == "task"
    )


class Renames:
    """Renames every task once and notes when each one reached the stream."""

    def __init__(self, stage: Stage, gids: list[str], start: int) -> None:
        self.stage, self.gids, self.start = stage, gids, start
        self.renamed_at: dict[str, float] = {}
        self.seen_at: dict[str, float] = {}

    def run(self) -> None:
        for gid in self.gids:
            self.stage.fake.world.update_task(gid, by=self.stage.user, name=f"{gid} renamed")
            self.renamed_at[gid] = time.monotonic()
            time.sleep(0.01)

    def watch(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.seen_at) < len(self.gids):
            now = time.monotonic()
            for gid in task_counts(self.stage, self.start):
                self.seen_at.setdefault(gid, now)
            time.sleep(0.02)


def measure(
    scenario: str,
    *,
    tasks: int,
    interval: float,
    prepare: Callable[[Stage, str], None],
    registered: bool = True,
) -> Recovery:
    """A fresh system; ``prepare`` makes the hole (drops, a lost token) before the renames."""
    with fresh_system(interval) as stage:
        stage.start_workers(2)
        project = stage.project()
        if registered:
            stage.register(project)
        gids = [
            stage.fake.world.add_task(f"task {n}", projects=[project], by=stage.user)
            for n in range(tasks)
        ]
        with polling(stage.poller()):
            if registered:
                wait_for(lambda: set(task_counts(stage, 0)) >= set(gids), timeout=60)
                stage.fake.world.update_task(gids[0], by=stage.user, notes="first poll")
                wait_for(lambda: stage.redis.hget(keys.poll_state(project), "last_good_poll_at"))
                stage.fake.wait_idle()
                time.sleep(1.0)
            start = len(stage.changes())
            dropped_before = len(stage.fake.dropped)
            prepare(stage, project)
            renames = Renames(stage, gids, start)
            renames.run()
            renames.watch(timeout=interval * 5 + 10)
            time.sleep(interval * 2 + 1.0)
        counts = task_counts(stage, start)
        lost = {
            event["resource"]["gid"]
            for record in stage.fake.dropped[dropped_before:]
            for event in record.events
            if event["resource"]["gid"] in set(gids)
        }
        return Recovery(
            scenario=scenario,
            changes=len(gids),
            dropped=len(lost),
            recovered=len(lost & set(counts)),
            emitted=len(set(counts) & set(gids)),
            duplicates=sum(1 for n in counts.values() if n > 1),
            missing=len(set(gids) - set(counts)),
            delays=[renames.seen_at[g] - renames.renamed_at[g] for g in renames.seen_at],
        )


def dropping(rate: float) -> Callable[[Stage, str], None]:
    def prepare(stage: Stage, project: str) -> None:
        stage.fake.knobs.drop_rate = rate

    return prepare


def first_second(stage: Stage, project: str) -> None:
    """`webhooks create` in its own process; every delivery dropped 0.1 s after it returns."""
    created = subprocess.run(
        [CLI, "webhooks", "create", "--resource", project],
        env=stage.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert created.stdout
    time.sleep(0.1)
    stage.fake.knobs.drop_rate = 1.0


def token_deleted(stage: Stage, project: str) -> None:
    stage.redis.delete(keys.sync_token(project))
    stage.fake.knobs.drop_rate = 0.5


def resync_412(stage: Stage, project: str) -> None:
    stage.fake.knobs.drop_rate = 0.5
    stage.fake.expire_sync_tokens()


def requests_per_cycle(*, webhooks: int, cycles: int, events_per_cycle: int) -> float:
    """Poller API requests per webhook per cycle (health check + Events API pages)."""
    with fresh_system(DEFAULT_INTERVAL_SECONDS) as stage:
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
    parser.add_argument("--runs", type=int, default=1, help="runs of each scenario")
    parser.add_argument("--no-cost", action="store_true", help="skip part 2")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    scenarios: list[tuple[str, Callable[[Stage, str], None], bool]] = [
        ("steady 10 %", dropping(0.1), True),
        ("steady 30 %", dropping(0.3), True),
        ("steady 50 %", dropping(0.5), True),
        ("first second", first_second, False),
        ("token deleted", token_deleted, True),
        ("412 resync", resync_412, True),
    ]
    print(f"Recovery: {args.tasks} task renames, poll interval {args.interval:g} s, debounce 0.3 s")
    print(
        f"{'scenario':>13} | {'renames':>7} | {'emitted':>7} | {'dropped':>7} | "
        f"{'recovered':>9} | {'recovered/expected':>18} | {'duplicates':>10} | "
        f"{'delay p50':>9} | {'delay max':>9}"
    )
    for name, prepare, registered in scenarios:
        for _ in range(args.runs):
            r = measure(
                name, tasks=args.tasks, interval=args.interval, prepare=prepare,
                registered=registered,
            )  # fmt: skip
            share = 100.0 * r.emitted / r.changes
            p50 = statistics.median(r.delays) if r.delays else float("nan")
            worst = max(r.delays) if r.delays else float("nan")
            print(
                f"{r.scenario:>13} | {r.changes:>7} | {r.emitted:>7} | {r.dropped:>7} | "
                f"{r.recovered:>9} | {share:>17.1f}% | {r.duplicates:>10} | "
                f"{p50:>7.2f} s | {worst:>7.2f} s"
            )
    if args.no_cost:
        return
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
