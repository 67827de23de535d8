"""The consumer groups on the changes stream, seen and moved from outside. I/O edge (Redis).

What `changes groups`, `changes replay`, `changes dead`, ``/status`` and ``/metrics`` read or do
to a group, and how a ``Consumer`` creates its own. A group is Redis's own consumer group on
``asana-hooks:changes``; beside it each group may have a dead-letter stream
(``keys.dead_letters``) and a retry stream (``keys.retry_stream``) that only its consumers read.

Behind retention: a group falls behind when the stream was trimmed (HOOKS_STREAM_MAXLEN,
HOOKS_STREAM_RETENTION_HOURS) past entries it had not read yet. Redis counts the entries
each group has read (``entries-read``) and the entries ever added; fewer read than trimmed
means some were trimmed unread. When Redis lost that count, the group's last id before the
first retained entry says the same.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from asana_hooks import keys, lua, stream_ids
from asana_hooks.events import format_timestamp
from asana_hooks.redis_conn import text

DEAD_LETTERS_KEPT = 10_000
"""Dead letters kept per group (MAXLEN ~): far more than an outage of a handler makes."""

_COUNT_THROUGH = lua.load(__file__, "count_through")


class UnknownGroup(LookupError):
    """No consumer group of that name reads the changes stream."""

    def __init__(self, group: str) -> None:
        super().__init__(group)
        self.group = group


@dataclass(frozen=True)
class GroupStatus:
    """One group as `changes groups --json` prints it."""

    group: str
    consumers: int
    lag: int | None
    """Entries not yet handed to any consumer (None: Redis cannot tell, after a trim)."""
    pending: int
    """Entries handed out and not yet acknowledged."""
    dead: int
    retry: int
    """Dead letters handed back by `changes dead --replay`, not yet handled."""
    behind_retention: bool
    last_delivered_id: str
    last_delivered_at: str | None
    first_retained_id: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def warning(self) -> str | None:
        """The line an operator reads when changes were trimmed before this group read them."""
        if not self.behind_retention:
            return None
        return (
            f"group {self.group} fell behind the retention: changes after "
            f"{self.last_delivered_at or 'its start'} were trimmed before it read them "
            "(raise HOOKS_STREAM_RETENTION_HOURS or HOOKS_STREAM_MAXLEN, or run its consumers)"
        )


def _stream_facts(connection: redis.Redis) -> tuple[str | None, int]:
    """The first retained entry's id, and how many entries were ever trimmed away."""
    try:
        info = connection.xinfo_stream(keys.CHANGES_STREAM)
    except redis.ResponseError:
        return None, 0
    first = info.get("first-entry")
    first_id = text(first[0]) if first else None
    added = int(info.get("entries-added") or 0)
    return first_id, max(0, added - int(info.get("length") or 0))


def _group_rows(connection: redis.Redis) -> list[dict[str, Any]]:
    try:
        rows = connection.xinfo_groups(keys.CHANGES_STREAM)
    except redis.ResponseError:
        return []
    return [{text(k): v for k, v in row.items()} for row in rows]


def statuses(connection: redis.Redis) -> list[GroupStatus]:
    """Every group reading the changes stream, by name."""
    rows = _group_rows(connection)
    if not rows:
        return []
    first_id, trimmed = _stream_facts(connection)
    with connection.pipeline(transaction=False) as pipe:
        for row in rows:
            pipe.xlen(keys.dead_letters(text(row["name"])))
            pipe.xlen(keys.retry_stream(text(row["name"])))
        lengths = pipe.execute()
    found = []
    for index, row in enumerate(rows):
        last = text(row["last-delivered-id"])
        read = row.get("entries-read")
        if read is not None:
            behind = int(read) < trimmed
        else:
            behind = trimmed > 0 and first_id is not None and stream_ids.is_before(last, first_id)
        found.append(
            GroupStatus(
                group=text(row["name"]),
                consumers=int(row["consumers"]),
                lag=None if row.get("lag") is None else int(row["lag"]),
                pending=int(row["pending"]),
                dead=int(lengths[2 * index]),
                retry=int(lengths[2 * index + 1]),
                behind_retention=behind,
                last_delivered_id=last,
                last_delivered_at=None if last == "0-0" else stream_ids.id_timestamp(last),
                first_retained_id=first_id,
            )
        )
    return sorted(found, key=lambda status: status.group)


