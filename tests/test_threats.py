"""The threat model's defences, one test each where no other test already names it.

See README.md, "Threat model", for the table of threats, defences and tests.
"""

from __future__ import annotations

import ast
import logging
import re
import socket
import time
from pathlib import Path

import httpx
import pytest
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from asana_hooks.asana_client import AsanaClient
from asana_hooks.dev.fake_asana import FakeAsana
from asana_hooks.registration import SecretMismatch, register
from asana_hooks.registry import Registry
from asana_hooks.secretbox import SecretBox
from asana_hooks.settings import Settings
from receiver.app import create_app
from receiver.signatures import sign
from tests.helpers import serve_in_thread
from workers.sinks import SinkFailed, forward

SECRET = "f" * 64
SENSITIVE = re.compile(r"secret|signature|digest|expected|token|left|right", re.IGNORECASE)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def registry(redis_client: redis.Redis, settings: Settings) -> Registry:
    return Registry(redis_client, SecretBox(settings.encryption_keys))


class TestSlowAndLarge:
    def test_a_stalled_body_is_cut_off(self, environ: dict[str, str]) -> None:
        """A client that sends headers and then trickles nothing gets 408 and is let go."""
        settings = Settings.from_environ(environ | {"HOOKS_BODY_TIMEOUT_SECONDS": "0.5"})
        with serve_in_thread(create_app(settings)) as url:
            port = int(url.rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(
                    b"POST /hooks/asana/t1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
                )
                started = time.monotonic()
                answer = sock.recv(4096)
                waited = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408")
        assert waited < 3


class TestSecretsStayOutOfLogs:
    def test_handshake_and_delivery_logs_hold_no_secret(
        self,
        settings: Settings,
        registry: Registry,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Log lines carry target, count, status and latency; never a secret or a signature."""
        registry.begin(target_id="t1", resource_gid="1", target_url="https://x/t1", filters=[])
        body = (
            b'{"events": [{"action": "added", "resource": {"gid": "2", "resource_type": "task"}}]}'
        )
        signature = sign(body, SECRET)
        with caplog.at_level(logging.DEBUG), serve_in_thread(create_app(settings)) as url:
            assert httpx.post(f"{url}/hooks/asana/t1", headers={"X-Hook-Secret": SECRET}).is_success
            registry.confirm("t1", webhook_gid="9", asana_secret=SECRET)
            answer = httpx.post(
                f"{url}/hooks/asana/t1", content=body, headers={"X-Hook-Signature": signature}
            )
            assert answer.status_code == 200
            httpx.post(
                f"{url}/hooks/asana/t1", content=body, headers={"X-Hook-Signature": "0" * 64}
            )
        ours = ("receiver", "asana_hooks", "workers", "uvicorn", "rq")
        logged = "\n".join(
            record.getMessage() for record in caplog.records if record.name.startswith(ours)
        )
        assert "target_id=t1" in logged
        assert SECRET not in logged
        assert signature not in logged
        assert settings.encryption_keys[0].reveal() not in logged


class TestConstantTime:
    def test_signature_and_secret_comparisons_use_compare_digest(self) -> None:
        """No `==` on a signature or a secret: the comparisons are hmac.compare_digest.

        A timing test cannot tell 64 bytes compared with `==` from compare_digest on a
        shared machine, so this guards the construction itself.
        """
        for path in ("receiver/signatures.py", "asana_hooks/secretbox.py"):
            tree = ast.parse((ROOT / path).read_text())
            calls = [
                node
                for node in ast.walk(tree)
                if isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "compare_digest"
            ]
            equalities = [
                ast.unparse(node)
                for node in ast.walk(tree)
                if isinstance(node, ast.Compare)
                and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops)
                and SENSITIVE.search(ast.unparse(node))
            ]
            assert calls, path
            assert not equalities, f"{path}: {equalities}"


class TestForeignReceiver:
    def test_a_target_that_is_not_our_receiver_is_refused(
        self, environ: dict[str, str], registry: Registry, redis_client: redis.Redis
    ) -> None:
        """HOOKS_PUBLIC_URL reaching someone else's server (a reassigned tunnel) that echoes
        Asana's handshake: the secret in Asana's 201 is not one our receiver stored, so the
        webhook is deleted again and nothing is registered."""

        async def echo(request: Request) -> Response:
            return Response(headers={"X-Hook-Secret": request.headers.get("x-hook-secret", "")})

        impostor = Starlette(routes=[Route("/hooks/asana/{target_id}", echo, methods=["POST"])])
        with (
            FakeAsana(token="test-token", time_scale=0.001) as fake,
            serve_in_thread(impostor) as impostor_url,
        ):
            workspace = fake.world.add_workspace("Acme")
            project = fake.world.add_project("Launch", workspace)
            settings = Settings.from_environ(environ | {"ASANA_API_URL": fake.api_url})
            with AsanaClient(settings, redis_client) as client, pytest.raises(SecretMismatch):
                register(
                    client, registry, resource_gid=project, public_url=impostor_url, filters=[]
                )
            assert fake.webhooks == {}
        assert registry.all() == []


class TestForwardSink:
    def test_the_forward_never_follows_a_redirect(self) -> None:
        """HOOKS_FORWARD_URL answering 302 to an internal address: the change goes nowhere else."""
        reached: list[str] = []

        async def internal(request: Request) -> Response:
            reached.append(request.url.path)
            return Response()

        async def redirect(request: Request) -> Response:
            return Response(status_code=302, headers={"Location": internal_url + "/admin"})

        with (
            serve_in_thread(
                Starlette(routes=[Route("/admin", internal, methods=["GET", "POST"])])
            ) as internal_url,
            serve_in_thread(
                Starlette(routes=[Route("/in", redirect, methods=["POST"])])
            ) as forward_url,
            pytest.raises(SinkFailed, match="302"),
        ):
            forward(f"{forward_url}/in", {"resource": {"gid": "1"}}, secret="k")
        assert reached == []
