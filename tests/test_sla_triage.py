"""examples/sla_triage: its pure core, then the whole integration end to end.

End to end: the fake Asana over HTTP, our receiver, two real `asana-hooks worker`
processes, webhooks on two intake projects, and the example's consumer in a thread with a
clock the test moves. Asana's state is read from the fake's world; write calls from its
request log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from asana_hooks import keys
from asana_hooks.asana_client import AsanaClient
from asana_hooks.consumer import Consumer
from asana_hooks.dev.fake_asana.model import Project, Story, Task
from asana_hooks.redis_conn import connect, optional_text, text
from examples.sla_triage import core
from examples.sla_triage.app import SlaTriage
from examples.sla_triage.config import Config, ConfigError, Route
from examples.sla_triage.core import TaskState
from examples.sla_triage.store import Store
from tests.helpers import wait_for
from tests.poller_stage import Stage, running_stage

ROOT = str(Path(__file__).resolve().parents[1])
"""The workers run this checkout's code (a worktree's too)."""
INTAKE = ("101", "102")
COMBINED = "109"
CONFIG = Config(
    intake_projects=frozenset(INTAKE),
    combined_project=COMBINED,
    sla_days={"High": 1, "Low": 7},
    routes=(Route("billing", "201", ("202", "203")), Route("refund", None, ("204",))),
    warn_before=timedelta(hours=12),
)
NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def task_change(entry_id: str = "1-0", **data: Any) -> dict[str, Any]:
    """A task entry as the stream carries it (default fields), in intake project 101."""
    base: dict[str, Any] = {
        "gid": "1",
        "name": "Refund did not arrive",
        "notes": "",
        "completed": False,
        "assignee": None,
        "followers": [{"gid": "300", "name": "Hana"}],
        "due_on": None,
        "memberships": [{"project": {"gid": INTAKE[0], "name": "Email"}}],
        "custom_fields": [{"gid": "500", "name": "Priority", "display_value": None}],
    }
    return {
        "id": entry_id,
        "resource": {"gid": "1", "resource_type": "task"},
        "parent": None,
        "status": "ok",
        "actions": ["changed"],
        "fields": ["custom_fields"],
        "last_event_at": "2026-12-07T09:00:00.000Z",
        "data": {**base, **data},
    }


def story_change(author: str) -> dict[str, Any]:
    return {
        "id": "2-0",
        "resource": {"gid": "7", "resource_type": "story"},
        "parent": {"gid": "1", "resource_type": "task"},
        "status": "ok",
        "data": {"resource_subtype": "comment_added", "created_by": {"gid": author}},
    }


def plan(change: dict[str, Any], state: TaskState | None = None) -> core.Plan | None:
    return core.plan_change(change, state or TaskState(), config=CONFIG, me="900", now=NOW)


def priority(value: str) -> list[dict[str, Any]]:
    return [{"gid": "500", "name": "Priority", "display_value": value}]


class TestCore:
    """A change in, the writes and the state out; no I/O."""

    def test_new_intake_task_goes_to_the_combined_project_once(self) -> None:
        """Added once; its echo (now in the combined project) and a redelivery ask nothing."""
        first = plan(task_change())
        assert first is not None
        assert first.writes == (core.add_to_project("1", COMBINED),)
        assert first.deadline is None
        echo = task_change(
            "2-0",
            memberships=[{"project": {"gid": g}} for g in (INTAKE[0], COMBINED)],
        )
        for change in (echo, task_change()):
            again = plan(change, first.state)
            assert again is not None
            assert again.writes == ()

    def test_other_projects_and_other_types_are_ignored(self) -> None:
        """A task in no intake project, a project entry: no plan."""
        assert plan(task_change(memberships=[{"project": {"gid": COMBINED}}])) is None
        assert plan({"resource": {"gid": "5", "resource_type": "project"}}) is None

    def test_triage_sets_the_due_date_assignee_and_followers_once(self) -> None:
        """High: due the day after the triage; "billing" and "refund" in the notes route it;
        the echo of our writes and a redelivery ask for nothing more."""
        state = TaskState(combined=True)
        triaged = task_change(custom_fields=priority("High"), notes="A Billing refund")
        first = plan(triaged, state)
        assert first is not None
        assert first.writes == (
            core.update_task("1", {"due_on": "2026-12-08", "assignee": "201"}),
            core.add_followers("1", ["202", "203", "204"]),
        )
        assert first.deadline == datetime(2026, 12, 9, tzinfo=UTC)
        echo = {
            **triaged,
            "id": "2-0",
            "data": {
                **triaged["data"],
                "due_on": "2026-12-08",
                "assignee": {"gid": "201"},
                "followers": [{"gid": g} for g in ("300", "201", "202", "203", "204")],
            },
        }
        for change in (echo, triaged):
            again = plan(change, first.state)
            assert again is not None
            assert (again.writes, again.deadline) == ((), first.deadline)

    def test_a_replayed_older_entry_changes_nothing(self) -> None:
        """An entry older than the last one applied (``changes replay``): its stale data
        (another priority, no due date) neither writes nor untracks."""
        applied = plan(task_change("5-0", custom_fields=priority("High"), due_on="2026-12-08"))
        assert applied is not None
        replayed = plan(task_change("4-0", custom_fields=priority("Low")), applied.state)
        assert replayed is not None
        assert (replayed.writes, replayed.state) == ((), applied.state)
        assert replayed.deadline == applied.deadline == datetime(2026, 12, 9, tzinfo=UTC)

    def test_a_human_assignee_is_kept(self) -> None:
        """Routing adds followers but leaves an assignee someone already chose."""
        change = task_change(custom_fields=priority("Low"), notes="billing", assignee={"gid": "7"})
        found = plan(change, TaskState(combined=True))
        assert found is not None
        assert found.writes[0] == core.update_task("1", {"due_on": "2026-12-14"})

    def test_comments_from_others_are_responses_ours_are_not(self) -> None:
        """Another user's comment stops the tracking; the integration's own is ignored."""
        assert plan(story_change("900")) is None
        response = plan(story_change("300"), TaskState(due_on="2026-12-08"))
        assert response is not None
        assert (response.task, response.writes, response.deadline) == ("1", (), None)
        assert response.state.responded
        done = plan(task_change(custom_fields=priority("High")), response.state)
        assert done is not None
        assert done.deadline is None

    def test_check_stories(self) -> None:
        """Our marker for this due date: warned; another's comment: responded; else warn."""
        ours = {
            "resource_subtype": "comment_added",
            "created_by": {"gid": "900"},
            "text": core.warning_text("2026-12-08"),
        }
        theirs = {"resource_subtype": "comment_added", "created_by": {"gid": "300"}}
        system = {"resource_subtype": "assigned", "created_by": {"gid": "300"}}
        check = core.check_stories
        assert check([system], me="900", due_on="2026-12-08") == "warn"
        assert check([system, ours], me="900", due_on="2026-12-08") == "warned"
        assert check([ours], me="900", due_on="2026-12-09") == "warn"
        assert check([theirs], me="900", due_on="2026-12-08") == "responded"

    def test_config_errors_name_the_key(self) -> None:
        """A bad value stops at start with its key."""
        raw: dict[str, Any] = {"intake_projects": ["1"], "combined_project": "2"}
        with pytest.raises(ConfigError, match=r"^sla_days"):
            Config.from_dict(raw)
        with pytest.raises(ConfigError, match=r"^routes\[0\]\.followers\[0\]"):
            Config.from_dict(
                {**raw, "sla_days": {"High": 1}, "routes": [{"keyword": "x", "followers": ["me"]}]}
            )


