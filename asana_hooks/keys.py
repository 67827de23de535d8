"""Every Redis key and queue name this project writes, in one place. No I/O.

Each key either has a TTL or a cap, or is bounded by the number of registered webhooks or
of resources with an open batch; the comment beside each says which.
"""

from __future__ import annotations

PREFIX = "asana-hooks:"

QUEUE = "asana-hooks"
"""The one RQ queue; every worker process listens to it alone (crash-safe BLMOVE dequeue)."""

PROCESS_DELIVERY_JOB = "workers.jobs.process_delivery"
"""Dotted name the receiver and the poller enqueue by, so neither imports workers/."""

CHANGES_STREAM = PREFIX + "changes"
"""The output: one entry per change (capped with MAXLEN ~ HOOKS_STREAM_MAXLEN)."""

TARGETS = PREFIX + "targets"
"""Set of every target_id we registered (bounded by webhooks)."""

WEBHOOK_TARGETS = PREFIX + "webhook-targets"
"""Hash webhook gid -> target_id (bounded by webhooks)."""


def target(target_id: str) -> str:
    """Hash: the registration of one target (secret encrypted, webhook gid, state, counters)."""
    return f"{PREFIX}target:{target_id}"


def pending(target_id: str) -> str:
    """String with a short TTL: a registration we started and whose handshake may come."""
    return f"{PREFIX}pending:{target_id}"


def delivery_seen(target_id: str, digest: str) -> str:
    """Earlier layout, read only: a delivery already taken, holding the job id (48 h TTL).
    Still read by the dedupe scripts so deliveries taken before an upgrade stay done; no
    longer written (workers.window), gone 48 h after the upgrade."""
    return f"{PREFIX}delivery:{target_id}:{digest}"


def delivery_claim(target_id: str, digest: str) -> str:
    """String with a 5 min TTL: the job taking this delivery now (its id)."""
    return f"{PREFIX}delivery-claim:{target_id}:{digest}"


def delivery_marks(bucket: int, shard: int) -> str:
    """String of 12-byte records (expires 26 h after its bucket ends): deliveries taken in one
    12.5 h bucket, one of 1024 shards by digest (workers.window)."""
    return f"{PREFIX}seen-deliveries:{bucket}:{shard:03x}"


DEDUPE_LAYOUT_SINCE = PREFIX + "dedupe-layout-since"
"""String, one key: when the first worker of the bucketed dedupe layout claimed (epoch s);
for 48 h after it the earlier layout's keys are read too (workers.dedupe)."""


def event_claim(fingerprint: str) -> str:
    """String with a 5 min TTL: an event being processed right now (the job id)."""
    return f"{PREFIX}event-claim:{fingerprint}"


def event_done(fingerprint: str) -> str:
    """Earlier layout, read only: an event already processed (48 h TTL). Still read so events
    done before an upgrade stay done; no longer written, gone 48 h after the upgrade."""
    return f"{PREFIX}event-done:{fingerprint}"


def event_marks(bucket: int, shard: int) -> str:
    """String of 8-byte records (expires 26 h after its bucket ends): events processed in one
    12.5 h bucket, one of 4096 shards by fingerprint (workers.window)."""
    return f"{PREFIX}seen-events:{bucket}:{shard:03x}"


def batch(resource_gid: str) -> str:
    """Hash: the open batch of one resource (deleted when flushed)."""
    return f"{PREFIX}batch:{resource_gid}"


def batch_events(resource_gid: str) -> str:
    """List: the events of the open batch of one resource (deleted when flushed)."""
    return f"{PREFIX}batch-events:{resource_gid}"


OPEN_BATCHES = PREFIX + "open-batches"
"""Sorted set resource_gid -> due time (bounded by resources with an open batch)."""


def batch_seq(resource_gid: str) -> str:
    """Counter numbering the batches of one resource (TTL 48 h, renewed at each batch)."""
    return f"{PREFIX}batch-seq:{resource_gid}"


def closed_batch(batch_id: str) -> str:
    """Hash: a batch taken by a flush job and not yet emitted (TTL 7 days, deleted at emit)."""
    return f"{PREFIX}batch-closed:{batch_id}"


def batch_emitted(batch_id: str) -> str:
    """Earlier layout, read only: the entry id of an emitted batch (48 h TTL). Still read so a
    batch emitted before an upgrade is not emitted again; gone 48 h after the upgrade."""
    return f"{PREFIX}batch-emitted:{batch_id}"


def flush_emitted(job_id: str) -> str:
    """Hash batch id -> stream entry id (or "redundant"): the batches one flush job emitted,
    so that job's retry, or a second copy of it, never emits them again (TTL 6 h, at most
    FLUSH_MAX_BATCHES fields plus its retries' owned batches: a listpack)."""
    return f"{PREFIX}flush-emitted:{job_id}"


def batch_flushing(resource_gid: str) -> str:
    """String with a 5 min TTL: the batch of this resource being flushed now (keeps order)."""
    return f"{PREFIX}batch-flushing:{resource_gid}"


