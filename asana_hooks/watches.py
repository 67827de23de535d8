"""Watches in Redis: a scope, its filters, and the project webhooks it holds. I/O edge (Redis).

A watch (DESIGN.md §6.2) is a hash (``keys.watch``) plus a hash project gid -> target id
(``keys.watch_projects``). The project webhooks themselves are ordinary registrations
(asana_hooks.registry) carrying ``watch``; the scope webhook is one too, named by the
watch's ``scope_target``. A project's target id is written here *before* its webhook is asked
for, so an interrupted run leaves a target we know: running again reaches the same target,
and Asana's "Duplicated webhook" is adopted instead of becoming a second webhook.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import redis

from asana_hooks import keys
from asana_hooks.redis_conn import decode_hash, optional_text, text
from asana_hooks.registry import now_iso

LOCK_TTL_MS = 600_000
"""A reconciliation holds its watch this long at most (a crashed holder lets go by then)."""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def new_watch_id() -> str:
    return "w" + secrets.token_hex(6)


@dataclass(frozen=True)
class Scope:
    """The team, workspace or portfolio a watch follows."""

    gid: str
    resource_type: str
    name: str = ""
    workspace_gid: str = ""

    def to_json(self) -> dict[str, str]:
        return {"gid": self.gid, "resource_type": self.resource_type, "name": self.name}


@dataclass(frozen=True)
class Watch:
    id: str
    scope: Scope
    filters: list[dict[str, Any]] = field(default_factory=list)
    include_archived: bool = False
    created_at: str = ""
    removed: bool = False
    scope_target: str | None = None
    last_reconciled_at: str | None = None
    problem: str | None = None
    public_url: str = ""
    """The receiver's public URL when the watch was added: its webhooks' targets."""
    connection: str = keys.DEFAULT_CONNECTION
    """The connection that registers, polls and rehydrates for the watch's webhooks."""

    @classmethod
    def from_hash(cls, watch_id: str, raw: dict[str, str]) -> Watch:
        return cls(
            id=watch_id,
            scope=Scope(
                gid=raw.get("scope_gid", ""),
                resource_type=raw.get("scope_type", ""),
                name=raw.get("scope_name", ""),
                workspace_gid=raw.get("workspace_gid", ""),
            ),
            filters=json.loads(raw.get("filters") or "[]"),
            include_archived=raw.get("include_archived") == "1",
            created_at=raw.get("created_at", ""),
            removed=raw.get("removed") == "1",
            scope_target=raw.get("scope_target") or None,
            last_reconciled_at=raw.get("last_reconciled_at") or None,
            problem=raw.get("problem") or None,
            public_url=raw.get("public_url", ""),
            connection=raw.get("connection") or keys.DEFAULT_CONNECTION,
        )

    def to_json(self, *, state: str, projects: int) -> dict[str, Any]:
        """The contract's `watch list --json` object."""
        return {
            "id": self.id,
            "scope": self.scope.to_json(),
            "filters": self.filters,
            "include_archived": self.include_archived,
            "state": state,
            "projects": projects,
            "created_at": self.created_at,
            "workspace": self.scope.workspace_gid,
            "last_reconciled_at": self.last_reconciled_at,
            "problem": self.problem,
            "connection": self.connection,
        }


