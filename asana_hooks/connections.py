"""Connections: the Asana identities one deployment acts as. I/O edge (Redis).

Asana's limits are per token (DESIGN.md §6.5): an app serving two customers needs each
customer's calls to run on that customer's token, with its own budget and its own 429 pause.
A connection is that token with a name: an id, who it is (``GET /users/me``), its kind
(``pat`` or ``oauth``) and its state. Its token(s) are stored Fernet-encrypted with the same
keys as webhook secrets (``SecretBox``; ``keys rotate`` re-encrypts both), and leave this
module only inside a ``Credentials``, whose ``repr`` never shows them.

The default connection (``keys.DEFAULT_CONNECTION``) is ``ASANA_ACCESS_TOKEN``: its token stays
in the environment and is never stored, so today's setups keep working with no command run;
only what we learn about it (its user, a revoked state) is kept in its hash.

The hash has room for OAuth (part 2): ``refresh_token`` (encrypted) and ``expires_at`` beside
``token``; ``refreshing`` is a state a refresh will set while it holds its lock.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Literal

import redis
from redis.typing import EncodableT, FieldT

from asana_hooks import keys, parked_work
from asana_hooks.errors import HooksError
from asana_hooks.redis_conn import decode_hash, text
from asana_hooks.registry import now_iso
from asana_hooks.secretbox import Secret, SecretBox

Kind = Literal["pat", "oauth"]
State = Literal["ok", "rate_limited", "refreshing", "revoked"]
STORED_STATES: tuple[State, ...] = ("ok", "refreshing", "revoked")
"""States kept in the hash; ``rate_limited`` is read from the budget's pause, never stored."""


@dataclass(frozen=True)
class OAuthGrant:
    """What the token endpoint answered; the tokens never show themselves."""

    access_token: Secret
    refresh_token: Secret | None
    expires_at: float
    lifetime: float
    user_gid: str = ""
    user_name: str = ""
    user_email: str = ""


DEFAULT_NAME = "ASANA_ACCESS_TOKEN"
"""The name the default connection shows."""


class UnknownConnection(HooksError):
    """No connection has this id (or the default one was asked for without its token)."""

    def __init__(self, connection_id: str) -> None:
        super().__init__(f"no connection {connection_id}")
        self.connection_id = connection_id


def new_connection_id() -> str:
    """Short, unguessable enough to not collide, and valid in a Redis key and a CLI argument."""
    return "c" + secrets.token_hex(5)


@dataclass(frozen=True)
class Credentials:
    """What a client needs to call Asana as one connection. The token never shows itself."""

    connection_id: str
    token: Secret
    expires_at: float | None = None
    """When an OAuth access token expires (epoch seconds); None for a personal access token."""
    lifetime: float | None = None
    """How long that token was given for (seconds): the refresh margin is a part of it."""


@dataclass(frozen=True)
class Connection:
    """One connection as stored (without its tokens)."""

    id: str
    name: str
    kind: Kind = "pat"
    user_gid: str = ""
    user_name: str = ""
    state: State = "ok"
    created_at: str = ""
    problem: str | None = None
    expires_at: str | None = None
    """When an OAuth access token expires (part 2); None for a personal access token."""

    @property
    def is_default(self) -> bool:
        return self.id == keys.DEFAULT_CONNECTION

    @classmethod
    def from_hash(cls, connection_id: str, raw: dict[str, str]) -> Connection:
        state = raw.get("state", "ok")
        return cls(
            id=connection_id,
            name=raw.get("name")
            or (DEFAULT_NAME if connection_id == keys.DEFAULT_CONNECTION else ""),
            kind="oauth" if raw.get("kind") == "oauth" else "pat",
            user_gid=raw.get("user_gid", ""),
            user_name=raw.get("user_name", ""),
            state=state if state in STORED_STATES else "ok",
            created_at=raw.get("created_at", ""),
            problem=raw.get("problem") or None,
            expires_at=raw.get("expires_at") or None,
        )

    def to_json(
        self,
        *,
        state: State,
        webhooks: int,
        watches: int,
        used: int,
        per_minute: int,
        waiting: int = 0,
    ) -> dict[str, Any]:
        """The contract's `connections list --json` object (no token, ever), and ``waiting``:
        the batches parked until Asana accepts this connection again."""
        return {
            "id": self.id,
            "name": self.name,
            "user": {"gid": self.user_gid or None, "name": self.user_name or None},
            "kind": self.kind,
            "state": state,
            "webhooks": webhooks,
            "watches": watches,
            "budget": {"used_last_minute": used, "per_minute": per_minute},
            "created_at": self.created_at or None,
            "default": self.is_default,
            "waiting": waiting,
        }


