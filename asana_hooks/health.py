"""How healthy one webhook is, from what we and Asana know of it. Pure, no I/O.

Used by `asana-hooks webhooks status`, the status page and ``/metrics``, so that all three
say the same thing. Asana deletes a webhook 24 h after deliveries started failing
(``failure_deletion_timestamp``) and sends a heartbeat every 8 h, so no heartbeat for 9 h
means something between Asana and us is broken (../shared/reference/asana-webhooks.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from asana_hooks.events import parse_timestamp

Health = Literal["ok", "pending", "failing", "silent", "lost", "retired", "deleted"]
HEALTH_VALUES: tuple[Health, ...] = (
    "ok",
    "pending",
    "failing",
    "silent",
    "lost",
    "retired",
    "deleted",
)
"""Every health value, for metrics that export one series per value."""

HEARTBEAT_TIMEOUT_SECONDS = 9 * 3600.0
"""Asana sends a heartbeat every 8 h; one hour of slack."""


def seconds_since(value: object, now: datetime) -> float | None:
    moment = parse_timestamp(value)
    return None if moment is None else (now - moment).total_seconds()


def assess(
    status: Mapping[str, Any],
    *,
    now: datetime,
    heartbeat_timeout: float = HEARTBEAT_TIMEOUT_SECONDS,
) -> dict[str, Any]:
    """Health of one `webhooks status` object: the value, why, and when Asana deletes it."""
    state = status.get("state")
    deletes_at = parse_timestamp(status.get("failure_deletion_timestamp"))
    result: dict[str, Any] = {
        "health": "ok",
        "reason": None,
        "deletes_in_seconds": (
            None if deletes_at is None else max(0.0, (deletes_at - now).total_seconds())
        ),
    }
    if state in ("pending", "lost", "retired", "deleted"):
        result["health"] = state
        result["reason"] = status.get("problem") or _STATE_REASONS[str(state)]
        return result
    if (
        deletes_at is not None
        or (status.get("delivery_retry_count") or 0) > 0
        or state == "failing"
    ):
        result["health"] = "failing"
        result["reason"] = status.get("problem") or _failing_reason(status)
        return result
    quiet = seconds_since(status.get("last_heartbeat_at") or status.get("created_at"), now)
    if quiet is not None and quiet > heartbeat_timeout:
        result["health"] = "silent"
        result["reason"] = f"no heartbeat for {quiet / 3600:.1f} h (Asana sends one every 8 h)"
    return result


_STATE_REASONS = {
    "pending": "the handshake has not completed",
    "lost": "Asana no longer has this webhook",
    "retired": "retired: the receiver answers 410 so Asana drops it",
    "deleted": "deleted at Asana",
}


def _failing_reason(status: Mapping[str, Any]) -> str:
    content = status.get("last_failure_content")
    retries = status.get("delivery_retry_count") or 0
    if content:
        return f"Asana's deliveries fail ({retries} retries): {str(content)[:120]}"
    return f"Asana's deliveries fail ({retries} retries)"


def describe_duration(seconds: float) -> str:
    """'45 s', '12 min', '3.5 h', '2.0 d': short and readable in a table."""
    seconds = abs(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
