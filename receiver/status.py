"""GET /status (the operator dashboard), GET /status.json (its data), POST /status/login.

I/O edge (HTTP in, Redis reads in the thread pool, so the delivery hot path never waits on
a dashboard). The page is one self-contained HTML file (``status_page.html``: no build
step, no CDN) with the first snapshot embedded; it then refreshes itself from /status.json.
Access is decided by ``operator_auth``.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from urllib.parse import parse_qs

import redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from asana_hooks.settings import Settings
from asana_hooks.snapshot import snapshot
from receiver import operator_auth

PAGE = (Path(__file__).parent / "status_page.html").read_text(encoding="utf-8")
MAX_LOGIN_BODY = 4096
NO_STORE = {"Cache-Control": "no-store"}
PAGE_WEBHOOKS = 200
"""Webhooks the page lists (those needing attention first); its cards count them all."""

LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<title>asana-hooks status: sign in</title>
<style nonce="{nonce}">body{{font:15px system-ui,sans-serif;display:grid;place-items:center;
min-height:90vh;background:#f6f7f9;color:#1d2330}}form{{background:#fff;padding:1.5rem 2rem;
border:1px solid #e3e6ec;border-radius:8px}}input{{font:inherit;padding:.4rem;width:18rem}}
button{{font:inherit;padding:.4rem 1rem;margin-top:.6rem}}.error{{color:#c0262d}}</style>
</head><body><form method="post" action="status/login">
<h1>asana-hooks</h1><p>{message}</p>
<label>Operator token<br><input type="password" name="token" autocomplete="current-password"
autofocus required></label><br><button type="submit">Sign in</button></form></body></html>
"""


def routes() -> list[BaseRoute]:
    return [
        Route("/status", status_page, methods=["GET"]),
        Route("/status.json", status_json, methods=["GET"]),
        Route("/status/login", login, methods=["POST"]),
    ]


def is_allowed(request: Request) -> bool:
    settings: Settings = request.state.settings
    return operator_auth.allowed(
        settings.operator_token,
        client_host=request.client.host if request.client else None,
        headers=request.headers,
        cookies=request.cookies,
    )


def refusal(request: Request, *, html: bool) -> Response:
    """401 (with the login form for people) when a token exists; 403 when loopback-only."""
    settings: Settings = request.state.settings
    if settings.operator_token is None:
        message = (
            "this page answers only direct requests from this machine; set "
            "HOOKS_OPERATOR_TOKEN to reach it through a proxy or from elsewhere"
        )
        if html:
            return HTMLResponse(f"<!doctype html><p>{message}</p>", 403, headers=NO_STORE)
        return JSONResponse({"error": message}, 403, headers=NO_STORE)
    if html:
        return _login_page("Sign in with HOOKS_OPERATOR_TOKEN.", 401)
    return JSONResponse(
        {"error": "send Authorization: Bearer <HOOKS_OPERATOR_TOKEN>"},
        401,
        headers={"WWW-Authenticate": 'Bearer realm="asana-hooks"', **NO_STORE},
    )


async def status_page(request: Request) -> Response:
    if not is_allowed(request):
        return refusal(request, html=True)
    data = await run_in_threadpool(_snapshot_json, request, PAGE_WEBHOOKS)
    nonce = secrets.token_urlsafe(16)
    # Embedded in a <script type="application/json">: "<" escaped so no data closes the tag.
    embedded = json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e")
    body = PAGE.replace("{{NONCE}}", nonce).replace("{{INITIAL}}", embedded)
    return HTMLResponse(body, headers=_page_headers(nonce))


async def status_json(request: Request) -> Response:
    if not is_allowed(request):
        return refusal(request, html=False)
    asked = request.query_params.get("webhooks")
    if asked is not None and not (asked.isdigit() and len(asked) <= 6):
        return JSONResponse(
            {"error": "webhooks= takes how many webhooks to list (0 to 999999)"},
            400,
            headers=NO_STORE,
        )
    limit = int(asked) if asked is not None else None
    data = await run_in_threadpool(_snapshot_json, request, limit)
    return JSONResponse(data, headers=NO_STORE)


async def login(request: Request) -> Response:
    settings: Settings = request.state.settings
    if settings.operator_token is None:
        return refusal(request, html=True)
    body = await request.body()
    if len(body) > MAX_LOGIN_BODY:
        return _login_page("That was not the operator token.", 401)
    presented = parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0]
    if not presented or not operator_auth.token_matches(settings.operator_token, presented):
        return _login_page("That was not the operator token.", 401)
    response = RedirectResponse("../status", status_code=303)
    response.set_cookie(
        operator_auth.COOKIE_NAME,
        operator_auth.session_value(settings.operator_token),
        max_age=operator_auth.COOKIE_MAX_AGE_SECONDS,
        httponly=True,
        secure=request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https",
        samesite="strict",
        path="/",
    )
    return response


def _snapshot_json(request: Request, webhook_limit: int | None) -> dict[str, object]:
    connection: redis.Redis = request.state.redis
    settings: Settings = request.state.settings
    return snapshot(
        connection,
        budget=settings.rate_limit_per_minute,
        public_url=settings.public_url,
        default_token=settings.asana_access_token,
    ).to_json(webhook_limit=webhook_limit)


def _login_page(message: str, status: int) -> Response:
    nonce = secrets.token_urlsafe(16)
    return HTMLResponse(
        LOGIN_PAGE.format(nonce=nonce, message=message), status, headers=_page_headers(nonce)
    )


def _page_headers(nonce: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "connect-src 'self'; img-src 'self' data:; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        **NO_STORE,
    }
