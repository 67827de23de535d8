"""Register a webhook with Asana the safe way. I/O edge (Asana API and Redis).

Used by `asana-hooks webhooks create` and by the poller when it re-creates a webhook Asana
deleted. The order matters (DESIGN.md §2, "HTTP routes", and §6.1): take the resource's Events
API sync token first (asana_hooks.subscription), so every change from the webhook's first
second is recoverable; open the handshake window; ask Asana, which calls our receiver before
it answers 201; then compare the secret in Asana's 201 body with the one the receiver stored,
and undo everything on a mismatch.

A team, workspace or portfolio has no Events API stream: no token is taken for it. A caller
that knows the resource's type says so (``resource_type``: the poller's re-creation, `webhooks
create --resource-type`); Asana's 201 names it too and wins when it does.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from asana_hooks.asana_client import AsanaClient
from asana_hooks.asana_errors import AsanaError, NotFound
from asana_hooks.errors import HooksError
from asana_hooks.registry import Registration, Registry, new_target_id
from asana_hooks.subscription import (
    RESYNC_MARGIN,
    drop_taken_token,
    has_event_stream,
    last_good_poll,
    open_subscription,
    resync_from,
)

log = logging.getLogger(__name__)


class SecretMismatch(HooksError):
    """Asana's 201 carried a secret other than the one our receiver stored: not trusted."""


def target_url(public_url: str, target_id: str) -> str:
    return f"{public_url.rstrip('/')}/hooks/asana/{target_id}"


def register(
    client: AsanaClient,
    registry: Registry,
    *,
    resource_gid: str,
    public_url: str,
    filters: list[dict[str, Any]],
    target_id: str | None = None,
    replace_secret: bool = False,
    resource_type: str = "",
    resync_since: datetime | None = None,
) -> Registration:
    """Create the webhook at Asana for a new target, or again for an existing one.

    ``resource_type``, when the caller knows it: Asana's 201 body may not say it, and a team,
    workspace or portfolio has no Events API stream to subscribe to. ``resync_since``: when
    the resource's first sync token is taken now, crawl from then too (a project that joined
    a watch a moment ago: its first changes happened before its webhook). The registration
    records ``client``'s connection, which polls and rehydrates for it from then on."""
    is_new = target_id is None
    previous = None if target_id is None else registry.get(target_id)
    since = None
    if previous is not None:  # a gap since the old webhook's coverage, if the token is gone
        last_good = last_good_poll(registry.connection, resource_gid)
        since = resync_from([previous.created_at], last_good, margin=RESYNC_MARGIN)
    if resync_since is not None:
        since = min(since, resync_since) if since is not None else resync_since
    taken = None
    if has_event_stream(resource_type):
        _, taken = open_subscription(client, registry.connection, resource_gid, resync_since=since)
    target_id = target_id or new_target_id()
    url = target_url(public_url, target_id)
    registry.begin(
        target_id=target_id,
        resource_gid=resource_gid,
        target_url=url,
        filters=filters,
        replace_secret=replace_secret,
        connection_id=client.connection_id,
    )
    payload: dict[str, Any] = {"resource": resource_gid, "target": url}
    if filters:
        payload["filters"] = filters
    try:
        body = client.post("/webhooks", {"data": payload})
    except AsanaError:
        if is_new:
            registry.forget(target_id)
            _drop(registry, resource_gid, taken)
        raise
    webhook = body.get("data") or {}
    webhook_gid = str(webhook.get("gid", ""))
    secret = body.get("X-Hook-Secret")
    if not isinstance(secret, str) or not registry.confirm(
        target_id, webhook_gid=webhook_gid, asana_secret=secret
    ):
        _delete_quietly(client, webhook_gid)
        if is_new:
            registry.forget(target_id)
            _drop(registry, resource_gid, taken)
        else:
            registry.set_state(target_id, "lost", problem="re-creation refused: secret mismatch")
        raise SecretMismatch(
            f"webhook {webhook_gid}: the secret in Asana's answer differs from the one the "
            "receiver stored; the webhook was deleted again. Someone else may be answering "
            "handshakes on this target."
        )
    resource = webhook.get("resource") or {}
    registry.describe_resource(
        target_id,
        resource_type=str(
            resource.get("resource_type") or resource_type or _type_from_asana(client, webhook_gid)
        ),
        resource_name=str(resource.get("name", "")),
        created_at=str(webhook.get("created_at") or ""),
    )
    found = registry.get(target_id)
    if found is None:
        raise SecretMismatch(f"registration {target_id} vanished while it was being confirmed")
    return found


def _type_from_asana(client: AsanaClient, webhook_gid: str) -> str:
    """Asana's 201 shows the resource without its type (its documented example), but the
    webhook's own record names it: one GET, only when no caller said which type it is."""
    try:
        body = client.get(f"/webhooks/{webhook_gid}", {"opt_fields": "resource.resource_type"})
    except AsanaError as exc:
        log.warning("webhook %s: its resource type could not be read: %s", webhook_gid, exc)
        return ""
    resource = (body.get("data") or {}).get("resource") or {}
    return str(resource.get("resource_type") or "")


def _drop(registry: Registry, resource_gid: str, token: str | None) -> None:
    if token is not None:
        drop_taken_token(registry.connection, resource_gid, token)


def _delete_quietly(client: AsanaClient, webhook_gid: str) -> None:
    if not webhook_gid:
        return
    try:
        client.delete(f"/webhooks/{webhook_gid}")
    except NotFound:
        pass
    except AsanaError as exc:
        log.error("webhook %s could not be deleted after a secret mismatch: %s", webhook_gid, exc)
