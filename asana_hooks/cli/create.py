"""`webhooks create`: check the target, check the filters, register, handle duplicates.

I/O edge (our receiver's /healthz over HTTP, Asana's API, Redis). One target per resource:
creating again for a resource we already watch reuses its target, so Asana answers
"Duplicated webhook" while it still has the webhook, and we offer that one instead of
making a second; if Asana lost it, the same target gets a new webhook (and a new secret).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import redis

from asana_hooks import keys
from asana_hooks.adoption import adopt, find_webhook
from asana_hooks.asana_client import AsanaClient
from asana_hooks.asana_errors import AsanaError, NotFound, is_duplicate
from asana_hooks.cli.asana_messages import NGROK_HELP, asana_failure, unreachable_target
from asana_hooks.cli.context import (
    EXIT_ASANA,
    EXIT_CONFIG,
    Failure,
    asana_client,
    open_registry,
    settings,
)
from asana_hooks.keys import DEFAULT_CONNECTION
from asana_hooks.public_url import current_public_url
from asana_hooks.registration import SecretMismatch, register, target_url
from asana_hooks.registry import Registration, Registry
from asana_hooks.settings import DEFAULT_API_URL, Settings

HEALTHZ_TIMEOUT_SECONDS = 5.0
REUSABLE_STATES = frozenset({"pending", "active", "failing", "lost"})


@dataclass(frozen=True)
class Created:
    registration: Registration
    existing: bool
    """True when Asana already had this webhook and we offer it instead of a new one."""


def check_public_url(settings: Settings, public_url: str) -> None:
    """Fail with the ngrok paragraph unless $HOOKS_PUBLIC_URL/healthz answers 'ok'."""
    host = urlsplit(public_url).hostname or ""
    if settings.asana_api_url == DEFAULT_API_URL and _is_private(host):
        raise Failure(
            f"HOOKS_PUBLIC_URL ({public_url}) is a local address, which Asana refuses. "
            + NGROK_HELP,
            EXIT_CONFIG,
        )
    try:
        answer = httpx.get(
            f"{public_url}/healthz", timeout=HEALTHZ_TIMEOUT_SECONDS, follow_redirects=False
        )
    except httpx.HTTPError as exc:
        raise unreachable_target(public_url, type(exc).__name__) from None
    if answer.status_code != 200 or answer.text.strip() != "ok":
        raise unreachable_target(public_url, f"answered {answer.status_code}, not our 'ok'")


@dataclass(frozen=True)
class Registering:
    """What a command that registers webhooks works with."""

    connection: redis.Redis
    registry: Registry
    client: AsanaClient
    public_url: str


@contextmanager
def registering(connection_id: str) -> Iterator[Registering]:
    """Redis, the registry with secrets, the connection's client, and the current public URL
    (a running tunnel's, else HOOKS_PUBLIC_URL) once ``check_public_url`` passed."""
    current = settings()
    if connection_id == DEFAULT_CONNECTION:
        current.require_token()
    current.require_encryption_keys()
    with (
        open_registry(secrets=True) as (connection, registry),
        asana_client(connection, connection_id) as client,
    ):
        public_url = (
            current_public_url(connection, current.public_url) or current.require_public_url()
        )
        check_public_url(current, public_url)
        yield Registering(connection, registry, client, public_url)


def create(
    client: AsanaClient,
    connection: redis.Redis,
    registry: Registry,
    *,
    resource_gid: str,
    public_url: str,
    filters: list[dict[str, Any]],
    resource_type: str = "",
) -> Created:
    previous = _reusable(registry, resource_gid, client.connection_id)
    if previous is not None and previous.webhook_gid and previous.state != "lost":
        offered = _still_at_asana(client, registry, previous)
        if offered is not None:
            return Created(offered, existing=True)
    target_id = previous.target_id if previous is not None else None
    saved = connection.hgetall(keys.target(target_id)) if target_id else {}
    try:
        registration = register(
            client,
            registry,
            resource_gid=resource_gid,
            public_url=public_url,
            filters=filters,
            target_id=target_id,
            replace_secret=previous is not None and previous.has_secret,
            resource_type=resource_type,
        )
    except AsanaError as exc:
        if target_id:
            _restore(connection, target_id, saved)
        if is_duplicate(exc) and previous is not None:
            return Created(_adopt_duplicate(client, registry, previous, public_url), True)
        raise asana_failure(exc, doing=f"creating a webhook on {resource_gid}") from None
    except SecretMismatch as exc:
        raise Failure(str(exc), EXIT_ASANA) from None
    old_gid = previous.webhook_gid if previous is not None else None
    if old_gid and registration.webhook_gid and old_gid != registration.webhook_gid:
        registry.replace_webhook(
            registration.target_id, old_gid=old_gid, new_gid=registration.webhook_gid
        )
    return Created(registration, existing=False)


def _reusable(registry: Registry, resource_gid: str, connection_id: str) -> Registration | None:
    """This connection's live registration of the resource (another connection's is its own)."""
    for registration in registry.all():
        if (
            registration.resource_gid == resource_gid
            and registration.state in REUSABLE_STATES
            and registration.connection == connection_id
        ):
            return registration
    return None


def _still_at_asana(
    client: AsanaClient, registry: Registry, previous: Registration
) -> Registration | None:
    try:
        body = client.get(f"/webhooks/{previous.webhook_gid}")
    except NotFound:
        return None
    except AsanaError as exc:
        raise asana_failure(exc, doing=f"reading webhook {previous.webhook_gid}") from None
    registry.store_asana_status(previous.target_id, body.get("data") or {})
    return registry.get(previous.target_id) or previous


def _adopt_duplicate(
    client: AsanaClient, registry: Registry, previous: Registration, public_url: str
) -> Registration:
    """Asana has a webhook on this resource and target already: use it if it is ours."""
    url = target_url(public_url, previous.target_id)
    try:
        webhook = find_webhook(client, previous.resource_gid, url)
    except AsanaError as exc:
        raise asana_failure(exc, doing="looking for the existing webhook") from None
    if webhook is None or not previous.has_secret:
        where = f" (webhook {webhook.get('gid')})" if webhook else ""
        raise Failure(
            f"Asana already has a webhook on {previous.resource_gid} delivering to {url}{where}, "
            "but this receiver holds no secret for it: delete it with `asana-hooks webhooks "
            "delete GID` and run create again",
            EXIT_ASANA,
        )
    return adopt(registry, previous, webhook)


def _restore(connection: redis.Redis, target_id: str, saved: dict[Any, Any]) -> None:
    """Undo what a refused re-registration wrote, and close its handshake window."""
    pipe = connection.pipeline()
    pipe.delete(keys.pending(target_id))
    if saved:
        pipe.hset(keys.target(target_id), mapping=saved)
    pipe.execute()


def _is_private(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost") or host.endswith(".local"):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local
