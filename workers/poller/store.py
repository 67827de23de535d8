"""Per-resource poller state in Redis: the lock, the sync token, progress. I/O edge (Redis).

Several poll processes may run. ``PollLock`` (SET NX PX; renewed and released by its owner
only, through Lua) makes one of them poll a resource at a time; a crashed poller's lock
expires after its TTL. Every write of a sync token or of progress goes through ``commit``,
which checks in the same Lua call that we still hold the lock and renews it: a poller that
stalled past its TTL and lost the lock can never move the token back under its successor.

Keys (see ``asana_hooks.keys``): ``poll_lock(gid)`` (TTL), ``sync_token(gid)`` (TTL 24 h, as
Asana's tokens), ``poll_state(gid)`` (hash, bounded by webhooks; removed with the last one).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import redis

from asana_hooks import keys, lua
from asana_hooks.errors import HooksError
from asana_hooks.events import parse_timestamp
from asana_hooks.redis_conn import decode_hash, optional_text
from asana_hooks.subscription import SYNC_TOKEN_TTL_SECONDS

DEFAULT_LOCK_TTL_MS = 120_000
"""Long enough for one Events API page or crawl page within the client's waits (30 s + 30 s),
short enough that a crashed poller's resources are picked up again within two minutes."""

_RENEW = lua.load(__file__, "poll_lock_renew")
_RELEASE = lua.load(__file__, "poll_lock_release")
_COMMIT = lua.load(__file__, "poll_commit")


class LockLost(HooksError):
    """Our poll lock expired or was taken over; stop touching this resource at once."""

    def __init__(self, resource_gid: str, owner: str) -> None:
        super().__init__(f"poll lock on {resource_gid} is no longer held by {owner}")
        self.resource_gid = resource_gid
        self.owner = owner


def new_owner_id() -> str:
    """Names one poller process in logs and in the lock: host, pid, and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class PollRecord:
    """What ``poll_state(gid)`` holds, parsed."""

    last_attempt_at: datetime | None = None
    last_good_poll_at: datetime | None = None
    resync_since: datetime | None = None
    resync_reason: str | None = None

    @classmethod
    def from_hash(cls, raw: Mapping[str, str]) -> PollRecord:
        return cls(
            last_attempt_at=parse_timestamp(raw.get("last_attempt_at")),
            last_good_poll_at=parse_timestamp(raw.get("last_good_poll_at")),
            resync_since=parse_timestamp(raw.get("resync_since")),
            resync_reason=raw.get("resync_reason") or None,
        )


class PollLock:
    """Who polls one resource now. Only its owner renews or releases it."""

    def __init__(
        self,
        connection: redis.Redis,
        resource_gid: str,
        *,
        owner: str,
        ttl_ms: int = DEFAULT_LOCK_TTL_MS,
    ) -> None:
        self.resource_gid = resource_gid
        self.owner = owner
        self.ttl_ms = ttl_ms
        self.key = keys.poll_lock(resource_gid)
        self._redis = connection
        self._renew = connection.register_script(_RENEW)
        self._release = connection.register_script(_RELEASE)

    def acquire(self) -> bool:
        return bool(self._redis.set(self.key, self.owner, nx=True, px=self.ttl_ms))

    def renew(self) -> None:
        """Extend our hold; raise LockLost when someone else holds it (or nobody does)."""
        if not self._renew(keys=[self.key], args=[self.owner, self.ttl_ms]):
            raise LockLost(self.resource_gid, self.owner)

    def release(self) -> bool:
        return bool(self._release(keys=[self.key], args=[self.owner]))

    def holder(self) -> str | None:
        value = self._redis.get(self.key)
        return optional_text(value)


class PollStore:
    """The sync token and progress of each resource, written only under its lock."""

    def __init__(self, connection: redis.Redis) -> None:
        self._redis = connection
        self._commit = connection.register_script(_COMMIT)

    def token(self, resource_gid: str) -> str | None:
        value = self._redis.get(keys.sync_token(resource_gid))
        return optional_text(value)

    def record(self, resource_gid: str) -> PollRecord:
        raw = self._redis.hgetall(keys.poll_state(resource_gid))
        return PollRecord.from_hash(decode_hash(raw))

    def raw(self, resource_gid: str) -> dict[str, str]:
        raw = self._redis.hgetall(keys.poll_state(resource_gid))
        return decode_hash(raw)

    def commit(
        self,
        lock: PollLock,
        *,
        token: str | None = None,
        fields: Mapping[str, str | int] | None = None,
        clear: Sequence[str] = (),
    ) -> None:
        """Store a token and/or progress atomically, only while ``lock`` is ours (renews it)."""
        pairs: list[str | int] = []
        for name, value in (fields or {}).items():
            pairs.extend((name, value))
        done = self._commit(
            keys=[lock.key, keys.sync_token(lock.resource_gid), keys.poll_state(lock.resource_gid)],
            args=[
                lock.owner,
                lock.ttl_ms,
                token or "",
                SYNC_TOKEN_TTL_SECONDS,
                len(pairs) // 2,
                *pairs,
                *clear,
            ],
        )
        if not done:
            raise LockLost(lock.resource_gid, lock.owner)

    def add_events(self, resource_gid: str, count: int) -> None:
        """Count events fed into the pipeline (a counter: safe without the lock)."""
        self._redis.hincrby(keys.poll_state(resource_gid), "events", count)

    def forget(self, resource_gid: str) -> None:
        """No webhook polls this resource any more: drop its token and progress."""
        self._redis.delete(keys.sync_token(resource_gid), keys.poll_state(resource_gid))
