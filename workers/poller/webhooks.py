"""The poller's care of each webhook: its health, and a new one for a webhook Asana deleted.
I/O edge (Asana API, Redis).

Each cycle, under the resource's lock, every watched webhook is judged from Asana's object for
it (``asana_hooks.health_check``: its state moves to ``failing`` / ``active`` / ``lost`` /
``deleted``). The object comes from the cycle's listing (``workers.poller.listing``); one
missing from it is asked for with ``GET /webhooks/{gid}`` before it is called lost, since it may
have been created after the listing was taken, except one already ``lost`` (nobody creates a
webhook under a lost gid, so its absence says nothing new). A ``lost`` one is re-created on
the same target, under the current public URL (asana_hooks.public_url), by the same connection
(its registration names it), when
``HOOKS_AUTO_RECREATE`` is on: ``register`` takes the sync token first
when it was lost too, and marks the gap for a resync (``asana_hooks.subscription``), so the
time without a webhook is covered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from asana_hooks.asana_clients import Clients
from asana_hooks.asana_errors import AsanaError
from asana_hooks.health import Verdict
from asana_hooks.health_check import check_webhook, record_verdict
from asana_hooks.public_url import current_public_url
from asana_hooks.registration import SecretMismatch, register
from asana_hooks.registry import Registration, Registry
from asana_hooks.settings import Settings
from workers.poller.listing import Listing

log = logging.getLogger(__name__)

HOOK_PATH = "/hooks/asana/"


class WebhookCare:
    """Checks one resource's webhooks and re-creates the ones Asana deleted."""

    def __init__(
        self,
        settings: Settings,
        clients: Clients,
        registry: Registry,
        *,
        clock: Callable[[], datetime],
        can_recreate: bool,
    ) -> None:
        self._settings = settings
        self._clients = clients
        self._registry = registry
        self._clock = clock
        self._can_recreate = can_recreate

    def check(self, registration: Registration, listing: Listing | None = None) -> None:
        """Judge the webhook by Asana's object for it (from ``listing``, else its own GET); say
        what changed; re-create it if lost."""
        webhook_gid = registration.webhook_gid
        try:
            verdict = self._judge(registration, listing)
        except AsanaError as exc:
            log.warning("health.unknown webhook=%s error=%r: %s", webhook_gid, exc, exc)
            return
        if verdict is None:
            log.debug("health.unknown webhook=%s: missing from an incomplete listing", webhook_gid)
            return
        where = (
            f"webhook={webhook_gid} resource={registration.resource_gid} "
            f"target={registration.target_id}"
        )
        if verdict.state == "failing":
            log.warning("webhook.failing %s: %s", where, verdict.problem)
        elif verdict.state == "lost":
            self._recreate(registration, where)
        elif verdict.state == "deleted":
            log.info(
                "webhook.deleted %s: Asana dropped the retired webhook; no longer polled", where
            )
        elif verdict.level == logging.INFO:
            log.info("webhook.recovered %s: Asana delivers again", where)

    def _judge(self, registration: Registration, listing: Listing | None) -> Verdict | None:
        """The verdict on Asana's object, or None when this cycle cannot tell."""
        now = self._clock()
        timeout = self._settings.heartbeat_timeout_seconds
        gid = registration.webhook_gid or ""
        found = None
        if listing is not None:
            how, found = listing.lookup(gid)
            if how == "unknown":
                return None
            if how == "ask" and registration.state == "lost" and gid not in listing.webhooks:
                return record_verdict(
                    self._registry, registration, None, now=now, heartbeat_timeout=timeout
                )
        return check_webhook(
            self._clients.get(registration.connection),
            self._registry,
            registration,
            now=now,
            heartbeat_timeout=timeout,
            found=found,
        )

    def _recreate(self, registration: Registration, where: str) -> None:
        if not self._settings.auto_recreate:
            log.warning(
                "webhook.lost %s: Asana no longer has it; HOOKS_AUTO_RECREATE is off, "
                "so it stays lost (the poller still follows its resource)",
                where,
            )
            return
        public_url = (  # DESIGN.md §6.8: under the current public URL, never an old one
            current_public_url(self._registry.connection, self._settings.public_url)
            or _public_base(registration)
        )
        if public_url is None or not self._can_recreate:
            missing = "HOOKS_PUBLIC_URL" if public_url is None else "HOOKS_ENCRYPTION_KEY"
            problem = f"Asana deleted the webhook; cannot re-create it without {missing}"
            self._registry.set_state(registration.target_id, "lost", problem=problem)
            log.error("webhook.lost %s: %s", where, problem)
            return
        log.warning("webhook.lost %s: Asana no longer has it; re-creating", where)
        try:
            created = register(
                self._clients.get(registration.connection),
                self._registry,
                resource_gid=registration.resource_gid,
                public_url=public_url,
                filters=registration.filters,
                target_id=registration.target_id,
                replace_secret=True,
                resource_type=registration.resource_type,
            )
        except (AsanaError, SecretMismatch) as exc:
            log.error("webhook.recreate_failed %s: %s; next cycle tries again", where, exc)
            self._still_lost(registration, f"{exc}")
            return
        if created.webhook_gid:
            self._registry.replace_webhook(
                registration.target_id,
                old_gid=registration.webhook_gid,
                new_gid=created.webhook_gid,
            )
        log.warning(
            "webhook.recreated %s new_webhook=%s: deliveries resume on the new webhook",
            where,
            created.webhook_gid,
        )

    def _still_lost(self, registration: Registration, error: str) -> None:
        """register() re-describes the target from Asana's answer; none came: put back what
        we knew, and say why it is still lost."""
        if self._registry.get(registration.target_id) is None:
            return
        self._registry.describe_resource(
            registration.target_id,
            resource_type=registration.resource_type,
            resource_name=registration.resource_name,
            created_at="",
        )
        problem = f"Asana deleted the webhook; re-creating it failed: {error}"
        self._registry.set_state(registration.target_id, "lost", problem=problem[:300])


def _public_base(registration: Registration) -> str | None:
    """The public URL this target was registered under, so a re-creation keeps its target."""
    suffix = HOOK_PATH + registration.target_id
    if registration.target_url.endswith(suffix):
        return registration.target_url[: -len(suffix)] or None
    return None
