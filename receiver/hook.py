"""POST /hooks/asana/{target_id} as a plain ASGI endpoint. I/O edge (HTTP).

This is the hot path, so it skips Starlette's Request and Response objects: it reads the
three headers it needs and the body (within the size limit, while reading), asks
``DeliveryDesk`` for an ``Answer`` and sends it. Redis trouble and a secret no configured
key decrypts become 503 with Retry-After (``unavailable``, shared with the app's exception
handlers), so Asana retries and nothing acknowledged is lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from redis.exceptions import RedisError
from starlette.types import Receive, Scope, Send

from asana_hooks.errors import HooksError
from asana_hooks.secretbox import UndecryptableSecret
from receiver.desk import Answer, DeliveryDesk

log = logging.getLogger("receiver")
RETRY_AFTER_SECONDS = "5"


class RequestError(HooksError):
    """A request whose body could not be read whole; the subclass says why."""


class BodyTooLarge(RequestError):
    """The body is larger than the configured limit."""


class BodyTooSlow(RequestError):
    """The body did not arrive within HOOKS_BODY_TIMEOUT_SECONDS (a slow or stalled client)."""


class ClientGone(RequestError):
    """The client disconnected before its body was complete: there is no one to answer."""


def unavailable(exc: Exception, path: str) -> Answer:
    """The one mapping of our own failures to an answer: 503, retry later."""
    if isinstance(exc, UndecryptableSecret):
        log.error("secret undecryptable path=%s: HOOKS_ENCRYPTION_KEY lacks its key", path)
        error = "the receiver cannot read this target's secret, retry later"
    else:
        log.warning("redis unavailable path=%s error=%s", path, type(exc).__name__)
        error = "storage unavailable, retry later"
    return Answer(503, error, headers={"Retry-After": RETRY_AFTER_SECONDS})


async def receive_hook(scope: Scope, receive: Receive, send: Send) -> None:
    started = time.perf_counter()
    desk: DeliveryDesk = scope["state"]["desk"]
    settings = scope["state"]["settings"]
    limit: int = settings.max_body_bytes
    target_id: str = scope["path_params"]["target_id"]
    secret = signature = declared = None
    for name, value in scope["headers"]:
        if name == b"x-hook-signature":
            signature = value.decode("latin-1")
        elif name == b"x-hook-secret":
            secret = value.decode("latin-1")
        elif name == b"content-length":
            declared = value
    try:
        body = await _read_body(receive, limit, declared, settings.body_timeout_seconds)
        if secret is not None:
            answer = await desk.handshake(target_id, secret)
        else:
            answer = await desk.delivery(target_id, body, signature)
    except BodyTooLarge:
        answer = Answer(413, f"the body is larger than {limit} bytes")
    except BodyTooSlow:
        answer = Answer(408, "the body did not arrive in time", headers={"Connection": "close"})
    except ClientGone:
        log.info("delivery target_id=%s client disconnected before its body ended", target_id)
        return
    except (RedisError, UndecryptableSecret) as exc:
        answer = unavailable(exc, scope["path"])
    latency_ms = (time.perf_counter() - started) * 1000
    if answer.status < 300 and secret is None:
        scope["state"]["trends"].delivered(answer.events, latency_ms)
    log.info(
        "delivery target_id=%s events=%d status=%d latency_ms=%.1f%s",
        target_id,
        answer.events,
        answer.status,
        latency_ms,
        " handshake" if secret is not None else "",
    )
    await send_answer(send, answer)


_ACCEPTED = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]}
_EMPTY_BODY = {"type": "http.response.body", "body": b""}


async def send_answer(send: Send, answer: Answer) -> None:
    if answer.status == 200 and not answer.headers:  # the common answer, prepared once
        await send(_ACCEPTED)
        await send(_EMPTY_BODY)
        return
    headers = [(name.lower().encode(), value.encode()) for name, value in answer.headers.items()]
    body = b""
    if answer.error:
        body = json.dumps({"error": answer.error}).encode()
        headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive, limit: int, declared: bytes | None, timeout: float) -> bytes:
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    # What asyncio.timeout does, at a quarter of its cost on this path: a timer that cancels
    # this task, told apart from any other cancellation by the flag it sets.
    task = asyncio.current_task()
    if task is None:  # not inside a task: nothing to cancel (never so under uvicorn)
        return await _read_chunks(receive, limit)
    expired: list[bool] = []

    def expire() -> None:
        expired.append(True)
        task.cancel()

    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        return await _read_chunks(receive, limit)
    except asyncio.CancelledError:
        if not expired:
            raise
        task.uncancel()
        raise BodyTooSlow from None
    finally:
        timer.cancel()


async def _read_chunks(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
