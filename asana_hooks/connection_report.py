"""What `connections list` and /status show of each connection. I/O edge (Redis reads).

A connection's shown state joins what is stored (``revoked`` after a 401, ``refreshing``)
with what its budget says now: a 429 pause in force is ``rate_limited``, a 401 flag in force
is ``revoked``. Its webhooks and watches are counted from their registrations, which name
their connection, and the batches waiting for it from its parked work
(asana_hooks.parked_work). Tokens are never read here.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import redis

from asana_hooks import keys, parked_work
from asana_hooks.connections import Connection, State
from asana_hooks.ratelimit import WINDOW_MS
from asana_hooks.registry import Registry
from asana_hooks.watches import WatchStore

LIVE_WEBHOOK_STATES = frozenset({"pending", "active", "failing", "lost"})
"""Webhooks a connection still holds at Asana (or will re-create)."""


@dataclass(frozen=True)
class Live:
    """What a connection's budget keys say now."""

    rejected: bool
    paused: bool
    used: int
    waiting: int


def shown_state(found: Connection, live: Live) -> State:
    if found.state == "revoked" or live.rejected:
        return "revoked"
    if found.state == "refreshing":
        return "refreshing"
    if live.paused:
        return "rate_limited"
    return "ok"


def live_states(connection: redis.Redis, ids: list[str]) -> dict[str, Live]:
    """Each connection's 401 flag, 429 pause, requests in the last minute and parked batches,
    read in one round trip (plus one when some have parked work): a page listing a thousand
    connections must not cost a thousand round trips."""
    since_ms = int(time.time() * 1000) - WINDOW_MS
    pipe = connection.pipeline(transaction=False)
    pipe.time()
    for connection_id in ids:
        pipe.exists(keys.api_token_rejected(connection_id))
        pipe.get(keys.api_paused_until(connection_id))
        pipe.zcount(keys.api_budget(connection_id), since_ms, "+inf")
    answers = pipe.execute()
    seconds, micros = answers[0]
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    waiting = parked_work.waiting_many(connection, ids)
    found = {}
    for index, connection_id in enumerate(ids):
        rejected, paused_until, used = answers[1 + 3 * index : 4 + 3 * index]
        found[connection_id] = Live(
            rejected=bool(rejected),
            paused=paused_until is not None and int(paused_until) > now_ms,
            used=int(used),
            waiting=waiting.get(connection_id, 0),
        )
    return found


def report(
    connection: redis.Redis, connections: list[Connection], *, per_minute: int
) -> list[dict[str, Any]]:
    """The contract's `connections list --json` objects, in ``connections``' order."""
    registrations = Registry(connection).all()
    webhooks = Counter(r.connection for r in registrations if r.state in LIVE_WEBHOOK_STATES)
    watches = Counter(w.connection for w in WatchStore(connection).all() if not w.removed)
    live = live_states(connection, [found.id for found in connections])
    return [
        found.to_json(
            state=shown_state(found, live[found.id]),
            webhooks=webhooks[found.id],
            watches=watches[found.id],
            used=live[found.id].used,
            per_minute=per_minute,
            waiting=live[found.id].waiting,
        )
        for found in connections
    ]
