"""`asana-hooks webhooks ...` as a real process against the fake Asana and our receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from asana_hooks import keys
from asana_hooks.dev.redis_server import free_port
from tests.helpers import wait_for
from tests.operator_system import System, run_cli, running_system

LIST_KEYS = {"gid", "resource", "target", "target_id", "filters", "state", "created_at"}
ASANA_FIELDS = {
    "active",
    "last_success_at",
    "last_failure_at",
    "last_failure_content",
    "delivery_retry_count",
    "next_attempt_after",
    "failure_deletion_timestamp",
}
OUR_FIELDS = {
    "last_delivery_at",
    "last_heartbeat_at",
    "deliveries",
    "events",
    "duplicates",
    "changes",
}


@pytest.fixture
def system(environ: dict[str, str]) -> Iterator[System]:
    with running_system(environ) as running:
        yield running


def create(system: System, *args: str) -> dict[str, object]:
    done = system.cli("webhooks", "create", "--resource", system.project, *args, "--json")
    assert done.code == 0, done.stderr
    created: dict[str, object] = done.json()
    return created


class TestCreate:
    """create: checks, registers through the handshake, and prints the gid and target."""

    def test_create_list_status(self, system: System) -> None:
        """A created webhook is active, listed and reported with the contract's shapes."""
        created = create(system, "--filter", "task:changed:name,notes", "--filter", "story:added")
        gid = str(created["gid"])
        assert created["state"] == "active"
        assert str(created["target"]).startswith(f"{system.receiver_url}/hooks/asana/")
        assert gid in system.fake.webhooks
        assert created["filters"] == [
            {"resource_type": "task", "action": "changed", "fields": ["name", "notes"]},
            {"resource_type": "story", "action": "added"},
        ]

        listed = system.process("webhooks", "list", "--json")
        assert listed.code == 0, listed.stderr
        [entry] = listed.json()
        assert set(entry) >= LIST_KEYS
        assert entry["gid"] == gid
        assert entry["resource"] == {
            "gid": system.project,
            "resource_type": "project",
            "name": "Launch",
        }

        wait_for(
            lambda: system.cli("webhooks", "status", gid, "--json").json()["last_heartbeat_at"]
        )
        status = system.cli("webhooks", "status", gid, "--json").json()
        assert set(status) >= LIST_KEYS | ASANA_FIELDS | OUR_FIELDS
        assert status["state"] == "active"
        assert status["health"] == "ok"
        assert status["active"] is True
        everything = system.cli("webhooks", "status", "--json").json()
        assert [s["gid"] for s in everything] == [gid]

        table = system.process("webhooks", "status")
        assert table.code == 0
        assert gid in table.stdout
        assert "HEALTH" in table.stdout

    def test_plain_output(self, system: System) -> None:
        """Without --json, create prints the webhook gid and the target."""
        done = system.cli("webhooks", "create", "--resource", system.project)
        assert done.code == 0, done.stderr
        [webhook] = system.fake.webhooks.values()
        assert f"webhook {webhook.gid}" in done.stdout
        assert f"target  {webhook.target}" in done.stdout
        listed = system.cli("webhooks", "list")
        assert webhook.gid in listed.stdout
        assert "active" in listed.stdout

    def test_again_offers_the_existing_webhook(self, system: System) -> None:
        """Creating again for the same resource offers the webhook Asana already has."""
        first = create(system)
        second = create(system)
        assert second["existing"] is True
        assert second["gid"] == first["gid"]
        assert len(system.fake.webhooks) == 1

    def test_duplicated_webhook_is_found_and_adopted(
        self, system: System, redis_client: redis.Redis
    ) -> None:
        """Asana's 'Duplicated webhook' leads to GET /webhooks and the existing one is used."""
        first = create(system)
        # As if the CLI had died after Asana's 201 and before it stored the webhook gid.
        redis_client.hdel(keys.target(str(first["target_id"])), "webhook_gid")
        redis_client.hset(keys.target(str(first["target_id"])), "state", "pending")
        second = create(system)
        assert second["existing"] is True
        assert second["gid"] == first["gid"]
        assert second["state"] == "active"
        assert any(call.path == "/webhooks" and call.method == "GET" for call in system.fake.calls)

    def test_lost_webhook_is_created_again_on_the_same_target(self, system: System) -> None:
        """When Asana no longer has it, create makes a new webhook on the same target."""
        first = create(system)
        system.fake.delete_webhook_silently(str(first["gid"]))
        status = system.cli("webhooks", "status", str(first["gid"]), "--json").json()
        assert status["state"] == "lost"
        second = create(system)
        assert second["existing"] is False
        assert second["gid"] != first["gid"]
        assert second["target_id"] == first["target_id"]


