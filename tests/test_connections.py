"""Connections (DESIGN.md §6.5): the CLI, and two identities on one running deployment.

Real parts only: a real Redis, the fake Asana over HTTP (one token per connection, its
``throttled_tokens`` knob answering 429 to one token alone), our receiver, and real
`asana-hooks worker` processes running this checkout's code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from asana_hooks import keys
from asana_hooks.asana_client import AsanaClient
from asana_hooks.asana_clients import Clients
from asana_hooks.connections import ConnectionStore, Credentials
from asana_hooks.ratelimit import Budget
from asana_hooks.redis_conn import text
from asana_hooks.registration import register
from asana_hooks.secretbox import Secret, SecretBox, generate_key
from tests.helpers import wait_for
from tests.operator_system import CliResult, System, invoke_cli, running_system
from tests.poller_stage import Stage, running_stage
from tests.worker_support import run_workers_until, worker_processes
from workers import runtime
from workers.poller.loop import Poller

CLI = str(Path(sys.executable).parent / "asana-hooks")
TOKEN_A = "pat-A-7f3c9e1d5b"
TOKEN_B = "pat-B-2a8d4f6e0c"
DEFAULT_TOKEN = "test-token"
LIST_KEYS = {"id", "name", "user", "kind", "state", "webhooks", "watches", "budget"}


def _passthrough() -> dict[str, str]:
    """CLI and worker processes run the code under test (a worktree's, when PYTHONPATH says)."""
    return {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}


def run(system: System, *args: str, stdin: str = "", **extra: str) -> CliResult:
    """`asana-hooks ARGS` through its real entry point, in this process (so coverage sees
    it), with this system's environment."""
    return invoke_cli(*args, env={**system.env, **extra}, stdin=stdin)


def run_process(system: System, *args: str, stdin: str = "", **extra: str) -> CliResult:
    """`asana-hooks ARGS` as a real process with this system's environment."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "NO_COLOR": "1",
        "COLUMNS": "200",
        **system.env,
        **_passthrough(),
        **extra,
    }
    done = subprocess.run(
        [CLI, *args], env=env, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


def no_token_in(*texts: str) -> None:
    for shown in texts:
        for token in (TOKEN_A, TOKEN_B, DEFAULT_TOKEN):
            assert token not in shown


@pytest.fixture
def system(environ: dict[str, str]) -> Iterator[System]:
    with running_system(environ) as running:
        running.fake.add_token(TOKEN_A)
        running.fake.add_token(TOKEN_B)
        yield running


class TestConnectionsCli:
    """connections add / list / token / remove, as real processes."""

    def test_add_then_list(self, system: System) -> None:
        """add checks the token and prints the contract's object; list shows it beside the
        default connection; neither shows a token."""
        added = run(
            system,
            "connections",
            "add",
            "--token-env",
            "TA",
            "--name",
            "acme",
            "--json",
            TA=TOKEN_A,
        )
        assert added.code == 0, added.stderr
        shown = added.json()
        assert set(shown) >= LIST_KEYS
        assert shown["name"] == "acme"
        assert shown["kind"] == "pat"
        assert shown["state"] == "ok"
        assert shown["user"]["gid"]
        assert shown["budget"] == {"used_last_minute": 0, "per_minute": 1500}
        listed = run(system, "connections", "list", "--json")
        assert listed.code == 0, listed.stderr
        ids = [c["id"] for c in listed.json()]
        assert ids == [keys.DEFAULT_CONNECTION, shown["id"]]
        plain = run(system, "connections", "list")
        assert shown["id"] in plain.stdout
        assert "acme" in plain.stdout
        no_token_in(added.stdout, added.stderr, listed.stdout, listed.stderr, plain.stdout)

    def test_token_from_stdin(self, system: System) -> None:
        """--token-stdin reads one line (a real process, the token piped in); the id is the
        only thing on stdout."""
        done = run_process(system, "connections", "add", "--token-stdin", stdin=TOKEN_B + "\n")
        assert done.code == 0, done.stderr
        assert done.stdout.strip().startswith("c")
        assert len(done.stdout.strip().splitlines()) == 1
        no_token_in(done.stdout, done.stderr)

    def test_refused_token_is_one_line_and_stores_nothing(
        self, system: System, redis_client: redis.Redis
    ) -> None:
        """A token Asana refuses: one line, exit 4, no connection and no key left behind."""
        before = set(redis_client.keys("*"))
        done = run(system, "connections", "add", "--token-env", "TX", TX="pat-not-known-to-asana")
        assert done.code == 4
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.stderr.startswith("error: Asana refused the token (401)")
        assert "pat-not-known-to-asana" not in done.stderr + done.stdout
        listed = run(system, "connections", "list", "--json").json()
        assert [c["id"] for c in listed] == [keys.DEFAULT_CONNECTION]
        left = {
            k
            for k in set(redis_client.keys("*")) - before
            if b":api:c" in k or b"connection:c" in k
        }
        assert left == set()

    def test_bad_input(self, system: System) -> None:
        """Neither or both token options, an empty variable, an unknown id: one line each."""
        neither = run(system, "connections", "add")
        assert neither.code == 2
        empty = run(system, "connections", "add", "--token-env", "NOPE")
        assert empty.code == 2
        assert empty.stderr.strip() == "error: NOPE is not set or empty"
        unknown = run(system, "connections", "remove", "c0000000000")
        assert unknown.code == 1
        assert unknown.stderr.strip().startswith("error: no connection c0000000000")
        default = run(system, "connections", "remove", keys.DEFAULT_CONNECTION)
        assert default.code == 2
        for done in (neither, empty, unknown, default):
            assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        unknown_create = run(
            system,
            "webhooks",
            "create",
            "--resource",
            system.project,
            "--connection",
            "c0000000000",
        )
        assert unknown_create.code == 1
        assert unknown_create.stderr.strip().startswith("error: no connection c0000000000")

    def test_create_with_a_connection_then_remove(self, system: System) -> None:
        """`webhooks create --connection` registers as that token; `remove` deletes its
        webhooks at Asana (as it), then forgets it; the default connection's stay."""
        conn = run(system, "connections", "add", "--token-env", "TA", TA=TOKEN_A).stdout.strip()
        other = system.fake.world.add_project("Other", workspace=system.workspace)
        mine = run(
            system,
            "webhooks",
            "create",
            "--resource",
            system.project,
            "--connection",
            conn,
            "--json",
        )
        assert mine.code == 0, mine.stderr
        theirs = run(system, "webhooks", "create", "--resource", other, "--json")
        assert theirs.code == 0, theirs.stderr
        assert mine.json()["connection"] == conn
        assert theirs.json()["connection"] == keys.DEFAULT_CONNECTION
        posts = [c for c in system.fake.calls if c.method == "POST" and c.path == "/webhooks"]
        assert [c.headers["authorization"] for c in posts] == [
            f"Bearer {TOKEN_A}",
            f"Bearer {DEFAULT_TOKEN}",
        ]
        listed = {c["id"]: c for c in run(system, "connections", "list", "--json").json()}
        assert listed[conn]["webhooks"] == 1
        assert listed[keys.DEFAULT_CONNECTION]["webhooks"] == 1
        removed = run(system, "connections", "remove", conn)
        assert removed.code == 0, removed.stderr
        deletes = [c for c in system.fake.calls if c.method == "DELETE"]
        assert [c.path for c in deletes] == [f"/webhooks/{mine.json()['gid']}"]
        assert deletes[0].headers["authorization"] == f"Bearer {TOKEN_A}"
        states = {w["gid"]: w["state"] for w in run(system, "webhooks", "list", "--json").json()}
        assert states == {mine.json()["gid"]: "deleted", theirs.json()["gid"]: "active"}
        assert [c["id"] for c in run(system, "connections", "list", "--json").json()] == [
            keys.DEFAULT_CONNECTION
        ]

    def test_keys_rotate_reencrypts_tokens(self, system: System, redis_client: redis.Redis) -> None:
        """`keys rotate` with a new key first re-encrypts connection tokens too: the new key
        alone then decrypts them."""
        conn = run(system, "connections", "add", "--token-env", "TA", TA=TOKEN_A).stdout.strip()
        new_key = generate_key()
        both = f"{new_key},{system.env['HOOKS_ENCRYPTION_KEY']}"
        rotated = run(system, "keys", "rotate", "--json", HOOKS_ENCRYPTION_KEY=both)
        assert rotated.code == 0, rotated.stderr
        assert rotated.json()["rotated"] == 1
        only_new = ConnectionStore(redis_client, SecretBox([Secret(new_key)]))
        assert only_new.credentials(conn).token.reveal() == TOKEN_A


# Two connections on one running deployment ------------------------------------------------


def changes(connection: redis.Redis) -> list[dict[str, Any]]:
    entries = connection.xrange(keys.CHANGES_STREAM) or []
    return [json.loads(fields[b"change"]) for _, fields in entries if fields]


def of(found: list[dict[str, Any]], tasks: set[str]) -> list[dict[str, Any]]:
    return [c for c in found if c["resource"]["gid"] in tasks]


def client_for(stage: Stage, store: ConnectionStore, connection_id: str) -> AsanaClient:
    client = AsanaClient(stage.settings, stage.redis, credentials=store.credentials(connection_id))
    stage.cleanup.callback(client.close)
    return client


@pytest.fixture
def two(environ: dict[str, str], tmp_path: Path) -> Iterator[tuple[Stage, str, str, list[str]]]:
    """A deployment with connections A and B, each with a webhook on its own project."""
    with running_stage({**environ, **_passthrough()}) as stage:
        stage.fake.add_token(TOKEN_A)
        stage.fake.add_token(TOKEN_B)
        store = ConnectionStore(stage.redis, SecretBox(stage.settings.encryption_keys))
        ids = []
        for token in (TOKEN_A, TOKEN_B):
            added = store.add(
                name=token[:5], token=Secret(token), user_gid=stage.user, user_name="Greg"
            )
            ids.append(added.id)
        projects = []
        for connection_id, name in zip(ids, ("Alpha", "Beta"), strict=True):
            project = stage.project(name)
            register(
                client_for(stage, store, connection_id),
                stage.registry,
                resource_gid=project,
                public_url=stage.settings.require_public_url(),
                filters=[],
            )
            projects.append(project)
        yield stage, ids[0], ids[1], projects


class TestTwoConnections:
    """One connection throttled or revoked never slows or stops the other."""

    def test_throttled_connection_waits_while_the_other_runs_at_full_speed(
        self, two: tuple[Stage, str, str, list[str]], tmp_path: Path
    ) -> None:
        """A's token gets 429s only: B's changes all arrive (fetched with B's token, never a
        429), A's wait, nothing is lost, and A's arrive once Asana lets it call again."""
        stage, conn_a, conn_b, (alpha, beta) = two
        fake = stage.fake
        fake.knobs.throttled_tokens = TOKEN_A
        with worker_processes(stage.env, 2, log_dir=tmp_path):
            started = time.monotonic()
            tasks_a = {
                fake.world.add_task(f"A{i}", projects=[alpha], by=stage.user) for i in range(6)
            }
            tasks_b = {
                fake.world.add_task(f"B{i}", projects=[beta], by=stage.user) for i in range(6)
            }
            wait_for(lambda: len(of(changes(stage.redis), tasks_b)) >= 6, timeout=20)
            b_took = time.monotonic() - started
            found = changes(stage.redis)
            assert of(found, tasks_a) == []
            assert {c["connection"] for c in of(found, tasks_b)} == {conn_b}
            assert {c["status"] for c in of(found, tasks_b)} == {"ok"}
            # A's own pause may be over by now (its Retry-After is short in the fake's time);
            # what matters: B was never paused, and A did meet Asana's 429 before it is let go.
            assert Budget(stage.redis, 1500, connection_id=conn_b).paused_until() is None
            wait_for(
                lambda: any(
                    c.status == 429 and c.headers.get("authorization") == f"Bearer {TOKEN_A}"
                    for c in fake.calls
                ),
                timeout=20,
            )
            assert of(changes(stage.redis), tasks_a) == []
            fake.knobs.throttled_tokens = ""
            wait_for(lambda: len(of(changes(stage.redis), tasks_a)) >= 6, timeout=60)
        found = changes(stage.redis)
        assert {c["connection"] for c in of(found, tasks_a)} == {conn_a}
        assert sorted(c["resource"]["gid"] for c in found) == sorted(tasks_a | tasks_b)
        calls = fake.calls
        b_calls = [c for c in calls if c.headers.get("authorization") == f"Bearer {TOKEN_B}"]
        a_calls = [c for c in calls if c.headers.get("authorization") == f"Bearer {TOKEN_A}"]
        assert b_calls
        assert all(c.status != 429 for c in b_calls)
        assert any(c.status == 429 for c in a_calls)
        fetched_b = [c for c in b_calls if c.path in ("/batch",) or c.path.startswith("/tasks/")]
        assert fetched_b
        assert b_took < 15, f"B's changes took {b_took:.1f} s"
        logs = "".join(p.read_text() for p in tmp_path.glob("worker-*.log"))
        assert "429" in logs or "paused" in logs
        no_token_in(logs)

    def test_a_connection_over_its_budget_never_holds_the_worker_from_another(
        self, two: tuple[Stage, str, str, list[str]]
    ) -> None:
        """A has used its whole minute: with one worker, B's changes still arrive within
        seconds; A's batches are deferred to a flush at the time its budget has room (not
        waited for in the worker, and not left to RQ's retries, which would give up after
        about 19 minutes of a busy budget), and arrive once its minute has passed, each once."""
        stage, conn_a, _conn_b, (alpha, beta) = two
        fake = stage.fake
        per_minute = stage.settings.rate_limit_per_minute
        budget_a = Budget(stage.redis, per_minute, connection_id=conn_a)
        budget_a.take(per_minute - budget_a.used(), read=False)
        tasks_a = {fake.world.add_task(f"A{i}", projects=[alpha], by=stage.user) for i in range(3)}
        work_until(stage, lambda: stage.redis.hget(keys.STATS, "batches"))  # A's are taken
        started = time.monotonic()
        tasks_b = {fake.world.add_task(f"B{i}", projects=[beta], by=stage.user) for i in range(3)}
        work_until(stage, lambda: len(of(changes(stage.redis), tasks_b)) >= 3)
        b_took = time.monotonic() - started
        assert of(changes(stage.redis), tasks_a) == []
        later = deferred_flushes(stage.redis)
        assert later
        assert all(at - time.time() > 30 for at in later.values()), later
        # The minute passes: A's budget has room, and RQ's scheduler reaches the time.
        stage.redis.delete(keys.api_budget(conn_a))
        registry = ScheduledJobRegistry(keys.QUEUE, connection=stage.redis)  # type: ignore[no-untyped-call]
        for job_id in later:
            registry.requeue(job_id)
        work_until(stage, lambda: len(of(changes(stage.redis), tasks_a)) >= 3)
        assert b_took < 12, f"B's changes took {b_took:.1f} s behind A's budget"
        found = changes(stage.redis)
        assert sorted(c["resource"]["gid"] for c in found) == sorted(tasks_a | tasks_b)
        assert {c["connection"] for c in of(found, tasks_a)} == {conn_a}
        a_calls = [c for c in fake.calls if c.headers.get("authorization") == f"Bearer {TOKEN_A}"]
        assert all(c.status != 429 for c in a_calls)

    def test_revoked_connection_waits_and_resumes_with_a_new_token(
        self, two: tuple[Stage, str, str, list[str]], tmp_path: Path
    ) -> None:
        """A 401 for A marks A revoked, B goes on; A's work is parked (shown as waiting, no
        job left failing or retrying, so it waits however long it takes) and emitted once
        A has a token Asana accepts again, without anyone replaying anything."""
        stage, conn_a, conn_b, (alpha, beta) = two
        fake = stage.fake
        fake.revoke_token(TOKEN_A)
        store = ConnectionStore(stage.redis, SecretBox(stage.settings.encryption_keys))
        with worker_processes(stage.env, 2, log_dir=tmp_path):
            tasks_a = {
                fake.world.add_task(f"A{i}", projects=[alpha], by=stage.user) for i in range(3)
            }
            tasks_b = {
                fake.world.add_task(f"B{i}", projects=[beta], by=stage.user) for i in range(3)
            }
            wait_for(lambda: len(of(changes(stage.redis), tasks_b)) >= 3, timeout=20)
            wait_for(lambda: store.state(conn_a) == "revoked", timeout=20)
            assert store.state(conn_b) == "ok"
            receiver = stage.settings.require_public_url()
            wait_for(lambda: waiting(receiver)[conn_a] >= 1, timeout=20)
            assert waiting(receiver)[conn_b] == 0
            wait_for(lambda: not flush_jobs_in_flight(stage.redis), timeout=20)
            assert of(changes(stage.redis), tasks_a) == []
            shown = httpx.get(f"{receiver}/status.json", timeout=5).json()["connections"]
            assert {c["id"]: c["state"] for c in shown if c["id"] in (conn_a, conn_b)} == {
                conn_a: "revoked",
                conn_b: "ok",
            }
            no_token_in(json.dumps(shown))
            metrics = httpx.get(f"{receiver}/metrics", timeout=5).text
            revoked = f'asana_hooks_connection_state{{connection="{conn_a}",state="revoked"}} 1.0'
            assert revoked in metrics
            new_token = "pat-A2-9b1e3c5d7f"
            fake.add_token(new_token)
            store.replace_token(conn_a, Secret(new_token), user_gid=stage.user, user_name="Greg")
            wait_for(lambda: len(of(changes(stage.redis), tasks_a)) >= 3, timeout=30)
            wait_for(lambda: waiting(receiver)[conn_a] == 0, timeout=10)
            resumed = f"resume.done connection={conn_a}"
            wait_for(lambda: resumed in worker_logs(tmp_path), timeout=10)  # logged after
        assert {c["connection"] for c in of(changes(stage.redis), tasks_a)} == {conn_a}
        assert len(of(changes(stage.redis), tasks_a)) == 3
        logs = worker_logs(tmp_path)
        assert f"flush.parked connection={conn_a}" in logs
        assert f"resume.done connection={conn_a}" in logs
        no_token_in(logs)
        assert new_token not in logs

    def test_work_parked_for_a_lapsed_401_resumes_from_the_poller(
        self, two: tuple[Stage, str, str, list[str]]
    ) -> None:
        """Nobody runs `connections token`: Asana accepts A's token again (a glitch on its
        side, or ASANA_ACCESS_TOKEN fixed and the processes restarted). Once the 401's ten
        minutes have passed, the poller's cycle finds A able to call and A's work goes out,
        a task's two parked batches in the order they happened."""
        stage, conn_a, _conn_b, (alpha, _beta) = two
        fake = stage.fake
        fake.revoke_token(TOKEN_A)
        store = ConnectionStore(stage.redis, SecretBox(stage.settings.encryption_keys))
        receiver = stage.settings.require_public_url()
        tasks_a = {fake.world.add_task(f"A{i}", projects=[alpha], by=stage.user) for i in range(2)}
        work_until(stage, lambda: waiting(receiver)[conn_a] >= 1)
        renamed = min(tasks_a)
        fake.world.update_task(renamed, by=stage.user, name="A renamed")
        work_until(stage, lambda: waiting(receiver)[conn_a] >= 3)
        fake.add_token(TOKEN_A)
        # Ten minutes pass: the 401 flag (a TTL of ten minutes) lapses.
        stage.redis.delete(keys.api_token_rejected(conn_a))
        clients = Clients(stage.settings, stage.redis, lane="background")
        stage.cleanup.callback(clients.close)
        Poller(stage.settings, stage.redis, clients, force=True).run_cycle()
        work_until(stage, lambda: len(of(changes(stage.redis), tasks_a)) >= 3)
        assert store.state(conn_a) == "ok"
        in_order = [c["actions"] for c in of(changes(stage.redis), {renamed})]
        assert in_order == [["added"], ["changed"]], "parked batches went out in order"
        assert waiting(receiver)[conn_a] == 0
        assert {c["connection"] for c in of(changes(stage.redis), tasks_a)} == {conn_a}

    def test_removing_a_revoked_connection_hands_its_waiting_work_over_or_drops_it(
        self, two: tuple[Stage, str, str, list[str]]
    ) -> None:
        """`connections remove --keep-webhooks` gives A's waiting work to the default
        connection, which emits it; removing B (whose token Asana accepts again, so its
        webhook can be deleted) without it says how many waiting batches it drops."""
        stage, conn_a, conn_b, (alpha, beta) = two
        fake = stage.fake
        fake.revoke_token(TOKEN_A)
        fake.revoke_token(TOKEN_B)
        receiver = stage.settings.require_public_url()
        env = {**stage.env, "COLUMNS": "200"}
        tasks_a = {fake.world.add_task("A", projects=[alpha], by=stage.user)}
        tasks_b = {fake.world.add_task("B", projects=[beta], by=stage.user)}
        work_until(stage, lambda: waiting(receiver)[conn_a] >= 1 and waiting(receiver)[conn_b])
        kept = invoke_cli("connections", "remove", conn_a, "--keep-webhooks", env=env)
        assert kept.code == 0, kept.stderr
        assert "waiting work" in kept.stdout
        work_until(stage, lambda: len(of(changes(stage.redis), tasks_a)) >= 1)
        fake.add_token(TOKEN_B)
        stage.redis.delete(keys.api_token_rejected(conn_b))  # its 401's ten minutes passed
        dropped = invoke_cli("connections", "remove", conn_b, "--json", env=env)
        assert dropped.code == 0, dropped.stderr
        assert dropped.json()["dropped_batches"] == 1
        assert dropped.json()["deleted_webhooks"] == 1
        assert {c["connection"] for c in of(changes(stage.redis), tasks_a)} == {
            keys.DEFAULT_CONNECTION
        }
        assert of(changes(stage.redis), tasks_b) == []
        listed = invoke_cli("connections", "list", "--json", env=env).json()
        assert [c["id"] for c in listed] == [keys.DEFAULT_CONNECTION]
        assert listed[0]["waiting"] == 0
        assert not stage.redis.exists(keys.parked_work(conn_b))


def worker_logs(folder: Path) -> str:
    return "".join(p.read_text() for p in sorted(folder.glob("worker-*.log")))


def work_until(stage: Stage, condition: Callable[[], Any], timeout: float = 30) -> Any:
    """Run workers in this process (RQ burst workers, with the scheduler) until ``condition``."""
    stage.cleanup.callback(runtime.reset)
    return run_workers_until(stage.settings, condition, timeout=timeout)


def waiting(receiver: str) -> dict[str, int]:
    """Batches waiting per connection, as /status.json shows them."""
    shown = httpx.get(f"{receiver}/status.json", timeout=5).json()["connections"]
    return {c["id"]: c["waiting"] for c in shown}


def deferred_flushes(connection: redis.Redis) -> dict[str, float]:
    """Flush jobs scheduled to finish deferred batches, and when (epoch seconds)."""
    key = ScheduledJobRegistry.key_template.format(keys.QUEUE)
    found: list[Any] = list(connection.zrange(key, 0, -1, withscores=True))
    return {text(job): float(at) for job, at in found if text(job).startswith("flush-later-")}


def flush_jobs_in_flight(connection: redis.Redis) -> list[str]:
    """Flush jobs that failed or wait for a retry or their second (parking leaves none: the
    work waits in Redis, not in a job that would give up after its last retry)."""
    queue = keys.QUEUE
    failed = FailedJobRegistry(queue, connection=connection).get_job_ids()
    scheduled_key = ScheduledJobRegistry.key_template.format(queue)
    found: list[Any] = list(connection.zrange(scheduled_key, 0, -1))
    scheduled = [text(job) for job in found]
    return [job for job in failed + scheduled if job.startswith("flush")]


class TestPollerPerConnection:
    """The poller polls and checks each registration with its own connection's token."""

    def test_each_resource_is_polled_as_its_connection(
        self, two: tuple[Stage, str, str, list[str]]
    ) -> None:
        """Events and webhook listings go out with the registration's token; a throttled
        connection's resource is skipped for the cycle while the other's is polled."""
        stage, conn_a, _conn_b, (alpha, beta) = two
        fake = stage.fake
        clients = Clients(stage.settings, stage.redis, lane="background")
        stage.cleanup.callback(clients.close)
        fake.reset_records()
        report = Poller(stage.settings, stage.redis, clients, force=True).run_cycle()
        assert report.polled == 2
        events = {
            c.query["resource"]: c.headers["authorization"]
            for c in fake.calls
            if c.path == "/events"
        }
        assert events == {alpha: f"Bearer {TOKEN_A}", beta: f"Bearer {TOKEN_B}"}
        listings = {c.headers["authorization"] for c in fake.calls if c.path == "/webhooks"}
        assert listings == {f"Bearer {TOKEN_A}", f"Bearer {TOKEN_B}"}
        Budget(stage.redis, 1500, connection_id=conn_a).pause_for(60)
        fake.reset_records()
        report = Poller(stage.settings, stage.redis, clients, force=True).run_cycle()
        assert (report.polled, report.held) == (1, 1)
        assert {c.query.get("resource") for c in fake.calls if c.path == "/events"} == {beta}
        assert all(c.headers["authorization"] == f"Bearer {TOKEN_B}" for c in fake.calls)


class TestDefaultConnection:
    """ASANA_ACCESS_TOKEN is the default connection, on today's keys."""

    def test_default_keys_are_unchanged(self, redis_client: redis.Redis) -> None:
        """The default connection's budget is the one that existed before connections."""
        assert keys.api_budget(keys.DEFAULT_CONNECTION) == keys.API_BUDGET
        assert keys.api_paused_until(keys.DEFAULT_CONNECTION) == keys.API_PAUSED_UNTIL
        assert keys.api_budget("c1") != keys.API_BUDGET
        Budget(redis_client, 10, connection_id="c1").pause_for(30)
        assert Budget(redis_client, 10).paused_until() is None
        assert Budget(redis_client, 10, connection_id="c1").paused_until() is not None

    def test_credentials_never_show_the_token(self) -> None:
        """A Credentials' repr hides its token."""
        assert TOKEN_A not in repr(Credentials("c1", Secret(TOKEN_A)))
