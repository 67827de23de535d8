"""One API client per connection, opened on first use. I/O edge (builds HTTP clients).

Every Asana call carries its connection (DESIGN.md §6.5): a registration, a watch and a
batch name theirs, and the process asks this pool for that connection's client, whose
budget, read slots and 429 pause are that connection's alone (asana_hooks.ratelimit).
A client that met a 401 is replaced on the next ask, so a token given anew with
`connections token` is picked up without a restart.
"""

from __future__ import annotations

import threading

import redis

from asana_hooks import keys
from asana_hooks.asana_client import AsanaClient
from asana_hooks.connections import ConnectionStore
from asana_hooks.ratelimit import Lane
from asana_hooks.secretbox import SecretBox
from asana_hooks.settings import Settings


class Clients:
    """``clients.get(connection_id)``: that connection's client, built once per process."""

    def __init__(
        self,
        settings: Settings,
        connection: redis.Redis,
        *,
        lane: Lane = "fresh",
        timeout: float = 30.0,
        max_wait: float = 30.0,
    ) -> None:
        self.settings = settings
        self.lane: Lane = lane
        self._redis = connection
        self._timeout = timeout
        self._max_wait = max_wait
        box = SecretBox(settings.encryption_keys) if settings.encryption_keys else None
        self.store = ConnectionStore(connection, box, default_token=settings.asana_access_token)
        self._clients: dict[str, AsanaClient] = {}
        self._lock = threading.Lock()

    @classmethod
    def around(cls, settings: Settings, connection: redis.Redis, client: AsanaClient) -> Clients:
        """A pool that already holds ``client`` (in its lane) for its connection."""
        clients = cls(settings, connection, lane=client.budget.lane)
        clients.adopt(client)
        return clients

    def get(self, connection_id: str = keys.DEFAULT_CONNECTION) -> AsanaClient:
        """Raises UnknownConnection for an id nobody stored (or the default one without
        ASANA_ACCESS_TOKEN: SettingsError then, naming the variable)."""
        with self._lock:
            found = self._clients.get(connection_id)
            if found is not None and not found.rejected:
                return found
            if connection_id == keys.DEFAULT_CONNECTION:
                self.settings.require_token()
            client = AsanaClient(
                self.settings,
                self._redis,
                timeout=self._timeout,
                max_wait=self._max_wait,
                lane=self.lane,
                credentials=self.store.credentials(connection_id),
            )
            self._clients[connection_id] = client
            if found is not None:
                found.close()
            return client

    def adopt(self, client: AsanaClient) -> None:
        """Use this client for its connection (a caller that built one already); the caller
        keeps closing it."""
        with self._lock:
            self._clients[client.connection_id] = client

    def held_back(self, connection_id: str) -> str | None:
        """Why this connection cannot call Asana right now (a 429 pause, a 401), else None:
        callers skip its work for now instead of waiting, so it never holds up another."""
        budget = self.get(connection_id).budget
        if budget.token_rejected():
            return "revoked"
        if budget.paused_until() is not None:
            return "rate_limited"
        return None

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
