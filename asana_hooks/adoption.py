"""Adopt the webhook Asana already has for one of our targets. I/O edge (Asana API, Redis).

Asana refuses a second webhook with the same resource and target (403 "Duplicated webhook").
That happens when an earlier run was interrupted after Asana created the webhook and our
receiver stored its secret in the handshake, but before the 201 was confirmed: the webhook
is ours, so it is adopted instead of being created again. One whose handshake secret we do
not hold is not ours to use.
"""

from __future__ import annotations

from typing import Any

from asana_hooks.asana_client import AsanaClient
from asana_hooks.registry import Registration, Registry


def find_webhook(
    client: AsanaClient, resource_gid: str, url: str, *, workspaces: list[str] | None = None
) -> dict[str, Any] | None:
    """Asana's webhook on this resource delivering to ``url``. ``GET /webhooks`` needs a
    workspace: the given ones, else every workspace of the token's user."""
    if workspaces is None:
        me = client.get("/users/me", {"opt_fields": "workspaces"}).get("data") or {}
        workspaces = [str(w["gid"]) for w in me.get("workspaces") or []]
    for workspace in workspaces:
        params = {"workspace": workspace, "resource": resource_gid}
        for webhook in client.paginate("/webhooks", params):
            if webhook.get("target") == url:
                return dict(webhook)
    return None


def adopt(registry: Registry, registration: Registration, webhook: dict[str, Any]) -> Registration:
    """Make Asana's ``webhook`` the one of ``registration`` (whose secret we hold)."""
    gid = str(webhook["gid"])
    registry.replace_webhook(registration.target_id, old_gid=registration.webhook_gid, new_gid=gid)
    registry.set_state(registration.target_id, "active")
    registry.store_asana_status(registration.target_id, webhook)
    return registry.get(registration.target_id) or registration
