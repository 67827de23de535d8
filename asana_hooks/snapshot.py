"""One snapshot of the whole system, read from Redis. Synchronous I/O edge (Redis only).

The status page (``/status.json``), ``/metrics`` and `asana-hooks webhooks status` all read
the counters that receivers, workers and pollers keep in Redis through this module, so the
numbers are right however many processes of each kind run. Nothing here calls Asana.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from rq import Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from asana_hooks import connection_report, consumer_groups, keys, quarantine, series
from asana_hooks.connections import ConnectionStore
from asana_hooks.events import format_timestamp
from asana_hooks.failed_jobs import list_failed
from asana_hooks.health import assess, seconds_since
from asana_hooks.public_url import current_public_url, tunnel_health
from asana_hooks.queueing import make_queue
from asana_hooks.ratelimit import Budget
from asana_hooks.redis_conn import decode_hash
from asana_hooks.registry import Registration, Registry
from asana_hooks.secretbox import Secret

QUARANTINE_LIMIT = 10
"""How many kept events the snapshot shows (the count is always complete)."""

RECENT_LIMIT = 20
"""How many recent changes the snapshot carries."""

FAILED_LIMIT = 10
"""How many failed jobs the snapshot describes (the count is always complete)."""


@dataclass(frozen=True)
class Overview:
    """Everything the dashboard shows; ``to_json`` is the body of ``/status.json``."""

    generated_at: str
    webhooks: list[dict[str, Any]]
    stats: dict[str, int]
    queue: dict[str, int]
    open_batches: int
    api: dict[str, Any]
    recent_changes: list[Any] = field(default_factory=list)
    failed_jobs: list[dict[str, Any]] = field(default_factory=list)
    quarantine: dict[str, Any] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)
    consumer_groups: list[dict[str, Any]] = field(default_factory=list)
    """Each group reading the changes (`changes groups --json`), with its ``warning``."""
    connections: list[dict[str, Any]] = field(default_factory=list)
    """Each Asana identity (`connections list --json`): its state and its budget's use."""
    public_url: str | None = None
    """The current public URL (asana_hooks.public_url): a running tunnel's or the setting."""
    tunnel: dict[str, Any] | None = None
    """The tunnel watchdog's last check, while a `--tunnel` process runs."""

    def to_json(self, *, webhook_limit: int | None = None) -> dict[str, Any]:
        """``webhook_limit``: list at most this many webhooks, those needing attention first
        (the page at thousands of webhooks); ``webhook_totals`` always counts them all."""
        return {
            "generated_at": self.generated_at,
            "webhooks": shown_webhooks(self.webhooks, webhook_limit),
            "webhook_totals": {
                "count": len(self.webhooks),
                "need_attention": sum(needs_attention(w) for w in self.webhooks),
                "deliveries": sum(int(w.get("deliveries") or 0) for w in self.webhooks),
            },
            "stats": self.stats,
            "queue": self.queue,
            "open_batches": self.open_batches,
            "api": self.api,
            "recent_changes": self.recent_changes,
            "failed_jobs": self.failed_jobs,
            "quarantine": self.quarantine,
            "series": self.series,
            "consumer_groups": self.consumer_groups,
            "connections": self.connections,
            "public_url": self.public_url,
            "tunnel": self.tunnel,
        }


ATTENTION_HEALTH = frozenset({"failing", "silent", "lost"})
"""Webhook health the status page shows in red (and lists first when it lists some)."""


def needs_attention(webhook: dict[str, Any]) -> bool:
    return webhook.get("health") in ATTENTION_HEALTH


