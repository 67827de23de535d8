"""A resource's Events API subscription, started before its webhook. I/O edge (Asana, Redis).

Asana's Events API returns only the events that happen after the sync token it hands out
(../shared/reference/asana-events.md: a request without ``sync`` is answered 412 with a fresh
token). A token taken once the webhook exists leaves a window in which a dropped delivery is
lost for good, so ``register`` (webhooks create, the poller's re-creation, watches) calls
``open_subscription`` before ``POST /webhooks``: the token is stored where the poller goes on
from it (``keys.sync_token``). A resource that already has a token keeps it: it is older and
covers more.

When no token can be taken (Asana refused or could not be reached), nothing is stored and
creation goes on: the poller finds the resource without a token and resyncs it from
``resync_from`` (the later of the registration's creation and the last good poll), never from
a fresh token alone. A re-registration that finds no token records that moment as
``resync_since`` itself, since the registration's ``created_at`` is about to be replaced.

Only tasks, projects and goals have an Events API stream (asana-events-api spec, ``resource``
of ``GET /events``); a team, workspace or portfolio has none (``has_event_stream``): its
webhook gets no subscription, no poll and no resync, only the health check. Its projects are
followed one by one (a watch, DESIGN.md §6.2).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Literal

import redis

from asana_hooks import keys
from asana_hooks.asana_client import AsanaClient
from asana_hooks.asana_errors import AsanaError, SyncTokenExpired
from asana_hooks.events import format_timestamp, parse_timestamp
from asana_hooks.redis_conn import optional_text

log = logging.getLogger(__name__)

SYNC_TOKEN_TTL_SECONDS = 24 * 3600
"""Asana's sync tokens never outlive 24 h; ours are dropped at the same age."""

RESYNC_MARGIN = timedelta(seconds=60)
"""A resync crawls from this long before the moment it must cover: clock skew with Asana."""

Opened = Literal["kept", "taken", "failed"]

NO_EVENT_STREAM_TYPES = frozenset({"team", "workspace", "portfolio"})
"""Resource types Asana streams no events for: never asked ``GET /events``."""


def has_event_stream(resource_type: str) -> bool:
    """Whether ``GET /events`` may be asked about a resource of this type (an unknown type,
    from a registration that predates the type being stored, is assumed to have one)."""
    return resource_type not in NO_EVENT_STREAM_TYPES


# KEYS: sync token. ARGV: token. Deletes the token only while it is still this one.
_DROP_IF_OURS = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def resync_from(
    created_at: Iterable[object], last_good_poll_at: datetime | None, *, margin: timedelta
) -> datetime | None:
    """Where a resource with no valid sync token must be crawled from: the later of its
    earliest registration's creation and its last good poll, less ``margin``. Pure."""
    created = [moment for moment in map(parse_timestamp, created_at) if moment is not None]
    known = [moment for moment in (min(created, default=None), last_good_poll_at) if moment]
    return max(known) - margin if known else None


def last_good_poll(connection: redis.Redis, resource_gid: str) -> datetime | None:
    return parse_timestamp(
        optional_text(connection.hget(keys.poll_state(resource_gid), "last_good_poll_at"))
    )


def open_subscription(
    client: AsanaClient,
    connection: redis.Redis,
    resource_gid: str,
    *,
    resync_since: datetime | None = None,
) -> tuple[Opened, str | None]:
    """Make sure the resource has a sync token; returns what happened and the token taken.

    ``resync_since``: when a token has to be taken, the gap from then on is crawled by the
    poller's next pass (a re-registration of a resource whose token was lost)."""
    if connection.exists(keys.sync_token(resource_gid)):
        return "kept", None
    try:
        page = client.events(resource_gid, None)
    except SyncTokenExpired as fresh:
        token = fresh.sync
    except AsanaError as exc:
        log.warning(
            "subscription.failed resource=%s error=%r: %s; the poller resyncs it from the "
            "webhook's creation",
            resource_gid,
            exc,
            exc,
        )
        return "failed", None
    else:
        token = page.sync  # Asana answers 412 without a token; a 200 still names the next one
    if not token:
        return "failed", None
    with connection.pipeline(transaction=True) as pipe:
        pipe.set(keys.sync_token(resource_gid), token, nx=True, ex=SYNC_TOKEN_TTL_SECONDS)
        if resync_since is not None:
            _mark_resync(pipe, connection, resource_gid, resync_since)
        stored = pipe.execute()[0]
    if not stored:
        return "kept", None
    log.info("subscription.opened resource=%s: events from now on are kept by Asana", resource_gid)
    return "taken", token


def drop_taken_token(connection: redis.Redis, resource_gid: str, token: str) -> None:
    """Undo ``open_subscription`` after a registration that failed: a token left behind would
    later feed events from before any webhook existed."""
    connection.register_script(_DROP_IF_OURS)(keys=[keys.sync_token(resource_gid)], args=[token])


def _mark_resync(
    pipe: redis.client.Pipeline, connection: redis.Redis, resource_gid: str, since: datetime
) -> None:
    state = keys.poll_state(resource_gid)
    pending = parse_timestamp(optional_text(connection.hget(state, "resync_since")))
    if pending is not None and pending <= since:
        return  # an unfinished resync already starts earlier
    pipe.hset(
        state,
        mapping={
            "resync_since": format_timestamp(since),
            "resync_reason": "re-created without a sync token",
        },
    )
