"""`asana-hooks dev`: Redis, the receiver, a worker and the poller on one machine. I/O edge.

Redis is embedded (``EmbeddedRedis``) unless REDIS_URL is set. The receiver, the worker and
the poller run as child processes of this one, exactly as in production; ``--demo`` adds
the fake Asana (in this process) and plays ``demo.play`` against it. ``--tunnel`` opens an
ngrok tunnel in this process (asana_hooks.tunnel) and runs the children under its URL.
Ctrl-C stops it all.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from asana_hooks import logs
from asana_hooks.dev.redis_server import EmbeddedRedis
from asana_hooks.dev_state import announce
from asana_hooks.secretbox import generate_key
from asana_hooks.settings import Settings

log = logging.getLogger("asana_hooks.dev")
STATE_DIR = Path(".asana-hooks")
DEMO_TOKEN = "demo-token"  # noqa: S105 - the fake Asana's token, not a secret
DEMO_SETTINGS = {
    "HOOKS_DEBOUNCE_SECONDS": "1",
    "HOOKS_MAX_DELAY_SECONDS": "5",
    "HOOKS_POLL_INTERVAL_SECONDS": "10",
}


def run_dev(
    *, demo: bool, port: int, tunnel: bool = False, tunnel_domain: str | None = None
) -> None:
    logs.configure()
    signal.signal(signal.SIGTERM, _stop)
    try:
        _run(demo=demo, port=port, tunnel=tunnel, tunnel_domain=tunnel_domain)
    except KeyboardInterrupt:
        log.info("dev stopped")


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _run(*, demo: bool, port: int, tunnel: bool, tunnel_domain: str | None) -> None:
    settings = Settings.from_environ(os.environ)
    with ExitStack() as stack:
        opened = None
        if tunnel:  # opened before anything starts: a refusal leaves nothing running
            from asana_hooks.tunnel import open_for

            opened = open_for(settings, port, tunnel_domain)
            stack.callback(opened.close)
        env = dict(os.environ)
        if not settings.redis_url_is_set:
            data_dir = Path(tempfile.mkdtemp(prefix="asana-hooks-demo-")) if demo else None
            appendfsync = "always" if settings.durability == "fsync" else "everysec"
            server = stack.enter_context(
                EmbeddedRedis(data_dir or STATE_DIR / "redis", appendfsync=appendfsync)
            )
            env["REDIS_URL"] = server.url
            if not demo:  # the CLI in another terminal, in this directory, finds it
                stack.callback(announce(server.url).unlink, missing_ok=True)
            log.info("dev redis=%s data=%s (%s)", server.url, server.data_dir, server.binary.name)
        if not settings.encryption_keys:
            env["HOOKS_ENCRYPTION_KEY"] = _dev_key()
        if opened is not None:
            env["HOOKS_PUBLIC_URL"] = opened.url
        env.setdefault("HOOKS_PUBLIC_URL", f"http://127.0.0.1:{port}")
        fake = None
        if demo:
            from asana_hooks.dev.fake_asana import FakeAsana

            fake = stack.enter_context(FakeAsana(token=DEMO_TOKEN))
            env |= {"ASANA_API_URL": fake.api_url, "ASANA_ACCESS_TOKEN": DEMO_TOKEN}
            env |= {name: env.get(name, value) for name, value in DEMO_SETTINGS.items()}
            log.info("dev fake Asana at %s", fake.api_url)
        commands = [
            ["serve", "--host", "127.0.0.1", "--port", str(port)],
            ["worker"],
        ]
        if env.get("ASANA_ACCESS_TOKEN"):
            commands.append(["poll"])
        else:
            log.warning("dev: ASANA_ACCESS_TOKEN is not set, so the poller does not run")
        children = [stack.enter_context(_child(command, env)) for command in commands]
        base = f"http://127.0.0.1:{port}"
        _wait_ready(f"{base}/readyz", children)
        if opened is not None:
            _through_tunnel(stack, env, opened.url)
        log.info("dev ready: receiver %s/hooks/asana/<target>, status page %s/status", base, base)
        if fake is not None:
            from asana_hooks.dev.demo import play, print_changes

            stop = threading.Event()
            stack.callback(stop.set)
            threading.Thread(
                target=print_changes, args=(env["REDIS_URL"], stop), daemon=True
            ).start()
            threading.Thread(target=play, args=(fake, env), daemon=True).start()
        _watch(children)


def _through_tunnel(stack: ExitStack, env: dict[str, str], url: str) -> None:
    """Check the tunnel end to end, then announce it, catch up and watch it (until dev stops)."""
    from asana_hooks.tunnel import announce_ready, wait_public
    from asana_hooks.tunnel_watch import start_duties

    wait_public(url)
    announce_ready(url)
    thread, stop = start_duties(Settings.from_environ(env), url)
    stack.callback(thread.join, 10)
    stack.callback(stop.set)


def _dev_key() -> str:
    """A key kept beside the dev Redis, so secrets stored by an earlier run stay readable."""
    path = STATE_DIR / "dev-key"
    if path.exists():
        return path.read_text().strip()
    STATE_DIR.mkdir(exist_ok=True)
    key = generate_key()
    path.write_text(key)
    path.chmod(0o600)
    return key


@contextmanager
def _child(arguments: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(  # noqa: S603 - our own command
        [sys.executable, "-m", "asana_hooks", *arguments],
        env=env,
        start_new_session=True,  # Ctrl-C reaches only us; we stop children in order
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(url: str, children: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _check_alive(children)
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the receiver did not become ready at {url}")


def _watch(children: list[subprocess.Popen[bytes]]) -> None:
    while True:
        _check_alive(children)
        time.sleep(0.5)


def _check_alive(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is not None:
            command = " ".join(str(part) for part in child.args[3:])  # type: ignore[index]
            raise SystemExit(f"dev: `asana-hooks {command}` exited with {child.returncode}")
