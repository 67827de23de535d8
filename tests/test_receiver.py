"""The receiver over real HTTP against a real Redis: handshake, signatures, limits, 503."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from asana_hooks import keys
from asana_hooks.dev.redis_server import EmbeddedRedis
from asana_hooks.queueing import FAILURE_TTL_SECONDS, JOB_RETRY, Delivery, make_queue
from asana_hooks.redis_conn import text
from asana_hooks.registry import Registry
from asana_hooks.secretbox import SecretBox
from asana_hooks.settings import Settings
from receiver.app import create_app
from receiver.signatures import sign
from tests.helpers import serve_in_thread, wait_for

SECRET = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81"
EVENT: dict[str, object] = {
    "action": "changed",
    "created_at": "2026-11-23T10:00:00.123Z",
    "resource": {"gid": "1201", "resource_type": "task", "resource_subtype": "default_task"},
    "user": {"gid": "42", "resource_type": "user"},
    "parent": None,
    "change": {"field": "name", "action": "changed"},
}


def body_of(events: list[dict[str, object]]) -> bytes:
    return json.dumps({"events": events}).encode()


@pytest.fixture
def receiver_url(settings: Settings) -> Iterator[str]:
    with serve_in_thread(create_app(settings)) as url:
        yield url


@pytest.fixture
def registry(redis_client: redis.Redis, settings: Settings) -> Registry:
    return Registry(redis_client, SecretBox(settings.encryption_keys))


@pytest.fixture
def http(receiver_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=receiver_url, timeout=5) as client:
        yield client


def begin(registry: Registry, target_id: str = "t1") -> None:
    registry.begin(
        target_id=target_id, resource_gid="1200", target_url=f"https://x/{target_id}", filters=[]
    )


@pytest.fixture
def confirmed(registry: Registry, http: httpx.Client) -> str:
    """A target whose handshake has happened, as after `webhooks create`."""
    begin(registry)
    answer = http.post("/hooks/asana/t1", headers={"X-Hook-Secret": SECRET})
    assert answer.status_code == 200
    assert registry.confirm("t1", webhook_gid="9001", asana_secret=SECRET)
    return "t1"


def queued_jobs(redis_client: redis.Redis) -> list[Delivery]:
    queue = make_queue(redis_client)
    return [Delivery.from_dict(job.kwargs["delivery"]) for job in queue.get_jobs()]


class TestHandshake:
    """X-Hook-Secret is accepted only for a registration we started."""

    def test_pending_registration_is_accepted_and_echoed(
        self, registry: Registry, http: httpx.Client
    ) -> None:
        """While pending, the secret is stored (encrypted) and echoed with 200."""
        begin(registry)
        answer = http.post("/hooks/asana/t1", headers={"X-Hook-Secret": SECRET})
        assert answer.status_code == 200
        assert answer.headers["X-Hook-Secret"] == SECRET
        assert registry.secret("t1") == SECRET

    def test_secret_is_encrypted_at_rest(
        self, registry: Registry, http: httpx.Client, redis_client: redis.Redis
    ) -> None:
        """Nothing in Redis holds the plaintext secret."""
        begin(registry)
        http.post("/hooks/asana/t1", headers={"X-Hook-Secret": SECRET})
        dump = "".join(
            repr(redis_client.hgetall(key))
            for key in redis_client.keys("*")
            if redis_client.type(key) == b"hash"
        )
        assert SECRET not in dump
        assert registry.secret("t1") == SECRET

    def test_unknown_target_is_refused(self, registry: Registry, http: httpx.Client) -> None:
        """Nobody registered this target: 403, nothing stored."""
        answer = http.post("/hooks/asana/nobody", headers={"X-Hook-Secret": SECRET})
        assert answer.status_code == 403
        assert "X-Hook-Secret" not in answer.headers
        assert registry.get("nobody") is None

    def test_confirmed_target_keeps_its_secret(
        self, confirmed: str, registry: Registry, http: httpx.Client
    ) -> None:
        """A second handshake cannot swap in an attacker's secret."""
        answer = http.post(f"/hooks/asana/{confirmed}", headers={"X-Hook-Secret": "evil" * 16})
        assert answer.status_code == 403
        assert registry.secret(confirmed) == SECRET

    def test_pending_window_closes_after_one_handshake(
        self, registry: Registry, http: httpx.Client
    ) -> None:
        """The first handshake wins; a racing second one is refused."""
        begin(registry)
        assert http.post("/hooks/asana/t1", headers={"X-Hook-Secret": SECRET}).status_code == 200
        second = http.post("/hooks/asana/t1", headers={"X-Hook-Secret": "other" * 10})
        assert second.status_code == 403
        assert registry.secret("t1") == SECRET