def shown_webhooks(webhooks: list[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    """All of them, or the first ``limit`` with those needing attention first (stable)."""
    if limit is None or len(webhooks) <= limit:
        return webhooks
    return sorted(webhooks, key=lambda w: not needs_attention(w))[:limit]


def webhook_statuses(
    connection: redis.Redis,
    registrations: list[Registration],
    *,
    now: datetime,
    public_url: str | None = None,
) -> list[dict[str, Any]]:
    """`webhooks status --json` objects, with health and poller lag added; ``target_current``
    against ``public_url``, the current public URL."""
    pipe = connection.pipeline(transaction=False)
    for registration in registrations:
        pipe.hgetall(keys.poll_state(registration.resource_gid))
        pipe.exists(keys.sync_token(registration.resource_gid))
    answers = pipe.execute()
    found = []
    for index, registration in enumerate(registrations):
        poll, subscribed = decode_hash(answers[2 * index]), bool(answers[2 * index + 1])
        status = registration.to_status_json(public_url=public_url)
        status["poller_lag_seconds"] = poller_lag(poll, now=now)
        status["events_api"] = events_api(poll, subscribed=subscribed)
        status.update(assess(status, now=now))
        status["quarantine_note"] = quarantine.note(int(status.get("quarantined") or 0))
        found.append(status)
    return found


def events_api(poll: dict[str, str], *, subscribed: bool) -> dict[str, Any]:
    """The resource's Events API subscription: whether a sync token is held, the last or
    coming resync, and a line for the status page when something is being caught up."""
    since, reason = poll.get("resync_since"), poll.get("resync_reason")
    running = poll.get("resync_state") == "running"
    resync = None
    if since or running or poll.get("resync_state"):
        resync = {
            "state": "running" if running else ("pending" if since else "done"),
            "since": since,
            "reason": reason,
            "tasks": int(poll.get("resync_items") or 0),
            "started_at": poll.get("resync_started_at"),
            "finished_at": poll.get("resync_finished_at"),
        }
    note = None
    if resync is not None and resync["state"] == "running":
        note = f"resyncing from {since or '?'} ({reason or 'a gap'}): {resync['tasks']} tasks"
    elif since:
        note = f"resync from {since} pending: {reason or 'a gap'}"
    elif not subscribed:
        note = "no sync token: the next poll resyncs from the webhook's creation or last poll"
    return {"subscribed": subscribed, "resync": resync, "note": note}


def poller_lag(poll: dict[str, str], *, now: datetime) -> float | None:
    """Seconds since the poller last read this resource's events (None: never)."""
    for name in ("last_good_poll_at",):
        lag = seconds_since(poll.get(name), now)
        if lag is not None:
            return max(0.0, lag)
    return None


def read_stats(connection: redis.Redis) -> dict[str, int]:
    """The global counters hash, numbers only."""
    stats: dict[str, int] = {}
    for name, value in decode_hash(connection.hgetall(keys.STATS)).items():
        try:
            stats[name] = int(float(value))
        except ValueError:
            continue
    return stats


def queue_counts(connection: redis.Redis) -> dict[str, int]:
    queue = make_queue(connection)
    return {
        "queued": queue.count,
        "started": StartedJobRegistry(queue=queue).count,
        "scheduled": int(connection.zcard(ScheduledJobRegistry.key_template.format(keys.QUEUE))),
        "failed": FailedJobRegistry(queue=queue).count,
        "workers": Worker.count(queue=queue),
    }


def api_usage(connection: redis.Redis, *, budget: int) -> dict[str, Any]:
    """Requests to Asana in the last minute (every process), and any 429 pause."""
    shared = Budget(connection, budget)
    paused = shared.paused_until()
    return {
        "used_last_minute": shared.used(),
        "budget_per_minute": budget,
        "paused_until": (
            None if paused is None else format_timestamp(datetime.fromtimestamp(paused, UTC))
        ),
        "token_rejected": shared.token_rejected(),
    }


def recent_changes(connection: redis.Redis, limit: int = RECENT_LIMIT) -> list[Any]:
    found: list[Any] = []
    for raw in connection.lrange(keys.RECENT_CHANGES, 0, limit - 1):
        try:
            found.append(json.loads(raw))
        except ValueError:
            continue
    return found


def snapshot(
    connection: redis.Redis,
    *,
    budget: int,
    with_series: bool = True,
    public_url: str | None = None,
    default_token: Secret | None = None,
) -> Overview:
    """Read everything once (a few round trips; meant for the thread pool). ``with_series``:
    the 24 h of per-minute series too (the page's charts; /metrics has no use for them).
    ``public_url``: HOOKS_PUBLIC_URL, which a running tunnel's URL overrides.
    ``default_token``: ASANA_ACCESS_TOKEN, which makes the default connection exist (only its
    presence is read)."""
    now = datetime.now(UTC)
    registrations = Registry(connection).all()
    current = current_public_url(connection, public_url)
    return Overview(
        generated_at=format_timestamp(now),
        webhooks=webhook_statuses(connection, registrations, now=now, public_url=current),
        stats=read_stats(connection),
        queue=queue_counts(connection),
        open_batches=int(connection.zcard(keys.OPEN_BATCHES)),
        api=api_usage(connection, budget=budget),
        recent_changes=recent_changes(connection),
        failed_jobs=[
            job.summary() for job in list_failed(connection, limit=FAILED_LIMIT, newest_first=True)
        ],
        series=series.read(connection) if with_series else {},
        quarantine={
            "count": quarantine.count(connection),
            "recent": [
                entry.to_json()
                for entry in quarantine.entries(
                    connection, limit=QUARANTINE_LIMIT, newest_first=True
                )
            ],
        },
        consumer_groups=[
            {**status.to_json(), "warning": status.warning}
            for status in consumer_groups.statuses(connection)
        ],
        public_url=current,
        tunnel=tunnel_health(connection),
        connections=connection_report.report(
            connection,
            ConnectionStore(connection, default_token=default_token).all(),
            per_minute=budget,
        ),
    )
