"""The receiver's ASGI app: verify, enqueue, answer. I/O edge (HTTP in, Redis out).

``uvicorn --factory receiver.app:create_app``. The hook route (receiver/hook.py) reads the
body within the size limit, hands the decision to ``DeliveryDesk`` (asyncio, group-committed
writes) and sends its ``Answer``. The other routes are ordinary Starlette endpoints. The
receiver calls Asana only in ``/oauth/callback`` (the token exchange, receiver/oauth.py).
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

import redis
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from asana_hooks.redis_conn import connect, connect_async
from asana_hooks.registry import Registry
from asana_hooks.secretbox import SecretBox, UndecryptableSecret
from asana_hooks.settings import Settings
from receiver import metrics, oauth, status
from receiver.desk import DeliveryDesk
from receiver.hook import receive_hook, unavailable
from receiver.inbox import FSYNC_WAIT_MS, Inbox
from receiver.targets import TargetLookup
from receiver.trends import Trends


class State(TypedDict):
    settings: Settings
    redis: redis.Redis
    aredis: aioredis.Redis
    desk: DeliveryDesk
    trends: Trends


HOOK_PREFIX = "/hooks/asana/"


class ReceiverApp:
    """Deliveries go straight to the hook, past Starlette's middleware and router (the hot
    path); every other request, and the lifespan, goes to the Starlette app."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            target_id = scope["path"].removeprefix(HOOK_PREFIX)
            if target_id != scope["path"] and target_id and "/" not in target_id:
                if scope["method"] != "POST":
                    await NOT_POST(scope, receive, send)
                    return
                scope["path_params"] = {"target_id": target_id}
                await receive_hook(scope, receive, send)
                return
        await self.app(scope, receive, send)


NOT_POST = PlainTextResponse("Method Not Allowed", 405, headers={"Allow": "POST"})
"""Asana only POSTs to a webhook target."""


def create_app(settings: Settings | None = None) -> ReceiverApp:
    settings = settings or Settings.from_environ(os.environ)
    box = SecretBox(settings.require_encryption_keys())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        connection = connect(settings.redis_url)
        client = connect_async(settings.redis_url)
        fsync = settings.durability == "fsync"
        # A WAITAOF may wait for the disk longer than any other command: its own connections.
        committer = (
            connect_async(settings.redis_url, socket_timeout=1.0 + FSYNC_WAIT_MS / 1000)
            if fsync
            else client
        )
        inbox = Inbox(committer, fsync=fsync)
        desk = DeliveryDesk(client, Registry(connection, box), TargetLookup(client, box), inbox)
        # Everything built so far lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise stall every request for milliseconds.
        trends = Trends()
        recording = asyncio.create_task(trends.run(client), name="trends")
        gc.collect()
        gc.freeze()
        try:
            yield {
                "settings": settings,
                "redis": connection,
                "aredis": client,
                "desk": desk,
                "trends": trends,
            }
        finally:
            recording.cancel()
            if committer is not client:
                await committer.aclose()
            await client.aclose()
            connection.close()

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        *status.routes(),
        *metrics.routes(),
        *oauth.routes(),
    ]
    return ReceiverApp(
        Starlette(
            routes=routes,
            lifespan=lifespan,
            exception_handlers={
                redis.RedisError: redis_unavailable,
                UndecryptableSecret: redis_unavailable,
            },
        )
    )


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    client: aioredis.Redis = request.state.aredis
    await client.ping()
    return PlainTextResponse("ready")


async def redis_unavailable(request: Request, exc: Exception) -> Response:
    """Our own failures on the other routes answer as the hook does: 503, retry later."""
    answer = unavailable(exc, request.url.path)
    return JSONResponse({"error": answer.error}, answer.status, headers=answer.headers)