class TestDelivery:
    """Signed deliveries are enqueued; everything else is refused and changes nothing."""

    def test_signed_delivery_is_enqueued_before_the_answer(
        self, confirmed: str, http: httpx.Client, redis_client: redis.Redis
    ) -> None:
        """200 means the job is already in Redis, with the events and the delivery digest."""
        body = body_of([EVENT, EVENT | {"created_at": "2026-11-23T10:00:01.000Z"}])
        answer = http.post(
            f"/hooks/asana/{confirmed}",
            content=body,
            headers={"X-Hook-Signature": sign(body, SECRET)},
        )
        assert answer.status_code == 200
        jobs = queued_jobs(redis_client)
        assert len(jobs) == 1
        assert list(jobs[0].events) == json.loads(body)["events"]
        assert jobs[0].webhook_gid == "9001"
        assert jobs[0].source == "webhook"
        assert jobs[0].digest
        counters = redis_client.hmget(keys.target(confirmed), ["deliveries", "events"])
        assert counters == [b"1", b"2"]

    def test_rq_reads_the_job(
        self, confirmed: str, http: httpx.Client, redis_client: redis.Redis
    ) -> None:
        """RQ's own Job.fetch reads the job: JSON serializer, our function, a Retry, TTLs."""
        body = body_of([EVENT])
        http.post(
            f"/hooks/asana/{confirmed}",
            content=body,
            headers={"X-Hook-Signature": sign(body, SECRET)},
        )
        job_id = text(redis_client.lrange("rq:queue:" + keys.QUEUE, 0, -1)[0])
        job = Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer)
        assert job.func_name == keys.PROCESS_DELIVERY_JOB
        assert job.kwargs["delivery"]["body"] == json.loads(body)
        assert job.get_status() == JobStatus.QUEUED
        assert job.retries_left == JOB_RETRY.max
        assert job.failure_ttl == FAILURE_TTL_SECONDS
        assert job.origin == keys.QUEUE

    @pytest.mark.parametrize(
        "signature",
        [
            None,
            "",
            sign(body_of([EVENT]), "wrong-key"),
            sign(body_of([EVENT]), SECRET)[:32],
            "zz" * 32,
            "é".encode("latin-1") * 64,
        ],
        ids=["missing", "empty", "wrong-key", "truncated", "not-hex", "non-ascii"],
    )
    def test_bad_signatures_are_401(
        self,
        confirmed: str,
        http: httpx.Client,
        redis_client: redis.Redis,
        signature: str | bytes | None,
    ) -> None:
        """Wrong key, truncated, garbage or missing: 401, nothing enqueued."""
        raw = signature.encode() if isinstance(signature, str) else signature
        headers = [] if raw is None else [(b"X-Hook-Signature", raw)]
        answer = http.post(f"/hooks/asana/{confirmed}", content=body_of([EVENT]), headers=headers)
        assert answer.status_code == 401
        assert queued_jobs(redis_client) == []

    def test_reserialized_body_is_401(
        self, confirmed: str, http: httpx.Client, redis_client: redis.Redis
    ) -> None:
        """The HMAC covers the exact bytes: the same JSON re-serialized does not verify."""
        original = body_of([EVENT])
        reserialized = json.dumps(json.loads(original), separators=(",", ":")).encode()
        assert reserialized != original
        answer = http.post(
            f"/hooks/asana/{confirmed}",
            content=reserialized,
            headers={"X-Hook-Signature": sign(original, SECRET)},
        )
        assert answer.status_code == 401
        assert queued_jobs(redis_client) == []

    def test_heartbeat_is_recorded_not_enqueued(
        self, confirmed: str, http: httpx.Client, redis_client: redis.Redis, registry: Registry
    ) -> None:
        """{"events": []} answers 200 and sets last_heartbeat_at."""
        body = body_of([])
        answer = http.post(
            f"/hooks/asana/{confirmed}",
            content=body,
            headers={"X-Hook-Signature": sign(body, SECRET)},
        )
        assert answer.status_code == 200
        assert queued_jobs(redis_client) == []
        registration = registry.get(confirmed)
        assert registration is not None
        assert registration.last_heartbeat_at is not None

    @pytest.mark.parametrize(
        "body",
        [
            b"not json",
            b"[]",
            b'{"events": {}}',
        ],
        ids=["not-json", "array", "events-object"],
    )
    def test_malformed_body_is_400(
        self, confirmed: str, http: httpx.Client, redis_client: redis.Redis, body: bytes
    ) -> None:
        """Signed but not {"events": [...]}: 400, nothing enqueued. (What is inside the list is
        the workers' to read or keep aside: tests/test_quarantine.py.)"""
        answer = http.post(
            f"/hooks/asana/{confirmed}",
            content=body,
            headers={"X-Hook-Signature": sign(body, SECRET)},
        )
        assert answer.status_code == 400
        assert "error" in answer.json()
        assert queued_jobs(redis_client) == []

    def test_unknown_target_is_404(self, http: httpx.Client) -> None:
        body = body_of([EVENT])
        answer = http.post("/hooks/asana/unknown", content=body, headers={"X-Hook-Signature": "00"})
        assert answer.status_code == 404

    def test_retired_target_is_410(
        self, confirmed: str, http: httpx.Client, registry: Registry, redis_client: redis.Redis
    ) -> None:
        """After retire, Asana is told the webhook is gone (it then deletes it)."""
        registry.set_state(confirmed, "retired")
        body = body_of([EVENT])
        signature = sign(body, SECRET)
        wait_for(
            lambda: (
                http.post(
                    f"/hooks/asana/{confirmed}",
                    content=body,
                    headers={"X-Hook-Signature": signature},
                ).status_code
                == 410
            ),
            timeout=3,
        )
        assert queued_jobs(redis_client) == []

    def test_only_post_reaches_a_target(
        self, confirmed: str, http: httpx.Client, redis_client: redis.Redis
    ) -> None:
        """Asana only POSTs: any other method is 405 naming POST, and changes nothing."""
        for method in ("GET", "PUT", "DELETE"):
            answer = http.request(method, f"/hooks/asana/{confirmed}")
            assert answer.status_code == 405
            assert answer.headers["allow"] == "POST"
        assert queued_jobs(redis_client) == []

    def test_oversized_body_is_413(
        self, confirmed: str, environ: dict[str, str], redis_client: redis.Redis
    ) -> None:
        """Above HOOKS_MAX_BODY_BYTES: 413, whether declared or streamed."""
        settings = Settings.from_environ(environ | {"HOOKS_MAX_BODY_BYTES": "1000"})
        big = body_of([EVENT] * 20)
        assert len(big) > 1000
        with serve_in_thread(create_app(settings)) as url:
            declared = httpx.post(
                f"{url}/hooks/asana/{confirmed}",
                content=big,
                headers={"X-Hook-Signature": sign(big, SECRET)},
            )

            def chunks() -> Iterator[bytes]:
                for start in range(0, len(big), 100):
                    yield big[start : start + 100]

            streamed = httpx.post(
                f"{url}/hooks/asana/{confirmed}",
                content=chunks(),
                headers={"X-Hook-Signature": sign(big, SECRET)},
            )
        assert declared.status_code == 413
        assert streamed.status_code == 413
        assert queued_jobs(redis_client) == []


