"""Small helpers shared by the fake: gids, timestamps, secrets. No I/O."""

from __future__ import annotations

import itertools
import random
import secrets
import threading
from datetime import UTC, datetime, timedelta

__all__ = ["GidSource", "iso", "iso_now", "new_secret", "new_sync_token", "parse_iso"]


class GidSource:
    """Hands out 16-digit numeric gids, unique within one fake instance."""

    def __init__(self) -> None:
        start = 1_200_000_000_000_000 + random.randrange(0, 10**14)
        self._counter = itertools.count(start, random.randrange(7, 31))
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            return str(next(self._counter))


def iso(moment: datetime) -> str:
    """ISO 8601 with milliseconds and a trailing Z, as Asana writes timestamps."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_now(offset_seconds: float = 0.0) -> str:
    return iso(datetime.now(UTC) + timedelta(seconds=offset_seconds))


def parse_iso(text: str) -> datetime:
    """Parse an ISO 8601 timestamp or date; naive values are taken as UTC."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def new_secret() -> str:
    """A webhook secret: 64 hex characters."""
    return secrets.token_hex(32)


def new_sync_token() -> str:
    return secrets.token_hex(16)