class WatchStore:
    def __init__(self, connection: redis.Redis) -> None:
        self._redis = connection
        self._release = connection.register_script(_RELEASE)

    def create(
        self,
        scope: Scope,
        *,
        filters: list[dict[str, Any]],
        include_archived: bool,
        public_url: str,
        connection_id: str = keys.DEFAULT_CONNECTION,
    ) -> Watch:
        watch_id = new_watch_id()
        created_at = now_iso()
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(
            keys.watch(watch_id),
            mapping={
                "scope_gid": scope.gid,
                "scope_type": scope.resource_type,
                "scope_name": scope.name,
                "workspace_gid": scope.workspace_gid,
                "filters": json.dumps(filters),
                "include_archived": "1" if include_archived else "0",
                "created_at": created_at,
                "public_url": public_url,
                "connection": connection_id,
            },
        )
        pipe.sadd(keys.WATCHES, watch_id)
        pipe.execute()
        return Watch(
            id=watch_id,
            scope=scope,
            filters=filters,
            include_archived=include_archived,
            created_at=created_at,
            public_url=public_url,
            connection=connection_id,
        )

    def hand_over(self, from_connection: str, to_connection: str) -> None:
        """Every watch of one connection becomes another's (`connections remove
        --keep-webhooks`)."""
        for watch in self.all():
            if watch.connection == from_connection:
                self._redis.hset(keys.watch(watch.id), "connection", to_connection)

    def get(self, watch_id: str) -> Watch | None:
        raw = self._redis.hgetall(keys.watch(watch_id))
        return Watch.from_hash(watch_id, decode_hash(raw)) if raw else None

    def all(self) -> list[Watch]:
        ids = sorted(text(i) for i in self._redis.smembers(keys.WATCHES))
        found = [w for w in map(self.get, ids) if w is not None]
        return sorted(found, key=lambda w: (w.created_at, w.id))

    def of_scope(self, scope_gid: str) -> Watch | None:
        """The watch on this scope that is not being removed, if any."""
        for watch in self.all():
            if watch.scope.gid == scope_gid and not watch.removed:
                return watch
        return None

    def projects(self, watch_id: str) -> dict[str, str]:
        """Project gid -> target id of every project webhook the watch holds."""
        return decode_hash(self._redis.hgetall(keys.watch_projects(watch_id)))

    def hold(self, watch_id: str, project_gid: str, target_id: str) -> None:
        self._redis.hset(keys.watch_projects(watch_id), project_gid, target_id)

    def release(self, watch_id: str, project_gid: str) -> None:
        self._redis.hdel(keys.watch_projects(watch_id), project_gid)

    def set_scope_target(self, watch_id: str, target_id: str) -> None:
        self._redis.hset(keys.watch(watch_id), "scope_target", target_id)

    def set_public_url(self, watch_id: str, public_url: str) -> None:
        """Every webhook of the watch was moved there (asana_hooks.retarget)."""
        self._redis.hset(keys.watch(watch_id), "public_url", public_url)

    def reconciled(self, watch_id: str, *, problem: str | None = None) -> None:
        pipe = self._redis.pipeline()
        pipe.hset(keys.watch(watch_id), "last_reconciled_at", now_iso())
        if problem:
            pipe.hset(keys.watch(watch_id), "problem", problem[:300])
        else:
            pipe.hdel(keys.watch(watch_id), "problem")
        pipe.execute()

    def mark_removed(self, watch_id: str) -> None:
        self._redis.hset(keys.watch(watch_id), "removed", "1")

    def forget(self, watch_id: str) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(keys.watch(watch_id), keys.watch_projects(watch_id), keys.watch_lock(watch_id))
        pipe.srem(keys.WATCHES, watch_id)
        pipe.execute()

    # One reconciler at a time ----------------------------------------------------------

    def lock(self, watch_id: str, owner: str) -> bool:
        return bool(self._redis.set(keys.watch_lock(watch_id), owner, nx=True, px=LOCK_TTL_MS))

    def unlock(self, watch_id: str, owner: str) -> None:
        self._release(keys=[keys.watch_lock(watch_id)], args=[owner])

    def ask_again(self, watch_id: str) -> None:
        """The holder of the lock reconciles once more before it lets go."""
        self._redis.set(keys.watch_again(watch_id), "1", px=LOCK_TTL_MS)

    def take_again(self, watch_id: str) -> bool:
        return bool(self._redis.getdel(keys.watch_again(watch_id)))

    def holder(self, watch_id: str) -> str | None:
        return optional_text(self._redis.get(keys.watch_lock(watch_id)))