class TestDurability:
    """HOOKS_DURABILITY=fsync: 200 only once Redis says its append-only file holds the work."""

    def test_fsync_answers_only_what_reached_the_disk(self, environ: dict[str, str]) -> None:
        with EmbeddedRedis() as own:
            settings = Settings.from_environ(
                environ | {"REDIS_URL": own.url, "HOOKS_DURABILITY": "fsync"}
            )
            client = redis.Redis.from_url(own.url)
            registry = Registry(client, SecretBox(settings.encryption_keys))
            begin(registry)
            with serve_in_thread(create_app(settings)) as url, httpx.Client(base_url=url) as http:
                assert http.post("/hooks/asana/t1", headers={"X-Hook-Secret": SECRET}).is_success
                registry.confirm("t1", webhook_gid="9001", asana_secret=SECRET)
                body = body_of([EVENT])
                headers = {"X-Hook-Signature": sign(body, SECRET)}
                assert (
                    http.post("/hooks/asana/t1", content=body, headers=headers).status_code == 200
                )
                assert len(queued_jobs(client)) == 1
                # The AOF switched off under a running receiver: WAITAOF cannot confirm.
                client.config_set("appendonly", "no")
                second = body_of([EVENT | {"created_at": "2026-11-23T10:00:01.000Z"}])
                headers = {"X-Hook-Signature": sign(second, SECRET)}
                answer = http.post("/hooks/asana/t1", content=second, headers=headers)
                assert answer.status_code == 503
                assert "Retry-After" in answer.headers
                client.config_set("appendonly", "yes")
                wait_for(lambda: client.info("persistence")["aof_rewrite_in_progress"] == 0)
                answer = http.post("/hooks/asana/t1", content=second, headers=headers)
                assert answer.status_code == 200
            client.close()

    def test_serve_stops_at_start_without_an_append_only_file(
        self, environ: dict[str, str]
    ) -> None:
        with EmbeddedRedis() as own:
            with redis.Redis.from_url(own.url) as client:
                client.config_set("appendonly", "no")
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                **environ,
                "REDIS_URL": own.url,
                "HOOKS_DURABILITY": "fsync",
            }
            done = subprocess.run(
                [str(Path(sys.executable).with_name("asana-hooks")), "serve", "--port", "1"],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        assert done.returncode == 2
        [line] = done.stderr.strip().splitlines()
        assert "HOOKS_DURABILITY=fsync needs Redis's append-only file" in line
        assert "appendonly yes" in line


class TestRedisOutage:
    """Nothing is acknowledged unless Redis holds it; recovery needs no restart."""

    def test_redis_down_gives_503_then_recovers(self, environ: dict[str, str]) -> None:
        """503 with Retry-After within 2 s while Redis is stopped; 200 after it restarts."""
        with EmbeddedRedis() as own:
            settings = Settings.from_environ(environ | {"REDIS_URL": own.url})
            client = redis.Redis.from_url(own.url)
            registry = Registry(client, SecretBox(settings.encryption_keys))
            begin(registry)
            with serve_in_thread(create_app(settings)) as url, httpx.Client(base_url=url) as http:
                assert (
                    http.post("/hooks/asana/t1", headers={"X-Hook-Secret": SECRET}).status_code
                    == 200
                )
                body = body_of([EVENT])
                headers = {"X-Hook-Signature": sign(body, SECRET)}
                assert (
                    http.post("/hooks/asana/t1", content=body, headers=headers).status_code == 200
                )
                assert http.get("/readyz").status_code == 200

                own.stop()
                import time

                started = time.monotonic()
                down = http.post("/hooks/asana/t1", content=body, headers=headers, timeout=10)
                elapsed = time.monotonic() - started
                assert down.status_code == 503
                assert down.headers["Retry-After"]
                assert elapsed < 2.0
                assert http.get("/readyz").status_code == 503

                own.start()
                up = http.post("/hooks/asana/t1", content=body, headers=headers)
                assert up.status_code == 200
                assert http.get("/readyz").status_code == 200
            assert client.llen("rq:queue:" + keys.QUEUE) == 2
            client.close()


class TestKeyRotation:
    def test_old_secrets_stay_readable_after_rotation(
        self,
        confirmed: str,
        environ: dict[str, str],
        encryption_key: str,
        redis_client: redis.Redis,
    ) -> None:
        """A new first key encrypts; the old key still decrypts; rotate re-encrypts."""
        from asana_hooks.secretbox import generate_key

        new_key = generate_key()
        settings = Settings.from_environ(
            environ | {"HOOKS_ENCRYPTION_KEY": f"{new_key},{encryption_key}"}
        )
        with serve_in_thread(create_app(settings)) as url:
            body = body_of([EVENT])
            answer = httpx.post(
                f"{url}/hooks/asana/{confirmed}",
                content=body,
                headers={"X-Hook-Signature": sign(body, SECRET)},
            )
            assert answer.status_code == 200
        both = Registry(redis_client, SecretBox(settings.encryption_keys))
        assert both.rotate_secrets() == 1
        only_new = Registry(
            redis_client,
            SecretBox(
                Settings.from_environ(environ | {"HOOKS_ENCRYPTION_KEY": new_key}).encryption_keys
            ),
        )
        assert only_new.secret(confirmed) == SECRET


class TestHealth:
    def test_healthz_and_readyz(self, http: httpx.Client) -> None:
        assert http.get("/healthz").status_code == 200
        assert http.get("/readyz").status_code == 200
