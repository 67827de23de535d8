"""`--tunnel` and `--tunnel-domain` on `serve` and `dev`: the options, and serving through one.

I/O edge (the ngrok SDK through asana_hooks.tunnel, uvicorn). The tunnel is opened before the
receiver starts, so a missing token or an unreachable ngrok stops the command with one line
(asana_hooks.tunnel's ``TunnelError``, printed by the CLI's ``main``) and nothing left running.
Its URL then replaces HOOKS_PUBLIC_URL for this run (a log line says so when both are set).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from asana_hooks.settings import Settings
from asana_hooks.tunnel import (
    Tunnel,
    TunnelError,
    announce_ready,
    wait_public,
)
from asana_hooks.tunnel_watch import start_duties

log = logging.getLogger("asana_hooks.cli")

F = TypeVar("F", bound=Callable[..., Any])


def tunnel_options(command: F) -> F:
    """``--tunnel`` and ``--tunnel-domain`` (which implies ``--tunnel``)."""
    command = click.option(
        "--tunnel-domain",
        metavar="DOMAIN",
        help="A domain reserved in your ngrok account, so the public URL stays the same.",
    )(command)
    return click.option(
        "--tunnel",
        is_flag=True,
        help="Open an ngrok tunnel to the receiver and run under its public URL "
        "(pip install 'asana-hooks[tunnel]'; NGROK_AUTHTOKEN).",
    )(command)


class ServeSupervisor:
    """For `serve --tunnel`: once uvicorn listens, check the tunnel end to end, then start its
    duties (asana_hooks.tunnel_watch); stop the server when the check fails."""

    def __init__(self, settings: Settings, tunnel: Tunnel, server: Any) -> None:
        self._settings = settings
        self._tunnel = tunnel
        self._server = server
        self.failure: TunnelError | None = None
        self._stop: threading.Event | None = None
        self._duties: threading.Thread | None = None
        self._thread = threading.Thread(target=self._run, name="tunnel-ready", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.join(timeout=30)
        if self._stop is not None and self._duties is not None:
            self._stop.set()
            self._duties.join(timeout=10)  # the URL is withdrawn before the process ends

    def _run(self) -> None:
        while not self._server.started:
            if self._server.should_exit:
                return
            time.sleep(0.1)
        try:
            wait_public(self._tunnel.url)
        except TunnelError as exc:
            self.failure = exc
            self._server.should_exit = True
            return
        announce_ready(self._tunnel.url)
        self._duties, self._stop = start_duties(self._settings, self._tunnel.url)
