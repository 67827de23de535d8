"""Every webhook Asana has for our token, in a few requests. I/O edge (Asana API, Redis).

Asking ``GET /webhooks/{gid}`` for each webhook every cycle cost one request per webhook per
poll interval, as much as polling its events. ``GET /webhooks?workspace=W`` answers with the
same full webhook objects (``active``, ``last_success_at``, ``delivery_retry_count``,
``failure_deletion_timestamp``...), 100 per page, so the poller takes one listing per cycle
and judges each webhook from it (``asana_hooks.health_check``): ceil(N/100) requests per
workspace instead of N.

The listing needs a workspace, and the token's user may belong to several: they come from
``GET /users/me?opt_fields=workspaces``, kept for an hour (``keys.USER_WORKSPACES``) since
joining a workspace is rare and a webhook in one not yet known is still checked (below).

A listing is a snapshot. A webhook created after it was taken (``webhooks create``, another
poller's re-creation) is missing from it without being lost, so the caller confirms a missing
webhook with its own ``GET /webhooks/{gid}`` before calling it lost (``Listing.lookup``). When
a workspace could not be listed the listing is incomplete, and a missing webhook is simply not
judged this cycle: health moves on a scale of hours, and a failed listing is no news.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import redis

from asana_hooks import keys
from asana_hooks.asana_client import AsanaClient
from asana_hooks.asana_errors import AsanaError
from asana_hooks.redis_conn import optional_text

log = logging.getLogger(__name__)

WORKSPACES_TTL_SECONDS = 3600
"""How long the token user's workspaces are kept before ``GET /users/me`` is asked again."""

PAGE_SIZE = 100
"""Asana's largest page."""

DELIVERY_FIELDS = ("active", "delivery_retry_count", "failure_deletion_timestamp")
"""A listed object without these is compact, and cannot be judged without its own GET."""

Lookup = Literal["listed", "ask", "unknown"]


@dataclass(frozen=True)
class Listing:
    """Asana's webhook objects by gid, as one cycle's listing found them."""

    webhooks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    complete: bool = True

    def lookup(self, webhook_gid: str) -> tuple[Lookup, Mapping[str, Any] | None]:
        """``listed`` with the object to judge; ``ask`` when only a GET can tell (missing from
        a complete listing, or listed compact); ``unknown`` when missing from an incomplete one."""
        webhook = self.webhooks.get(webhook_gid)
        if webhook is not None and all(name in webhook for name in DELIVERY_FIELDS):
            return "listed", webhook
        if webhook is not None or self.complete:
            return "ask", None
        return "unknown", None


def list_webhooks(client: AsanaClient, connection: redis.Redis) -> Listing:
    """Every webhook of the token in every workspace of its user. Never raises AsanaError: a
    workspace that could not be listed makes the listing incomplete."""
    try:
        workspaces = user_workspaces(client, connection)
    except AsanaError as exc:
        log.warning("health.listing_failed error=%r: %s; webhooks are judged next cycle", exc, exc)
        return Listing(complete=False)
    found: dict[str, Mapping[str, Any]] = {}
    complete = True
    for workspace in workspaces:
        try:
            for webhook in client.paginate("/webhooks", {"workspace": workspace}, limit=PAGE_SIZE):
                if isinstance(webhook, Mapping) and webhook.get("gid"):
                    found[str(webhook["gid"])] = webhook
        except AsanaError as exc:
            complete = False
            log.warning(
                "health.listing_failed workspace=%s error=%r: %s; its webhooks missing from "
                "the listing are judged next cycle",
                workspace,
                exc,
                exc,
            )
    return Listing(found, complete=complete)


def user_workspaces(client: AsanaClient, connection: redis.Redis) -> list[str]:
    """The gids of the workspaces the token's user belongs to, cached for an hour."""
    cached = optional_text(connection.get(keys.user_workspaces(client.connection_id)))
    if cached is not None:
        try:
            gids = json.loads(cached)
        except ValueError:
            gids = None
        if isinstance(gids, list):
            return [str(gid) for gid in gids]
    me = client.get("/users/me", {"opt_fields": "workspaces"}).get("data") or {}
    gids = [
        str(workspace["gid"])
        for workspace in me.get("workspaces") or []
        if isinstance(workspace, Mapping) and workspace.get("gid")
    ]
    connection.set(
        keys.user_workspaces(client.connection_id), json.dumps(gids), ex=WORKSPACES_TTL_SECONDS
    )
    return gids
