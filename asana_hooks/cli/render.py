"""How the operator commands print: aligned rich tables for people, JSON for scripts. I/O: stdout.

Tables go to stdout through one rich Console that never wraps a gid or a URL and drops
colour when stdout is not a terminal; ``--json`` output is plain ``json.dumps`` so scripts
get exactly the contract's shapes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from asana_hooks.events import parse_timestamp
from asana_hooks.health import describe_duration

HEALTH_STYLES = {
    "ok": "green",
    "pending": "yellow",
    "failing": "bold red",
    "silent": "bold red",
    "lost": "bold red",
    "retired": "dim",
    "deleted": "dim",
}


def console() -> Console:
    return Console(soft_wrap=True, highlight=False, width=200)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False))


def table(
    columns: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None
) -> None:
    """An aligned table; an empty listing prints a one-line note instead."""
    if not rows:
        click.echo(f"no {title or 'rows'}")
        return
    grid = Table(title=title, title_justify="left", box=None, header_style="bold", pad_edge=False)
    for column in columns:
        grid.add_column(column, overflow="fold", no_wrap=True)
    for row in rows:
        grid.add_row(*row)
    console().print(grid)


def styled(text: str, health: str) -> str:
    style = HEALTH_STYLES.get(health, "")
    return f"[{style}]{text}[/]" if style else text


def ago(value: object, now: datetime | None = None) -> str:
    """'3 min ago' for a timestamp, '-' for none."""
    moment = parse_timestamp(value)
    if moment is None:
        return "-"
    now = now or datetime.now(UTC)
    delta = (now - moment).total_seconds()
    if delta < 0:
        return f"in {describe_duration(delta)}"
    return f"{describe_duration(delta)} ago"


def dash(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def resource_text(resource: dict[str, Any]) -> str:
    """``project 1200 Launch``: a resource as `webhooks list` and `status` show it."""
    kind = resource.get("resource_type") or "?"
    name = f" {resource['name']}" if resource.get("name") else ""
    return f"{kind} {resource.get('gid')}{name}"
