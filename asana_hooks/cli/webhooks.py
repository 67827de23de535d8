"""`asana-hooks webhooks ...`: create, list, status, delete, retire. I/O edge (Redis, Asana).

Human output is an aligned table; ``--json`` prints the contract's objects
(``Registration.to_json`` / ``to_status_json``, with more keys). Failures are ``Failure``s.
"""

from __future__ import annotations

from typing import Any

import click

from asana_hooks.asana_client import AsanaClient
from asana_hooks.asana_errors import AsanaError, NotFound
from asana_hooks.cli import render
from asana_hooks.cli.asana_messages import asana_failure
from asana_hooks.cli.context import (
    CONNECTION_OPTION,
    EXIT_CONFIG,
    EXIT_FAILURE,
    JSON_OPTION,
    Failure,
    asana_client,
    find_registration,
    open_registry,
    settings,
)
from asana_hooks.cli.create import create, registering
from asana_hooks.cli.retarget import retarget_command
from asana_hooks.cli.webhook_status import status_command
from asana_hooks.filters import FilterSpecError, format_filter, parse_specs
from asana_hooks.keys import DEFAULT_CONNECTION
from asana_hooks.public_url import current_public_url, target_is_current
from asana_hooks.registry import Registration


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
@CONNECTION_OPTION
@JSON_OPTION
def create_command(
    resource_gid: str,
    specs: tuple[str, ...],
    resource_type: str | None,
    connection_id: str,
    as_json: bool,
) -> None:
    """Register a webhook on RESOURCE whose target is $HOOKS_PUBLIC_URL/hooks/asana/<id>."""
    try:
        filters = parse_specs(specs, resource_type=resource_type)
    except FilterSpecError as exc:
        raise Failure(str(exc), EXIT_CONFIG) from None
    with registering(connection_id) as session:
        public_url = session.public_url
        outcome = create(
            session.client,
            session.connection,
            session.registry,
            resource_gid=resource_gid,
            public_url=public_url,
            filters=filters,
            resource_type=resource_type or "",
        )
    registration = outcome.registration
    if as_json:
        shown = registration.to_json(public_url=public_url)
        render.print_json({**shown, "existing": outcome.existing})
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
    with open_registry() as (connection, registry):
        registrations = registry.all()
        public_url = current_public_url(connection, settings().public_url)
    if as_json:
        render.print_json([r.to_json(public_url=public_url) for r in registrations])
        return
    render.table(
        ("GID", "STATE", "RESOURCE", "FILTERS", "TARGET", "CREATED"),
        [
            (
                render.dash(r.webhook_gid),
                render.styled(r.state, _state_health(r.state)),
                _resource_text(r),
                _filters_text(r.filters),
                _target_text(r.target_url, public_url),
                render.ago(r.created_at),
            )
            for r in registrations
        ],
        title="webhooks",
    )


@webhooks.command("delete")
@click.argument("gid")
@JSON_OPTION
def delete_command(gid: str, as_json: bool) -> None:
    """Delete webhook GID at Asana (as the connection that made it) and mark it deleted here."""
    with open_registry() as (connection, registry):
        registration = registry.by_webhook(gid)
        connection_id = registration.connection if registration else DEFAULT_CONNECTION
        if connection_id == DEFAULT_CONNECTION:
            settings().require_token()
        with asana_client(connection, connection_id) as client:
            note = _delete_at_asana(client, gid, known=registration is not None)
        if registration is not None:
            registry.set_state(registration.target_id, "deleted")
            registration = registry.get(registration.target_id)
    if as_json:
        render.print_json(registration.to_json() if registration else {"gid": gid})
        return
    click.echo(f"{note}; its target now answers 410" if registration else note)


def _delete_at_asana(client: AsanaClient, gid: str, *, known: bool) -> str:
    """Delete at Asana; one already gone is fine when we know it. Returns what happened."""
    try:
        client.delete(f"/webhooks/{gid}")
    except NotFound:
        if not known:
            raise Failure(f"no webhook {gid}, here or at Asana", EXIT_FAILURE) from None
        return f"Asana no longer had webhook {gid}"
    except AsanaError as exc:
        raise asana_failure(exc, doing=f"deleting webhook {gid}") from None
    return f"deleted webhook {gid} at Asana"


@webhooks.command("retire")
@click.argument("gid")
@JSON_OPTION
def retire_command(gid: str, as_json: bool) -> None:
    """Answer 410 to webhook GID, so that Asana drops it at its next delivery or heartbeat."""
    with open_registry() as (_, registry):
        registration = find_registration(registry, gid)
        registry.set_state(registration.target_id, "retired")
        retired = registry.get(registration.target_id) or registration
    if as_json:
        render.print_json(retired.to_json())
        return
    click.echo(
        f"retired webhook {gid}: the receiver answers 410 to it, and Asana deletes a webhook "
        "whose target answers 410 (at the latest at its next heartbeat, within 8 h)"
    )


webhooks.add_command(status_command)
webhooks.add_command(retarget_command)


def _target_text(target: str, public_url: str | None) -> str:
    if target_is_current(target, public_url) is False:
        return f"{target} (not current: webhooks retarget)"
    return target


def _state_health(state: str) -> str:
    return "ok" if state == "active" else state


def _resource_text(registration: Registration) -> str:
    return render.resource_text(
        {
            "gid": registration.resource_gid,
            "resource_type": registration.resource_type,
            "name": registration.resource_name,
        }
    )


def _filters_text(filters: list[dict[str, Any]]) -> str:
    return " ".join(format_filter(f) for f in filters) or "(all events)"
