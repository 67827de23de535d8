"""`--tunnel`: its clear failures, the watchdog, and the catch-up after a new address.

ngrok's service cannot be reached from here, so the tunnel itself is never opened: the failures
are the real ones (no NGROK_AUTHTOKEN; the SDK's own error when it cannot connect, pointed at a
closed port on 127.0.0.1 with NGROK_SERVER_ADDR). The watchdog and the catch-up do not depend
on ngrok: they are run against our receivers on 127.0.0.1 standing for public URLs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from asana_hooks.dev.redis_server import free_port
from asana_hooks.public_url import last_tunnel, live_tunnel, remember_tunnel
from asana_hooks.redis_conn import connect
from asana_hooks.settings import Settings
from asana_hooks.tunnel_watch import TunnelWatch, catch_up
from receiver.app import create_app
from tests.helpers import serve_in_thread, wait_for
from tests.operator_system import CLI, run_cli
from tests.poller_stage import running_stage

if importlib.util.find_spec("ngrok") is None:  # found, not imported: only subprocesses load it
    pytest.skip("the tunnel extra: pip install -e '.[tunnel]'", allow_module_level=True)

NGROK_TOKEN = "ngrok-test-token-do-not-print"


def _env(environ: dict[str, str], **extra: str) -> dict[str, str]:
    passthrough = {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}
    return {**environ, **passthrough, **extra}


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


class TestClearFailures:
    """One line, the right exit code, nothing left running, the token never shown."""

    @pytest.mark.parametrize("command", ["serve", "dev"])
    def test_without_a_token(self, environ: dict[str, str], command: str) -> None:
        """No NGROK_AUTHTOKEN: exit 2, saying where to get one."""
        port = free_port()
        done = run_cli(command, "--tunnel", "--port", str(port), env=_env(environ))
        assert done.code == 2, done.stderr
        [line] = done.stderr.strip().splitlines()
        assert line.startswith("error: --tunnel needs NGROK_AUTHTOKEN")
        assert not _listening(port)

    @pytest.mark.parametrize("command", ["serve", "dev"])
    def test_ngrok_unreachable(self, environ: dict[str, str], command: str) -> None:
        """The SDK cannot connect: exit 4 with its reason and what to check; nothing runs."""
        port = free_port()
        env = _env(
            environ,
            NGROK_AUTHTOKEN=NGROK_TOKEN,
            NGROK_SERVER_ADDR=f"127.0.0.1:{free_port()}",
            HOOKS_PUBLIC_URL="https://old.example.test",
        )
        done = run_cli(command, "--tunnel", "--port", str(port), env=env)
        assert done.code == 4, done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert errors == [
            "error: could not open the ngrok tunnel (failed to connect session; failed to "
            "establish tcp connection): check the network (ngrok needs outbound TLS on port "
            "443), then try again"
        ]
        assert "Traceback" not in done.stderr
        assert NGROK_TOKEN not in done.stdout + done.stderr
        assert not _listening(port)

    def test_ngrok_not_speaking_its_protocol(self, environ: dict[str, str]) -> None:
        """Something else answers at the agent's address and hangs up: the SDK's TLS error,
        exit 4."""
        with socket.socket() as impostor:
            impostor.bind(("127.0.0.1", 0))
            impostor.listen(4)
            stop = threading.Event()

            def hang_up() -> None:
                impostor.settimeout(0.2)
                while not stop.is_set():
                    with contextlib.suppress(OSError):
                        peer, _ = impostor.accept()
                        peer.close()

            thread = threading.Thread(target=hang_up, daemon=True)
            thread.start()
            address = f"127.0.0.1:{impostor.getsockname()[1]}"
            env = _env(environ, NGROK_AUTHTOKEN=NGROK_TOKEN, NGROK_SERVER_ADDR=address)
            done = run_cli("serve", "--tunnel", "--port", str(free_port()), env=env)
            stop.set()
            thread.join(5)
        assert done.code == 4, done.stderr
        assert "could not open the ngrok tunnel (failed to connect session; tls" in done.stderr

    def test_a_bad_agent_address_is_a_setting_error(self, environ: dict[str, str]) -> None:
        """NGROK_SERVER_ADDR must be host:port: exit 2 naming the variable."""
        env = _env(environ, NGROK_AUTHTOKEN=NGROK_TOKEN, NGROK_SERVER_ADDR="nowhere")
        done = run_cli("serve", "--tunnel", env=env)
        assert done.code == 2
        assert done.stderr.startswith("error: NGROK_SERVER_ADDR must look like host:port")


@pytest.fixture
def public(environ: dict[str, str]) -> Iterator[str]:
    """One of our receivers, standing for the tunnel's public URL."""
    with serve_in_thread(create_app(Settings.from_environ(environ))) as url:
        yield url


