"""`webhooks retarget`: webhooks moved to a new public URL with no gap, safely re-runnable.

Two of our receivers on 127.0.0.1 stand for the old and the new public URL (one Redis behind
both, as one deployment reached at two addresses); the fake Asana delivers over HTTP; the CLI
runs as a real process; workers run in this process (real RQ on the real Redis).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from asana_hooks import keys
from asana_hooks.public_url import record_live_tunnel
from asana_hooks.registry import Registration
from asana_hooks.retarget import Retargeter
from asana_hooks.settings import Settings
from asana_hooks.watches import WatchStore
from receiver.app import create_app
from tests.helpers import serve_in_thread, wait_for
from tests.operator_system import CliResult, invoke_cli
from tests.poller_stage import Stage, running_stage
from tests.worker_support import run_workers_until


@dataclass
class Move:
    stage: Stage
    old_url: str
    new_url: str

    def cli(self, *args: str, **env: str) -> CliResult:
        return invoke_cli(*args, env={**self.stage.env, **env})

    def mover(self) -> Retargeter:
        return Retargeter(
            self.stage.client,
            self.stage.registry,
            WatchStore(self.stage.redis),
            public_url=self.new_url,
        )

    def on(self, resource: str) -> list[Any]:
        """The fake's webhooks on one resource."""
        return [w for w in self.stage.fake.webhooks.values() if w.resource_gid == resource]


def _passthrough() -> dict[str, str]:
    """CLI subprocesses run the code under test (a worktree's, when PYTHONPATH names one)."""
    return {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}


@pytest.fixture
def move(environ: dict[str, str]) -> Iterator[Move]:
    with running_stage({**environ, **_passthrough()}) as stage:
        app = create_app(Settings.from_environ(stage.env))
        with serve_in_thread(app) as new_url:
            yield Move(stage, stage.settings.require_public_url(), new_url)


def created(move: Move, project: str) -> Registration:
    registration = move.stage.register(project)
    assert registration.state == "active"
    return registration


class TestRetarget:
    """The new webhook is made (handshake, secret check) before the old one goes."""

    def test_moves_to_the_new_url_with_a_new_secret(self, move: Move) -> None:
        """After retarget, Asana holds one webhook on the resource, on a new target under the
        new URL with a new secret; the old one is deleted at Asana and here."""
        project = move.stage.project()
        old = created(move, project)
        [before] = move.on(project)

        done = move.cli("webhooks", "retarget", "--all", "--to", move.new_url, "--json")

        assert done.code == 0, done.stderr
        [outcome] = done.json()
        assert outcome["error"] is None
        assert outcome["from"]["gid"] == old.webhook_gid
        assert outcome["to"]["target"].startswith(f"{move.new_url}/hooks/asana/")
        assert outcome["to"]["target_current"] is True
        [after] = move.on(project)
        assert after.gid == outcome["to"]["gid"] != old.webhook_gid
        assert after.target == outcome["to"]["target"]
        assert after.secret != before.secret
        assert old.webhook_gid not in move.stage.fake.webhooks
        listed = {
            w["target_id"]: w
            for w in move.cli("webhooks", "list", "--json", HOOKS_PUBLIC_URL=move.new_url).json()
        }
        assert listed[old.target_id]["state"] == "deleted"
        assert listed[outcome["to"]["target_id"]]["state"] == "active"
        assert listed[outcome["to"]["target_id"]]["target_current"] is True

    def test_a_change_made_mid_move_is_emitted_once(self, move: Move) -> None:
        """While both webhooks deliver, a change reaches us twice and is emitted once."""
        project = move.stage.project()
        task = move.stage.fake.world.add_task("Draft", projects=[project])
        old = created(move, project)
        mover = move.mover()
        new = mover.open_new(old)
        assert len(move.on(project)) == 2

        move.stage.fake.world.update_task(task, name="Final")
        move.stage.fake.wait_idle()
        mover.close_old(old, new)

        targets = {
            d.target
            for d in move.stage.fake.deliveries
            if any((e.get("resource") or {}).get("gid") == task for e in d.events)
            and any(e.get("action") == "changed" for e in d.events)
        }
        assert targets == {old.target_url, new.target_url}
        entries = run_workers_until(
            move.stage.settings,
            lambda: [
                c
                for c in move.stage.changes()
                if c["resource"]["gid"] == task and c["data"]["name"] == "Final"
            ],
        )
        run_workers_until(move.stage.settings, lambda: True)
        named = [c for c in move.stage.changes() if c["resource"]["gid"] == task]
        assert len([c for c in named if "changed" in c["actions"]]) == 1, named
        assert entries[0]["data"]["name"] == "Final"
        assert [w.target for w in move.on(project)] == [new.target_url]


