"""OAuth apps (DESIGN.md §6.5): Asana's authorization-code flow with ``state`` and PKCE, and
refreshing an access token before it expires, once across every process. I/O edge (HTTP to
Asana's OAuth endpoints, Redis).

The protocol comes from Authlib (``prepare_grant_uri``, RFC 7636's S256 challenge, its token
generator, ``OAuth2Error``'s names); the requests go through httpx like every other call of
ours. Authlib's httpx integration is not used: it now warns that it is deprecated in favour
of ``httpx2``, and its session would keep tokens in memory beside our store.

- ``begin``: a fresh ``state`` and PKCE verifier kept in Redis for ``STATE_TTL_SECONDS``;
  returns the URL of Asana's consent page.
- ``claim``: takes a callback's ``state`` back, once (GETDEL): an unknown, expired or reused
  state gives None and the callback stores nothing.
- ``OAuthApp.exchange`` / ``refresh`` / ``revoke``: the token endpoint and the revocation one.
- ``fresh_credentials``: what ``AsanaClient`` calls before each request of an OAuth
  connection; within the refresh margin it refreshes under a Redis lock (state
  ``refreshing`` meanwhile), or waits for the process that holds it.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
import redis
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from asana_hooks import keys
from asana_hooks.asana_errors import AsanaUnavailable
from asana_hooks.connections import ConnectionStore, Credentials, OAuthGrant
from asana_hooks.errors import HooksError
from asana_hooks.redis_conn import text
from asana_hooks.secretbox import Secret
from asana_hooks.settings import Settings

log = logging.getLogger(__name__)

STATE_TTL_SECONDS = 600
"""A started authorization may be finished within ten minutes (Asana's codes live as long)."""
REFRESH_LOCK_SECONDS = 30.0
"""The refreshing process holds the lock at most this long (the token call's own timeout)."""
REFRESH_MARGIN_SECONDS = 300.0
"""Refresh this long before expiry (or a fifth of the token's lifetime, when shorter)."""
CALLBACK_PATH = "/oauth/callback"


class OAuthRefused(HooksError):
    """Asana refused the grant (``invalid_grant``: revoked, expired or forged) or the client."""

    def __init__(self, error: str, description: str = "") -> None:
        super().__init__(f"Asana refused the OAuth request: {error}")
        self.error = error
        self.description = description


@dataclass(frozen=True)
class Pending:
    """A started authorization, claimed by its callback."""

    verifier: str
    redirect_uri: str


def redirect_uri(public_url: str) -> str:
    return public_url.rstrip("/") + CALLBACK_PATH


class OAuthApp:
    """One Asana app: ``HOOKS_OAUTH_CLIENT_ID``, ``HOOKS_OAUTH_CLIENT_SECRET``,
    ``ASANA_OAUTH_URL``."""

    def __init__(self, settings: Settings, *, timeout: float = 20.0) -> None:
        if settings.oauth_client_id is None:
            raise HooksError("HOOKS_OAUTH_CLIENT_ID is not set")
        self.client_id = settings.oauth_client_id
        self._secret = settings.require_oauth_secret()
        self.base = settings.oauth_url
        self._timeout = timeout

    def authorize_url(self, *, redirect_to: str, state: str, verifier: str) -> str:
        url: str = prepare_grant_uri(
            self.base + "oauth_authorize",
            client_id=self.client_id,
            response_type="code",
            redirect_uri=redirect_to,
            state=state,
            code_challenge=create_s256_code_challenge(verifier),
            code_challenge_method="S256",
        )
        return url

    def exchange(self, code: str, pending: Pending) -> OAuthGrant:
        return self._token(
            grant_type="authorization_code",
            code=code,
            redirect_uri=pending.redirect_uri,
            code_verifier=pending.verifier,
        )

    def refresh(self, refresh_token: Secret) -> OAuthGrant:
        return self._token(grant_type="refresh_token", refresh_token=refresh_token.reveal())

    def revoke(self, token: Secret) -> None:
        """Best effort (``connections remove`` of an OAuth connection)."""
        self._post("oauth_revoke", {"token": token.reveal()})

    def _token(self, **form: str) -> OAuthGrant:
        response = self._post("oauth_token", form)
        body = _json(response)
        if response.status_code in (400, 401) and body.get("error"):
            raise OAuthRefused(str(body["error"]), str(body.get("error_description") or ""))
        if not response.is_success or not body.get("access_token"):
            raise AsanaUnavailable(
                f"Asana's token endpoint answered {response.status_code}",
                status=response.status_code,
                path="/-/oauth_token",
            )
        lifetime = float(body.get("expires_in") or 3600)
        found = body.get("data")
        user: dict[str, Any] = found if isinstance(found, dict) else {}
        refresh = body.get("refresh_token")
        return OAuthGrant(
            access_token=Secret(str(body["access_token"])),
            refresh_token=Secret(str(refresh)) if refresh else None,
            expires_at=time.time() + lifetime,
            lifetime=lifetime,
            user_gid=str(user.get("gid") or user.get("id") or ""),
            user_name=str(user.get("name") or ""),
            user_email=str(user.get("email") or ""),
        )

    def _post(self, endpoint: str, form: dict[str, str]) -> httpx.Response:
        data = {"client_id": self.client_id, "client_secret": self._secret.reveal(), **form}
        try:
            with httpx.Client(timeout=self._timeout, trust_env=False) as http:
                return http.post(self.base + endpoint, data=data)
        except httpx.HTTPError as exc:
            raise AsanaUnavailable(
                f"Asana's OAuth endpoint is unreachable: {type(exc).__name__}",
                path="/-/" + endpoint,
            ) from None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# The flow's state, in Redis -------------------------------------------------------------


def begin(connection: redis.Redis, app: OAuthApp, *, redirect_to: str) -> str:
    """Start an authorization: returns the URL to send the user to."""
    state = generate_token(32)
    verifier = generate_token(64)
    pending = json.dumps({"verifier": verifier, "redirect_uri": redirect_to})
    connection.set(keys.oauth_state(state), pending, ex=STATE_TTL_SECONDS)
    return app.authorize_url(redirect_to=redirect_to, state=state, verifier=verifier)


def claim(connection: redis.Redis, state: str) -> Pending | None:
    """The authorization this state started, once; None when unknown, expired or reused."""
    if not state or len(state) > 200:
        return None
    raw = connection.getdel(keys.oauth_state(state))
    if raw is None:
        return None
    found = json.loads(text(raw))
    return Pending(verifier=str(found["verifier"]), redirect_uri=str(found["redirect_uri"]))


# Refresh before expiry, once across processes --------------------------------------------


def margin(credentials: Credentials) -> float:
    lifetime = credentials.lifetime or 3600.0
    return min(REFRESH_MARGIN_SECONDS, lifetime / 5)


def due(credentials: Credentials, now: float | None = None) -> bool:
    """Whether this OAuth access token should be refreshed now."""
    if credentials.expires_at is None:
        return False
    return (now or time.time()) >= credentials.expires_at - margin(credentials)


_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def fresh_credentials(
    settings: Settings,
    connection: redis.Redis,
    store: ConnectionStore,
    credentials: Credentials,
    *,
    wait: float = REFRESH_LOCK_SECONDS,
) -> Credentials:
    """Credentials whose access token is not due: the stored ones when another process
    refreshed already, else refreshed here under the lock. Raises OAuthRefused (the caller
    marks the connection revoked) or AsanaUnavailable (try again later)."""
    connection_id = credentials.connection_id
    deadline = time.monotonic() + wait
    lock = keys.oauth_refresh_lock(connection_id)
    while True:
        current = store.credentials(connection_id)
        if not due(current):
            return current
        if store.state(connection_id) == "revoked" and current.token == credentials.token:
            raise OAuthRefused("revoked", "the connection is revoked; connect it again")
        owner = secrets.token_hex(8)
        if connection.set(lock, owner, nx=True, px=int(REFRESH_LOCK_SECONDS * 1000)):
            try:
                return _refresh(settings, store, current)
            finally:
                connection.eval(_RELEASE, 1, lock, owner)
        if time.monotonic() > deadline:
            raise AsanaUnavailable(
                f"connection {connection_id}: another process's token refresh did not finish"
            )
        time.sleep(0.05)


def _refresh(settings: Settings, store: ConnectionStore, current: Credentials) -> Credentials:
    connection_id = current.connection_id
    refresh_token = store.refresh_token(connection_id)
    if refresh_token is None:
        raise OAuthRefused("no_refresh_token", "the connection has no refresh token")
    store.set_state(connection_id, "refreshing")
    try:
        grant = OAuthApp(settings).refresh(refresh_token)
    except OAuthRefused as exc:
        store.set_state(connection_id, "revoked", problem=f"refresh refused: {exc.error}")
        log.error(
            "oauth.refresh_refused connection=%s error=%s: the user must connect again "
            "(/oauth/start); its work waits",
            connection_id,
            exc.error,
        )
        raise
    except Exception:
        store.set_state(connection_id, "ok")
        raise
    store.store_grant(connection_id, grant)
    log.info("oauth.refreshed connection=%s expires_in=%.0f", connection_id, grant.lifetime)
    return store.credentials(connection_id)
