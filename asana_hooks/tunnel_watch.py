"""What a `--tunnel` process does once its tunnel answers. I/O edge (Redis, HTTP, Asana).

DESIGN.md §6.8 and issue 19: tunnels stop silently, and a tunnel that comes back on a new
address leaves every webhook pointing at a dead target. So the process

- announces the tunnel's URL in Redis as the current public URL (renewed each check, gone
  when it stops), so the CLI and the poller create and re-create webhooks under it;
- moves the webhooks over by itself when the address changed since the last run, saying so in
  the log (``catch_up``), and records the address only once every webhook made it, so an
  interrupted run is finished by the next one;
- checks the public /healthz every minute (``TunnelWatch``), logs when it stops and when it
  answers again, and keeps the outcome in Redis for ``/status``. The poller keeps everything
  flowing meanwhile: Asana's retries, then the Events API, cover what the tunnel missed.
"""

from __future__ import annotations

import logging
import threading

import redis

from asana_hooks.asana_client import AsanaClient
from asana_hooks.public_url import (
    clear_live_tunnel,
    last_tunnel,
    record_live_tunnel,
    record_tunnel_check,
    remember_tunnel,
)
from asana_hooks.redis_conn import connect
from asana_hooks.registry import Registry
from asana_hooks.retarget import Retargeter, needs_move
from asana_hooks.secretbox import SecretBox
from asana_hooks.settings import Settings
from asana_hooks.tunnel import public_problem
from asana_hooks.watches import WatchStore

log = logging.getLogger(__name__)

CHECK_EVERY_SECONDS = 60.0
"""How often the watchdog asks the public /healthz."""


class TunnelWatch:
    """Announces one tunnel's URL and checks that it keeps reaching the receiver."""

    def __init__(
        self, connection: redis.Redis, url: str, *, every: float = CHECK_EVERY_SECONDS
    ) -> None:
        self._redis = connection
        self.url = url
        self._every = every
        self._answering = True

    def announce(self) -> None:
        """The tunnel answers (checked by the caller): its URL is the current public URL."""
        record_live_tunnel(self._redis, self.url)
        record_tunnel_check(self._redis, self.url, problem=None)

    def check(self) -> bool:
        """One check of the public /healthz; logs a change, records it, renews the URL."""
        problem = public_problem(self.url)
        record_live_tunnel(self._redis, self.url)
        record_tunnel_check(self._redis, self.url, problem=problem)
        if problem is not None and self._answering:
            log.error(
                "tunnel.down url=%s: %s; deliveries wait at Asana (it retries) and the poller "
                "keeps changes flowing",
                self.url,
                problem,
            )
        elif problem is None and not self._answering:
            log.warning("tunnel.back url=%s: the public URL reaches the receiver again", self.url)
        self._answering = problem is None
        return self._answering

    def run(self, stop: threading.Event) -> None:
        """Check every ``every`` seconds until ``stop`` is set; then withdraw the URL."""
        try:
            while not stop.wait(self._every):
                try:
                    self.check()
                except redis.RedisError as exc:
                    log.warning("tunnel.unrecorded url=%s: Redis: %s", self.url, exc)
        finally:
            self.withdraw()

    def withdraw(self) -> None:
        try:
            clear_live_tunnel(self._redis, self.url)
        except redis.RedisError:
            log.warning(
                "tunnel.stop url=%s: Redis unreachable; the URL expires by itself", self.url
            )


def catch_up(settings: Settings, connection: redis.Redis, url: str) -> int:
    """Move every webhook to ``url`` when the tunnel's address changed since the last run;
    returns how many moved. Records ``url`` once nothing is left behind."""
    previous = last_tunnel(connection)
    if previous == url:
        return 0
    registry = Registry(connection, SecretBox(settings.encryption_keys))
    behind = [r for r in registry.all() if needs_move(r, url)]
    if previous is None and behind:
        log.warning(
            "tunnel.first_run url=%s: %d webhook(s) deliver elsewhere; move them with "
            "`asana-hooks webhooks retarget --all`",
            url,
            len(behind),
        )
        remember_tunnel(connection, url)
        return 0
    if not behind:
        remember_tunnel(connection, url)
        return 0
    if settings.asana_access_token is None:
        log.error(
            "tunnel.moved from=%s to=%s: ASANA_ACCESS_TOKEN is not set; cannot move "
            "the %d webhook(s)",
            previous,
            url,
            len(behind),
        )
        return 0
    log.warning(
        "tunnel.moved from=%s to=%s: moving %d webhook(s) to the new address",
        previous,
        url,
        len(behind),
    )
    moved = failed = 0
    with AsanaClient(settings, connection, timeout=30.0) as client:
        mover = Retargeter(client, registry, WatchStore(connection), public_url=url)
        for outcome in mover.move_each(behind):
            moved += outcome.moved is not None
            failed += outcome.error is not None
    if failed:
        log.error(
            "tunnel.retarget_incomplete to=%s moved=%d failed=%d: the next start tries again, "
            "or run `asana-hooks webhooks retarget --all`",
            url,
            moved,
            failed,
        )
    else:
        remember_tunnel(connection, url)
        log.warning("tunnel.retargeted to=%s moved=%d", url, moved)
    return moved


def start_duties(settings: Settings, url: str) -> tuple[threading.Thread, threading.Event]:
    """Once the tunnel answers: announce it, catch up, then watch it, in a thread of its own
    (the receiver or `dev` go on meanwhile). Set the event to stop; the URL is withdrawn."""
    stop = threading.Event()

    def duties() -> None:
        connection = connect(settings.redis_url, socket_timeout=5.0)
        watch = TunnelWatch(connection, url)
        try:
            watch.announce()
            catch_up(settings, connection, url)
        except Exception:  # a failed catch-up is logged; the watchdog must run regardless
            log.exception(
                "tunnel.catch_up_failed url=%s: run `asana-hooks webhooks retarget --all`", url
            )
        try:
            watch.run(stop)
        finally:
            connection.close()

    thread = threading.Thread(target=duties, name="tunnel-watch", daemon=True)
    thread.start()
    return thread, stop