class TestInterrupted:
    """A retarget stopped half way and run again: no duplicate, no orphan."""

    def test_stopped_after_the_new_webhook(self, move: Move) -> None:
        """The run again keeps the webhook made before, and deletes the old one."""
        project = move.stage.project()
        old = created(move, project)
        new = move.mover().open_new(old)  # ... and the process died here

        done = move.cli("webhooks", "retarget", "--all", HOOKS_PUBLIC_URL=move.new_url)

        assert done.code == 0, done.stderr
        assert [w.gid for w in move.on(project)] == [new.webhook_gid]
        assert move.stage.registry.get(old.target_id).state == "deleted"  # type: ignore[union-attr]
        assert move.stage.registry.get(new.target_id).state == "active"  # type: ignore[union-attr]
        again = move.cli("webhooks", "retarget", "--all", HOOKS_PUBLIC_URL=move.new_url)
        assert again.code == 0, again.stderr
        assert "nothing to move" in again.stdout
        assert [w.gid for w in move.on(project)] == [new.webhook_gid]

    def test_stopped_before_asanas_answer(self, move: Move) -> None:
        """Asana made the new webhook but its 201 never reached us: the run again adopts it
        (Asana's "Duplicated webhook") instead of making a second one."""
        project = move.stage.project()
        old = created(move, project)
        new = move.mover().open_new(old)
        move.stage.redis.hdel(keys.target(new.target_id), "webhook_gid")
        move.stage.redis.hset(keys.target(new.target_id), "state", "pending")
        move.stage.redis.hdel(keys.WEBHOOK_TARGETS, new.webhook_gid or "")

        done = move.cli("webhooks", "retarget", "--all", "--to", move.new_url, "--json")

        assert done.code == 0, done.stderr
        [outcome] = done.json()
        assert outcome["to"]["gid"] == new.webhook_gid
        assert [w.gid for w in move.on(project)] == [new.webhook_gid]
        assert old.webhook_gid not in move.stage.fake.webhooks

    def test_a_new_target_that_never_got_a_webhook_is_not_kept(self, move: Move) -> None:
        """A move that failed before any handshake leaves nothing behind, and the old webhook
        delivering; the run again succeeds."""
        project = move.stage.project()
        old = created(move, project)
        dead = "http://127.0.0.1:9"
        failed = move.cli("webhooks", "retarget", old.webhook_gid or "", "--to", dead)
        assert failed.code == 2, failed.stderr
        assert "not reachable" in failed.stderr
        assert [w.gid for w in move.on(project)] == [old.webhook_gid]

        done = move.cli("webhooks", "retarget", old.webhook_gid or "", "--to", move.new_url)
        assert done.code == 0, done.stderr
        [after] = move.on(project)
        assert after.target.startswith(move.new_url)


class TestWatches:
    """A watch's webhooks move too, and the watch follows: no duplicate at reconciliation."""

    def test_watch_moves_and_reconciles_without_duplicates(self, move: Move) -> None:
        """After the move the watch holds the new targets and the new URL; a poller pass
        under the new URL creates nothing more."""
        team, projects = move.stage.fake.world.seed_team(move.stage.workspace, "Ops", projects=2)
        added = move.cli("watch", "add", "--team", team, "--json")
        assert added.code == 0, added.stderr
        watch_id = added.json()["id"]
        assert len(move.stage.fake.webhooks) == 3

        done = move.cli("webhooks", "retarget", "--all", "--to", move.new_url, "--json")

        assert done.code == 0, done.stderr
        assert len(done.json()) == 3
        store = WatchStore(move.stage.redis)
        watch = store.get(watch_id)
        assert watch is not None
        assert watch.public_url == move.new_url
        held = [*store.projects(watch_id).values(), watch.scope_target]
        for target_id in held:
            registration = move.stage.registry.get(target_id or "")
            assert registration is not None
            assert registration.state == "active"
            assert registration.target_url.startswith(move.new_url)
        polled = move.cli("poll", "--once", HOOKS_PUBLIC_URL=move.new_url)
        assert polled.code == 0, polled.stderr
        on = Counter(w.resource_gid for w in move.stage.fake.webhooks.values())
        assert on == Counter([team, *projects])
        assert all(w.target.startswith(move.new_url) for w in move.stage.fake.webhooks.values())


class TestTargetCurrent:
    """A webhook whose target is not under the current public URL is flagged."""

    def test_flagged_in_status_json_and_on_the_status_page(self, move: Move) -> None:
        """`webhooks status --json` and /status.json say target_current false once the
        public URL changed; true for one under it."""
        old = created(move, move.stage.project())
        here = move.cli("webhooks", "status", "--json", "--no-live").json()
        assert [w["target_current"] for w in here] == [True]

        moved = move.cli("webhooks", "status", "--json", "--no-live", HOOKS_PUBLIC_URL=move.new_url)
        [status] = moved.json()
        assert status["gid"] == old.webhook_gid
        assert status["target_current"] is False
        table = move.cli("webhooks", "status", "--no-live", HOOKS_PUBLIC_URL=move.new_url)
        assert "webhooks retarget --all" in table.stdout

        page = httpx.get(f"{move.new_url}/status.json", timeout=5).json()
        assert [w["target_current"] for w in page["webhooks"]] == [True]  # its own setting
        record_live_tunnel(move.stage.redis, move.new_url)  # a tunnel now runs elsewhere
        page = httpx.get(f"{move.old_url}/status.json", timeout=5).json()
        assert page["public_url"] == move.new_url
        assert [w["target_current"] for w in page["webhooks"]] == [False]

    def test_the_running_tunnel_is_the_current_url_for_the_cli(self, move: Move) -> None:
        """Without --to, retarget moves to the URL a running tunnel announced in Redis."""
        project = move.stage.project()
        created(move, project)
        record_live_tunnel(move.stage.redis, move.new_url)
        listed = move.cli("webhooks", "list", "--json").json()
        assert [w["target_current"] for w in listed] == [False]

        done = move.cli("webhooks", "retarget", "--all")

        assert done.code == 0, done.stderr
        assert "moved webhook" in done.stdout
        [after] = move.on(project)
        assert after.target.startswith(f"{move.new_url}/hooks/asana/")

    def test_poller_recreates_a_lost_webhook_under_the_current_url(self, move: Move) -> None:
        """A webhook Asana deleted comes back under the current public URL, not the old one."""
        project = move.stage.project()
        old = created(move, project)
        move.stage.fake.delete_webhook_silently(old.webhook_gid or "")

        polled = move.cli("poll", "--once", HOOKS_PUBLIC_URL=move.new_url)

        assert polled.code == 0, polled.stderr
        [after] = wait_for(lambda: move.on(project))
        assert after.target == f"{move.new_url}/hooks/asana/{old.target_id}"
