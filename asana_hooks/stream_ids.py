"""Stream entry ids and the times they stand for. Pure, no I/O.

Redis gives every entry of ``asana-hooks:changes`` an id ``<ms>-<seq>``: the millisecond Redis
wrote it, then a counter. So "the changes since 10:00" is "the entries after the id of
10:00", which is what `changes tail --since`, `changes replay --since`, the Consumer's
``start=`` and the retention by age (``HOOKS_STREAM_RETENTION_HOURS``) all use.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from asana_hooks.errors import HooksError
from asana_hooks.events import format_timestamp, parse_timestamp

_ID = re.compile(r"^(\d{1,20})-(\d{1,20})$")
_UNIX = re.compile(r"^\d{1,12}(\.\d+)?$")
MAX_SEQ = 18446744073709551615
"""The largest sequence number of an id: ``<ms-1>-MAX_SEQ`` is the last id before ``ms``."""


class BadSince(HooksError, ValueError):
    """A TIME or entry id that does not parse, or lies in the future."""

    def __init__(self, value: str, problem: str) -> None:
        super().__init__(f"{value!r}: {problem}")
        self.value = value
        self.problem = problem


def split(entry_id: str) -> tuple[int, int]:
    """``(ms, seq)`` of an entry id; ``"5"`` is ``(5, 0)``. Raises ValueError on anything else."""
    match = _ID.match(entry_id)
    if match:
        return int(match.group(1)), int(match.group(2))
    if entry_id.isdigit():
        return int(entry_id), 0
    raise ValueError(f"not a stream entry id: {entry_id!r}")


def is_before(first: str, second: str) -> bool:
    """Whether entry id ``first`` comes before ``second`` (ids compare as number pairs)."""
    return split(first) < split(second)


def id_time(entry_id: str) -> datetime:
    """When the entry was written."""
    return datetime.fromtimestamp(split(entry_id)[0] / 1000, UTC)


def id_timestamp(entry_id: str) -> str:
    """``id_time`` as ``2026-12-04T10:00:00.000Z``."""
    return format_timestamp(id_time(entry_id))


def last_id_before(ms: int) -> str:
    """The greatest id written before millisecond ``ms``: setting a group there delivers
    every entry from ``ms`` on."""
    return "0-0" if ms <= 0 else f"{ms - 1}-{MAX_SEQ}"


def since_ms(value: str, *, now: datetime) -> int:
    """The millisecond a TIME names: ``2026-12-04T10:00:00Z`` (any ISO 8601; no zone is UTC)
    or a Unix time in seconds. Not in the future: nothing was written then."""
    text = value.strip()
    if _UNIX.match(text):
        ms = int(float(text) * 1000)
    else:
        moment = parse_timestamp(text) if "T" in text or "-" in text else None
        if moment is None:
            raise BadSince(
                value, "is not a time: give 2026-12-04T10:00:00Z or a Unix time in seconds"
            )
        ms = int(moment.timestamp() * 1000)
    if ms > now.timestamp() * 1000:
        raise BadSince(value, "is in the future: no change was written then yet")
    return ms


def since_id(value: str, *, now: datetime) -> str:
    """The last id before what ``--since`` names (TIME, or an entry id: from that entry on)."""
    text = value.strip()
    if _ID.match(text):
        ms, seq = split(text)
        if ms > now.timestamp() * 1000:
            raise BadSince(value, "is in the future: no change was written then yet")
        return f"{ms}-{seq - 1}" if seq > 0 else last_id_before(ms)
    return last_id_before(since_ms(text, now=now))


def retention_min_id(now_ms: int, hours: float) -> str:
    """Entries older than this id are past HOOKS_STREAM_RETENTION_HOURS."""
    return f"{max(0, now_ms - int(hours * 3_600_000))}-0"


def group_start(start: str | float | datetime) -> str:
    """Where a new group starts: "$", "0", an entry id, or the last id before a time."""
    if isinstance(start, datetime):
        return last_id_before(int(start.timestamp() * 1000))
    if isinstance(start, int | float):
        return last_id_before(int(start * 1000))
    if start in ("$", "0"):
        return start
    return since_id(start, now=datetime.now(UTC))
