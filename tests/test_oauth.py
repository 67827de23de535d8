"""OAuth apps (DESIGN.md §6.5, issue 18 part 2): connect a user through /oauth/start and
/oauth/callback, refresh before expiry once across processes, a revoked grant.

Real parts only: a real Redis, the fake Asana's OAuth endpoints and API over HTTP, our
receiver in a thread, a browser's redirects followed by httpx, and real `asana-hooks worker`
processes running this checkout's code.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis

from asana_hooks import keys
from asana_hooks.asana_client import AsanaClient
from asana_hooks.asana_errors import BadToken
from asana_hooks.connections import ConnectionStore
from asana_hooks.dev.fake_asana import FakeAsana
from asana_hooks.dev.redis_server import free_port
from asana_hooks.oauth import OAuthApp
from asana_hooks.redis_conn import connect
from asana_hooks.registration import register
from asana_hooks.registry import Registry
from asana_hooks.secretbox import Secret, SecretBox
from asana_hooks.settings import Settings
from receiver.app import create_app
from tests.helpers import serve_in_thread, wait_for
from tests.operator_system import invoke_cli
from tests.poller_stage import Stage
from tests.worker_support import worker_processes

CLIENT_ID = "1209876543210"
CLIENT_SECRET = "app-secret-4e7a9c1b3d5f"
LIFETIME_SCALE = 0.0017
"""Access tokens of the fake live 3600 s times this: 6 s (refreshed 1.2 s before)."""


def _passthrough() -> dict[str, str]:
    return {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}


class OAuthStage(Stage):
    receiver_url: str = ""
    ada: str = ""

    @property
    def store(self) -> ConnectionStore:
        return ConnectionStore(self.redis, SecretBox(self.settings.encryption_keys))

    def secrets(self) -> set[str]:
        """Every token the fake's OAuth server gave out, and the app's secret."""
        with self.fake.lock:
            return set(self.fake.oauth.issued) | {CLIENT_SECRET}

    def connect(self, http: httpx.Client) -> tuple[str, httpx.Response]:
        """A user's browser: /oauth/start -> Asana's consent (approves at once) -> callback.
        Returns the callback URL and its answer."""
        started = http.get(self.receiver_url + "/oauth/start")
        assert started.status_code == 302, started.text
        consent = http.get(started.headers["location"])
        assert consent.status_code == 302, consent.text
        back = consent.headers["location"]
        assert back.startswith(self.receiver_url + "/oauth/callback?")
        return back, http.get(back)


def _oauth_stage(stack: ExitStack, environ: dict[str, str], **extra: str) -> OAuthStage:
    fake = stack.enter_context(FakeAsana(token="test-token", time_scale=LIFETIME_SCALE))
    fake.oauth.register_app(CLIENT_ID, CLIENT_SECRET)
    port = free_port()
    receiver_url = f"http://127.0.0.1:{port}"
    full = {
        **environ,
        **_passthrough(),
        "ASANA_API_URL": fake.api_url,
        "ASANA_OAUTH_URL": fake.oauth_url,
        "HOOKS_OAUTH_CLIENT_ID": CLIENT_ID,
        "HOOKS_OAUTH_CLIENT_SECRET": CLIENT_SECRET,
        "HOOKS_PUBLIC_URL": receiver_url,
        **extra,
    }
    settings = Settings.from_environ(full)
    stack.enter_context(serve_in_thread(create_app(settings), port=port))
    connection = connect(settings.redis_url, socket_timeout=5.0)
    stack.callback(connection.close)
    client = stack.enter_context(AsanaClient(settings, connection))
    workspace = fake.world.add_workspace("Acme")
    greg = fake.world.add_user("Greg", workspace=workspace)
    ada = fake.world.add_user("Ada Lovelace", workspace=workspace, email="ada@example.com")
    fake.oauth.approve_as = ada
    stage = OAuthStage(
        fake=fake,
        settings=settings,
        env=full,
        redis=connection,
        client=client,
        registry=Registry(connection, SecretBox(settings.encryption_keys)),
        workspace=workspace,
        user=greg,
        cleanup=stack,
    )
    stage.receiver_url = receiver_url
    stage.ada = ada
    return stage


@pytest.fixture
def stage(environ: dict[str, str]) -> Iterator[OAuthStage]:
    with ExitStack() as stack:
        yield _oauth_stage(stack, environ)


@pytest.fixture
def browser() -> Iterator[httpx.Client]:
    with httpx.Client(follow_redirects=False, trust_env=False, timeout=20) as http:
        yield http


def listed(stage: OAuthStage) -> tuple[list[dict[str, Any]], str]:
    done = invoke_cli("connections", "list", "--json", env=stage.env)
    assert done.code == 0, done.stderr
    return done.json(), done.stdout + done.stderr


def oauth_connection(stage: OAuthStage) -> dict[str, Any]:
    found = [c for c in listed(stage)[0] if c["kind"] == "oauth"]
    assert len(found) == 1, found
    return found[0]


def no_secret_in(stage: OAuthStage, *texts: str) -> None:
    issued = stage.secrets()
    assert len(issued) >= 3
    for text in texts:
        for secret in issued:
            assert secret not in text


def changes(connection: redis.Redis) -> list[dict[str, Any]]:
    entries = connection.xrange(keys.CHANGES_STREAM) or []
    return [json.loads(fields[b"change"]) for _, fields in entries if fields]


def of(found: list[dict[str, Any]], tasks: set[str]) -> list[dict[str, Any]]:
    return [c for c in found if c["resource"]["gid"] in tasks]


class TestFlow:
    def test_start_authorize_callback_lists_the_connection(
        self, stage: OAuthStage, browser: httpx.Client, redis_client: redis.Redis
    ) -> None:
        """The whole flow: state and PKCE on the way out, the grant stored as an oauth
        connection of the user who approved, shown on the page and in `connections list`."""
        started = browser.get(stage.receiver_url + "/oauth/start")
        asked = parse_qs(urlsplit(started.headers["location"]).query)
        assert started.headers["location"].startswith(stage.fake.oauth_url + "oauth_authorize?")
        assert asked["client_id"] == [CLIENT_ID]
        assert asked["response_type"] == ["code"]
        assert asked["redirect_uri"] == [stage.receiver_url + "/oauth/callback"]
        assert asked["code_challenge_method"] == ["S256"]
        assert len(asked["state"][0]) >= 32
        assert len(asked["code_challenge"][0]) == 43
        assert redis_client.ttl(keys.oauth_state(asked["state"][0])) > 0

        _, page = stage.connect(browser)
        assert page.status_code == 200, page.text
        assert "Ada Lovelace" in page.text
        assert "ada@example.com" in page.text
        shown = oauth_connection(stage)
        assert shown["id"] in page.text
        assert shown["user"] == {"gid": stage.ada, "name": "Ada Lovelace"}
        assert shown["state"] == "ok"
        assert shown["name"] == "Ada Lovelace"
        assert stage.fake.oauth.token_requests == ["authorization_code"]
        # the stored hash keeps both tokens encrypted, with their expiry
        raw = redis_client.hgetall(keys.connection(shown["id"]))
        assert {b"token", b"refresh_token", b"expires_at"} <= set(raw)
        stored = " ".join(str(v) for v in raw.values())
        listing, output = listed(stage)
        no_secret_in(stage, stored, page.text, output, json.dumps(listing))
        # the token works as Ada: /users/me answers her, not the first user
        client = AsanaClient(
            stage.settings, stage.redis, credentials=stage.store.credentials(shown["id"])
        )
        with client:
            assert client.get("/users/me")["data"]["gid"] == stage.ada

    def test_forged_or_reused_state_is_refused_and_stores_nothing(
        self, stage: OAuthStage, browser: httpx.Client, redis_client: redis.Redis
    ) -> None:
        before = set(redis_client.keys("*"))
        forged = browser.get(
            stage.receiver_url + "/oauth/callback", params={"code": "code-x", "state": "forged"}
        )
        assert forged.status_code == 400
        assert forged.text.count("\n") == 1
        assert "state" in forged.text
        missing = browser.get(stage.receiver_url + "/oauth/callback", params={"code": "x"})
        assert missing.status_code == 400
        assert set(redis_client.keys("*")) == before
        assert stage.fake.oauth.token_requests == []

        back, page = stage.connect(browser)
        assert page.status_code == 200
        stored = set(redis_client.smembers(keys.CONNECTIONS))
        again = browser.get(back)
        assert again.status_code == 400
        assert set(redis_client.smembers(keys.CONNECTIONS)) == stored
        assert stage.fake.oauth.token_requests == ["authorization_code"]

    def test_a_code_without_its_verifier_is_refused_by_asana(self, stage: OAuthStage) -> None:
        """PKCE as the fake checks it: the code alone (a stolen redirect) gets nothing."""
        with httpx.Client(trust_env=False) as http:
            started = http.get(stage.receiver_url + "/oauth/start")
            back = http.get(started.headers["location"]).headers["location"]
            code = parse_qs(urlsplit(back).query)["code"][0]
            stolen = http.post(
                stage.fake.oauth_url + "oauth_token",
                data={
                    "grant_type": "authorization_code",
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "code": code,
                    "redirect_uri": stage.receiver_url + "/oauth/callback",
                    "code_verifier": "not-the-verifier-" + "x" * 40,
                },
            )
        assert stolen.status_code == 400
        assert stolen.json()["error"] == "invalid_grant"

    def test_without_a_client_id_the_routes_are_404(self, environ: dict[str, str]) -> None:
        settings = Settings.from_environ({**environ, "HOOKS_PUBLIC_URL": "http://127.0.0.1:9"})
        with serve_in_thread(create_app(settings)) as url, httpx.Client(trust_env=False) as http:
            for path in ("/oauth/start", "/oauth/callback?state=x&code=y"):
                answer = http.get(url + path)
                assert answer.status_code == 404
                assert answer.text.count("\n") == 1
                assert "HOOKS_OAUTH_CLIENT_ID" in answer.text


def _connected(stage: OAuthStage, browser: httpx.Client) -> tuple[str, float]:
    """Connect Ada; returns the connection id and when its access token expires."""
    _, page = stage.connect(browser)
    assert page.status_code == 200, page.text
    connection_id = oauth_connection(stage)["id"]
    expires_at = stage.store.credentials(connection_id).expires_at
    assert expires_at is not None
    return connection_id, expires_at


class TestRefresh:
    def test_concurrent_callers_refresh_once(
        self, stage: OAuthStage, browser: httpx.Client
    ) -> None:
        """Eight clients (each as a process would have) find the token due at once: one
        refresh at Asana, all of them go on with the new token."""
        connection_id, expires_at = _connected(stage, browser)
        wait_for(lambda: time.time() > expires_at + 0.2, timeout=15)
        answers: list[str] = []
        problems: list[BaseException] = []

        def call() -> None:
            connection = connect(stage.settings.redis_url, socket_timeout=5.0)
            credentials = stage.store.credentials(connection_id)
            try:
                with AsanaClient(stage.settings, connection, credentials=credentials) as client:
                    answers.append(client.get("/users/me")["data"]["gid"])
            except BaseException as exc:
                problems.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert problems == []
        assert answers == [stage.ada] * 8
        assert stage.fake.oauth.token_requests == ["authorization_code", "refresh_token"]
        assert stage.store.state(connection_id) == "ok"
        renewed = stage.store.credentials(connection_id).expires_at
        assert renewed is not None
        assert renewed > expires_at

    def test_token_expiring_mid_run_is_refreshed_once_and_workers_go_on(
        self, stage: OAuthStage, browser: httpx.Client, tmp_path: Path
    ) -> None:
        """Workers rehydrate with Ada's token; it expires at Asana mid-run; the next batch is
        fetched after one refresh, no job fails, and no token reaches a log line."""
        connection_id, expires_at = _connected(stage, browser)
        project = stage.fake.world.add_project("Alpha", stage.workspace, by=stage.user)
        client = AsanaClient(
            stage.settings, stage.redis, credentials=stage.store.credentials(connection_id)
        )
        stage.cleanup.callback(client.close)
        register(
            client,
            stage.registry,
            resource_gid=project,
            public_url=stage.settings.require_public_url(),
            filters=[],
        )
        with worker_processes(stage.env, 2, log_dir=tmp_path):
            first = {stage.fake.world.add_task(f"T{i}", projects=[project]) for i in range(3)}
            wait_for(lambda: len(of(changes(stage.redis), first)) >= 3, timeout=20)
            assert stage.fake.oauth.token_requests == ["authorization_code"]
            wait_for(lambda: time.time() > expires_at + 0.3, timeout=15)
            second = {stage.fake.world.add_task(f"U{i}", projects=[project]) for i in range(3)}
            wait_for(lambda: len(of(changes(stage.redis), second)) >= 3, timeout=20)
        found = of(changes(stage.redis), first | second)
        assert {c["connection"] for c in found} == {connection_id}
        assert {c["status"] for c in found} == {"ok"}
        assert stage.fake.oauth.token_requests == ["authorization_code", "refresh_token"]
        assert not [c for c in stage.fake.calls if c.status == 401]
        assert stage.store.state(connection_id) == "ok"
        logs = "".join(p.read_text() for p in tmp_path.glob("worker-*.log"))
        assert f"oauth.refreshed connection={connection_id}" in logs
        listing, output = listed(stage)
        no_secret_in(stage, logs, output, json.dumps(listing))


class TestRevoked:
    def test_refused_refresh_marks_the_connection_revoked(
        self, stage: OAuthStage, browser: httpx.Client, caplog: pytest.LogCaptureFixture
    ) -> None:
        connection_id, expires_at = _connected(stage, browser)
        refresh = stage.store.refresh_token(connection_id)
        assert refresh is not None
        OAuthApp(stage.settings).revoke(refresh)  # what "Deauthorize" in Asana does
        wait_for(lambda: time.time() > expires_at, timeout=15)
        with (
            AsanaClient(
                stage.settings, stage.redis, credentials=stage.store.credentials(connection_id)
            ) as client,
            pytest.raises(BadToken),
        ):
            client.get("/users/me")
        shown = oauth_connection(stage)
        assert shown["state"] == "revoked"
        assert stage.fake.oauth.token_requests[-1] == "refresh_token"
        no_secret_in(stage, caplog.text, json.dumps(shown))

    def test_revoked_grant_waits_and_resumes_after_connecting_again(
        self, stage: OAuthStage, browser: httpx.Client, tmp_path: Path
    ) -> None:
        """The user deauthorizes the app: the worker's 401 marks the connection revoked, its
        changes wait; the user connects again (same connection, new grant) and they arrive."""
        connection_id, _ = _connected(stage, browser)
        project = stage.fake.world.add_project("Beta", stage.workspace, by=stage.user)
        with AsanaClient(
            stage.settings, stage.redis, credentials=stage.store.credentials(connection_id)
        ) as client:
            register(
                client,
                stage.registry,
                resource_gid=project,
                public_url=stage.settings.require_public_url(),
                filters=[],
            )
        assert stage.fake.oauth.revoke_user(stage.ada) == 1
        with worker_processes(stage.env, 2, log_dir=tmp_path):
            tasks = {stage.fake.world.add_task(f"R{i}", projects=[project]) for i in range(3)}
            wait_for(lambda: oauth_connection(stage)["state"] == "revoked", timeout=20)
            wait_for(lambda: oauth_connection(stage)["waiting"] >= 1, timeout=20)
            assert of(changes(stage.redis), tasks) == []
            _, page = stage.connect(browser)
            assert page.status_code == 200
            assert connection_id in page.text
            assert oauth_connection(stage)["state"] == "ok"
            wait_for(lambda: len(of(changes(stage.redis), tasks)) >= 3, timeout=60)
            resumed = f"resume.done connection={connection_id}"
            wait_for(lambda: resumed in worker_logs(tmp_path), timeout=10)  # logged after
        assert {c["connection"] for c in of(changes(stage.redis), tasks)} == {connection_id}
        assert oauth_connection(stage)["waiting"] == 0
        logs = worker_logs(tmp_path)
        no_secret_in(stage, logs)


def worker_logs(folder: Path) -> str:
    return "".join(p.read_text() for p in sorted(folder.glob("worker-*.log")))


def test_a_pasted_token_is_refused_for_an_oauth_connection(
    stage: OAuthStage, browser: httpx.Client
) -> None:
    """`connections token` on an OAuth connection would store a token nobody refreshes: it
    is refused in one line that says where the user connects again, and nothing changes."""
    connection_id, _ = _connected(stage, browser)
    before = stage.redis.hgetall(keys.connection(connection_id))
    done = invoke_cli(
        "connections", "token", connection_id, "--token-env", "T", env={**stage.env, "T": "x"}
    )
    assert done.code == 2
    assert "/oauth/start" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert stage.redis.hgetall(keys.connection(connection_id)) == before


def test_remove_revokes_the_grant_at_asana(stage: OAuthStage, browser: httpx.Client) -> None:
    connection_id, _ = _connected(stage, browser)
    assert stage.fake.oauth.grants_of(stage.ada) == 1
    done = invoke_cli("connections", "remove", connection_id, "--json", env=stage.env)
    assert done.code == 0, done.stderr
    assert done.json()["id"] == connection_id
    assert stage.fake.oauth.grants_of(stage.ada) == 0
    assert [c for c in listed(stage)[0] if c["kind"] == "oauth"] == []
    no_secret_in(stage, done.stdout, done.stderr)


def test_credentials_repr_hides_oauth_tokens(stage: OAuthStage, browser: httpx.Client) -> None:
    connection_id, _ = _connected(stage, browser)
    credentials = stage.store.credentials(connection_id)
    refresh = stage.store.refresh_token(connection_id)
    assert isinstance(refresh, Secret)
    no_secret_in(stage, repr(credentials), repr(refresh), str(refresh))
