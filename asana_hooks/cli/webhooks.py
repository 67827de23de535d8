"""`asana-hooks webhooks ...`: create, list, status, delete, retire. I/O edge (Redis, Asana).

Human output is an aligned table; ``--json`` prints the contract's objects
(``Registration.to_json`` / ``to_status_json``, with more keys). Failures are ``Failure``s.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click
import redis

from asana_hooks.asana_client import AsanaClient
from asana_hooks.asana_errors import AsanaError, BadToken, NotFound
from asana_hooks.cli import render
from asana_hooks.cli.asana_messages import asana_failure
from asana_hooks.cli.context import EXIT_CONFIG, Failure, settings
from asana_hooks.cli.create import check_public_url, create
from asana_hooks.filters import FilterSpecError, format_filter, parse_specs
from asana_hooks.health import describe_duration
from asana_hooks.overview import webhook_statuses
from asana_hooks.redis_conn import connect
from asana_hooks.registry import Registration, Registry
from asana_hooks.secretbox import SecretBox

EXIT_NOT_FOUND = 1
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group()
def webhooks() -> None:
    """Register, list, inspect, retire and delete webhooks."""


@webhooks.command("create")
@click.option("--resource", "resource_gid", required=True, help="Gid of the resource to watch.")
@click.option(
    "--filter",
    "specs",
    multiple=True,
    metavar="SPEC",
    help="resource_type[.subtype][:action[:field,...]], e.g. task:changed:name,notes.",
)
@click.option(
    "--resource-type",
    help="workspace, team, portfolio, goal, project...: checks filters against Asana's table.",
)
@JSON_OPTION
def create_command(
    resource_gid: str, specs: tuple[str, ...], resource_type: str | None, as_json: bool
) -> None:
    """Register a webhook on RESOURCE whose target is $HOOKS_PUBLIC_URL/hooks/asana/<id>."""
    try:
        filters = parse_specs(specs, resource_type=resource_type)
    except FilterSpecError as exc:
        raise Failure(str(exc), EXIT_CONFIG) from None
    current = settings()
    current.require_token()
    current.require_encryption_keys()
    public_url = current.require_public_url()
    check_public_url(current, public_url)
    with _registry(secrets=True) as (connection, registry), _client(connection) as client:
        outcome = create(
            client,
            connection,
            registry,
            resource_gid=resource_gid,
            public_url=public_url,
            filters=filters,
        )
    registration = outcome.registration
    if as_json:
        render.print_json({**registration.to_json(), "existing": outcome.existing})
        return
    if outcome.existing:
        click.echo(
            f"Asana already has webhook {registration.webhook_gid} on {resource_gid} for this "
            "receiver; using it (delete it first to change its filters)."
        )
    click.echo(f"webhook {registration.webhook_gid}")
    click.echo(f"target  {registration.target_url}")
    click.echo(f"filters {_filters_text(registration.filters)}")


@webhooks.command("list")
@JSON_OPTION
def list_command(as_json: bool) -> None:
    """Every webhook this receiver registered, with its state."""
    with _registry() as (_, registry):
        registrations = registry.all()
    if as_json:
        render.print_json([r.to_json() for r in registrations])
        return
    render.table(
        ("GID", "STATE", "RESOURCE", "FILTERS", "TARGET", "CREATED"),
        [
            (
                render.dash(r.webhook_gid),
                render.styled(r.state, _state_health(r.state)),
                _resource_text(r),
                _filters_text(r.filters),
                r.target_url,
                render.ago(r.created_at),
            )
            for r in registrations
        ],
        title="webhooks",
    )


@webhooks.command("status")
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
    with _registry() as (connection, registry):
        registrations = [_find(registry, gid)] if gid else registry.all()
        if live and current.asana_access_token is not None and registrations:
            registrations = _refresh(connection, registry, registrations)
        statuses = webhook_statuses(connection, registrations, now=datetime.now(UTC))
    if as_json:
        render.print_json(statuses[0] if gid else statuses)
        return
    _print_statuses(statuses)


@webhooks.command("delete")
@click.argument("gid")
@JSON_OPTION
def delete_command(gid: str, as_json: bool) -> None:
    """Delete webhook GID at Asana and mark it deleted here."""
    settings().require_token()
    with _registry() as (connection, registry), _client(connection) as client:
        registration = registry.by_webhook(gid)
        try:
            client.delete(f"/webhooks/{gid}")
            note = f"deleted webhook {gid} at Asana"
        except NotFound:
            if registration is None:
                raise Failure(f"no webhook {gid}, here or at Asana", EXIT_NOT_FOUND) from None
            note = f"Asana no longer had webhook {gid}"
        except AsanaError as exc:
            raise asana_failure(exc, doing=f"deleting webhook {gid}") from None
        if registration is not None:
            registry.set_state(registration.target_id, "deleted")
            registration = registry.get(registration.target_id)
    if as_json:
        render.print_json(registration.to_json() if registration else {"gid": gid})
        return
    click.echo(f"{note}; its target now answers 410" if registration else note)


@webhooks.command("retire")
@click.argument("gid")
@JSON_OPTION
def retire_command(gid: str, as_json: bool) -> None:
    """Answer 410 to webhook GID, so that Asana drops it at its next delivery or heartbeat."""
    with _registry() as (_, registry):
        registration = _find(registry, gid)
        registry.set_state(registration.target_id, "retired")
        retired = registry.get(registration.target_id) or registration
    if as_json:
        render.print_json(retired.to_json())
        return
    click.echo(
        f"retired webhook {gid}: the receiver answers 410 to it, and Asana deletes a webhook "
        "whose target answers 410 (at the latest at its next heartbeat, within 8 h)"
    )


# Helpers ----------------------------------------------------------------------------------


@contextmanager
def _registry(*, secrets: bool = False) -> Iterator[tuple[redis.Redis, Registry]]:
    current = settings()
    box = SecretBox(current.require_encryption_keys()) if secrets else None
    connection = connect(current.redis_url, socket_timeout=5.0)
    try:
        connection.ping()
        yield connection, Registry(connection, box)
    finally:
        connection.close()


@contextmanager
def _client(connection: redis.Redis) -> Iterator[AsanaClient]:
    with AsanaClient(settings(), connection, timeout=30.0, max_wait=10.0) as client:
        yield client


def _find(registry: Registry, gid: str) -> Registration:
    found = registry.by_webhook(gid) or registry.get(gid)
    if found is None:
        raise Failure(
            f"no webhook {gid} here: `asana-hooks webhooks list` shows the gids", EXIT_NOT_FOUND
        )
    return found


class _NoAnswer(Exception):
    """Asana did not answer for one webhook; its stored status stays as it was."""


def _refresh(
    connection: redis.Redis, registry: Registry, registrations: list[Registration]
) -> list[Registration]:
    """GET each webhook at Asana, store its delivery fields, judge it as the poller does."""
    now = datetime.now(UTC)
    timeout = settings().heartbeat_timeout_seconds
    refreshed = []
    with _client(connection) as client:
        for registration in registrations:
            if registration.webhook_gid and registration.state not in ("deleted", "pending"):
                try:
                    webhook = _fetch(client, registration)
                except _NoAnswer:
                    webhook = None
                else:
                    if webhook is not None:
                        registry.store_asana_status(registration.target_id, webhook)
                    if webhook is not None or registration.state != "lost":
                        verdict = _judge(registration, webhook, now=now, heartbeat_timeout=timeout)
                        registry.set_state(
                            registration.target_id, verdict.state, problem=verdict.problem
                        )
            refreshed.append(registry.get(registration.target_id) or registration)
    return refreshed


def _judge(registration: Registration, webhook: dict[str, Any] | None, **options: Any) -> Any:
    """The poller's own verdict (``workers.health``), loaded by name: one rule, one place."""
    return importlib.import_module("workers.health").judge(registration, webhook, **options)


