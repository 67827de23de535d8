"""Ask Asana how one webhook is doing and record the verdict. I/O edge (Asana API, Redis).

The poller does this for every watched webhook each cycle, and `asana-hooks webhooks status`
for the ones it shows, so both read Asana's webhook object the same way: Asana's delivery
fields are stored beside ours, ``health.judge`` gives the state, and the registration moves
to it. What happens next (a log line, a re-creation) is the caller's.

The object comes from ``GET /webhooks/{gid}``, or, for the poller, from the page of
``GET /webhooks?workspace=`` it was listed in (``found``): the same full object, without a
request per webhook (workers.poller.listing).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from asana_hooks.asana_client import AsanaClient
from asana_hooks.asana_errors import NotFound
from asana_hooks.health import Verdict, judge
from asana_hooks.registry import Registration, Registry


def fetch_webhook(client: AsanaClient, webhook_gid: str) -> Mapping[str, Any] | None:
    """Asana's webhook object, or None when Asana answers 404; other errors propagate."""
    try:
        body = client.get(f"/webhooks/{webhook_gid}")
    except NotFound:
        return None
    data = body.get("data")
    return data if isinstance(data, Mapping) else {}


def check_webhook(
    client: AsanaClient,
    registry: Registry,
    registration: Registration,
    *,
    now: datetime,
    heartbeat_timeout: float,
    found: Mapping[str, Any] | None = None,
) -> Verdict:
    """Judge one registration's webhook by Asana's answer and store what changed.

    ``found``: Asana's object for this webhook taken from a listing; without it, one
    ``GET /webhooks/{gid}`` asks. Raises ``AsanaError`` when Asana did not answer.
    """
    webhook = found if found is not None else fetch_webhook(client, registration.webhook_gid or "")
    return record_verdict(
        registry, registration, webhook, now=now, heartbeat_timeout=heartbeat_timeout
    )


def record_verdict(
    registry: Registry,
    registration: Registration,
    webhook: Mapping[str, Any] | None,
    *,
    now: datetime,
    heartbeat_timeout: float,
) -> Verdict:
    """Store Asana's object (None: Asana does not have the webhook) and the state it gives.

    A webhook already ``lost`` that Asana still does not have keeps the problem the poller
    wrote (why its re-creation failed, say).
    """
    if webhook is not None:
        registry.store_asana_status(registration.target_id, dict(webhook))
    verdict = judge(registration, webhook, now=now, heartbeat_timeout=heartbeat_timeout)
    if webhook is None and registration.state == "lost":
        return Verdict("lost", registration.problem, verdict.level)
    if verdict.state != registration.state or verdict.problem != registration.problem:
        registry.set_state(registration.target_id, verdict.state, problem=verdict.problem)
    return verdict