class TestWatchdog:
    """The tunnel's public /healthz is checked; a dead tunnel shows in the log and /status."""

    def test_a_tunnel_that_stops_answering_is_noticed(
        self, environ: dict[str, str], caplog: pytest.LogCaptureFixture
    ) -> None:
        """Announced, it is the current public URL; once it stops answering, the log and
        /status.json say so; when it answers again, too."""
        connection = connect(environ["REDIS_URL"], socket_timeout=5.0)
        status_app = create_app(Settings.from_environ(environ))
        port = free_port()
        with serve_in_thread(status_app) as status_url:
            tunnel_url = f"http://127.0.0.1:{port}"
            watch = TunnelWatch(connection, tunnel_url)
            with serve_in_thread(create_app(Settings.from_environ(environ)), port=port):
                watch.announce()
                assert watch.check() is True
                page = httpx.get(f"{status_url}/status.json", timeout=5).json()
                assert page["public_url"] == tunnel_url
                assert page["tunnel"]["ok"] is True
            with caplog.at_level(logging.INFO, logger="asana_hooks.tunnel_watch"):
                assert watch.check() is False
            assert any(r.message.startswith("tunnel.down") for r in caplog.records)
            page = httpx.get(f"{status_url}/status.json", timeout=5).json()
            assert page["tunnel"]["ok"] is False
            assert page["tunnel"]["problem"]
            assert page["tunnel"]["url"] == tunnel_url
            with serve_in_thread(create_app(Settings.from_environ(environ)), port=port):
                with caplog.at_level(logging.INFO, logger="asana_hooks.tunnel_watch"):
                    assert watch.check() is True
                assert any(r.message.startswith("tunnel.back") for r in caplog.records)
            watch.withdraw()
            assert live_tunnel(connection) is None
            page = httpx.get(f"{status_url}/status.json", timeout=5).json()
            assert page["tunnel"] is None
        connection.close()


class TestCatchUp:
    """A tunnel back on a new address moves the webhooks by itself, and says so."""

    def test_new_address_moves_the_webhooks(
        self, environ: dict[str, str], caplog: pytest.LogCaptureFixture
    ) -> None:
        """Webhooks under the last run's address move to the new one; the address is kept."""
        with running_stage(environ) as stage:
            old_url = stage.settings.require_public_url()
            project = stage.project()
            old = stage.register(project)
            remember_tunnel(stage.redis, old_url)
            with serve_in_thread(create_app(stage.settings)) as new_url:
                with caplog.at_level(logging.INFO, logger="asana_hooks.tunnel_watch"):
                    moved = catch_up(stage.settings, stage.redis, new_url)
                assert moved == 1
                assert any(r.message.startswith("tunnel.moved") for r in caplog.records)
                [webhook] = stage.fake.webhooks.values()
                assert webhook.target.startswith(f"{new_url}/hooks/asana/")
                assert old.webhook_gid not in stage.fake.webhooks
                assert last_tunnel(stage.redis) == new_url
                assert catch_up(stage.settings, stage.redis, new_url) == 0

    def test_first_run_only_advises(
        self, environ: dict[str, str], caplog: pytest.LogCaptureFixture
    ) -> None:
        """With no earlier tunnel, webhooks under HOOKS_PUBLIC_URL stay; the log says how to
        move them."""
        with running_stage(environ) as stage:
            stage.register(stage.project())
            with caplog.at_level(logging.INFO, logger="asana_hooks.tunnel_watch"):
                assert catch_up(stage.settings, stage.redis, "https://new.example.test") == 0
            assert any("webhooks retarget --all" in r.message for r in caplog.records)
            [webhook] = stage.fake.webhooks.values()
            assert webhook.target.startswith(stage.settings.require_public_url())


class TestDevState:
    """The CLI in the directory of a running `dev` reaches its Redis and key (step 3 of the
    README's real-Asana path), and no longer once it stopped."""

    def test_cli_beside_a_running_dev(self, tmp_path: Path) -> None:
        """`webhooks list` finds dev's embedded Redis with no REDIS_URL set."""
        port = free_port()
        env = _env(
            {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)},
            ASANA_ACCESS_TOKEN="test-token",
            ASANA_API_URL="http://127.0.0.1:9/api/1.0",
        )
        dev = subprocess.Popen(
            [CLI, "dev", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: _listening(port), timeout=30)
            wait_for(lambda: (tmp_path / ".asana-hooks" / "redis-url").is_file())
            listed = subprocess.run(
                [CLI, "webhooks", "list", "--json"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert listed.returncode == 0, listed.stderr
            assert listed.stdout.strip() == "[]"
        finally:
            dev.terminate()
            dev.wait(30)
        assert not (tmp_path / ".asana-hooks" / "redis-url").exists()
