"""`asana-hooks changes tail|groups|replay|dead`: read the stream, see and move its consumers.
I/O edge (Redis).

``tail`` reads the stream directly (no group, so it moves nothing); the rest act on the
consumer groups that ``asana_hooks.consumer.Consumer`` creates (``asana_hooks.consumer_groups``).
TIME is when an entry was written: its stream id is that millisecond.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import click
import redis

from asana_hooks import consumer_groups, keys, stream_ids
from asana_hooks.cli import render
from asana_hooks.cli.context import EXIT_CONFIG, JSON_OPTION, Failure, redis_connection
from asana_hooks.redis_conn import text

PAGE = 500
FOLLOW_BLOCK_MS = 1000
GROUP_OPTION = click.option("--group", required=True, help="The consumer group.")


@click.group()
def changes() -> None:
    """Read the changes stream and manage the consumer groups that read it."""


@changes.command("tail")
@click.option("--follow", "-f", is_flag=True, help="Keep printing changes as they come.")
@JSON_OPTION
@click.option("--since", metavar="TIME|ID", help="From this time (ISO 8601 or Unix) or entry id.")
@click.option("--resource", "resource_gid", metavar="GID", help="Only this resource (or parent).")
@click.option("--watch", "watch_id", metavar="ID", help="Only changes a watch brought.")
@click.option("--lines", "-n", default=10, show_default=True, help="Without --since: the last N.")
def tail_command(
    follow: bool,
    as_json: bool,
    since: str | None,
    resource_gid: str | None,
    watch_id: str | None,
    lines: int,
) -> None:
    """Print changes, one line each (one JSON object per line with --json, "id" added)."""
    start = _since(since) if since is not None else None
    with redis_connection() as connection:
        entries = _history(connection, start, lines)
        last = start or "0-0"
        for entry_id, change in entries:
            last = entry_id
            _print(entry_id, change, as_json, resource_gid, watch_id)
        if start is None and not entries:
            last = _newest(connection)
        while follow:
            for entry_id, change in _after(connection, last):
                last = entry_id
                _print(entry_id, change, as_json, resource_gid, watch_id)


@changes.command("groups")
@JSON_OPTION
def groups_command(as_json: bool) -> None:
    """Each consumer group: consumers, lag, pending, dead letters, and whether it fell behind."""
    with redis_connection() as connection:
        found = consumer_groups.statuses(connection)
    if as_json:
        render.print_json([status.to_json() for status in found])
        return
    render.table(
        ("GROUP", "CONSUMERS", "LAG", "PENDING", "DEAD", "RETRY", "READ UP TO", "NOTE"),
        [
            (
                status.group,
                str(status.consumers),
                "?" if status.lag is None else str(status.lag),
                str(status.pending),
                render.styled(str(status.dead), "failing" if status.dead else ""),
                str(status.retry),
                render.dash(status.last_delivered_at),
                render.styled("behind the retention: changes were trimmed unread", "failing")
                if status.behind_retention
                else "",
            )
            for status in found
        ],
        title="consumer groups",
    )
    for status in found:
        if status.warning:
            click.echo(f"warning: {status.warning}", err=True)


@changes.command("replay")
@GROUP_OPTION
@click.option("--since", required=True, metavar="TIME", help="ISO 8601 or Unix time.")
def replay_command(group: str, since: str) -> None:
    """Move GROUP back to TIME: its consumers receive every change since then again."""
    position = _since(since)
    with redis_connection() as connection:
        _known(connection, group)
        consumer_groups.move(connection, group, position)
        moved = consumer_groups.status(connection, group)
    click.echo(
        f"group {group} moved to {stream_ids.id_timestamp(position)}: its consumers "
        "receive every change since then again"
    )
    if moved.warning and moved.first_retained_id:
        click.echo(
            f"warning: the oldest change kept is from "
            f"{stream_ids.id_timestamp(moved.first_retained_id)}; older ones were trimmed "
            "(HOOKS_STREAM_RETENTION_HOURS, HOOKS_STREAM_MAXLEN)",
            err=True,
        )


@changes.command("dead")
@GROUP_OPTION
@click.option("--replay", is_flag=True, help="Hand the dead letters back to GROUP (only).")
@JSON_OPTION
def dead_command(group: str, replay: bool, as_json: bool) -> None:
    """The changes GROUP's handler gave up on, with the error; --replay puts them back."""
    with redis_connection() as connection:
        _known(connection, group)
        if replay:
            moved = consumer_groups.replay_dead(connection, group)
            if as_json:
                render.print_json({"replayed": moved})
            else:
                click.echo(f"handed {moved} dead letters back to group {group}")
            return
        letters = consumer_groups.dead_letters(connection, group)
    if as_json:
        render.print_json(
            [
                {k: v for k, v in letter.to_json().items() if k != "dead_letter_id"}
                for letter in letters
            ]
        )
        return
    render.table(
        ("ID", "DEAD", "DELIVERIES", "RESOURCE", "ERROR"),
        [
            (
                letter.id,
                render.ago(letter.dead_at),
                str(letter.deliveries),
                _resource(letter.change),
                letter.error,
            )
            for letter in letters
        ],
        title=f"dead letters of {group}",
    )


