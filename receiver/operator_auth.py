"""Who may see /status, /status.json and /metrics. Pure: decides from a request's headers.

With ``HOOKS_OPERATOR_TOKEN`` set, a request needs ``Authorization: Bearer <token>`` or the
session cookie the login form sets (an HMAC of the token, never the token itself); both are
compared in constant time. Without it, only loopback requests are allowed, and a request
that came through a proxy is not loopback: ngrok (and any reverse proxy on the same host)
connects from 127.0.0.1 while forwarding the internet, so any forwarding header disqualifies.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping

from asana_hooks.secretbox import Secret

COOKIE_NAME = "asana_hooks_operator"
COOKIE_MAX_AGE_SECONDS = 12 * 3600

PROXY_HEADERS = frozenset(
    {
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-real-ip",
        "x-original-forwarded-for",
        "true-client-ip",
        "cf-connecting-ip",
        "fly-client-ip",
        "via",
    }
)
"""Headers that say a proxy forwarded the request from somewhere else."""


def came_through_proxy(headers: Mapping[str, str]) -> bool:
    return any(
        name.lower() in PROXY_HEADERS or name.lower().startswith("ngrok-") for name in headers
    )


def is_loopback(client_host: str | None, headers: Mapping[str, str]) -> bool:
    """A direct connection from this machine, not one a local proxy relays."""
    if client_host is None or came_through_proxy(headers):
        return False
    try:
        return ipaddress.ip_address(client_host).is_loopback
    except ValueError:
        return False


def session_value(token: Secret) -> str:
    """The cookie's value: proves the token was presented, without storing the token."""
    return hmac.new(
        token.reveal().encode("utf-8"), b"asana-hooks operator session v1", hashlib.sha256
    ).hexdigest()


def token_matches(token: Secret, presented: str) -> bool:
    return hmac.compare_digest(token.reveal().encode("utf-8"), presented.encode("utf-8"))


def allowed(
    token: Secret | None,
    *,
    client_host: str | None,
    headers: Mapping[str, str],
    cookies: Mapping[str, str],
) -> bool:
    if token is None:
        return is_loopback(client_host, headers)
    authorization = headers.get("authorization", "")
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() == "bearer" and presented and token_matches(token, presented.strip()):
        return True
    cookie = cookies.get(COOKIE_NAME, "")
    return bool(cookie) and hmac.compare_digest(
        session_value(token).encode("ascii"), cookie.encode("utf-8", "replace")
    )
