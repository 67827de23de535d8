"""Watches at scale: subscribing a team, the poller's cost per webhook, recovery. Prints tables.

    .venv/bin/python -m bench.watch [--projects 500] [--runs 3]

Each part runs on a fresh system: an embedded Redis, the fake Asana over HTTP (answering as
Asana documents, with its caps and its 15 concurrent writes), our receiver (every project
webhook's handshake reaches it during its ``POST /webhooks``), real worker processes.

1. Subscribe: `asana-hooks watch add --team T` (the real command, its own process) on a
   team of ``--projects`` projects: seconds, API requests per project (goal: about 2, the
   sync token and the ``POST /webhooks``), the most requests in any 60 s (the budget is
   1,500) and 429s. Baseline in the same run: `webhooks create`, one process per project, as
   one had to before watches, on 20 projects; the ratio is seconds per project.
2. The poller's cost at the default interval (300 s): API requests per idle webhook per hour
   over all the watch's webhooks, from forced cycles (goal: at most 13; 24 before, one
   ``GET /webhooks/{gid}`` per webhook per cycle). And what a running cycle adds to a fresh
   change under a budget smaller than one cycle needs (400/min): the worst delay from a
   rename to its entry while a cycle runs, with the poller in its background lane, and in
   the workers' lane as before the lanes (the baseline), against a rename with no cycle
   running; Asana's answers slowed to 20 ms.
3. Recovery: a watch on 120 projects with workers and a poller (interval 2 s); 10 % of
   deliveries dropped; a rename in each of 100 random projects and 20 projects created during
   the run, each with a task made right away. Every change must be emitted once; the delay
   from change to entry (median, worst).
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import subprocess
import threading
import time
from collections import Counter

from asana_hooks import keys
from asana_hooks.asana_client import AsanaClient
from asana_hooks.redis_conn import connect
from asana_hooks.settings import Settings
from bench.common import busiest_minute
from tests.helpers import wait_for
from tests.poller_stage import CLI, Stage, fresh_system, polling
from workers.poller.loop import Poller

DEFAULT_INTERVAL_SECONDS = 300.0
TIGHT_BUDGET = 400
"""Part 2's budget while a cycle runs: less than the cycle needs, so the lanes matter."""


def cli(stage: Stage, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], env=stage.env, capture_output=True, text=True, timeout=900, check=True
    )


def subscribe(projects: int) -> dict[str, float]:
    with fresh_system(DEFAULT_INTERVAL_SECONDS) as stage:
        team, _ = stage.fake.world.seed_team(stage.workspace, "Support", projects=projects)
        alone = [stage.project(f"Alone {n}") for n in range(20)]
        stage.fake.reset_records()
        began = time.monotonic()
        for project in alone:
            cli(stage, "webhooks", "create", "--resource", project)
        baseline = (time.monotonic() - began) / len(alone)
        stage.fake.reset_records()
        began = time.monotonic()
        cli(stage, "watch", "add", "--team", team)
        seconds = time.monotonic() - began
        calls = stage.fake.calls
        return {
            "seconds": seconds,
            "per_project": seconds / projects,
            "baseline_per_project": baseline,
            "requests_per_project": len(calls) / projects,
            "busiest_minute": busiest_minute([c.started_at for c in calls]),
            "429s": sum(1 for c in calls if c.status == 429),
            "webhooks": sum(1 for w in stage.fake.webhooks.values() if w.resource_gid not in alone),
        }


def rename_delay(stage: Stage, project: str) -> float:
    """Seconds from a rename to its entry."""
    task = stage.fake.world.add_task("fresh", projects=[project], by=stage.user)
    wait_for(lambda: any(c["resource"]["gid"] == task for c in stage.changes()), timeout=60)
    start = len(stage.changes())
    began = time.monotonic()
    stage.fake.world.update_task(task, by=stage.user, name="renamed")
    wait_for(lambda: any(c["resource"]["gid"] == task for c in stage.changes()[start:]), timeout=60)
    return time.monotonic() - began


def poller_cost(projects: int) -> dict[str, float]:
    """Requests per cycle (with room in the budget), then a fresh rename's delay while a cycle
    runs under a budget too small for the cycle: the poller in the background lane, and in
    the fresh lane as before the lanes (the baseline)."""
    with fresh_system(DEFAULT_INTERVAL_SECONDS, budget=100_000) as stage:
        team, gids = stage.fake.world.seed_team(stage.workspace, "Support", projects=projects)
        cli(stage, "watch", "add", "--team", team)
        poller = stage.poller(force=True)
        poller.run_cycle()
        per_cycle = []
        for _ in range(3):
            stage.fake.reset_records()
            poller.run_cycle()
            per_cycle.append(len(stage.fake.calls))
        webhooks = sum(1 for w in stage.fake.webhooks.values() if w.resource_gid in {team, *gids})
        stage.redis.delete(keys.API_BUDGET)
        stage.env["ASANA_RATE_LIMIT_PER_MINUTE"] = str(TIGHT_BUDGET)
        tight = Settings.from_environ(stage.env)
        stage.start_workers(2)
        stage.fake.knobs.api_latency = 0.02
        quiet = [rename_delay(stage, gids[0]) for _ in range(3)]
        delays = {}
        for lane in ("background", "fresh"):
            stage.redis.delete(keys.API_BUDGET)
            connection = connect(tight.redis_url, socket_timeout=5.0)
            with AsanaClient(tight, connection, lane=lane) as client:
                busy_poller = Poller(tight, connection, client, force=True)
                cycle = threading.Thread(target=busy_poller.run_cycle)
                cycle.start()
                time.sleep(2.0)
                found: list[float] = []
                while cycle.is_alive() and len(found) < 3:
                    found.append(rename_delay(stage, gids[1 + len(found)]))
                    time.sleep(1.0)
                cycle.join()
            connection.close()
            delays[lane] = max(found) if found else float("nan")
        return {
            "webhooks": webhooks,
            "requests_per_cycle": statistics.median(per_cycle),
            "per_webhook_hour": statistics.median(per_cycle) / webhooks * 3600 / 300,
            "quiet_delay": statistics.median(quiet),
            "busy_delay": delays["background"],
            "busy_delay_fresh_lane": delays["fresh"],
        }


