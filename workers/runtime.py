"""The clients a worker process keeps between jobs. I/O edge (opens Redis and HTTP clients).

RQ imports the job functions by name, so they cannot take our objects as arguments; they
ask ``current()`` instead. ``workers.rq_worker`` installs the process's Settings with
``install``; a process that did not (RQ's own ``rq worker``) reads them from its environment
once. The Asana clients (one per connection, asana_hooks.asana_clients) are opened on first
use, so jobs that never call Asana need no token.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

import redis
from rq import Queue

from asana_hooks import keys
from asana_hooks.asana_client import AsanaClient
from asana_hooks.asana_clients import Clients
from asana_hooks.queueing import make_queue
from asana_hooks.redis_conn import connect
from asana_hooks.series import SeriesWriter
from asana_hooks.settings import Settings
from workers.batching import Batcher
from workers.dedupe import Deduper
from workers.emit import Emitter

REDIS_SOCKET_TIMEOUT_SECONDS = 10.0
"""Longer than connect()'s default: a job's Lua scripts may take a moment on a big delivery."""

REHYDRATION_BUDGET_WAIT_SECONDS = 5.0
"""How long a flush waits in the worker for room in a connection's budget before it defers
those batches: a connection over its budget never keeps the workers from the others'."""


@dataclass
class Runtime:
    """One process's settings and clients."""

    settings: Settings
    redis: redis.Redis
    queue: Queue
    deduper: Deduper
    batcher: Batcher
    emitter: Emitter
    series: SeriesWriter
    _clients: Clients | None = field(default=None, repr=False)
    _rehydration_clients: Clients | None = field(default=None, repr=False)

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        connection = connect(settings.redis_url, socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS)
        return cls(
            settings=settings,
            redis=connection,
            queue=make_queue(connection),
            deduper=Deduper(connection),
            batcher=Batcher(
                connection,
                debounce_seconds=settings.debounce_seconds,
                max_delay_seconds=settings.max_delay_seconds,
            ),
            emitter=Emitter(
                connection,
                stream_maxlen=settings.stream_maxlen,
                retention_hours=settings.stream_retention_hours,
            ),
            series=SeriesWriter(connection),
        )

    @property
    def clients(self) -> Clients:
        """One client per connection (fresh lane)."""
        if self._clients is None:
            self._clients = Clients(self.settings, self.redis, max_wait=30.0)
        return self._clients

    @property
    def rehydration_clients(self) -> Clients:
        """The flush jobs' pool (fresh lane): a fetch waits at most
        REHYDRATION_BUDGET_WAIT_SECONDS for room in its connection's budget, then the flush
        defers its batches to when the budget expects room instead of holding the worker."""
        if self._rehydration_clients is None:
            self._rehydration_clients = Clients(
                self.settings, self.redis, max_wait=REHYDRATION_BUDGET_WAIT_SECONDS
            )
        return self._rehydration_clients

    @property
    def client(self) -> AsanaClient:
        """The default connection's client (``ASANA_ACCESS_TOKEN``)."""
        return self.clients.get(keys.DEFAULT_CONNECTION)

    def close(self) -> None:
        for pool in (self._clients, self._rehydration_clients):
            if pool is not None:
                pool.close()
        self._clients = self._rehydration_clients = None
        self.redis.close()


_lock = threading.Lock()
_current: Runtime | None = None


def install(settings: Settings) -> Runtime:
    """Use these settings for every job this process runs."""
    global _current
    with _lock:
        if _current is not None:
            _current.close()
        _current = Runtime.build(settings)
        return _current


def current() -> Runtime:
    global _current
    with _lock:
        if _current is None:
            _current = Runtime.build(Settings.from_environ(os.environ))
        return _current


def reset() -> None:
    """Forget the installed runtime (tests switch settings between cases)."""
    global _current
    with _lock:
        if _current is not None:
            _current.close()
        _current = None