# End to end -----------------------------------------------------------------------------------


@dataclass
class MovableClock:
    """Real time plus an offset the test moves."""

    offset: timedelta = field(default=timedelta())

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class World:
    stage: Stage
    integration: SlaTriage
    clock: MovableClock
    intake: tuple[str, str]
    combined: str
    priority: str
    hana: str
    ana: str
    bo: str
    cy: str

    def task(self, gid: str) -> Task:
        return self.stage.fake.world.typed(gid, Task)

    def warnings(self, gid: str) -> list[Story]:
        return [s for s in self.stage.fake.world.stories_of(gid) if core.MARKER in s.text]

    def writes(self) -> list[tuple[str, str]]:
        return [
            (c.method, c.path)
            for c in self.stage.fake.calls
            if c.method != "GET" and c.path.startswith("/tasks")
        ]


def settled(stage: Stage, group: str) -> None:
    """Wait until every change made so far is in the stream and handled by ``group``: the
    stream stops growing for longer than a batch can stay open, with nothing unread."""

    def position() -> tuple[str, str, int]:
        last: Any = stage.redis.xrevrange(keys.CHANGES_STREAM, count=1)
        (info,) = [
            g for g in stage.redis.xinfo_groups(keys.CHANGES_STREAM) if g["name"] == group.encode()
        ]
        return (
            text(last[0][0]) if last else "",
            str(optional_text(info["last-delivered-id"])),
            int(info["pending"]),
        )

    def quiet() -> bool:
        before = position()
        time.sleep(1.5)
        last, delivered, pending = position()
        return (last, delivered, pending) == before and last == delivered and pending == 0

    stage.fake.wait_idle()
    wait_for(quiet, timeout=20, every=0)


