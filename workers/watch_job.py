"""``reconcile_watch``: one watch brought in line at once, in a worker. I/O edge.

Enqueued by workers.scope_events when the watch's scope webhook reports a project change.
It shares the watch's lock with the poller's reconciliation (asana_hooks.watch_sync), so a
pass already running is asked to go once more instead of a second one starting.
"""

from __future__ import annotations

import logging

from asana_hooks.public_url import current_public_url
from asana_hooks.registry import Registry
from asana_hooks.secretbox import SecretBox
from asana_hooks.watch_sync import WatchSync, reconcile_exclusively
from asana_hooks.watches import WatchStore
from workers.runtime import Runtime

log = logging.getLogger(__name__)


def reconcile_now(runtime: Runtime, watch_id: str, *, owner: str) -> str:
    settings = runtime.settings
    store = WatchStore(runtime.redis)
    watch = store.get(watch_id)
    if watch is None:
        return "gone"
    public_url = current_public_url(runtime.redis, settings.public_url) or watch.public_url
    if not settings.encryption_keys or not public_url:
        log.warning(
            "watch.reconcile_skipped watch=%s: this worker has no HOOKS_ENCRYPTION_KEY or "
            "HOOKS_PUBLIC_URL; the poller reconciles it",
            watch_id,
        )
        return "skipped"
    registry = Registry(runtime.redis, SecretBox(settings.encryption_keys))
    sync = WatchSync(runtime.clients.get(watch.connection), registry, store, public_url=public_url)
    result = reconcile_exclusively(sync, store, watch_id, owner=owner)
    if result is None:
        return "handed to the running reconciliation"
    log.info(
        "watch.reconciled watch=%s projects=%d created=%d removed=%d failed=%d",
        watch_id,
        result.wanted,
        result.created,
        result.removed,
        len(result.failed),
    )
    return "reconciled"
