"""`asana-hooks webhooks retarget [--to URL] [--all | GID...]`. I/O edge (Redis, Asana, HTTP).

Moves webhooks to targets under a new public URL with no gap (asana_hooks.retarget): without
``--to``, the current public URL (a running tunnel's, else HOOKS_PUBLIC_URL). The receiver
must answer there first, since Asana's handshake for each new webhook goes through it. Exit 0
when every chosen webhook moved; 4 when Asana stopped the run (a bad token, Asana away); 1 with
one line per webhook that did not move (the old one still delivers: run it again).
"""

from __future__ import annotations

from collections.abc import Iterator

import click

from asana_hooks.asana_errors import AsanaError, AsanaUnavailable, BadToken, BudgetExhausted
from asana_hooks.cli import render
from asana_hooks.cli.asana_messages import asana_failure
from asana_hooks.cli.context import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    JSON_OPTION,
    Failure,
    asana_client,
    find_registration,
    open_registry,
    settings,
)
from asana_hooks.cli.create import check_public_url
from asana_hooks.public_url import current_public_url
from asana_hooks.registry import Registration
from asana_hooks.retarget import Outcome, Retargeter, needs_move
from asana_hooks.watches import WatchStore

STOPPING_ERRORS = (BadToken, AsanaUnavailable, BudgetExhausted)
"""Asana refusals that would refuse every other webhook too: the run stops at the first."""


@click.command("retarget")
@click.argument("gids", nargs=-1)
@click.option("--to", "to_url", metavar="URL", help="New public URL (default: the current one).")
@click.option("--all", "every", is_flag=True, help="Every webhook whose target is not current.")
@JSON_OPTION
def retarget_command(gids: tuple[str, ...], to_url: str | None, every: bool, as_json: bool) -> None:
    """Move webhooks to targets under a new public URL: new webhook first, then the old one
    deleted, so none is missed."""
    if every == bool(gids):
        raise Failure("name the webhooks to move (GID...) or pass --all, not both", EXIT_CONFIG)
    current = settings()
    current.require_token()
    current.require_encryption_keys()
    with open_registry(secrets=True) as (connection, registry):
        public_url = (to_url or current_public_url(connection, current.public_url) or "").rstrip(
            "/"
        )
        if not public_url.startswith(("http://", "https://")):
            raise Failure(
                "no public URL to move to: pass --to https://..., set HOOKS_PUBLIC_URL, or run "
                "`asana-hooks dev --tunnel`",
                EXIT_CONFIG,
            )
        check_public_url(current, public_url)
        chosen = registry.all() if every else [find_registration(registry, g) for g in gids]
        if gids:
            _refuse_unmovable(chosen, public_url)
        with asana_client(connection) as client:
            mover = Retargeter(client, registry, WatchStore(connection), public_url=public_url)
            outcomes = _run(mover.move_each(chosen))
    _report(outcomes, public_url, as_json=as_json)


def _run(outcomes: Iterator[Outcome]) -> list[Outcome]:
    done: list[Outcome] = []
    for outcome in outcomes:
        if isinstance(outcome.error, STOPPING_ERRORS):
            raise asana_failure(outcome.error, doing="moving webhooks") from None
        done.append(outcome)
    return done


def _refuse_unmovable(chosen: list[Registration], public_url: str) -> None:
    for registration in chosen:
        if registration.state not in ("pending", "active", "failing"):
            raise Failure(
                f"webhook {registration.webhook_gid or registration.target_id} is "
                f"{registration.state}: only pending, active or failing webhooks move",
                EXIT_FAILURE,
            )
        if not needs_move(registration, public_url):
            click.echo(
                f"webhook {registration.webhook_gid} already delivers under {public_url}", err=True
            )


def _report(outcomes: list[Outcome], public_url: str, *, as_json: bool) -> None:
    failed = [o for o in outcomes if o.error is not None]
    if as_json:
        render.print_json(
            [
                {
                    "from": o.old.to_json(public_url=public_url),
                    "to": o.moved.new.to_json(public_url=public_url) if o.moved else None,
                    "error": None if o.error is None else str(o.error),
                }
                for o in outcomes
            ]
        )
    else:
        for outcome in outcomes:
            if outcome.moved is not None:
                click.echo(
                    f"moved webhook {outcome.old.webhook_gid} -> {outcome.moved.new.webhook_gid} "
                    f"({outcome.moved.new.target_url})"
                )
        if not outcomes:
            click.echo(f"nothing to move: every webhook delivers under {public_url}")
    for outcome in failed:
        click.echo(
            f"error: webhook {outcome.old.webhook_gid} did not move ({_reason(outcome)}); it "
            "still delivers where it did: run retarget again",
            err=True,
        )
    if failed:
        raise SystemExit(EXIT_FAILURE)


def _reason(outcome: Outcome) -> str:
    if isinstance(outcome.error, AsanaError):
        return asana_failure(outcome.error, doing="creating the new webhook").message
    return str(outcome.error)
