"""Webhook registrations in Redis: pending handshakes, encrypted secrets, state, counters.

I/O edge over Redis (synchronous client). The receiver, the CLI, the workers and the poller
all read and write registrations through this one module. Secrets are stored encrypted
(``SecretBox``) and leave this module only as plaintext for signature checks.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import redis

from asana_hooks import keys, lua
from asana_hooks.events import format_timestamp
from asana_hooks.public_url import target_is_current
from asana_hooks.redis_conn import decode_hash, text
from asana_hooks.secretbox import SecretBox, secrets_equal

State = Literal["pending", "active", "failing", "lost", "retired", "deleted"]
STATES: tuple[State, ...] = ("pending", "active", "failing", "lost", "retired", "deleted")
PENDING_TTL_SECONDS = 120
COUNTERS = (
    "deliveries",
    "events",
    "duplicates",
    "heartbeats",
    "batches",
    "changes",
    "late",
    "quarantined",
)
ASANA_STATUS_FIELDS = (
    "active",
    "last_success_at",
    "last_failure_at",
    "last_failure_content",
    "delivery_retry_count",
    "next_attempt_after",
    "failure_deletion_timestamp",
)

_ACCEPT_HANDSHAKE = lua.load(__file__, "accept_handshake")


def now_iso() -> str:
    return format_timestamp(datetime.now(UTC))


def new_target_id() -> str:
    """Unguessable, URL-safe, and valid in a Redis key and a URL path."""
    return secrets.token_hex(12)


@dataclass(frozen=True)
class Registration:
    """One webhook target as we know it."""

    target_id: str
    resource_gid: str
    resource_type: str = ""
    resource_name: str = ""
    target_url: str = ""
    filters: list[dict[str, Any]] = field(default_factory=list)
    webhook_gid: str | None = None
    state: State = "pending"
    created_at: str | None = None
    has_secret: bool = False
    last_delivery_at: str | None = None
    last_heartbeat_at: str | None = None
    counters: dict[str, int] = field(default_factory=dict)
    asana: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None
    watch: str | None = None
    """The watch this webhook belongs to (asana_hooks.watches), if any."""
    moving_to: str | None = None
    """The target this webhook is being moved to (asana_hooks.retarget), once a move began."""
    connection: str = keys.DEFAULT_CONNECTION
    """The connection that registered it and polls and rehydrates for it (asana_hooks.connections);
    registrations from before connections existed are the default connection's."""

    @classmethod
    def from_hash(cls, target_id: str, raw: dict[str, str]) -> Registration:
        state = raw.get("state", "pending")
        return cls(
            target_id=target_id,
            resource_gid=raw.get("resource_gid", ""),
            resource_type=raw.get("resource_type", ""),
            resource_name=raw.get("resource_name", ""),
            target_url=raw.get("target_url", ""),
            filters=json.loads(raw.get("filters") or "[]"),
            webhook_gid=raw.get("webhook_gid") or None,
            state=_state(state),
            created_at=raw.get("created_at") or None,
            has_secret="secret" in raw,
            last_delivery_at=raw.get("last_delivery_at") or None,
            last_heartbeat_at=raw.get("last_heartbeat_at") or None,
            counters={name: int(raw.get(name, 0)) for name in COUNTERS},
            asana=json.loads(raw.get("asana") or "{}"),
            problem=raw.get("problem") or None,
            watch=raw.get("watch") or None,
            moving_to=raw.get("moving_to") or None,
            connection=raw.get("connection") or keys.DEFAULT_CONNECTION,
        )

    def to_json(self, *, public_url: str | None = None) -> dict[str, Any]:
        """The contract's `webhooks list --json` object (with ``watch`` when it has one).

        ``target_current`` (DESIGN.md §6.8): whether the target is under ``public_url``, the
        current public URL (asana_hooks.public_url); null when none is known."""
        found = {
            "gid": self.webhook_gid,
            "resource": {
                "gid": self.resource_gid,
                "resource_type": self.resource_type,
                "name": self.resource_name,
            },
            "target": self.target_url,
            "target_id": self.target_id,
            "filters": self.filters,
            "state": self.state,
            "created_at": self.created_at,
            "target_current": target_is_current(self.target_url, public_url),
        }
        if self.moving_to:
            found["moving_to"] = self.moving_to
        if self.watch:
            found["watch"] = self.watch
        found["connection"] = self.connection
        return found

    def to_status_json(self, *, public_url: str | None = None) -> dict[str, Any]:
        """The contract's `webhooks status --json` object: ours plus Asana's delivery fields."""
        status = self.to_json(public_url=public_url)
        for name in ASANA_STATUS_FIELDS:
            status[name] = self.asana.get(name)
        status["last_delivery_at"] = self.last_delivery_at
        status["last_heartbeat_at"] = self.last_heartbeat_at
        status.update(self.counters)
        status["problem"] = self.problem
        return status


