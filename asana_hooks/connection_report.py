"""What `connections list` and /status show of each connection. I/O edge (Redis reads).

A connection's shown state joins what is stored (``revoked`` after a 401, ``refreshing``)
with what its budget says now: a 429 pause in force is ``rate_limited``, a 401 flag in force
is ``revoked``. Its webhooks and watches are counted from their registrations, which name
their connection, and the batches waiting for it from its parked work
(asana_hooks.parked_work). Tokens are never read here.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import redis

from asana_hooks import parked_work
from asana_hooks.connections import Connection, State
from asana_hooks.ratelimit import Budget
from asana_hooks.registry import Registry
from asana_hooks.watches import WatchStore

LIVE_WEBHOOK_STATES = frozenset({"pending", "active", "failing", "lost"})
"""Webhooks a connection still holds at Asana (or will re-create)."""


def shown_state(found: Connection, budget: Budget) -> State:
    if found.state == "revoked" or budget.token_rejected():
        return "revoked"
    if found.state == "refreshing":
        return "refreshing"
    if budget.paused_until() is not None:
        return "rate_limited"
    return "ok"


def report(
    connection: redis.Redis, connections: list[Connection], *, per_minute: int
) -> list[dict[str, Any]]:
    """The contract's `connections list --json` objects, in ``connections``' order."""
    registrations = Registry(connection).all()
    webhooks = Counter(r.connection for r in registrations if r.state in LIVE_WEBHOOK_STATES)
    watches = Counter(w.connection for w in WatchStore(connection).all() if not w.removed)
    shown = []
    for found in connections:
        budget = Budget(connection, per_minute, connection_id=found.id)
        shown.append(
            found.to_json(
                state=shown_state(found, budget),
                webhooks=webhooks[found.id],
                watches=watches[found.id],
                used=budget.used(),
                per_minute=per_minute,
                waiting=parked_work.waiting(connection, found.id),
            )
        )
    return shown