def status(connection: redis.Redis, group: str) -> GroupStatus:
    for found in statuses(connection):
        if found.group == group:
            return found
    raise UnknownGroup(group)


def _entries_through(connection: redis.Redis, entry_id: str) -> int:
    """Entries ever added up to ``entry_id``: Redis's ENTRIESREAD for a group placed there."""
    _first, trimmed = _stream_facts(connection)
    counted = connection.register_script(_COUNT_THROUGH)(
        keys=[keys.CHANGES_STREAM], args=[entry_id]
    )
    return trimmed + int(counted)


def create(connection: redis.Redis, group: str, start: str) -> bool:
    """Create ``group`` at ``start`` ("$": new changes only; "0": all retained; or an id);
    False when it existed (it keeps its position). Its retry stream's group comes with it."""
    for key in (keys.CHANGES_STREAM, keys.retry_stream(group)):
        if key == keys.CHANGES_STREAM:
            position, entries_read = _placement(connection, start)
        else:
            position, entries_read = "0", None
        try:
            connection.xgroup_create(key, group, position, mkstream=True, entries_read=entries_read)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            if key == keys.CHANGES_STREAM:
                _ensure_retry_group(connection, group)
                return False
    return True


def _ensure_retry_group(connection: redis.Redis, group: str) -> None:
    try:
        connection.xgroup_create(keys.retry_stream(group), group, "0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _placement(connection: redis.Redis, start: str) -> tuple[str, int | None]:
    """Where a new group starts, with the count Redis needs to keep computing its lag."""
    if start == "$":
        return "$", None
    first_id, trimmed = _stream_facts(connection)
    if start == "0":
        # Just before the first retained entry: a group asking for "all retained" has not
        # fallen behind the retention by being created after a trim.
        if first_id is None:
            return "0", None
        before = _previous(first_id)
        return before, trimmed
    return start, _entries_through(connection, start)


def _previous(entry_id: str) -> str:
    ms, seq = stream_ids.split(entry_id)
    return f"{ms}-{seq - 1}" if seq > 0 else stream_ids.last_id_before(ms)


def move(connection: redis.Redis, group: str, position: str) -> None:
    """XGROUP SETID: the group's consumers next receive every entry after ``position``."""
    status(connection, group)
    connection.xgroup_setid(
        keys.CHANGES_STREAM,
        group,
        position,
        entries_read=_entries_through(connection, position),
    )


def retained_since(connection: redis.Redis, position: str, limit: int = 1) -> int:
    """Whether (how many, up to ``limit``) retained entries come after ``position``."""
    return len(connection.xrange(keys.CHANGES_STREAM, f"({position}", "+", count=limit) or [])


@dataclass(frozen=True)
class DeadLetter:
    """One entry of ``keys.dead_letters``: the contract's `changes dead --json` object."""

    id: str
    change: Any
    error: str
    deliveries: int
    dead_at: str
    dead_letter_id: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def dead_letters(connection: redis.Redis, group: str) -> list[DeadLetter]:
    """The group's dead letters, oldest first."""
    found = []
    for raw_id, raw in connection.xrange(keys.dead_letters(group)) or []:
        fields = {text(k): text(v) for k, v in (raw or {}).items()}
        try:
            change = json.loads(fields.get("change", "null"))
        except ValueError:
            change = fields.get("change")
        found.append(
            DeadLetter(
                id=fields.get("id", ""),
                change=change,
                error=fields.get("error", ""),
                deliveries=int(fields.get("deliveries") or 0),
                dead_at=fields.get("dead_at", ""),
                dead_letter_id=text(raw_id or ""),
            )
        )
    return found


def replay_dead(connection: redis.Redis, group: str) -> int:
    """Hand every dead letter of ``group`` back to that group alone: each goes to the group's
    retry stream (no other group reads it) and leaves the dead letters in one transaction."""
    _ensure_retry_group(connection, group)
    moved = 0
    for letter in dead_letters(connection, group):
        with connection.pipeline(transaction=True) as pipe:
            pipe.xadd(
                keys.retry_stream(group),
                {"id": letter.id, "change": json.dumps(letter.change, separators=(",", ":"))},
            )
            pipe.xdel(keys.dead_letters(group), letter.dead_letter_id)
            pipe.execute()
        moved += 1
    return moved


def now_iso() -> str:
    """``dead_at`` of a dead letter."""
    moment = datetime.fromtimestamp(time.time(), UTC)
    return format_timestamp(moment)