class Registry:
    """Reads and writes registrations. ``box`` is needed only to touch secrets."""

    def __init__(self, connection: redis.Redis, box: SecretBox | None = None) -> None:
        self.connection = connection
        self._redis = connection
        self._box = box
        self._accept = connection.register_script(_ACCEPT_HANDSHAKE)

    # Registration lifecycle -------------------------------------------------------------

    def begin(
        self,
        *,
        target_id: str,
        resource_gid: str,
        target_url: str,
        filters: list[dict[str, Any]],
        resource_type: str = "",
        resource_name: str = "",
        replace_secret: bool = False,
        connection_id: str = keys.DEFAULT_CONNECTION,
    ) -> None:
        """Open the handshake window for a registration we are about to ask Asana for, as
        ``connection_id``."""
        pipe = self._redis.pipeline()
        pipe.hset(
            keys.target(target_id),
            mapping={
                "resource_gid": resource_gid,
                "target_url": target_url,
                "filters": json.dumps(filters),
                "connection": connection_id,
            },
        )
        if resource_type or resource_name:  # a re-creation keeps what Asana told us before
            pipe.hset(
                keys.target(target_id),
                mapping={"resource_type": resource_type, "resource_name": resource_name},
            )
        pipe.hsetnx(keys.target(target_id), "created_at", now_iso())
        pipe.hsetnx(keys.target(target_id), "state", "pending")
        pipe.sadd(keys.TARGETS, target_id)
        pipe.set(
            keys.pending(target_id),
            "replace" if replace_secret else "new",
            ex=PENDING_TTL_SECONDS,
        )
        pipe.execute()

    def accept_handshake(self, target_id: str, secret: str) -> bool:
        """Store the secret if a registration is pending for this target; else change nothing."""
        box = self._require_box()
        accepted = self._accept(
            keys=[keys.pending(target_id), keys.target(target_id)],
            args=[box.encrypt(secret), now_iso()],
        )
        return bool(accepted)

    def confirm(self, target_id: str, *, webhook_gid: str, asana_secret: str) -> bool:
        """Compare Asana's 201 secret with the one the handshake stored; mark active if equal."""
        stored = self.secret(target_id)
        if stored is None or not secrets_equal(stored, asana_secret):
            return False
        pipe = self._redis.pipeline()
        pipe.hset(
            keys.target(target_id),
            mapping={"webhook_gid": webhook_gid, "state": "active", "confirmed_at": now_iso()},
        )
        pipe.hdel(keys.target(target_id), "problem")
        pipe.hset(keys.WEBHOOK_TARGETS, webhook_gid, target_id)
        pipe.execute()
        return True

    def forget(self, target_id: str) -> None:
        """Remove a registration entirely (a failed or refused create)."""
        registration = self.get(target_id)
        pipe = self._redis.pipeline()
        pipe.delete(keys.target(target_id), keys.pending(target_id))
        pipe.srem(keys.TARGETS, target_id)
        if registration and registration.webhook_gid:
            pipe.hdel(keys.WEBHOOK_TARGETS, registration.webhook_gid)
        pipe.execute()

    def set_state(self, target_id: str, state: State, *, problem: str | None = None) -> None:
        pipe = self._redis.pipeline()
        pipe.hset(keys.target(target_id), mapping={"state": state, "state_at": now_iso()})
        if problem:
            pipe.hset(keys.target(target_id), "problem", problem)
        else:
            pipe.hdel(keys.target(target_id), "problem")
        pipe.execute()

    def join_watch(self, target_id: str, watch_id: str) -> None:
        """Mark a target as one of a watch's (before its webhook exists, so that its first
        entries already name the watch)."""
        self._redis.hset(keys.target(target_id), "watch", watch_id)

    def start_move(self, target_id: str, new_target_id: str) -> str:
        """Record that ``target_id`` moves to ``new_target_id``, unless a move was recorded
        before (an interrupted run): returns the target the move goes to, either way."""
        self._redis.hsetnx(keys.target(target_id), "moving_to", new_target_id)
        return text(self._redis.hget(keys.target(target_id), "moving_to") or new_target_id)

    def abandon_move(self, target_id: str, new_target_id: str) -> None:
        """The new target never got a webhook: forget it, so the next run starts afresh."""
        self.forget(new_target_id)
        self._redis.hdel(keys.target(target_id), "moving_to")

    def finish_move(self, target_id: str, new_target_id: str) -> None:
        """The new target's webhook is live: this one is done (answered 410 from now on)."""
        pipe = self._redis.pipeline()
        pipe.hset(
            keys.target(target_id),
            mapping={"state": "deleted", "state_at": now_iso(), "moved_to": new_target_id},
        )
        pipe.hdel(keys.target(target_id), "problem", "moving_to")
        pipe.execute()

    def replace_webhook(self, target_id: str, *, old_gid: str | None, new_gid: str) -> None:
        pipe = self._redis.pipeline()
        if old_gid:
            pipe.hdel(keys.WEBHOOK_TARGETS, old_gid)
        pipe.hset(keys.WEBHOOK_TARGETS, new_gid, target_id)
        pipe.hset(keys.target(target_id), "webhook_gid", new_gid)
        pipe.execute()

    def describe_resource(
        self, target_id: str, *, resource_type: str, resource_name: str, created_at: str
    ) -> None:
        pipe = self._redis.pipeline()
        pipe.hset(
            keys.target(target_id),
            mapping={"resource_type": resource_type, "resource_name": resource_name},
        )
        if created_at:
            pipe.hset(keys.target(target_id), "created_at", created_at)
        pipe.execute()

    def store_asana_status(self, target_id: str, webhook: dict[str, Any]) -> None:
        status = {name: webhook.get(name) for name in ASANA_STATUS_FIELDS}
        self._redis.hset(
            keys.target(target_id),
            mapping={"asana": json.dumps(status), "asana_checked_at": now_iso()},
        )

    # Reads --------------------------------------------------------------------------------

    def get(self, target_id: str) -> Registration | None:
        raw = self._redis.hgetall(keys.target(target_id))
        if not raw:
            return None
        return Registration.from_hash(target_id, decode_hash(raw))

    def by_webhook(self, webhook_gid: str) -> Registration | None:
        target_id = self._redis.hget(keys.WEBHOOK_TARGETS, webhook_gid)
        if target_id is None:
            return None
        return self.get(text(target_id))

    def hand_over(self, from_connection: str, to_connection: str) -> int:
        """Every registration of one connection becomes another's (`connections remove
        --keep-webhooks`); returns how many."""
        moved = [r.target_id for r in self.all() if r.connection == from_connection]
        pipe = self._redis.pipeline()
        for target_id in moved:
            pipe.hset(keys.target(target_id), "connection", to_connection)
        pipe.execute()
        return len(moved)

    def connections_of(self, target_ids: list[str]) -> dict[str, str]:
        """Target id -> its connection id, for these targets (one round trip)."""
        pipe = self._redis.pipeline(transaction=False)
        for target_id in target_ids:
            pipe.hget(keys.target(target_id), "connection")
        found = zip(target_ids, pipe.execute(), strict=True)
        return {t: text(c) if c else keys.DEFAULT_CONNECTION for t, c in found}

    def all(self) -> list[Registration]:
        target_ids = sorted(text(t) for t in self._redis.smembers(keys.TARGETS))
        pipe = self._redis.pipeline()
        for target_id in target_ids:
            pipe.hgetall(keys.target(target_id))
        found = []
        for target_id, raw in zip(target_ids, pipe.execute(), strict=True):
            if raw:
                found.append(Registration.from_hash(target_id, decode_hash(raw)))
        return sorted(found, key=lambda r: (r.created_at or "", r.target_id))

    def secret(self, target_id: str) -> str | None:
        token = self._redis.hget(keys.target(target_id), "secret")
        if token is None:
            return None
        return self._require_box().decrypt(text(token))

    def rotate_secrets(self) -> int:
        """Re-encrypt every stored secret under the first key; returns how many."""
        box = self._require_box()
        rotated = 0
        for target_id in sorted(text(t) for t in self._redis.smembers(keys.TARGETS)):
            token = self._redis.hget(keys.target(target_id), "secret")
            if token is not None:
                self._redis.hset(keys.target(target_id), "secret", box.rotate(text(token)))
                rotated += 1
        return rotated

    def _require_box(self) -> SecretBox:
        if self._box is None:
            raise RuntimeError("this Registry was built without encryption keys")
        return self._box


def _state(value: str) -> State:
    for state in STATES:
        if state == value:
            return state
    return "pending"