def _fetch(client: AsanaClient, registration: Registration) -> dict[str, Any] | None:
    """Asana's webhook object, or None when Asana answered 404."""
    try:
        body = client.get(f"/webhooks/{registration.webhook_gid}")
    except NotFound:
        return None
    except BadToken as exc:
        raise asana_failure(exc, doing="reading webhook status") from None
    except AsanaError as exc:
        click.echo(
            f"warning: Asana did not answer for webhook {registration.webhook_gid} "
            f"({type(exc).__name__}); showing what Redis knows",
            err=True,
        )
        raise _NoAnswer from exc
    data = body.get("data")
    return dict(data) if isinstance(data, dict) else {}


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
                _resource_json_text(s["resource"]),
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
        if status["health"] in ("ok", "retired", "deleted"):
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


def _state_health(state: str) -> str:
    return "ok" if state == "active" else state


def _resource_text(registration: Registration) -> str:
    return _resource_json_text(
        {
            "gid": registration.resource_gid,
            "resource_type": registration.resource_type,
            "name": registration.resource_name,
        }
    )


def _resource_json_text(resource: dict[str, Any]) -> str:
    kind = resource.get("resource_type") or "?"
    name = f" {resource['name']}" if resource.get("name") else ""
    return f"{kind} {resource.get('gid')}{name}"


def _filters_text(filters: list[dict[str, Any]]) -> str:
    return " ".join(format_filter(f) for f in filters) or "(all events)"
