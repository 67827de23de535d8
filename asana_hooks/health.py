"""How healthy one webhook is, from what we and Asana know of it. Pure, no I/O.

One rule, two readings of it. ``judge`` is the poller's (and `webhooks status`'s) verdict on
Asana's answer to ``GET /webhooks/{gid}``: the state a registration moves to, why, and how
loudly to say so. ``assess`` is what the status page, ``/metrics`` and `webhooks status` show
for a stored registration: the same conditions, with ``silent`` kept apart from ``failing``.

Asana retries failed deliveries with backoff and deletes a webhook 24 h after they started
failing (``failure_deletion_timestamp``); it sends a heartbeat every 8 h, so no heartbeat for
9 h means something between Asana and us is broken (../shared/reference/asana-webhooks.md,
"Heartbeat events"). What to *do* about a lost webhook (re-create it) is the poller's business.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from asana_hooks.events import parse_timestamp
from asana_hooks.registry import Registration, State

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

MAX_FAILURE_CONTENT = 200
"""Characters of Asana's ``last_failure_content`` quoted in a problem (it is our answer)."""

_STATE_REASONS = {
    "pending": "the handshake has not completed",
    "lost": "Asana no longer has this webhook",
    "retired": "retired: the receiver answers 410 so Asana drops it",
    "deleted": "deleted at Asana",
}


@dataclass(frozen=True)
class Verdict:
    """Where a registration stands after one health check."""

    state: State
    problem: str | None
    level: int
    """The log level this verdict deserves: WARNING while something is wrong."""


def judge(
    registration: Registration,
    webhook: Mapping[str, Any] | None,
    *,
    now: datetime,
    heartbeat_timeout: float,
) -> Verdict:
    """``webhook`` is Asana's webhook object, or None when Asana answered 404."""
    if registration.state == "retired":
        if webhook is None:
            return Verdict("deleted", None, logging.INFO)
        return Verdict("retired", registration.problem, logging.DEBUG)
    if webhook is None:
        return Verdict(
            "lost",
            f"Asana no longer has webhook {registration.webhook_gid} (404)",
            logging.WARNING,
        )
    problem = _delivery_problem(webhook, now=now) or _silence_problem(
        registration.last_heartbeat_at,
        webhook.get("created_at"),
        now=now,
        timeout=heartbeat_timeout,
    )
    if problem is not None:
        return Verdict("failing", problem, logging.WARNING)
    recovered = registration.state in ("failing", "lost")
    return Verdict("active", None, logging.INFO if recovered else logging.DEBUG)


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
    if state in _STATE_REASONS:
        result["health"] = state
        result["reason"] = status.get("problem") or _STATE_REASONS[str(state)]
        return result
    problem = _delivery_problem(status, now=now)
    if problem is not None or state == "failing":
        result["health"] = "failing"
        result["reason"] = status.get("problem") or problem
        return result
    silence = _silence_problem(
        status.get("last_heartbeat_at"),
        status.get("created_at"),
        now=now,
        timeout=heartbeat_timeout,
    )
    if silence is not None:
        result["health"] = "silent"
        result["reason"] = silence
    return result


def seconds_since(value: object, now: datetime) -> float | None:
    moment = parse_timestamp(value)
    return None if moment is None else (now - moment).total_seconds()


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


def _delivery_problem(webhook: Mapping[str, Any], *, now: datetime) -> str | None:
    """What Asana's delivery fields say is wrong, or None."""
    retries = webhook.get("delivery_retry_count") or 0
    deletes_at = parse_timestamp(webhook.get("failure_deletion_timestamp"))
    if webhook.get("active") is False:
        return "Asana reports the webhook inactive: it sends no events"
    if deletes_at is None and not (isinstance(retries, int) and retries > 0):
        return None
    parts = [f"Asana's deliveries fail ({retries} retries"]
    last_failure = webhook.get("last_failure_at")
    if last_failure:
        parts.append(f", last at {last_failure}")
    parts.append(")")
    content = webhook.get("last_failure_content")
    if content:
        parts.append(f": {str(content)[:MAX_FAILURE_CONTENT]}")
    if deletes_at is not None:
        left = (deletes_at - now).total_seconds()
        when = f"in {describe_duration(left)}" if left > 0 else "any moment now"
        parts.append(f"; Asana deletes it at {webhook['failure_deletion_timestamp']} ({when})")
    return "".join(parts)


def _silence_problem(
    last_heartbeat_at: object, created_at: object, *, now: datetime, timeout: float
) -> str | None:
    """No heartbeat for longer than ``timeout``, counted from the last one we received or,
    for a webhook that has had none yet, from its creation."""
    heard = [m for m in map(parse_timestamp, (last_heartbeat_at, created_at)) if m is not None]
    if not heard:
        return None
    quiet = (now - max(heard)).total_seconds()
    if quiet <= timeout:
        return None
    since = last_heartbeat_at or "the webhook's creation"
    return (
        f"no heartbeat for {describe_duration(quiet)} (since {since}); "
        "Asana sends one every 8 h, so deliveries are not reaching us"
    )
