"""`asana-hooks webhooks status [GID]`: Asana's delivery status and our counters.
I/O edge (Redis, Asana).

With ``--live`` (the default, when a token is set) each webhook is first checked at Asana the
way the poller checks it (``asana_hooks.health_check``), so an operator sees at a glance which
webhook is failing, since when, and when Asana will delete it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
import redis

from asana_hooks.asana_errors import AsanaError, BadToken
from asana_hooks.cli import render
from asana_hooks.cli.asana_messages import asana_failure
from asana_hooks.cli.context import (
    JSON_OPTION,
    asana_client,
    find_registration,
    open_registry,
    settings,
)
from asana_hooks.health import describe_duration
from asana_hooks.health_check import check_webhook
from asana_hooks.public_url import current_public_url
from asana_hooks.registry import Registration, Registry
from asana_hooks.snapshot import webhook_statuses

UNCHECKED_STATES = frozenset({"deleted", "pending"})
"""Webhooks Asana is not asked about: gone, or not made yet."""


@click.command("status")
@click.argument("gid", required=False)
@click.option(
    "--live/--no-live",
    default=True,
    help="Ask Asana for its delivery status first (needs ASANA_ACCESS_TOKEN).",
)
@JSON_OPTION
def status_command(gid: str | None, live: bool, as_json: bool) -> None:
    """Asana's delivery status and our counters, for one webhook or all."""
    current = settings()
    with open_registry() as (connection, registry):
        registrations = [find_registration(registry, gid)] if gid else registry.all()
        if live and current.asana_access_token is not None and registrations:
            registrations = _refresh(connection, registry, registrations)
        public_url = current_public_url(connection, current.public_url)
        statuses = webhook_statuses(
            connection, registrations, now=datetime.now(UTC), public_url=public_url
        )
    if as_json:
        render.print_json(statuses[0] if gid else statuses)
        return
    _print_statuses(statuses)


def _refresh(
    connection: redis.Redis, registry: Registry, registrations: list[Registration]
) -> list[Registration]:
    """Check each webhook at Asana as the poller does; keep what Redis knows when Asana is
    silent about one."""
    now = datetime.now(UTC)
    timeout = settings().heartbeat_timeout_seconds
    refreshed = []
    with asana_client(connection) as client:
        for registration in registrations:
            if registration.webhook_gid and registration.state not in UNCHECKED_STATES:
                try:
                    check_webhook(
                        client, registry, registration, now=now, heartbeat_timeout=timeout
                    )
                except BadToken as exc:
                    raise asana_failure(exc, doing="reading webhook status") from None
                except AsanaError as exc:
                    click.echo(
                        f"warning: Asana did not answer for webhook {registration.webhook_gid} "
                        f"({type(exc).__name__}); showing what Redis knows",
                        err=True,
                    )
            refreshed.append(registry.get(registration.target_id) or registration)
    return refreshed


def _print_statuses(statuses: list[dict[str, Any]]) -> None:
    render.table(
        (
            "GID",
            "HEALTH",
            "RESOURCE",
            "LAST HEARTBEAT",
            "LAST DELIVERY",
            "EVENTS",
            "DUPS",
            "BATCHES",
            "CHANGES",
            "POLL LAG",
            "ASANA LAST OK",
        ),
        [
            (
                render.dash(s["gid"]),
                render.styled(s["health"], s["health"]),
                render.resource_text(s["resource"]),
                render.ago(s["last_heartbeat_at"]),
                render.ago(s["last_delivery_at"]),
                str(s.get("events", 0)),
                str(s.get("duplicates", 0)),
                str(s.get("batches", 0)),
                str(s.get("changes", 0)),
                _lag_text(s.get("poller_lag_seconds")),
                render.ago(s.get("last_success_at")),
            )
            for s in statuses
        ],
        title="webhooks",
    )
    for status in statuses:
        note = (status.get("events_api") or {}).get("note")
        if note and status["health"] not in ("retired", "deleted"):
            render.console().print(f"~ {status['gid'] or status['target_id']} events: {note}")
        if status.get("quarantine_note"):
            render.console().print(
                f"! {status['gid'] or status['target_id']} {status['quarantine_note']}"
            )
        if status["health"] in ("retired", "deleted"):
            continue
        if status.get("target_current") is False:
            render.console().print(
                render.styled(
                    f"! {status['gid'] or status['target_id']} delivers to {status['target']}, "
                    "not under the current public URL: asana-hooks webhooks retarget --all",
                    "failing",
                )
            )
        if status["health"] == "ok":
            continue
        render.console().print(render.styled(_alert_line(status), status["health"]))


def _alert_line(status: dict[str, Any]) -> str:
    line = f"! {status['gid'] or status['target_id']} {status['health']}: {status['reason']}"
    left = status.get("deletes_in_seconds")
    if left is None:
        return line
    if left <= 0:
        return line + "; Asana deletes it any moment now"
    return (
        f"{line}; Asana deletes it in {describe_duration(left)} "
        f"(at {status['failure_deletion_timestamp']})"
    )


def _lag_text(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    return describe_duration(float(seconds))
