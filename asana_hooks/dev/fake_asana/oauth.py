"""Asana's OAuth endpoints, as https://developers.asana.com/docs/oauth documents them. Serves
HTTP through the fake's app; the state is in memory.

- ``GET /-/oauth_authorize?client_id&redirect_uri&response_type=code&state&code_challenge
  &code_challenge_method=S256``: approves at once (as ``approve_as``, else the world's first
  user) by redirecting to ``redirect_uri`` with ``code`` and ``state``.
- ``POST /-/oauth_token`` (form): ``grant_type=authorization_code`` (``code``,
  ``redirect_uri``, ``code_verifier`` checked against the challenge) or
  ``grant_type=refresh_token``; answers ``access_token``, ``refresh_token`` (first grant
  only, as Asana does), ``expires_in`` (3600 times the fake's time_scale), ``token_type``
  and ``data`` (the user). Errors are ``{"error": ..., "error_description": ...}`` with 400
  (401 for a bad client).
- ``POST /-/oauth_revoke`` (form ``token``): a refresh token revoked this way is refused from
  then on (400 ``invalid_grant``) and its access tokens stop working.

Access tokens it issues are accepted by the API (``tokens``) until they expire;
``token_users`` makes ``GET /users/me`` answer the token's own user.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from .model import User
from .world import World

__all__ = ["OAuthServer"]

ACCESS_TOKEN_SECONDS = 3600.0
CODE_SECONDS = 600.0


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    user: str
    expires: float


@dataclass
class _Grant:
    client_id: str
    user: str
    access_tokens: set[str] = field(default_factory=set)


def _challenge_of(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _error(error: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status)


class OAuthServer:
    """The fake's authorization server; ``token_requests`` lists every grant_type asked for."""

    def __init__(
        self,
        world: World,
        tokens: set[str],
        token_users: dict[str, str],
        lock: threading.RLock,
        time_scale: float,
    ) -> None:
        self.world = world
        self.tokens = tokens
        self.token_users = token_users
        self.lock = lock
        self.lifetime = float(max(1, round(ACCESS_TOKEN_SECONDS * time_scale)))
        self.apps: dict[str, str] = {}
        """client_id -> client_secret; when empty, any client is accepted."""
        self.approve_as: str | None = None
        self.token_requests: list[str] = []
        self.issued: list[str] = []
        """Every access and refresh token ever given out (tests look for them in logs)."""
        self._codes: dict[str, _Code] = {}
        self._grants: dict[str, _Grant] = {}  # refresh token -> grant
        self._expiry: dict[str, float] = {}  # access token -> monotonic deadline

    # ------------------------------------------------------------------ test controls
    def register_app(self, client_id: str, client_secret: str) -> None:
        with self.lock:
            self.apps[client_id] = client_secret

    def revoke(self, refresh_token: str) -> bool:
        """What revoking the app in Asana's settings does: the grant and its tokens die."""
        with self.lock:
            grant = self._grants.pop(refresh_token, None)
            if grant is None:
                return False
            for token in grant.access_tokens:
                self.tokens.discard(token)
                self._expiry.pop(token, None)
            return True

    def grants_of(self, user: str) -> int:
        """How many live grants (refresh tokens) this user has given."""
        with self.lock:
            return sum(1 for g in self._grants.values() if g.user == user)

    def revoke_user(self, user: str) -> int:
        with self.lock:
            found = [r for r, g in self._grants.items() if g.user == user]
        return sum(self.revoke(r) for r in found)

    def expired(self, token: str) -> bool:
        """Called for every API request: an expired access token stops being accepted."""
        deadline = self._expiry.get(token)
        if deadline is None or time.monotonic() < deadline:
            return False
        with self.lock:
            self.tokens.discard(token)
            self._expiry.pop(token, None)
        return True

    # ------------------------------------------------------------------ routes
    def routes(self) -> list[Route]:
        return [
            Route("/oauth_authorize", self.authorize, methods=["GET"]),
            Route("/oauth_token", self.token, methods=["POST"]),
            Route("/oauth_revoke", self.revoke_route, methods=["POST"]),
        ]

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        client_id = q.get("client_id", "")
        redirect_uri = q.get("redirect_uri", "")
        if not client_id or not redirect_uri or (self.apps and client_id not in self.apps):
            return PlainTextResponse("invalid_request: unknown client_id or no redirect_uri", 400)
        if q.get("response_type") != "code":
            return self._redirect(redirect_uri, error="unsupported_response_type", q=q)
        challenge = q.get("code_challenge", "")
        if challenge and q.get("code_challenge_method") != "S256":
            return self._redirect(redirect_uri, error="invalid_request", q=q)
        user = self.approve_as or self.world.first_user()
        if user is None:
            return self._redirect(redirect_uri, error="access_denied", q=q)
        code = "code-" + secrets.token_urlsafe(16)
        with self.lock:
            self._codes[code] = _Code(
                client_id, redirect_uri, challenge, user, time.monotonic() + CODE_SECONDS
            )
        return self._redirect(redirect_uri, code=code, q=q)

    @staticmethod
    def _redirect(redirect_uri: str, *, q: object, **params: str) -> Response:
        state = getattr(q, "get", lambda _k, _d=None: None)("state")
        if state is not None:
            params["state"] = state
        joiner = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(redirect_uri + joiner + urlencode(params), 302)

    def _client(self, request: Request, form: dict[str, str]) -> str | None:
        """The authenticated client id (form fields or HTTP Basic), None when refused."""
        client_id = form.get("client_id", "")
        secret = form.get("client_secret", "")
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:]).decode("utf-8")
            except ValueError:
                return None
            client_id, _, secret = decoded.partition(":")
        if not client_id:
            return None
        if self.apps and not secrets.compare_digest(self.apps.get(client_id, "\0"), secret):
            return None
        return client_id

    async def token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode("utf-8")))
        grant_type = form.get("grant_type", "")
        with self.lock:
            self.token_requests.append(grant_type)
        client_id = self._client(request, form)
        if client_id is None:
            return _error("invalid_client", "The client credentials are invalid.", 401)
        if grant_type == "authorization_code":
            return self._exchange(client_id, form)
        if grant_type == "refresh_token":
            return self._refresh(client_id, form)
        return _error("unsupported_grant_type", f"grant_type {grant_type!r}")

    def _exchange(self, client_id: str, form: dict[str, str]) -> Response:
        with self.lock:
            code = self._codes.pop(form.get("code", ""), None)
        if code is None or code.expires < time.monotonic() or code.client_id != client_id:
            return _error("invalid_grant", "The code is invalid or expired.")
        if form.get("redirect_uri", "") != code.redirect_uri:
            return _error("invalid_grant", "redirect_uri does not match.")
        if code.challenge and not secrets.compare_digest(
            _challenge_of(form.get("code_verifier", "")), code.challenge
        ):
            return _error("invalid_grant", "code_verifier does not match the code_challenge.")
        refresh = "refresh-" + secrets.token_urlsafe(24)
        with self.lock:
            self._grants[refresh] = _Grant(client_id, code.user)
            self.issued.append(refresh)
        return self._answer(refresh, with_refresh=True)

    def _refresh(self, client_id: str, form: dict[str, str]) -> Response:
        refresh = form.get("refresh_token", "")
        with self.lock:
            grant = self._grants.get(refresh)
        if grant is None or grant.client_id != client_id:
            return _error("invalid_grant", "The refresh token is invalid or revoked.")
        return self._answer(refresh, with_refresh=False)

    def _answer(self, refresh: str, *, with_refresh: bool) -> Response:
        access = "oauth-" + secrets.token_urlsafe(24)
        with self.lock:
            grant = self._grants[refresh]
            grant.access_tokens.add(access)
            self.issued.append(access)
            self.tokens.add(access)
            self.token_users[access] = grant.user
            self._expiry[access] = time.monotonic() + self.lifetime
            user = self.world.typed(grant.user, User)
            data = {"id": user.gid, "gid": user.gid, "name": user.name, "email": user.email}
        body: dict[str, object] = {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": int(self.lifetime),
            "data": data,
        }
        if with_refresh:
            body["refresh_token"] = refresh
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def revoke_route(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode("utf-8")))
        if self._client(request, form) is None:
            return _error("invalid_client", "The client credentials are invalid.", 401)
        self.revoke(form.get("token", ""))
        return Response(status_code=200)
