"""The poller's care of watches: reconcile each one every poll interval. I/O edge.

A watch's scope webhook tells of new, moved, archived and deleted projects, but it is
at-most-once like every webhook, so each watch is also reconciled here (its scope listed,
one request per 100 projects, and the webhooks brought in line, ``asana_hooks.watch_sync``)
once per poll interval, shared between poll processes by the watch's lock and its
``last_reconciled_at``. A removed watch whose webhooks could not all be deleted is finished
here too. It runs before the resources are polled, so a project found now is polled in the
same cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from asana_hooks.asana_clients import Clients
from asana_hooks.asana_errors import AsanaError
from asana_hooks.connections import UnknownConnection
from asana_hooks.events import parse_timestamp
from asana_hooks.public_url import current_public_url
from asana_hooks.registry import Registry
from asana_hooks.settings import Settings
from asana_hooks.watch_sync import WatchSync, reconcile_exclusively
from asana_hooks.watches import Watch, WatchStore

log = logging.getLogger(__name__)


class WatchCare:
    def __init__(
        self,
        settings: Settings,
        clients: Clients,
        registry: Registry,
        *,
        owner: str,
        clock: Callable[[], datetime],
        can_create: bool,
        due_fraction: float,
    ) -> None:
        self._settings = settings
        self._clients = clients
        self._registry = registry
        self._store = WatchStore(registry.connection)
        self._owner = owner
        self._clock = clock
        self._can_create = can_create
        self._due_after = settings.poll_interval_seconds * due_fraction

    def cycle(self, *, force: bool = False) -> int:
        """Reconcile every watch that is due; returns how many were."""
        done = 0
        for watch in self._store.all():
            if not (force or self._due(watch)):
                continue
            public_url = (  # new webhooks go under the current public URL (§6.8)
                current_public_url(self._registry.connection, self._settings.public_url)
                or watch.public_url
            )
            if not self._can_create or not public_url:
                missing = "HOOKS_ENCRYPTION_KEY" if not self._can_create else "HOOKS_PUBLIC_URL"
                log.error("watch.cannot_reconcile watch=%s: %s is not set", watch.id, missing)
                continue
            try:
                client = self._clients.get(watch.connection)
            except UnknownConnection:
                log.error(
                    "watch.cannot_reconcile watch=%s: its connection %s is gone",
                    watch.id,
                    watch.connection,
                )
                continue
            sync = WatchSync(client, self._registry, self._store, public_url=public_url)
            try:
                result = reconcile_exclusively(sync, self._store, watch.id, owner=self._owner)
            except AsanaError as exc:
                log.warning("watch.reconcile_failed watch=%s error=%r: %s", watch.id, exc, exc)
                self._store.reconciled(watch.id, problem=f"{type(exc).__name__}: {exc}")
                continue
            done += 1
            if result is not None and (result.created or result.removed or result.failed):
                log.info(
                    "watch.reconciled watch=%s projects=%d created=%d removed=%d failed=%d",
                    watch.id,
                    result.wanted,
                    result.created,
                    result.removed,
                    len(result.failed),
                )
        return done

    def _due(self, watch: Watch) -> bool:
        if watch.removed:
            return True
        last = parse_timestamp(watch.last_reconciled_at)
        return last is None or (self._clock() - last).total_seconds() >= self._due_after