@pytest.fixture
def world(environ: dict[str, str]) -> Iterator[World]:
    with running_stage(
        environ, HOOKS_DEBOUNCE_SECONDS="0.2", HOOKS_MAX_DELAY_SECONDS="1", PYTHONPATH=ROOT
    ) as stage:
        stage.start_workers(2)
        fake = stage.fake.world
        intake = (stage.project("Intake: email"), stage.project("Intake: forum"))
        combined = stage.project("All requests")
        priority = fake.add_custom_field(
            stage.workspace, "Priority", type="enum", enum_options=["High", "Low"]
        )
        for project in (*intake, combined):
            fake.typed(project, Project).custom_field_settings.append(priority)
        people = [
            fake.add_user(name, workspace=stage.workspace) for name in ("Hana", "Ana", "Bo", "Cy")
        ]
        hana, ana, bo, cy = people
        for project in intake:
            stage.register(project)
        config = Config(
            intake_projects=frozenset(intake),
            combined_project=combined,
            sla_days={"High": 1, "Low": 2},
            routes=(Route("billing", ana, (bo, cy)),),
            warn_before=timedelta(hours=12),
        )
        connection = connect(stage.settings.redis_url, socket_timeout=5.0)
        stage.cleanup.callback(connection.close)
        asana = stage.cleanup.enter_context(AsanaClient(stage.settings, connection))
        clock = MovableClock()
        integration = SlaTriage(
            config,
            asana=asana,
            store=Store(connection),
            me=SlaTriage.whoami(asana),
            clock=clock,
        )
        assert integration.me == stage.user  # the fake's token acts as its first user
        consumer = Consumer(config.group, redis_url=stage.settings.redis_url, start="0")
        stage.cleanup.callback(consumer.close)
        thread = threading.Thread(
            target=integration.run, args=(consumer,), kwargs={"sweep_every": 0.2}, daemon=True
        )
        thread.start()
        yield World(stage, integration, clock, intake, combined, priority, hana, ana, bo, cy)
        consumer.stop()
        thread.join(10)


class TestEndToEnd:
    """Webhooks on two intake projects -> receiver -> workers -> stream -> the example."""

    def test_the_seeds_workflow(self, world: World) -> None:
        """Combined project, due date by priority, routing by keyword, one SLA warning for
        the task nobody answered, and no write caused by the integration's own writes."""
        fake = world.stage.fake.world
        email = fake.add_task(
            "Refund did not arrive",
            projects=[world.intake[0]],
            by=world.hana,
            notes="A billing question from a customer.",
        )
        forum = fake.add_task("Docs typo", projects=[world.intake[1]], by=world.hana)
        wait_for(
            lambda: all(world.combined in world.task(t).projects for t in (email, forum)),
            timeout=15,
        )

        triaged_on = datetime.now(UTC).date()
        fake.set_custom_field(email, world.priority, "High", by=world.hana)
        fake.set_custom_field(forum, world.priority, "Low", by=world.hana)
        wait_for(lambda: world.task(email).followers[-2:] == [world.bo, world.cy], timeout=15)
        wait_for(lambda: world.task(forum).due_on is not None, timeout=15)
        assert world.task(email).due_on == (triaged_on + timedelta(days=1)).isoformat()
        assert world.task(email).assignee == world.ana
        assert world.task(forum).due_on == (triaged_on + timedelta(days=2)).isoformat()
        assert (world.task(forum).assignee, world.task(forum).followers) == (None, [world.hana])

        fake.add_comment(forum, "Fixed, thanks!", by=world.hana)
        settled(world.stage, world.integration.config.group)
        assert world.warnings(email) == []  # the clock is still far from the due date

        due = date.fromisoformat(str(world.task(forum).due_on))
        deadline = datetime(due.year, due.month, due.day, tzinfo=UTC) + timedelta(days=1)
        world.clock.offset = deadline - timedelta(hours=11) - datetime.now(UTC)
        wait_for(lambda: world.warnings(email), timeout=5)
        settled(world.stage, world.integration.config.group)
        assert len(world.warnings(email)) == 1
        assert world.warnings(forum) == []

        expected = [
            ("POST", f"/tasks/{email}/addProject"),
            ("POST", f"/tasks/{forum}/addProject"),
            ("PUT", f"/tasks/{email}"),
            ("POST", f"/tasks/{email}/addFollowers"),
            ("PUT", f"/tasks/{forum}"),
            ("POST", f"/tasks/{email}/stories"),
        ]
        assert sorted(world.writes()) == sorted(expected)
        (newest, *_) = [
            c["data"] for c in reversed(world.stage.changes()) if c["resource"]["gid"] == email
        ]
        assert {f["gid"] for f in newest["followers"]} >= {world.bo, world.cy}
        assert core.custom_value(newest, "Priority") == "High"

        # At-least-once: every entry handled again, and a sweep whose bookkeeping was lost
        # (a crash after the comment): still nothing new.
        world.stage.redis.xgroup_setid(keys.CHANGES_STREAM, world.integration.config.group, "0")
        store = world.integration.store
        lost = replace(store.load(email), warned=None)
        store.save(core.Plan(email, (), lost, core.sla_deadline(str(world.task(email).due_on))))
        settled(world.stage, world.integration.config.group)
        assert len(world.warnings(email)) == 1
        assert store.load(email).warned == world.task(email).due_on
        assert sorted(world.writes()) == sorted(expected)
