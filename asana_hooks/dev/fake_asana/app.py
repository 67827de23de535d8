"""The Starlette application: /api/1.0 (auth, chaos, rate limits, latency, recording, routing)
and the /_fake control API. Does network I/O: it serves HTTP (handshakes go out through
:mod:`.handshake`)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from . import routes_events, routes_resources, routes_webhooks, routes_writes
from .api import ApiError, ApiRequest, ApiResponse, Router
from .context import Context
from .control import ControlTarget, control_routes
from .ratelimit import Rejection
from .records import CallRecord
from .timing import retry_after_seconds

__all__ = ["API_PREFIX", "build_app"]

logger = logging.getLogger(__name__)
API_PREFIX = "/api/1.0"
RATE_MESSAGE = "You have made too many requests recently. Please, be chill."
CONCURRENCY_MESSAGE = "You have too many requests in flight. Please, be chill."


def build_router(ctx: Context) -> Router:
    router = Router()
    routes_resources.register(router, ctx)
    routes_writes.register(router, ctx)
    routes_webhooks.register(router, ctx)
    routes_events.register(router, ctx)
    return router


def _parse_body(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    if content_type.startswith("application/x-www-form-urlencoded"):
        return {"data": dict(parse_qsl(raw.decode()))}
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, "Could not parse request data, invalid JSON") from None


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


class ApiFrontend:
    """Everything between the socket and the route handler, for one fake instance."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.router = build_router(ctx)

    def _costs(self, method: str, path: str, body: Any) -> tuple[int, int, int]:
        """(requests counted against the budget, concurrent read slots, write slots)."""
        if method == "POST" and path.rstrip("/") == "/batch":
            actions = routes_events.batch_actions(body)
            if actions and len(actions) <= routes_events.MAX_BATCH_ACTIONS:
                reads = sum(1 for a in actions if str(a.get("method", "")).lower() == "get")
                return len(actions), reads, len(actions) - reads
            return 1, 0, 0
        if method == "GET":
            return 1, 1, 0
        return 1, 0, 1

    def _reject(self, rejection: Rejection) -> ApiResponse:
        message = RATE_MESSAGE if rejection.reason == "rate" else CONCURRENCY_MESSAGE
        headers = {"Retry-After": str(rejection.retry_after)}
        return ApiError(429, message, headers=headers).response()

    async def handle(self, request: Request) -> Response:
        path = "/" + request.path_params.get("path", "")
        record = CallRecord(
            method=request.method,
            path=path,
            query=dict(request.query_params),
            headers=dict(request.headers),
            started_at=time.monotonic(),
        )
        try:
            response, delayed = await self._process(request, path, record)
        except ApiError as exc:
            response, delayed = exc.response(), False
        except ClientDisconnect:  # the caller went away mid-body (a killed worker): no answer
            return Response(status_code=400)
        except Exception:  # a bug in the fake: answer like Asana's 500, keep the record
            logger.exception("fake Asana failed on %s %s", request.method, path)
            response, delayed = ApiError(500, "Server Error").response(), False
        if not delayed and self.ctx.knobs.api_latency > 0:
            await asyncio.sleep(self.ctx.knobs.api_latency)
        record.status = response.status
        record.response_headers = {k.lower(): v for k, v in response.headers.items()}
        record.ended_at = time.monotonic()
        self.ctx.record_call(record)
        return JSONResponse(response.body, response.status, headers=response.headers)

    async def _process(
        self, request: Request, path: str, record: CallRecord
    ) -> tuple[ApiResponse, bool]:
        """The answer, and whether the api_latency was already applied."""
        token = _bearer(request.headers.get("authorization"))
        if token is None or token not in self.ctx.tokens or self.ctx.expired(token):
            return ApiError(401, "Not Authorized").response(), False
        knobs = self.ctx.knobs
        body = _parse_body(await request.body(), request.headers.get("content-type", ""))
        if random.random() < knobs.chaos_500_rate:
            return ApiError(500, "Server Error").response(), False
        if _unavailable(path, knobs.unavailable_paths):
            return ApiError(503, "Service Unavailable").response(), False
        if random.random() < knobs.chaos_429_rate or token in _listed(knobs.throttled_tokens):
            retry = retry_after_seconds(self.ctx.timing.time_scale)
            return self._reject(Rejection(retry, "rate")), False
        cost, reads, writes = self._costs(request.method, path, body)
        if isinstance(body, dict) and cost > 1:
            record.batch_actions = [
                (str(a.get("method", "")).upper(), str(a.get("relative_path", "")))
                for a in routes_events.batch_actions(body) or []
            ]
        limiter = self.ctx.limiter
        rejection = limiter.charge(token, cost)
        if rejection is None:
            rejection = limiter.acquire_reads(token, reads)
            if rejection is None:
                rejection = limiter.acquire_writes(token, writes)
                if rejection is not None:
                    limiter.release_reads(token, reads)
        if rejection is not None:
            return self._reject(rejection), False
        try:
            api_request = ApiRequest(
                method=request.method,
                path=path,
                query=dict(request.query_params),
                body=body,
                token=token,
                api_url=str(request.base_url).rstrip("/") + API_PREFIX,
            )
            if knobs.api_latency > 0:
                # hold the read slot for the latency, so slow answers pile up concurrency
                await asyncio.sleep(knobs.api_latency)
            return await self.router.dispatch(api_request), True
        finally:
            limiter.release_reads(token, reads)
            limiter.release_writes(token, writes)


def _listed(tokens: str) -> set[str]:
    return {token for token in tokens.split(",") if token}


def _unavailable(path: str, prefixes: str) -> bool:
    return any(path.startswith(prefix) for prefix in prefixes.split(",") if prefix)


def build_app(
    ctx: Context,
    control: ControlTarget,
    http_holder: list[httpx.AsyncClient],
    oauth_routes: list[Route] | None = None,
) -> Starlette:
    """The ASGI app; ``http_holder`` receives the server loop's httpx client at startup."""
    frontend = ApiFrontend(ctx)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(trust_env=False) as client:
            http_holder.append(client)
            try:
                yield
            finally:
                http_holder.clear()

    async def root(_: Request) -> Response:
        return JSONResponse({"fake_asana": True, "api": API_PREFIX, "control": "/_fake"})

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    return Starlette(
        routes=[
            Route("/", root),
            Route(API_PREFIX + "/{path:path}", frontend.handle, methods=methods),
            Mount("/_fake", routes=control_routes(ctx, control)),
            Mount("/-", routes=oauth_routes or []),
        ],
        lifespan=lifespan,
    )