class TestCreateRefusals:
    """create explains what to do, exits non-zero, and leaves nothing behind."""

    def test_unreachable_receiver_explains_ngrok(self, system: System) -> None:
        """A HOOKS_PUBLIC_URL that does not answer gets the ngrok paragraph, exit 2."""
        dead = f"http://127.0.0.1:{free_port()}"
        done = system.process("webhooks", "create", "--resource", "1", HOOKS_PUBLIC_URL=dead)
        assert done.code == 2
        assert "ngrok http 8000" in done.stderr
        assert "localhost" in done.stderr
        assert "Traceback" not in done.stderr
        assert not system.fake.calls

    def test_bad_filter_is_refused_before_asana(self, system: System) -> None:
        """fields without `changed` never reach Asana."""
        done = system.cli("webhooks", "create", "--resource", "1", "--filter", "task:added:name")
        assert done.code == 2
        assert "only allowed with the action 'changed'" in done.stderr
        assert not system.fake.calls

    def test_higher_level_needs_filters_from_the_table(self, system: System) -> None:
        """--resource-type team checks Asana's higher-level table locally."""
        team = system.fake.world.add_team(system.workspace, "Core")
        done = system.cli(
            "webhooks",
            "create",
            "--resource",
            team,
            "--resource-type",
            "team",
            "--filter",
            "task:changed",
        )
        assert done.code == 2
        assert "project:added|removed|deleted|undeleted|changed" in done.stderr
        ok = system.cli(
            "webhooks",
            "create",
            "--resource",
            team,
            "--resource-type",
            "team",
            "--filter",
            "project:added",
            "--json",
        )
        assert ok.code == 0, ok.stderr
        assert ok.json()["resource"]["resource_type"] == "team"

    def test_asana_refusal_is_one_clear_line(self, system: System) -> None:
        """Without --resource-type, Asana's own refusal becomes a message, exit 4."""
        team = system.fake.world.add_team(system.workspace, "Core")
        done = system.cli("webhooks", "create", "--resource", team)
        assert done.code == 4
        assert done.stderr.startswith("error: Asana refused creating a webhook")
        assert "Traceback" not in done.stderr
        assert system.cli("webhooks", "list", "--json").json() == []

    def test_bad_token(self, system: System) -> None:
        """A rejected token says how to make one, exit 4."""
        done = system.process(
            "webhooks", "create", "--resource", system.project, ASANA_ACCESS_TOKEN="wrong"
        )
        assert done.code == 4
        assert "personal access token" in done.stderr
        assert "wrong" not in done.stderr

    def test_missing_settings(self, system: System) -> None:
        """A missing HOOKS_PUBLIC_URL is named, exit 2."""
        env = {k: v for k, v in system.env.items() if k != "HOOKS_PUBLIC_URL"}
        done = run_cli("webhooks", "create", "--resource", system.project, env=env)
        assert done.code == 2
        assert done.stderr.startswith("error: HOOKS_PUBLIC_URL is not set")

    def test_unreachable_redis(self, system: System) -> None:
        """Redis away is one line and exit 3."""
        done = system.process("webhooks", "list", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
        assert done.code == 3
        assert "is unreachable" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


class TestRetireAndDelete:
    """retire makes the receiver answer 410 (Asana drops it); delete deletes it at Asana."""

    def test_retire(self, system: System) -> None:
        """After retire, the next heartbeat gets 410 and Asana deletes the webhook."""
        gid = str(create(system)["gid"])
        done = system.cli("webhooks", "retire", gid, "--json")
        assert done.code == 0, done.stderr
        assert done.json()["state"] == "retired"

        def dropped() -> bool:
            # The receiver caches a target for a second: heartbeat until the 410 lands.
            if gid not in system.fake.webhooks or system.fake.webhooks[gid].deleted:
                return True
            system.fake.send_heartbeat(gid)
            return False

        wait_for(dropped, every=0.3)
        status = system.cli("webhooks", "status", gid, "--json").json()
        assert status["state"] == "deleted"

    def test_delete(self, system: System) -> None:
        """delete removes it at Asana and marks it deleted here."""
        gid = str(create(system)["gid"])
        done = system.cli("webhooks", "delete", gid)
        assert done.code == 0, done.stderr
        assert gid not in system.fake.webhooks or system.fake.webhooks[gid].deleted
        [entry] = system.cli("webhooks", "list", "--json").json()
        assert entry["state"] == "deleted"

    def test_unknown_gid(self, system: System) -> None:
        """An unknown gid is exit 1 with a hint, for every command that takes one."""
        for command in ("retire", "status"):
            done = system.cli("webhooks", command, "999")
            assert done.code == 1
            assert "webhooks list" in done.stderr
        done = system.cli("webhooks", "delete", "999")
        assert done.code == 1
