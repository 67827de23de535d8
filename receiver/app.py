"""The receiver's ASGI app: verify, enqueue, answer. I/O edge (HTTP in, Redis out).

``uvicorn --factory receiver.app:create_app``. The endpoint reads the body within the size
limit, hands the decision to ``DeliveryDesk`` in the thread pool (redis-py and RQ block), and
turns its ``Answer`` into a short JSON response. It never calls Asana.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

import redis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from asana_hooks.queueing import make_queue
from asana_hooks.redis_conn import connect
from asana_hooks.registry import Registry
from asana_hooks.secretbox import SecretBox, UndecryptableSecret
from asana_hooks.settings import Settings
from receiver.body import BodyTooLarge, read_limited
from receiver.desk import Answer, DeliveryDesk
from receiver.targets import TargetLookup

log = logging.getLogger("receiver")
RETRY_AFTER_SECONDS = "5"


class State(TypedDict):
    settings: Settings
    redis: redis.Redis
    desk: DeliveryDesk


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_environ(os.environ)
    box = SecretBox(settings.require_encryption_keys())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        connection = connect(settings.redis_url, max_connections=128)
        registry = Registry(connection, box)
        desk = DeliveryDesk(
            connection, make_queue(connection), registry, TargetLookup(connection, box)
        )
        try:
            yield {"settings": settings, "redis": connection, "desk": desk}
        finally:
            connection.close()

    routes = [
        Route("/hooks/asana/{target_id}", receive_hook, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            redis.RedisError: redis_unavailable,
            UndecryptableSecret: keys_missing,
        },
    )


async def receive_hook(request: Request) -> Response:
    started = time.perf_counter()
    target_id = request.path_params["target_id"]
    desk: DeliveryDesk = request.state.desk
    settings: Settings = request.state.settings
    secret = request.headers.get("x-hook-secret")
    try:
        body = await read_limited(request, settings.max_body_bytes)
    except BodyTooLarge:
        answer = Answer(413, f"the body is larger than {settings.max_body_bytes} bytes")
    else:
        if secret is not None:
            answer = await run_in_threadpool(desk.handshake, target_id, secret)
        else:
            signature = request.headers.get("x-hook-signature")
            answer = await run_in_threadpool(desk.delivery, target_id, body, signature)
    log.info(
        "delivery target_id=%s events=%d status=%d latency_ms=%.1f%s",
        target_id,
        answer.events,
        answer.status,
        (time.perf_counter() - started) * 1000,
        " handshake" if secret is not None else "",
    )
    if answer.error:
        return JSONResponse({"error": answer.error}, answer.status, headers=answer.headers)
    return Response(status_code=answer.status, headers=answer.headers)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    connection: redis.Redis = request.state.redis
    await run_in_threadpool(connection.ping)
    return PlainTextResponse("ready")


async def redis_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("redis unavailable path=%s error=%s", request.url.path, type(exc).__name__)
    return JSONResponse(
        {"error": "storage unavailable, retry later"},
        503,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


async def keys_missing(request: Request, exc: Exception) -> Response:
    log.error(
        "secret undecryptable path=%s: HOOKS_ENCRYPTION_KEY lacks the key that encrypted it",
        request.url.path,
    )
    return JSONResponse(
        {"error": "the receiver cannot read this target's secret, retry later"},
        503,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )
