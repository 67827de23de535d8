"""The poller's verdict on one webhook from Asana's answer to ``GET /webhooks/{gid}``.
Pure, no I/O.

Asana retries failed deliveries with backoff and deletes a webhook after 24 h without a
success (``failure_deletion_timestamp`` says when); it sends a heartbeat every 8 h
(../shared/reference/asana-webhooks.md, "Heartbeat events"). The verdict says which state
the registration moves to, why, and how loudly to say so. What to *do* about a lost webhook
(re-create it) is the poller's business.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asana_hooks.events import parse_timestamp
from asana_hooks.health import describe_duration
from asana_hooks.registry import Registration, State

MAX_FAILURE_CONTENT = 200
"""Characters of Asana's ``last_failure_content`` quoted in a problem (it is our answer)."""


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
        registration, webhook, now=now, timeout=heartbeat_timeout
    )
    if problem is not None:
        return Verdict("failing", problem, logging.WARNING)
    recovered = registration.state in ("failing", "lost")
    return Verdict("active", None, logging.INFO if recovered else logging.DEBUG)


def _delivery_problem(webhook: Mapping[str, Any], *, now: datetime) -> str | None:
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
    registration: Registration, webhook: Mapping[str, Any], *, now: datetime, timeout: float
) -> str | None:
    """No heartbeat for longer than ``timeout``, counted from the last one we received or,
    for a webhook that has had none yet, from its creation at Asana."""
    heard = [
        moment
        for moment in (
            parse_timestamp(registration.last_heartbeat_at),
            parse_timestamp(webhook.get("created_at")),
        )
        if moment is not None
    ]
    if not heard:
        return None
    quiet = (now - max(heard)).total_seconds()
    if quiet <= timeout:
        return None
    since = registration.last_heartbeat_at or "the webhook's creation"
    return (
        f"no heartbeat for {describe_duration(quiet)} (since {since}); "
        "Asana sends one every 8 h, so deliveries are not reaching us"
    )