class ConnectionStore:
    """Reads and writes connections; ``box`` is needed only to touch tokens, and
    ``default_token`` (``ASANA_ACCESS_TOKEN``) makes the default connection exist."""

    def __init__(
        self,
        connection: redis.Redis,
        box: SecretBox | None = None,
        *,
        default_token: Secret | None = None,
    ) -> None:
        self._redis = connection
        self._box = box
        self._default_token = default_token

    def add(
        self, *, name: str, token: Secret, user_gid: str, user_name: str, kind: Kind = "pat"
    ) -> Connection:
        """Store a connection whose token Asana already accepted (``GET /users/me``)."""
        connection_id = new_connection_id()
        created_at = now_iso()
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(
            keys.connection(connection_id),
            mapping={
                "name": name,
                "kind": kind,
                "user_gid": user_gid,
                "user_name": user_name,
                "token": self._require_box().encrypt(token.reveal()),
                "state": "ok",
                "created_at": created_at,
            },
        )
        pipe.sadd(keys.CONNECTIONS, connection_id)
        pipe.execute()
        return Connection(connection_id, name, kind, user_gid, user_name, "ok", created_at)

    def add_oauth(self, grant: OAuthGrant, *, name: str) -> Connection:
        """Store an OAuth grant as a connection; the same Asana user connecting again gets
        their earlier OAuth connection back (new tokens, state ok), so its work resumes."""
        for known in self.all():
            if known.kind == "oauth" and known.user_gid == grant.user_gid:
                self.store_grant(known.id, grant)
                return self.get(known.id) or known
        connection_id = new_connection_id()
        created_at = now_iso()
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(
            keys.connection(connection_id),
            mapping={
                "name": name,
                "kind": "oauth",
                "user_gid": grant.user_gid,
                "user_name": grant.user_name,
                "state": "ok",
                "created_at": created_at,
                **self._grant_fields(grant),
            },
        )
        pipe.sadd(keys.CONNECTIONS, connection_id)
        pipe.execute()
        return self.get(connection_id) or Connection(connection_id, name, "oauth")

    def store_grant(self, connection_id: str, grant: OAuthGrant) -> None:
        """New OAuth tokens (a refresh, or the user connecting again): state ok, 401 flag gone."""
        pipe = self._redis.pipeline(transaction=True)
        fields = self._grant_fields(grant)
        fields["state"] = "ok"
        fields["state_at"] = now_iso()
        if grant.user_gid:
            fields["user_gid"] = grant.user_gid
            fields["user_name"] = grant.user_name
        pipe.hset(keys.connection(connection_id), mapping=fields)
        pipe.hdel(keys.connection(connection_id), "problem")
        pipe.delete(keys.api_token_rejected(connection_id))
        pipe.execute()
        parked_work.request_resume(self._redis, connection_id)

    def _grant_fields(self, grant: OAuthGrant) -> dict[FieldT, EncodableT]:
        box = self._require_box()
        fields: dict[FieldT, EncodableT] = {
            "token": box.encrypt(grant.access_token.reveal()),
            "expires_at": f"{grant.expires_at:.3f}",
            "lifetime": f"{grant.lifetime:.3f}",
        }
        if grant.refresh_token is not None:
            fields["refresh_token"] = box.encrypt(grant.refresh_token.reveal())
        return fields

    def refresh_token(self, connection_id: str) -> Secret | None:
        raw = self._redis.hget(keys.connection(connection_id), "refresh_token")
        return Secret(self._require_box().decrypt(text(raw))) if raw is not None else None

    def replace_token(
        self, connection_id: str, token: Secret, *, user_gid: str, user_name: str
    ) -> None:
        """A new token for a stored connection (a revoked one resumes): state ok again."""
        if self.get(connection_id) is None or connection_id == keys.DEFAULT_CONNECTION:
            raise UnknownConnection(connection_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(
            keys.connection(connection_id),
            mapping={
                "token": self._require_box().encrypt(token.reveal()),
                "user_gid": user_gid,
                "user_name": user_name,
                "state": "ok",
            },
        )
        pipe.hdel(keys.connection(connection_id), "problem")
        pipe.delete(keys.api_token_rejected(connection_id))
        pipe.execute()
        parked_work.request_resume(self._redis, connection_id)

    def describe_user(self, connection_id: str, *, user_gid: str, user_name: str) -> None:
        """Remember who a connection is (the default one learns it on first use)."""
        self._redis.hset(
            keys.connection(connection_id), mapping={"user_gid": user_gid, "user_name": user_name}
        )

    def get(self, connection_id: str) -> Connection | None:
        if connection_id == keys.DEFAULT_CONNECTION:
            if self._default_token is None:
                return None
            raw = decode_hash(self._redis.hgetall(keys.connection(connection_id)))
            return Connection.from_hash(connection_id, raw)
        raw = decode_hash(self._redis.hgetall(keys.connection(connection_id)))
        return Connection.from_hash(connection_id, raw) if raw else None

    def all(self) -> list[Connection]:
        """The default connection first (when ASANA_ACCESS_TOKEN is set), then by creation."""
        stored = sorted(self._ids())
        pipe = self._redis.pipeline(transaction=False)
        for connection_id in stored:
            pipe.hgetall(keys.connection(connection_id))
        found = [
            Connection.from_hash(connection_id, decode_hash(raw))
            for connection_id, raw in zip(stored, pipe.execute(), strict=True)
            if raw
        ]
        found.sort(key=lambda c: (c.created_at, c.id))
        default = self.get(keys.DEFAULT_CONNECTION)
        return ([default] if default else []) + found

    def credentials(self, connection_id: str) -> Credentials:
        """The token to call Asana with as this connection."""
        if connection_id == keys.DEFAULT_CONNECTION:
            if self._default_token is None:
                raise UnknownConnection(connection_id)
            return Credentials(connection_id, self._default_token)
        raw, expires_at, lifetime = self._redis.hmget(
            keys.connection(connection_id), ["token", "expires_at", "lifetime"]
        )
        if raw is None:
            raise UnknownConnection(connection_id)
        plain = self._require_box().decrypt(text(raw))
        return Credentials(
            connection_id,
            Secret(plain),
            expires_at=float(text(expires_at)) if expires_at is not None else None,
            lifetime=float(text(lifetime)) if lifetime is not None else None,
        )

    def set_state(self, connection_id: str, state: State, *, problem: str | None = None) -> None:
        """``revoked`` after a 401, ``ok`` once a call succeeds again (which resumes the work
        parked for it)."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(keys.connection(connection_id), mapping={"state": state, "state_at": now_iso()})
        if problem:
            pipe.hset(keys.connection(connection_id), "problem", problem[:300])
        else:
            pipe.hdel(keys.connection(connection_id), "problem")
        pipe.execute()
        if state == "ok":
            parked_work.request_resume(self._redis, connection_id)

    def state(self, connection_id: str) -> State:
        raw = self._redis.hget(keys.connection(connection_id), "state")
        value = text(raw) if raw is not None else "ok"
        return value if value in STORED_STATES else "ok"

    def remove(self, connection_id: str) -> None:
        """Forget a stored connection and its tokens (its webhooks are the caller's business)."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(
            keys.connection(connection_id),
            keys.api_budget(connection_id),
            keys.api_reads(connection_id),
            keys.api_fresh_waiting(connection_id),
            keys.api_paused_until(connection_id),
            keys.api_token_rejected(connection_id),
            keys.user_workspaces(connection_id),
        )
        pipe.srem(keys.CONNECTIONS, connection_id)
        pipe.execute()

    def rotate_secrets(self) -> int:
        """Re-encrypt every stored token under the first key (`keys rotate`); returns how many."""
        box = self._require_box()
        rotated = 0
        for connection_id in sorted(self._ids()):
            for name in ("token", "refresh_token"):
                raw = self._redis.hget(keys.connection(connection_id), name)
                if raw is not None:
                    value = text(raw)
                    self._redis.hset(keys.connection(connection_id), name, box.rotate(value))
                    rotated += 1
        return rotated

    def _ids(self) -> list[str]:
        return [text(k) for k in self._redis.smembers(keys.CONNECTIONS)]

    def _require_box(self) -> SecretBox:
        if self._box is None:
            raise RuntimeError("this ConnectionStore was built without encryption keys")
        return self._box
