"""The webhook handshake: one POST to the target with X-Hook-Secret. Does network I/O."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from .records import DeliveryRecord

__all__ = ["HandshakeResult", "perform_handshake"]


@dataclass(frozen=True)
class HandshakeResult:
    ok: bool
    message: str  # the 400 message when not ok
    record: DeliveryRecord


async def perform_handshake(
    client: httpx.AsyncClient, target: str, secret: str, timeout: float
) -> HandshakeResult:
    """POST an empty body with ``X-Hook-Secret``; success needs 200/204 and the secret echoed."""
    started = time.monotonic()
    record = DeliveryRecord(
        webhook_gid=None,
        target=target,
        events=[],
        body=b"",
        signature=None,
        at=started,
        handshake=True,
    )
    try:
        response = await client.post(
            target, content=b"", headers={"X-Hook-Secret": secret}, timeout=timeout
        )
    except httpx.TimeoutException:
        record.error = "timeout"
        message = "The remote server did not respond to the handshake request in time."
        return _done(record, started, False, message)
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        record.error = f"{type(exc).__name__}: {exc}"
        message = f"Could not complete the handshake with the remote server: {record.error}"
        return _done(record, started, False, message)
    record.status = response.status_code
    if response.status_code not in (200, 204):
        message = (
            "The remote server responded to the handshake request with status "
            f"{response.status_code}; expected 200 or 204."
        )
        return _done(record, started, False, message)
    if response.headers.get("X-Hook-Secret") != secret:
        message = "The remote server did not respond with the handshake secret."
        return _done(record, started, False, message)
    return _done(record, started, True, "")


def _done(record: DeliveryRecord, started: float, ok: bool, message: str) -> HandshakeResult:
    record.latency = time.monotonic() - started
    return HandshakeResult(ok, message, record)
