"""GET /metrics: Prometheus text format, read from the Redis counters at scrape time.

I/O edge (HTTP in, Redis reads in the thread pool). Receivers, workers and pollers count in
Redis (``keys.STATS`` and each target's hash), so a custom Collector that reads those at
scrape time is right however many processes of each kind run, and any receiver can answer.
Same access rule as /status (``operator_auth``). The names are documented in METRICS and in
README.operations.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from asana_hooks.events import parse_timestamp
from asana_hooks.health import HEALTH_VALUES
from asana_hooks.secretbox import Secret
from asana_hooks.series import ACK_BUCKETS_MS
from asana_hooks.settings import Settings
from asana_hooks.snapshot import Overview, snapshot
from receiver.status import is_allowed, refusal

PREFIX = "asana_hooks_"

METRICS: dict[str, str] = {
    "http_responses_total": "Receiver answers to Asana by HTTP status code (label code).",
    "ack_latency_seconds": "Time from a delivery's arrival to its 2xx, every receiver together.",
    "events_received_total": "Events taken from webhook deliveries and the Events API.",
    "events_duplicate_total": "Events dropped as already seen (Asana repeats, webhook + poller).",
    "events_late_total": "Events that arrived over HOOKS_LATE_EVENT_SECONDS after they happened.",
    "events_stale_total": "Signed events over the dedupe window (25 h) old on arrival: dropped.",
    "batches_total": "Batches flushed (one per resource per quiet window).",
    "changes_emitted_total": "Change entries written to the asana-hooks:changes stream.",
    "batches_redundant_total": "Batches not emitted: an entry already carried that state.",
    "events_quarantined_total": "Signed events we could not read, kept aside (quarantine list).",
    "events_quarantine_dropped_total": "Kept events dropped, oldest first, past the cap.",
    "quarantine_events": "Events in the quarantine now (asana-hooks quarantine list).",
    "api_requests_total": "Requests to Asana's API by outcome: HTTP status, timeout, unreachable.",
    "rate_limit_waits_total": "Times work waited for room in an API budget (or was deferred).",
    "api_budget_used": "Requests to Asana in the last minute, all processes together.",
    "api_budget_per_minute": "The shared budget, ASANA_RATE_LIMIT_PER_MINUTE.",
    "api_paused": "1 while a 429's Retry-After pauses every call to Asana.",
    "api_token_rejected": "1 while Asana rejects ASANA_ACCESS_TOKEN (401).",
    "queue_jobs": "Jobs on the RQ queue by state: queued, started, scheduled, failed.",
    "workers": "RQ workers alive on the queue.",
    "open_batches": "Resources with a batch waiting for its quiet window.",
    "poller_lag_seconds": "Seconds since the poller last read a webhook's resource's events.",
    "poll_interval_seconds": "HOOKS_POLL_INTERVAL_SECONDS (alerts compare the lag with it).",
    "connection_state": "1 for each Asana connection's state (label state), else 0.",
    "connection_budget_used": "Requests a connection sent to Asana in the last minute.",
    "consumer_group_lag": "Changes not yet handed to a consumer group's consumers (label group).",
    "consumer_group_pending": "Changes handed to a group's consumers and not yet acknowledged.",
    "consumer_group_dead": "Dead letters of a consumer group (asana-hooks changes dead).",
    "consumer_group_behind_retention": "1 when changes were trimmed before the group read them.",
    "webhook_health": "1 for the current health of each webhook (label health), else 0.",
    "webhook_deliveries_total": "Deliveries with events accepted for a webhook.",
    "webhook_heartbeats_total": "Heartbeats (empty deliveries) accepted for a webhook.",
    "webhook_events_total": "Events received for a webhook.",
    "webhook_events_quarantined_total": "Events of a webhook we could not read, kept aside.",
    "webhook_last_heartbeat_timestamp_seconds": "When the last heartbeat came (Unix time).",
    "webhook_deletion_timestamp_seconds": "When Asana will delete a failing webhook (Unix time).",
}
"""Every metric we export (without the asana_hooks_ prefix) and what it means."""

_STAT_COUNTERS = {
    "events_received_total": "events",
    "events_duplicate_total": "duplicates",
    "events_late_total": "late",
    "events_stale_total": "stale",
    "batches_total": "batches",
    "changes_emitted_total": "changes",
    "batches_redundant_total": "redundant",
    "events_quarantined_total": "quarantined",
    "events_quarantine_dropped_total": "quarantine_dropped",
    "rate_limit_waits_total": "rate_limit_waits",
}


def routes() -> list[BaseRoute]:
    return [Route("/metrics", metrics, methods=["GET"])]


async def metrics(request: Request) -> Response:
    if not is_allowed(request):
        return refusal(request, html=False)
    connection: redis.Redis = request.state.redis
    settings: Settings = request.state.settings
    body = await run_in_threadpool(
        render,
        connection,
        budget=settings.rate_limit_per_minute,
        poll_interval=settings.poll_interval_seconds,
        default_token=settings.asana_access_token,
    )
    return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def render(
    connection: redis.Redis,
    *,
    budget: int,
    poll_interval: float = 300.0,
    default_token: Secret | None = None,
) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        RedisCollector(
            connection, budget=budget, poll_interval=poll_interval, default_token=default_token
        )
    )
    return generate_latest(registry)


class RedisCollector(Collector):
    """Reads one snapshot per scrape and turns it into metric families."""

    def __init__(
        self,
        connection: redis.Redis,
        *,
        budget: int,
        poll_interval: float,
        default_token: Secret | None = None,
    ) -> None:
        self._redis = connection
        self._budget = budget
        self._poll_interval = poll_interval
        self._default_token = default_token

    def collect(self) -> Iterator[Metric]:
        view = snapshot(
            self._redis,
            budget=self._budget,
            with_series=False,
            default_token=self._default_token,
        )
        yield from _stat_metrics(view.stats)
        yield from _system_metrics(view)
        yield _gauge("poll_interval_seconds", self._poll_interval)
        yield from _webhook_metrics(view.webhooks)
        yield from _group_metrics(view.consumer_groups)
        yield from _connection_metrics(view.connections)


def _counter(name: str, labels: list[str] | None = None) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name.removesuffix("_total"), METRICS[name], labels=labels)


def _gauge(
    name: str, value: float | None = None, labels: list[str] | None = None
) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, METRICS[name], value=value, labels=labels)


def _stat_metrics(stats: dict[str, int]) -> Iterator[Metric]:
    http = _counter("http_responses_total", ["code"])
    api = _counter("api_requests_total", ["status"])
    for field, value in sorted(stats.items()):
        kind, _, label = field.partition(":")
        if kind == "http" and label:
            http.add_metric([label], value)
        elif kind == "api" and label:
            api.add_metric([label], value)
    yield http
    yield api
    yield _ack_histogram(stats)
    for name, field in _STAT_COUNTERS.items():
        family = _counter(name)
        family.add_metric([], stats.get(field, 0))
        yield family


def _ack_histogram(stats: dict[str, int]) -> Metric:
    """Cumulative buckets from the receivers' counts (``receiver.trends``)."""
    buckets: list[tuple[str, float]] = []
    seen = 0
    for index, bound in enumerate(ACK_BUCKETS_MS):
        seen += stats.get(f"ack:{index}", 0)
        buckets.append((f"{bound / 1000:g}", seen))
    seen += stats.get(f"ack:{len(ACK_BUCKETS_MS)}", 0)
    buckets.append(("+Inf", seen))
    return HistogramMetricFamily(
        PREFIX + "ack_latency_seconds",
        METRICS["ack_latency_seconds"],
        buckets=buckets,
        sum_value=stats.get("ack:sum_us", 0) / 1_000_000,
    )