def recovery() -> dict[str, float]:
    with fresh_system(2.0) as stage:
        world = stage.fake.world
        team, gids = world.seed_team(stage.workspace, "Support", projects=120)
        tasks = {p: world.add_task(f"task of {p}", projects=[p], by=stage.user) for p in gids}
        cli(stage, "watch", "add", "--team", team)
        stage.start_workers(2)
        with polling(stage.poller()):
            time.sleep(3)  # a first poll of every project
            start = len(stage.changes())
            stage.fake.knobs.drop_rate = 0.1
            changed_at: dict[str, float] = {}
            chosen = random.Random(7).sample(gids, 100)
            for n, project in enumerate(chosen):
                world.update_task(tasks[project], by=stage.user, name=f"renamed {n}")
                changed_at[tasks[project]] = time.monotonic()
                if n % 5 == 0:
                    new = world.add_project(f"New {n}", stage.workspace, team=team, by=stage.user)
                    first = world.add_task("first", projects=[new], by=stage.user)
                    changed_at[first] = time.monotonic()
                time.sleep(0.05)
            seen: dict[str, float] = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(seen) < len(changed_at):
                for change in stage.changes()[start:]:
                    seen.setdefault(change["resource"]["gid"], time.monotonic())
                time.sleep(0.05)
            time.sleep(5)
            counts = Counter(c["resource"]["gid"] for c in stage.changes()[start:])
        delays = [seen[g] - changed_at[g] for g in changed_at if g in seen]
        return {
            "changes": len(changed_at),
            "emitted": sum(1 for g in changed_at if counts[g] >= 1),
            "doubled": sum(1 for g in changed_at if counts[g] > 1),
            "dropped": len(stage.fake.dropped),
            "p50": statistics.median(delays),
            "max": max(delays),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    print(f"1. Subscribe a team of {args.projects} projects (median of {args.runs} runs)")
    runs = [subscribe(args.projects) for _ in range(args.runs)]
    med = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    print(
        f"   watch add: {med['seconds']:.1f} s, {med['per_project'] * 1000:.0f} ms/project; "
        f"`webhooks create` one by one: {med['baseline_per_project'] * 1000:.0f} ms/project; "
        f"ratio {med['per_project'] / med['baseline_per_project']:.2f}"
    )
    print(
        f"   API requests: {med['requests_per_project']:.2f} per project; busiest minute "
        f"{med['busiest_minute']:.0f} (budget 1500); 429s {med['429s']:.0f}; the watch's "
        f"webhooks at Asana {med['webhooks']:.0f} ({args.projects} projects + the team's)"
    )

    print(f"2. The poller over {args.projects} idle project webhooks, default interval 300 s")
    cost = poller_cost(args.projects)
    print(
        f"   {cost['requests_per_cycle']:.0f} requests per cycle for {cost['webhooks']:.0f} "
        f"webhooks: {cost['per_webhook_hour']:.1f} per webhook per hour (floor: 12, one Events "
        "API poll per cycle; before: 24)"
    )
    print(
        f"   a fresh rename's delay (worst of 3), budget {TIGHT_BUDGET}/min: "
        f"{cost['quiet_delay']:.2f} s alone; while a cycle runs: "
        f"{cost['busy_delay']:.2f} s with the poller in the background lane, "
        f"{cost['busy_delay_fresh_lane']:.2f} s in the same lane as the workers (before); "
        f"ratio {cost['busy_delay'] / cost['quiet_delay']:.2f} and "
        f"{cost['busy_delay_fresh_lane'] / cost['quiet_delay']:.2f}"
    )

    print("3. Recovery: 10 % dropped, 100 renames and 20 new projects, interval 2 s")
    found = recovery()
    print(
        f"   {found['emitted']:.0f}/{found['changes']:.0f} changes emitted "
        f"({100 * found['emitted'] / found['changes']:.0f} %), {found['doubled']:.0f} doubled, "
        f"{found['dropped']:.0f} deliveries dropped; delay p50 {found['p50']:.2f} s, "
        f"max {found['max']:.2f} s"
    )


if __name__ == "__main__":
    main()