def resource_version(resource_gid: str) -> str:
    """Hash with a 48 h TTL: the newest ``modified_at`` an entry carried for this resource,
    and whether a resync's entry carried it (so a resync never repeats what was emitted)."""
    return f"{PREFIX}version:{resource_gid}"


def flush_tick(second: int) -> str:
    """String with a 10 min TTL: a flush job is scheduled for this second (one per second)."""
    return f"{PREFIX}flush-tick:{second}"


def flush_owned(job_id: str) -> str:
    """Set: the batches one flush job closed, for its retry (TTL 7 days, deleted when done)."""
    return f"{PREFIX}flush-owned:{job_id}"


def sync_token(resource_gid: str) -> str:
    """String: the Events API sync token of one resource (TTL 24 h, as Asana's)."""
    return f"{PREFIX}sync:{resource_gid}"


def poll_lock(resource_gid: str) -> str:
    """String with a TTL: which poller polls this resource now."""
    return f"{PREFIX}poll-lock:{resource_gid}"


def poll_state(resource_gid: str) -> str:
    """Hash: last good poll, resync progress (bounded by webhooks)."""
    return f"{PREFIX}poll:{resource_gid}"


API_BUDGET = PREFIX + "api:budget"
"""Sorted set of request times within the last minute (trimmed on every call, TTL 60 s)."""

API_READS = PREFIX + "api:reads"
"""Sorted set of in-flight reads with their expiry (trimmed on every call)."""

API_FRESH_WAITING = PREFIX + "api:fresh-waiting"
"""Sorted set of fresh-lane requests refused for room, with when they stop counting (their
next try plus a grace; trimmed on every background call, TTL as long as the latest): while
it holds anyone, background requests yield (ratelimit)."""

USER_WORKSPACES = PREFIX + "user-workspaces"
"""String with a 1 h TTL: JSON list of the gids of the workspaces the token's user belongs
to (``GET /users/me``), which the poller lists webhooks in (workers.poller.listing)."""

API_PAUSED_UNTIL = PREFIX + "api:paused-until"
"""String with a TTL: no call to Asana before this time (set by a 429's Retry-After)."""

API_TOKEN_REJECTED = PREFIX + "api:token-rejected"
"""String with a 10 min TTL: Asana answered 401; stop calling until the token is fixed."""

DEFAULT_CONNECTION = "default"
"""The connection made from ``ASANA_ACCESS_TOKEN`` (asana_hooks.connections); its API keys
are the ones above, as before connections existed, so an upgrade keeps its budget."""

CONNECTIONS = PREFIX + "connections"
"""Set of every stored connection id (bounded by connections; `asana-hooks connections`)."""


def connection(connection_id: str) -> str:
    """Hash: one connection (name, user, kind, encrypted token(s), state; see
    asana_hooks.connections)."""
    return f"{PREFIX}connection:{connection_id}"


def _per_connection(default_key: str, connection_id: str, name: str) -> str:
    if connection_id == DEFAULT_CONNECTION:
        return default_key
    return f"{PREFIX}api:{connection_id}:{name}"


def api_budget(connection_id: str) -> str:
    """``API_BUDGET`` of one connection (Asana counts per token)."""
    return _per_connection(API_BUDGET, connection_id, "budget")


def api_reads(connection_id: str) -> str:
    """``API_READS`` of one connection."""
    return _per_connection(API_READS, connection_id, "reads")


def api_fresh_waiting(connection_id: str) -> str:
    """``API_FRESH_WAITING`` of one connection."""
    return _per_connection(API_FRESH_WAITING, connection_id, "fresh-waiting")


def api_paused_until(connection_id: str) -> str:
    """``API_PAUSED_UNTIL`` of one connection: its 429 pauses it alone."""
    return _per_connection(API_PAUSED_UNTIL, connection_id, "paused-until")


RESUME_CONNECTION_JOB = "workers.jobs.resume_connection"
"""Dotted name a connection's parked work is resumed by (asana_hooks.parked_work), enqueued by
the CLI, the OAuth callback and the poller without importing workers/."""

PARKED_CONNECTIONS = PREFIX + "parked-connections"
"""Set of the connections with parked work (bounded by connections)."""


def parked_work(connection_id: str) -> str:
    """Sorted set: the parked owners of one connection's batches (``flush_owned`` sets of
    batches Asana refused to fetch for it), scored by when they were parked; no TTL, so nothing
    a revoked connection had is dropped (bounded by its resources' batches while it waits)."""
    return f"{PREFIX}parked:{connection_id}"


def resume_requested(connection_id: str) -> str:
    """String with a 30 s TTL: a resume job for this connection is on the queue already."""
    return f"{PREFIX}resume-requested:{connection_id}"


def oauth_state(state: str) -> str:
    """String, TTL ``oauth.STATE_TTL_SECONDS``: a started authorization (its PKCE verifier and
    redirect URI) until its callback claims it, once (asana_hooks.oauth)."""
    return f"{PREFIX}oauth-state:{state}"


def oauth_refresh_lock(connection_id: str) -> str:
    """String, short TTL: the process refreshing this connection's OAuth token (one at a time
    across every process)."""
    return f"{PREFIX}oauth-refresh:{connection_id}"


