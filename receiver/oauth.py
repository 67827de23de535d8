"""``GET /oauth/start`` and ``GET /oauth/callback``: connecting an Asana user through the
app's OAuth flow (DESIGN.md §6.5). I/O edge (Redis, Asana's token endpoint).

The only public routes besides the hook. They answer 404 (one line) unless
``HOOKS_OAUTH_CLIENT_ID`` is set. ``start`` keeps a fresh ``state`` and PKCE verifier in
Redis (asana_hooks.oauth, ten minutes) and sends the browser to Asana's consent page with
redirect URI ``<public URL>/oauth/callback``. ``callback`` claims the state once: an unknown,
expired or reused one is refused (400) before anything else happens, so a forged callback
stores nothing; then it exchanges the code (with the verifier), stores the grant as an
``oauth`` connection (tokens Fernet-encrypted) and shows who connected. The same Asana user
connecting again gets their connection back with new tokens (a revoked one resumes).
"""

from __future__ import annotations

import html
import logging

import redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from asana_hooks import oauth
from asana_hooks.asana_errors import AsanaUnavailable
from asana_hooks.connections import Connection, ConnectionStore
from asana_hooks.errors import HooksError
from asana_hooks.public_url import current_public_url
from asana_hooks.secretbox import SecretBox
from asana_hooks.settings import Settings

log = logging.getLogger(__name__)

NOT_CONFIGURED = "OAuth is not configured here (HOOKS_OAUTH_CLIENT_ID is not set)\n"
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def routes() -> list[BaseRoute]:
    return [
        Route("/oauth/start", start, methods=["GET"]),
        Route(oauth.CALLBACK_PATH, callback, methods=["GET"]),
    ]


def _line(text: str, status: int) -> Response:
    return PlainTextResponse(text.rstrip("\n") + "\n", status, headers=NO_STORE)


def _app(settings: Settings) -> oauth.OAuthApp | Response:
    if settings.oauth_client_id is None:
        return _line(NOT_CONFIGURED, 404)
    try:
        return oauth.OAuthApp(settings)
    except HooksError as exc:
        return _line(f"OAuth is misconfigured: {exc}", 503)


async def start(request: Request) -> Response:
    settings: Settings = request.state.settings
    app = _app(settings)
    if isinstance(app, Response):
        return app
    connection: redis.Redis = request.state.redis
    public = await run_in_threadpool(current_public_url, connection, settings.public_url)
    if public is None:
        return _line("OAuth needs HOOKS_PUBLIC_URL (the callback's address)", 503)
    url = await run_in_threadpool(
        oauth.begin, connection, app, redirect_to=oauth.redirect_uri(public)
    )
    return RedirectResponse(url, 302, headers=NO_STORE)


async def callback(request: Request) -> Response:
    settings: Settings = request.state.settings
    app = _app(settings)
    if isinstance(app, Response):
        return app
    connection: redis.Redis = request.state.redis
    query = request.query_params
    pending = await run_in_threadpool(oauth.claim, connection, query.get("state", ""))
    if pending is None:
        log.warning("oauth.callback_refused reason=unknown_state")
        return _line("Unknown or already used state: start again at /oauth/start", 400)
    if query.get("error"):
        return _line(f"Asana did not grant access: {query.get('error')}", 400)
    code = query.get("code", "")
    if not code:
        return _line("The callback carries no code: start again at /oauth/start", 400)
    try:
        grant = await run_in_threadpool(app.exchange, code, pending)
    except oauth.OAuthRefused as exc:
        log.warning("oauth.exchange_refused error=%s", exc.error)
        return _line(f"Asana refused the authorization code ({exc.error})", 400)
    except AsanaUnavailable as exc:
        log.warning("oauth.exchange_failed problem=%s", exc.message)
        return _line("Asana's token endpoint could not be reached: try again", 502)
    store = ConnectionStore(connection, SecretBox(settings.require_encryption_keys()))
    name = grant.user_name or grant.user_email or grant.user_gid
    added = await run_in_threadpool(lambda: store.add_oauth(grant, name=name))
    log.info("oauth.connected connection=%s user=%s", added.id, added.user_gid)
    return HTMLResponse(_connected_page(added, grant.user_email), headers=NO_STORE)


def _connected_page(connection: Connection, email: str) -> str:
    who = html.escape(connection.user_name or connection.user_gid)
    mail = f" ({html.escape(email)})" if email else ""
    return (
        "<!doctype html><meta charset=utf-8><title>Connected to Asana</title>"
        f"<h1>Connected: {who}{mail}</h1>"
        f"<p>Asana user <code>{html.escape(connection.user_gid)}</code> is connection "
        f"<code id=connection>{html.escape(connection.id)}</code>. "
        "You can close this page.</p>\n"
    )
