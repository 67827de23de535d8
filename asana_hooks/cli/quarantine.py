"""`asana-hooks quarantine list|replay`: signed events we could not read. I/O edge (Redis).

The receiver answers 200 to every validly signed delivery, and the job keeps aside each event
it cannot parse (``asana_hooks.quarantine``). Once a newer version understands them, replay
puts them through the pipeline like any delivery: dedupe makes a replay that already got
through change nothing.
"""

from __future__ import annotations

import json

import click

from asana_hooks import quarantine as kept
from asana_hooks.cli import render
from asana_hooks.cli.context import (
    EXIT_CONFIG,
    JSON_OPTION,
    Failure,
    redis_connection,
    report_missing,
)

EVENT_WIDTH = 60
"""Characters of the event shown in the table (--json has all of it)."""


@click.group()
def quarantine() -> None:
    """List and replay events Asana sent that this version could not read."""


@quarantine.command("list")
@JSON_OPTION
def list_command(as_json: bool) -> None:
    """Every kept event, oldest first, with why it was kept aside."""
    with redis_connection() as connection:
        entries = [entry.to_json() for entry in kept.entries(connection)]
    if as_json:
        render.print_json(entries)
        return
    render.table(
        ("ID", "WEBHOOK", "RECEIVED", "REASON", "EVENT"),
        [
            (
                entry["id"],
                render.dash(entry["webhook_gid"] or entry["target_id"]),
                render.ago(entry["received_at"]),
                entry["reason"],
                _short(entry["event"]),
            )
            for entry in entries
        ],
        title="quarantine",
    )


@quarantine.command("replay")
@click.argument("ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every kept event.")
@JSON_OPTION
def replay_command(ids: tuple[str, ...], replay_all: bool, as_json: bool) -> None:
    """Put kept events this version can read through the pipeline (ID..., or --all)."""
    if bool(ids) == replay_all:
        raise Failure("name the events to replay, or pass --all (not both)", EXIT_CONFIG)
    with redis_connection() as connection:
        report = kept.replay(connection, None if replay_all else list(ids))
    if as_json:
        render.print_json(
            {
                "replayed": report.replayed,
                "still_unread": report.still_unread,
                "missing": report.missing,
            }
        )
    else:
        click.echo(f"replayed {len(report.replayed)} kept events")
        for entry_id, reason in report.still_unread.items():
            click.echo(f"kept: {entry_id} is still not understood ({reason})", err=True)
    report_missing(report.missing, "quarantine", any_done=bool(report.replayed))


def _short(event: object) -> str:
    text = json.dumps(event, separators=(",", ":"), default=str)
    return text if len(text) <= EVENT_WIDTH else text[: EVENT_WIDTH - 1] + "…"