def api_token_rejected(connection_id: str) -> str:
    """``API_TOKEN_REJECTED`` of one connection: its 401 stops it alone."""
    return _per_connection(API_TOKEN_REJECTED, connection_id, "token-rejected")


def user_workspaces(connection_id: str) -> str:
    """``USER_WORKSPACES`` of one connection (each token has its own user)."""
    return _per_connection(USER_WORKSPACES, connection_id, "user-workspaces")


STATS = PREFIX + "stats"
"""Hash of global counters (a fixed set of fields)."""

QUARANTINE = PREFIX + "quarantine"
"""Hash: quarantine id -> an event Asana signed that we could not read, kept verbatim with its
reason (capped at quarantine.CAP; `asana-hooks quarantine list/replay`)."""

QUARANTINE_ORDER = PREFIX + "quarantine:order"
"""Sorted set: quarantine id -> when it was kept (µs); the oldest go first past the cap."""

RECENT_CHANGES = PREFIX + "recent-changes"
"""List of the last few change summaries for the status page (capped)."""

WATCHES = PREFIX + "watches"
"""Set of every watch id (bounded by watches; `asana-hooks watch ...`)."""


def watch(watch_id: str) -> str:
    """Hash: one watch (scope, filters, state, the scope webhook's target, last reconcile)."""
    return f"{PREFIX}watch:{watch_id}"


def watch_projects(watch_id: str) -> str:
    """Hash project gid -> target id: the project webhooks of one watch (bounded by them)."""
    return f"{PREFIX}watch-projects:{watch_id}"


def watch_lock(watch_id: str) -> str:
    """String with a TTL: who reconciles this watch now (one at a time)."""
    return f"{PREFIX}watch-lock:{watch_id}"


def watch_again(watch_id: str) -> str:
    """String with a TTL: the scope webhook reported a project change while the watch was being
    reconciled; its holder reconciles once more before it lets go."""
    return f"{PREFIX}watch-again:{watch_id}"


def series(name: str) -> str:
    """String of fixed size: one per-minute series of the last 24 h (asana_hooks.series),
    one record per minute-of-the-day slot, overwritten a day later (TTL 25 h)."""
    return f"{PREFIX}series:{name}"


# Consumers (asana_hooks.consumer, `asana-hooks changes ...`) -------------------------------


def dead_letters(group: str) -> str:
    """Stream: entries group ``group`` gave up on, with the error (capped, MAXLEN ~ 10,000)."""
    return f"{PREFIX}dead:{group}"


def retry_stream(group: str) -> str:
    """Stream: dead letters handed back to group ``group`` alone (`changes dead --replay`);
    its consumers read it beside the changes and delete each entry once handled."""
    return f"{PREFIX}retry:{group}"


def consumer_alive(group: str, name: str) -> str:
    """String with a TTL of the consumer's claim_after_seconds: that consumer is running."""
    return f"{PREFIX}consumer:{group}:{name}"


def consumer_lease_prefix(group: str) -> str:
    """Prefix of the hashes ``<prefix><resource gid>`` -> owner, last: which consumer of the
    group holds a resource's entries (deleted when it acknowledges the last; 24 h TTL)."""
    return f"{PREFIX}lease:{group}:"


def consumer_alive_prefix(group: str) -> str:
    """Prefix of ``consumer_alive`` keys, for the Lua scripts."""
    return f"{PREFIX}consumer:{group}:"


def consumer_wake(group: str, name: str) -> str:
    """Stream of at most one entry: another consumer of the group moved entries to consumer
    ``name`` (it holds their resource), so that a waiting ``name`` looks again now (deleted when
    ``name`` stops; 24 h TTL)."""
    return f"{PREFIX}consumer-wake:{group}:{name}"


def consumer_wake_prefix(group: str) -> str:
    """Prefix of ``consumer_wake`` keys, for the Lua scripts."""
    return f"{PREFIX}consumer-wake:{group}:"


def consumer_errors(group: str) -> str:
    """Hash entry id -> the last error a handler raised for it (bounded by pending entries;
    the field goes when the entry is acknowledged or dead-lettered)."""
    return f"{PREFIX}consumer-errors:{group}"


TUNNEL_URL = PREFIX + "tunnel:url"
"""String with a TTL (asana_hooks.public_url.LIVE_TTL_SECONDS, renewed every minute by the
`--tunnel` process, deleted when it stops): the public URL of the tunnel running now, which
the CLI and the poller use as the current public URL (DESIGN.md §6.8)."""

TUNNEL_LAST_URL = PREFIX + "tunnel:last-url"
"""String, one key: the tunnel address whose webhooks were last brought up to date; a
`--tunnel` run on another address retargets them (asana_hooks.tunnel_watch)."""

TUNNEL_HEALTH = PREFIX + "tunnel:health"
"""Hash with a TTL (as TUNNEL_URL): the watchdog's last check of the tunnel's public /healthz
(url, ok, checked_at, last_ok_at, problem), shown on /status."""