def _system_metrics(view: Overview) -> Iterator[Metric]:
    queue = _gauge("queue_jobs", labels=["state"])
    for state in ("queued", "started", "scheduled", "failed"):
        queue.add_metric([state], view.queue.get(state, 0))
    yield queue
    yield _gauge("workers", view.queue.get("workers", 0))
    yield _gauge("open_batches", view.open_batches)
    yield _gauge("quarantine_events", view.quarantine.get("count", 0))
    yield _gauge("api_budget_used", view.api["used_last_minute"])
    yield _gauge("api_budget_per_minute", view.api["budget_per_minute"])
    yield _gauge("api_paused", 1 if view.api["paused_until"] else 0)
    yield _gauge("api_token_rejected", 1 if view.api["token_rejected"] else 0)


def _webhook_metrics(webhooks: list[dict[str, Any]]) -> Iterator[Metric]:
    labels = ["webhook", "resource"]
    lag = _gauge("poller_lag_seconds", labels=labels)
    health = _gauge("webhook_health", labels=[*labels, "health"])
    deliveries = _counter("webhook_deliveries_total", labels)
    heartbeats = _counter("webhook_heartbeats_total", labels)
    events = _counter("webhook_events_total", labels)
    quarantined = _counter("webhook_events_quarantined_total", labels)
    last_heartbeat = _gauge("webhook_last_heartbeat_timestamp_seconds", labels=labels)
    deletion = _gauge("webhook_deletion_timestamp_seconds", labels=labels)
    for webhook in webhooks:
        values = [webhook.get("gid") or webhook["target_id"], webhook["resource"]["gid"]]
        for value in HEALTH_VALUES:
            health.add_metric([*values, value], 1 if webhook["health"] == value else 0)
        deliveries.add_metric(values, webhook.get("deliveries", 0))
        heartbeats.add_metric(values, webhook.get("heartbeats", 0))
        events.add_metric(values, webhook.get("events", 0))
        quarantined.add_metric(values, webhook.get("quarantined", 0))
        if webhook.get("poller_lag_seconds") is not None:
            lag.add_metric(values, webhook["poller_lag_seconds"])
        heard = parse_timestamp(webhook.get("last_heartbeat_at"))
        if heard is not None:
            last_heartbeat.add_metric(values, heard.timestamp())
        deletes = parse_timestamp(webhook.get("failure_deletion_timestamp"))
        if deletes is not None:
            deletion.add_metric(values, deletes.timestamp())
    yield from (health, deliveries, heartbeats, events, quarantined, lag)
    yield from (last_heartbeat, deletion)


def _group_metrics(groups: list[dict[str, Any]]) -> Iterator[Metric]:
    lag = _gauge("consumer_group_lag", labels=["group"])
    pending = _gauge("consumer_group_pending", labels=["group"])
    dead = _gauge("consumer_group_dead", labels=["group"])
    behind = _gauge("consumer_group_behind_retention", labels=["group"])
    for group in groups:
        name = [group["group"]]
        if group.get("lag") is not None:
            lag.add_metric(name, group["lag"])
        pending.add_metric(name, group["pending"])
        dead.add_metric(name, group["dead"])
        behind.add_metric(name, 1 if group["behind_retention"] else 0)
    yield from (lag, pending, dead, behind)


CONNECTION_STATES = ("ok", "rate_limited", "refreshing", "revoked")


def _connection_metrics(connections: list[dict[str, Any]]) -> Iterator[Metric]:
    state = _gauge("connection_state", labels=["connection", "state"])
    used = _gauge("connection_budget_used", labels=["connection"])
    for found in connections:
        for name in CONNECTION_STATES:
            state.add_metric([found["id"], name], 1 if found["state"] == name else 0)
        used.add_metric([found["id"]], found["budget"]["used_last_minute"])
    yield from (state, used)
