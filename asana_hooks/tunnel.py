"""An ngrok tunnel to the local receiver, checked end to end. I/O edge (ngrok's agent SDK, HTTP).

`dev --tunnel` and `serve --tunnel` (DESIGN.md §6.8) open one through the official agent SDK
for Python, the ``ngrok`` package. It is the optional extra ``asana-hooks[tunnel]``, imported
here and only when a tunnel is asked for, so the core never depends on it. Each way it can
fail is one ``TunnelError`` whose message says what to do: without the extra or without
``NGROK_AUTHTOKEN`` (``exit_code`` 2, a setting to fix), or when ngrok refuses or cannot be
reached, or the tunnel does not reach our /healthz (4, the remote side). The token is passed to
the SDK and never logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

import click
import httpx

from asana_hooks.errors import HooksError
from asana_hooks.secretbox import Secret
from asana_hooks.settings import Settings

EXIT_CONFIG = 2
EXIT_REMOTE = 4
"""The CLI's exit codes (asana_hooks.cli.context): a setting to fix; the remote side failed."""

CHECK_TIMEOUT_SECONDS = 10.0
"""One request to the public /healthz."""

OPEN_WITHIN_SECONDS = 30.0
"""How long ngrok may take to open the tunnel (the SDK itself waits forever on a silent peer)."""

READY_WITHIN_SECONDS = 20.0
"""How long a new tunnel may take to carry its first request to the receiver."""

SKIP_WARNING = {"ngrok-skip-browser-warning": "1"}
"""ngrok may put an interstitial page in front of a free domain; this header skips it."""

SIGNUP_HELP = (
    "get an authtoken at https://dashboard.ngrok.com/get-started/your-authtoken and export it "
    "as NGROK_AUTHTOKEN (or run without --tunnel and set HOOKS_PUBLIC_URL yourself)"
)

log = logging.getLogger(__name__)


_STARTED: list[bool] = []
"""Set once this process started the SDK (see ``exit_now``)."""


class TunnelError(HooksError):
    """The tunnel could not be opened or does not reach the receiver."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __repr__(self) -> str:
        return f"TunnelError({self.message!r}, exit_code={self.exit_code})"


@dataclass(frozen=True)
class Tunnel:
    """An open tunnel: ``url`` reaches the receiver from the internet."""

    url: str

    def close(self) -> None:
        """Stop forwarding (the SDK's own thread lives as long as this process otherwise)."""
        sdk = _import_sdk()
        with contextlib.suppress(Exception):  # closing at exit: a session already gone is fine
            sdk.disconnect(self.url)


def require_sdk(authtoken: Secret | None) -> None:
    """Fail before anything starts when the extra or the token is missing."""
    _import_sdk()
    if authtoken is None:
        raise TunnelError(f"--tunnel needs NGROK_AUTHTOKEN: {SIGNUP_HELP}", EXIT_CONFIG)


def open_tunnel(
    port: int,
    *,
    authtoken: Secret | None,
    domain: str | None = None,
    server_addr: str | None = None,
) -> Tunnel:
    """Forward a public https URL to the receiver on 127.0.0.1:``port``."""
    require_sdk(authtoken)
    assert authtoken is not None  # noqa: S101 - checked just above
    sdk = _import_sdk()
    options: dict[str, Any] = {"authtoken": authtoken.reveal(), "proto": "http"}
    if domain:
        options["domain"] = domain
    if server_addr:
        options["server_addr"] = server_addr
    _STARTED.append(True)
    try:
        listener = sdk.forward(f"127.0.0.1:{port}", **options)
    except Exception as exc:
        raise TunnelError(_refusal(exc, domain=domain), EXIT_REMOTE) from None
    return Tunnel(url=str(listener.url()).rstrip("/"))


def public_problem(url: str) -> str | None:
    """None when ``url``/healthz answers our 'ok'; else what went wrong, in a few words."""
    try:
        answer = httpx.get(
            f"{url}/healthz",
            headers=SKIP_WARNING,
            timeout=CHECK_TIMEOUT_SECONDS,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:200]
    if answer.status_code != 200 or answer.text.strip() != "ok":
        return f"answered {answer.status_code}, not our 'ok'"
    return None


def wait_public(url: str, *, within: float = READY_WITHIN_SECONDS) -> None:
    """Wait until the public /healthz answers through the tunnel, or fail in one line."""
    deadline = time.monotonic() + within
    while True:
        problem = public_problem(url)
        if problem is None:
            return
        if time.monotonic() > deadline:
            raise TunnelError(
                f"the tunnel opened at {url}, but {url}/healthz does not reach this receiver "
                f"({problem}); check the ngrok dashboard for the endpoint, then try again",
                EXIT_REMOTE,
            )
        time.sleep(0.5)


def sdk_started() -> bool:
    return bool(_STARTED)


def exit_now(code: object) -> None:
    """End a process that started the SDK without Python's finalization: the SDK's own
    threads (Rust, ngrok 1.4) can crash it then (an abort or a segfault, in about one exit in
    ten here), which would turn our one-line failure, or a clean Ctrl-C, into a core dump."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else (0 if code is None else 1))


def _import_sdk() -> Any:
    try:
        import ngrok  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise TunnelError(
            "--tunnel needs the ngrok agent SDK: pip install 'asana-hooks[tunnel]'", EXIT_CONFIG
        ) from None
    return ngrok


def _refusal(exc: Exception, *, domain: str | None) -> str:
    """The SDK's error (a tuple of messages from its Rust core) as one line of advice."""
    said = "; ".join(str(part) for part in exc.args if part) or type(exc).__name__
    lowered = said.lower()
    if "authtoken" in lowered or "authentication" in lowered or "err_ngrok_105" in lowered:
        advice = f"ngrok refused NGROK_AUTHTOKEN: {SIGNUP_HELP}"
    elif domain and ("domain" in lowered or "err_ngrok_3" in lowered):
        advice = f"ngrok refused --tunnel-domain {domain}: reserve it in your ngrok dashboard"
    else:
        advice = "check the network (ngrok needs outbound TLS on port 443), then try again"
    return f"could not open the ngrok tunnel ({said[:200]}): {advice}"


def open_for(settings: Settings, port: int, domain: str | None) -> Tunnel:
    """Open the tunnel, say which public URL this run is under, and print it."""
    require_sdk(settings.ngrok_authtoken)
    tunnel = open_tunnel(
        port,
        authtoken=settings.ngrok_authtoken,
        domain=domain,
        server_addr=settings.ngrok_server_addr,
    )
    if settings.public_url and settings.public_url != tunnel.url:
        log.warning(
            "tunnel.overrides HOOKS_PUBLIC_URL=%s: this run is under the tunnel's %s",
            settings.public_url,
            tunnel.url,
        )
    log.info("tunnel.open url=%s -> 127.0.0.1:%d", tunnel.url, port)
    return tunnel


def under_tunnel(settings: Settings, tunnel: Tunnel) -> Settings:
    return replace(settings, public_url=tunnel.url)


def announce_ready(url: str) -> None:
    log.info("tunnel.ready url=%s: %s/healthz answers through the tunnel", url, url)
    click.echo(f"public URL {url} (webhook targets: {url}/hooks/asana/<target>)")