# Helpers ------------------------------------------------------------------------------------


def _since(value: str) -> str:
    try:
        return stream_ids.since_id(value, now=datetime.now(UTC))
    except stream_ids.BadSince as exc:
        raise Failure(f"--since {exc}", EXIT_CONFIG) from None


def _known(connection: redis.Redis, group: str) -> None:
    try:
        consumer_groups.status(connection, group)
    except consumer_groups.UnknownGroup:
        raise Failure(
            f"no consumer group {group!r} reads the changes: `asana-hooks changes groups` "
            "lists them (a Consumer creates its group when it first runs)",
            EXIT_CONFIG,
        ) from None


def _decode(raw: Any) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for entry_id, fields in raw or []:
        payload = fields.get(b"change") or fields.get("change") or b"null"
        try:
            change = json.loads(payload)
        except ValueError:
            change = None
        found.append((text(entry_id), change if isinstance(change, dict) else {}))
    return found


def _history(
    connection: redis.Redis, start: str | None, lines: int
) -> list[tuple[str, dict[str, Any]]]:
    if start is None:
        return list(reversed(_decode(connection.xrevrange(keys.CHANGES_STREAM, count=lines))))
    found: list[tuple[str, dict[str, Any]]] = []
    cursor = start
    while True:
        page = _decode(connection.xrange(keys.CHANGES_STREAM, f"({cursor}", "+", count=PAGE))
        found += page
        if len(page) < PAGE:
            return found
        cursor = page[-1][0]


def _after(connection: redis.Redis, last: str) -> Iterator[tuple[str, dict[str, Any]]]:
    streams: dict[Any, Any] = {keys.CHANGES_STREAM: last}
    answer: Any = connection.xread(streams, count=PAGE, block=FOLLOW_BLOCK_MS)
    for _stream, entries in answer or []:
        yield from _decode(entries)


def _newest(connection: redis.Redis) -> str:
    newest: Any = connection.xrevrange(keys.CHANGES_STREAM, count=1)
    return text(newest[0][0]) if newest else "0-0"


def _print(
    entry_id: str,
    change: dict[str, Any],
    as_json: bool,
    resource_gid: str | None,
    watch_id: str | None,
) -> None:
    if resource_gid is not None and resource_gid not in _gids(change):
        return
    if watch_id is not None and str(change.get("watch")) != watch_id:
        return
    if as_json:
        click.echo(json.dumps({**change, "id": entry_id}, separators=(",", ":")))
    else:
        click.echo(line(entry_id, change))


def _gids(change: dict[str, Any]) -> set[str]:
    found = set()
    for name in ("resource", "parent"):
        ref = change.get(name)
        if isinstance(ref, dict) and ref.get("gid"):
            found.add(str(ref["gid"]))
    return found


def _resource(change: Any) -> str:
    resource = change.get("resource") if isinstance(change, dict) else None
    if not isinstance(resource, dict):
        return "-"
    return f"{resource.get('resource_type') or '?'} {resource.get('gid')}"


def line(entry_id: str, change: dict[str, Any]) -> str:
    """``2026-12-04 10:00:00  task 123 "Write docs"  changed: name, notes  via webhook``."""
    at = stream_ids.id_time(entry_id).strftime("%Y-%m-%d %H:%M:%S")
    data = change.get("data")
    name = data.get("name") if isinstance(data, dict) else None
    what = ", ".join(str(action) for action in change.get("actions") or []) or "changed"
    fields = change.get("fields") or []
    if fields:
        what += ": " + ", ".join(str(field) for field in fields)
    parts = [at, _resource(change)]
    if name:
        parts.append(json.dumps(str(name), ensure_ascii=False))
    parts.append(what)
    status = change.get("status")
    if status and status != "ok":
        parts.append(f"[{status}]")
    parts.append("via " + "+".join(str(source) for source in change.get("sources") or ["?"]))
    return "  ".join(parts)
