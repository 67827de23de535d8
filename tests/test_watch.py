"""Watches (DESIGN.md §6.2): a team's projects followed as they come and go.

Real processes throughout: the fake Asana over HTTP, our receiver (every handshake of every
project webhook reaches it during its ``POST /webhooks``), `asana-hooks watch ...` as a
process, `asana-hooks worker` processes, pollers in threads.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from asana_hooks import keys
from tests.helpers import wait_for
from tests.operator_system import CliResult, invoke_cli
from tests.poller_stage import CLI, Stage, polling, running_stage
from workers.rq_worker import build_worker

POLL_INTERVAL = 1.0
DEBOUNCE = 0.3
SCOPE_ACTIONS = ["added", "removed", "deleted", "undeleted", "changed"]


@pytest.fixture
def stage(environ: dict[str, str]) -> Iterator[Stage]:
    with running_stage(
        environ,
        HOOKS_POLL_INTERVAL_SECONDS=str(POLL_INTERVAL),
        HOOKS_DEBOUNCE_SECONDS=str(DEBOUNCE),
    ) as running:
        yield running


def cli(stage: Stage, *args: str) -> CliResult:
    """`asana-hooks ARGS` through its real entry point, in this process."""
    return invoke_cli(*args, env=stage.env)


def add_watch(stage: Stage, *args: str) -> dict[str, Any]:
    done = cli(stage, "watch", "add", *args, "--json")
    assert done.code == 0, done.stderr
    found: dict[str, Any] = done.json()
    return found


def webhooks_on(stage: Stage) -> Counter[str]:
    """Resource gid -> how many webhooks the fake holds on it."""
    return Counter(w.resource_gid for w in stage.fake.webhooks.values())


def project_webhooks(stage: Stage, watch_id: str) -> dict[str, str]:
    """Project gid -> webhook gid, from `watch status --json`."""
    status = cli(stage, "watch", "status", watch_id, "--json").json()
    return {w["project"]["gid"]: w["gid"] for w in status["webhooks"] if w["state"] == "active"}


def assert_no_orphans(stage: Stage) -> None:
    """Every webhook at the fake delivers to a target we know and is active here."""
    listed = {w["gid"]: w for w in cli(stage, "webhooks", "list", "--json").json()}
    for gid, webhook in stage.fake.webhooks.items():
        assert gid in listed, f"webhook {gid} at Asana is unknown here"
        assert listed[gid]["state"] == "active"
        assert webhook.target == listed[gid]["target"]


class TestAdd:
    def test_a_team_of_30(self, stage: Stage) -> None:
        world = stage.fake.world
        team, projects = world.seed_team(stage.workspace, "Support", projects=30)
        archived = world.add_project("Old", stage.workspace, team=team)
        world.archive_project(archived)
        _, elsewhere = world.seed_team(stage.workspace, "Sales", projects=1)

        added = add_watch(stage, "--team", team, "--filter", "task:changed")
        assert added["state"] == "active"
        assert added["projects"] == 30
        assert added["scope"] == {"gid": team, "resource_type": "team", "name": "Support"}
        assert added["failed"] == []

        on = webhooks_on(stage)
        assert {gid: on[gid] for gid in projects} == dict.fromkeys(projects, 1)
        assert on[archived] == 0
        assert on[elsewhere[0]] == 0
        [scope_hook] = [w for w in stage.fake.webhooks.values() if w.resource_gid == team]
        assert sorted(str(f.action) for f in scope_hook.filters) == sorted(SCOPE_ACTIONS)
        assert {f.resource_type for f in scope_hook.filters} == {"project"}
        assert_no_orphans(stage)

        listed = cli(stage, "webhooks", "list", "--json").json()
        assert {w["watch"] for w in listed} == {added["id"]}
        [watch] = cli(stage, "watch", "list", "--json").json()
        assert set(watch) >= {
            "id",
            "scope",
            "filters",
            "include_archived",
            "state",
            "projects",
            "created_at",
        }
        assert watch["filters"] == [{"resource_type": "task", "action": "changed"}]
        status = cli(stage, "watch", "status", added["id"], "--json").json()
        assert set(status) >= set(watch) | {"webhooks", "scope_webhook", "last_reconciled_at"}
        assert {w["project"]["gid"] for w in status["webhooks"]} == set(projects)
        assert status["scope_webhook"]["resource"]["gid"] == team

        again = add_watch(stage, "--team", team, "--filter", "task:changed")
        assert again["id"] == added["id"]
        assert sum(webhooks_on(stage).values()) == 31

    def test_include_archived_and_a_plain_progress_line_per_tenth(self, stage: Stage) -> None:
        world = stage.fake.world
        team, _ = world.seed_team(stage.workspace, "Support", projects=19)
        archived = world.add_project("Old", stage.workspace, team=team)
        world.archive_project(archived)
        done = cli(stage, "watch", "add", "--team", team, "--include-archived")
        assert done.code == 0, done.stderr
        assert webhooks_on(stage)[archived] == 1
        progress = [line for line in done.stderr.splitlines() if line.startswith("subscribed")]
        assert progress[0] == "subscribed 2/20 projects (10%)"
        assert progress[-1] == "subscribed 20/20 projects (100%)"
        assert len(progress) == 10

    def test_entries_name_the_watch(self, stage: Stage) -> None:
        team, [project] = stage.fake.world.seed_team(stage.workspace, "Support", projects=1)
        watch_id = add_watch(stage, "--team", team)["id"]
        stage.start_workers(1)
        task = stage.fake.world.add_task("Reply", projects=[project], by=stage.user)
        entry = wait_for(
            lambda: next((c for c in stage.changes() if c["resource"]["gid"] == task), None),
            timeout=15,
        )
        assert entry["watch"] == watch_id


class TestBadInput:
    """One line, exit 2, nothing created."""

    @pytest.mark.parametrize(
        ("args", "says"),
        [
            (["--team", "999999"], "Asana has no team 999999"),
            (["--team", "task"], "an Asana gid is a string of digits"),
            (["--team", "1", "--workspace", "2"], "exactly one of"),
            (["--team", "TEAM", "--filter", "team:added"], "drop the team filter"),
            (["--team", "TEAM", "--filter", "task:added:name"], "only allowed with"),
        ],
    )
    def test_refused(self, stage: Stage, args: list[str], says: str) -> None:
        team, _ = stage.fake.world.seed_team(stage.workspace, "Support", projects=2)
        done = cli(stage, "watch", "add", *[team if a == "TEAM" else a for a in args])
        assert done.code == 2, done.stderr
        assert says in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert stage.fake.webhooks == {}
        assert cli(stage, "watch", "list", "--json").json() == []

    def test_a_task_gid_as_team(self, stage: Stage) -> None:
        project = stage.project()
        task = stage.fake.world.add_task("Not a team", projects=[project], by=stage.user)
        done = cli(stage, "watch", "add", "--team", task)
        assert done.code == 2
        assert f"Asana has no team {task}" in done.stderr
        assert stage.fake.webhooks == {}

    def test_over_the_cap_per_user_and_app(self, stage: Stage) -> None:
        elsewhere = stage.project("Elsewhere")
        stage.fake.hold_webhooks(995, resource=elsewhere)
        for _ in range(9):  # 9,955 webhooks: 45 left of Asana's 10,000
            stage.fake.hold_webhooks(1_000, resource=stage.project("More"))
        team, _ = stage.fake.world.seed_team(stage.workspace, "Support", projects=45)
        held = set(stage.fake.webhooks)
        done = cli(stage, "watch", "add", "--team", team)
        assert done.code == 2
        assert "this needs 46 new webhooks and this token already holds 9995" in done.stderr
        assert "Asana allows 10,000 per user per app; nothing was created" in done.stderr
        assert set(stage.fake.webhooks) == held
        assert cli(stage, "watch", "list", "--json").json() == []

    def test_over_the_cap_per_resource(self, stage: Stage) -> None:
        team, _ = stage.fake.world.seed_team(stage.workspace, "Support", projects=2)
        stage.fake.hold_webhooks(1_000, resource=team)
        done = cli(stage, "watch", "add", "--team", team)
        assert done.code == 2
        assert f"resource {team} already has 1000 webhooks: Asana allows 1,000" in done.stderr
        assert len(stage.fake.webhooks) == 1_000


class TestInterrupted:
    def test_killed_half_way_then_run_again(self, stage: Stage) -> None:
        team, projects = stage.fake.world.seed_team(stage.workspace, "Support", projects=40)
        stage.fake.knobs.api_latency = 0.05
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **stage.env}
        process = subprocess.Popen(
            [CLI, "watch", "add", "--team", team],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(lambda: len(stage.fake.webhooks) >= 12, timeout=30)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
        assert len(stage.fake.webhooks) < 41
        stage.fake.knobs.api_latency = 0.0
        added = add_watch(stage, "--team", team)
        assert added["projects"] == 40
        on = webhooks_on(stage)
        assert {gid: on[gid] for gid in projects} == dict.fromkeys(projects, 1)
        assert on[team] == 1
        assert_no_orphans(stage)

    def test_the_poller_finishes_what_a_run_left(self, stage: Stage) -> None:
        team, projects = stage.fake.world.seed_team(stage.workspace, "Support", projects=10)
        stage.fake.knobs.max_webhooks_per_token = 6  # the run fails part way, like 429s would
        done = cli(stage, "watch", "add", "--team", team)
        assert done.code == 1
        assert "the poller keeps trying them" in done.stderr
        stage.fake.knobs.max_webhooks_per_token = 10_000
        stage.poller(force=True).run_cycle()
        on = webhooks_on(stage)
        assert {gid: on[gid] for gid in projects} == dict.fromkeys(projects, 1)
        [watch] = cli(stage, "watch", "list", "--json").json()
        assert watch["state"] == "active"
        assert_no_orphans(stage)


class TestLifecycle:
    """With workers and two pollers running: projects enter and leave the scope."""

    @pytest.fixture
    def watched(self, stage: Stage) -> Iterator[tuple[Stage, str, str, list[str]]]:
        team, projects = stage.fake.world.seed_team(stage.workspace, "Support", projects=3)
        watch_id = add_watch(stage, "--team", team)["id"]
        stage.start_workers(2)
        with polling(stage.poller()), polling(stage.poller()):
            yield stage, team, watch_id, projects

    def test_projects_come_and_go(self, watched: tuple[Stage, str, str, list[str]]) -> None:
        stage, team, watch_id, projects = watched
        world = stage.fake.world

        new = world.add_project("Launch", stage.workspace, team=team, by=stage.user)
        first = world.add_task("First task", projects=[new], by=stage.user)
        wait_for(lambda: new in project_webhooks(stage, watch_id), timeout=15)
        entry = wait_for(
            lambda: next((c for c in stage.changes() if c["resource"]["gid"] == first), None),
            timeout=15,
        )
        assert entry["watch"] == watch_id

        world.archive_project(projects[0])
        wait_for(lambda: webhooks_on(stage)[projects[0]] == 0, timeout=15)
        world.archive_project(projects[0], archived=False)
        wait_for(lambda: webhooks_on(stage)[projects[0]] == 1, timeout=15)

        other, _ = world.seed_team(stage.workspace, "Sales")
        world.move_project(projects[1], team=other)
        wait_for(lambda: webhooks_on(stage)[projects[1]] == 0, timeout=15)

        world.delete_project(projects[2])
        wait_for(lambda: projects[2] not in project_webhooks(stage, watch_id), timeout=15)

        time.sleep(POLL_INTERVAL * 2)
        on = webhooks_on(stage)
        assert on[new] == 1
        assert on[projects[0]] == 1
        assert on[projects[1]] == 0
        assert max(on.values()) == 1
        assert_no_orphans(stage)
        counted = Counter(c["resource"]["gid"] for c in stage.changes())
        assert counted[first] == 1

    def test_a_dropped_scope_event_is_caught_by_reconciliation(
        self, watched: tuple[Stage, str, str, list[str]]
    ) -> None:
        stage, team, watch_id, _ = watched
        stage.fake.knobs.drop_rate = 1.0
        new = stage.fake.world.add_project("Quiet", stage.workspace, team=team, by=stage.user)
        wait_for(lambda: new in project_webhooks(stage, watch_id), timeout=POLL_INTERVAL * 5)
        assert webhooks_on(stage)[new] == 1


class TestScopeEvents:
    def test_a_workers_job_reconciles_the_watch_when_the_scope_reports_a_project(
        self, stage: Stage
    ) -> None:
        """No poller: the scope webhook's `project:added` alone brings the new project's
        webhook, through the delivery job and the reconcile job it enqueues."""
        team, _ = stage.fake.world.seed_team(stage.workspace, "Support", projects=2)
        watch_id = add_watch(stage, "--team", team)["id"]
        queue = f"rq:queue:{keys.QUEUE}"
        stage.fake.wait_idle()
        stage.redis.delete(queue)  # the heartbeats' jobs: not what this test is about
        new = stage.fake.world.add_project("Launch", stage.workspace, team=team, by=stage.user)
        wait_for(lambda: stage.redis.llen(queue) >= 1, timeout=10)
        build_worker(stage.settings).work(burst=True, logging_level="WARNING")
        assert new in project_webhooks(stage, watch_id)
        assert webhooks_on(stage)[new] == 1


class TestOtherScopes:
    def test_a_portfolio(self, stage: Stage) -> None:
        world = stage.fake.world
        portfolio = world.add_portfolio(stage.workspace, "Roadmap")
        inside = [stage.project(f"P{n}") for n in range(3)]
        for project in inside:
            world.add_project_to_portfolio(portfolio, project)
        outside = stage.project("Not in it")
        watch_id = add_watch(stage, "--portfolio", portfolio)["id"]
        assert set(project_webhooks(stage, watch_id)) == set(inside)
        world.add_project_to_portfolio(portfolio, outside)
        world.remove_project_from_portfolio(portfolio, inside[0])
        stage.poller(force=True).run_cycle()
        assert set(project_webhooks(stage, watch_id)) == {*inside[1:], outside}
        assert webhooks_on(stage)[inside[0]] == 0

    def test_a_workspace_and_its_projects_only(self, stage: Stage) -> None:
        _, in_team = stage.fake.world.seed_team(stage.workspace, "Support", projects=2)
        loose = stage.project("Loose")
        added = add_watch(stage, "--workspace", stage.workspace)
        assert set(project_webhooks(stage, added["id"])) == {*in_team, loose}
        assert added["scope"]["resource_type"] == "workspace"
        stage.poller(force=True).run_cycle()
        streams = {c.query.get("resource") for c in stage.fake.calls if c.path == "/events"}
        assert streams == {*in_team, loose}  # never the workspace: Asana streams no scope


class TestRemove:
    def test_remove_leaves_nothing_at_asana(self, stage: Stage) -> None:
        team, _ = stage.fake.world.seed_team(stage.workspace, "Support", projects=5)
        watch_id = add_watch(stage, "--team", team)["id"]
        assert len(stage.fake.webhooks) == 6
        done = cli(stage, "watch", "remove", watch_id)
        assert done.code == 0, done.stderr
        assert f"removed watch {watch_id}: 6 webhook(s) deleted" in done.stdout
        assert stage.fake.webhooks == {}
        assert cli(stage, "watch", "list", "--json").json() == []
        states = {w["state"] for w in cli(stage, "webhooks", "list", "--json").json()}
        assert states == {"deleted"}
        assert json.loads(cli(stage, "watch", "list", "--json").stdout) == []
