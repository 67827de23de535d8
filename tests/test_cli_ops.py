"""`asana-hooks keys ...` and `failed ...`: key rotation and replaying failed jobs."""

from __future__ import annotations

import redis
from rq import SimpleWorker
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from asana_hooks.queueing import make_queue
from asana_hooks.registry import Registry
from asana_hooks.secretbox import Secret, SecretBox, check_key, generate_key
from tests.operator_system import invoke_cli, run_cli


def explode(reason: str) -> None:
    """A job that fails (run by a real RQ worker in the test)."""
    raise RuntimeError(f"boom: {reason}")


class TestKeys:
    """generate prints a usable key; rotate re-encrypts under the first key."""

    def test_generate(self, environ: dict[str, str]) -> None:
        """The printed key is a Fernet key."""
        done = run_cli("keys", "generate", env=environ)
        assert done.code == 0
        check_key(done.stdout.strip())

    def test_rotate(self, environ: dict[str, str], redis_client: redis.Redis) -> None:
        """After rotate, the new key alone decrypts every secret; no secret is printed."""
        old = environ["HOOKS_ENCRYPTION_KEY"]
        new = generate_key()
        registry = Registry(redis_client, SecretBox([Secret(old)]))
        registry.begin(target_id="t1", resource_gid="1", target_url="https://x/t1", filters=[])
        assert registry.accept_handshake("t1", "the-secret")

        lost = invoke_cli("keys", "rotate", env={**environ, "HOOKS_ENCRYPTION_KEY": new})
        assert lost.code == 2
        assert "keep the old key" in lost.stderr

        done = invoke_cli(
            "keys", "rotate", "--json", env={**environ, "HOOKS_ENCRYPTION_KEY": f"{new},{old}"}
        )
        assert done.code == 0, done.stderr
        assert done.json() == {"rotated": 1, "keys": 2}
        assert "the-secret" not in done.stdout + done.stderr
        assert Registry(redis_client, SecretBox([Secret(new)])).secret("t1") == "the-secret"


class TestFailed:
    """list shows failed jobs with their error; replay puts them back on the queue."""

    def test_list_and_replay(self, environ: dict[str, str], redis_client: redis.Redis) -> None:
        """A job that failed is listed with its error, replayed, and gone from the registry."""
        queue = make_queue(redis_client)
        job = queue.enqueue_call("tests.test_cli_ops.explode", kwargs={"reason": "tea"})
        worker = SimpleWorker([queue], connection=redis_client, serializer=JSONSerializer)
        worker.work(burst=True)

        listed = invoke_cli("failed", "list", "--json", env=environ)
        assert listed.code == 0, listed.stderr
        [entry] = listed.json()
        assert entry["id"] == job.id
        assert entry["function"] == "tests.test_cli_ops.explode"
        assert entry["error"].splitlines()[-1] == "RuntimeError: boom: tea"
        table = invoke_cli("failed", "list", env=environ)
        assert job.id in table.stdout

        replayed = run_cli("failed", "replay", "--all", "--json", env=environ)
        assert replayed.code == 0, replayed.stderr
        assert replayed.json() == {"replayed": [job.id], "missing": []}
        assert queue.count == 1
        assert FailedJobRegistry(queue=queue).count == 0

    def test_replay_needs_a_choice(self, environ: dict[str, str]) -> None:
        """replay with neither ids nor --all is a usage error; unknown ids exit 1."""
        assert invoke_cli("failed", "replay", env=environ).code == 2
        missing = invoke_cli("failed", "replay", "nope", env=environ)
        assert missing.code == 1
        assert "nope" in missing.stderr
        empty = invoke_cli("failed", "list", env=environ)
        assert empty.stdout.strip() == "no failed jobs"
