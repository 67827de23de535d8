"""The fallback poller: Events API subscriptions and webhook health. I/O edge (Asana, Redis).

Asana's webhooks are at-most-once and cannot be replayed, and Asana deletes a webhook after
24 h of failed deliveries (../shared/reference/asana-webhooks.md). Each cycle, for every
resource a registered webhook watches, under that resource's lock (``workers.pollstate``):

1. health: ``GET /webhooks/{gid}`` for each of its webhooks; Asana's delivery fields are
   stored beside ours, the state moves to ``failing`` / ``active`` / ``lost`` / ``deleted``
   (``workers.health``), and a lost webhook is re-created when ``HOOKS_AUTO_RECREATE`` is on;
2. events: ``GET /events`` from the stored sync token, following ``has_more``; every page
   goes into the same ``process_delivery`` job as webhook deliveries (``source="poller"``),
   so what a webhook already delivered is dropped there as a duplicate. The token is stored
   after each page is enqueued: a crash re-reads the page, which dedupe absorbs;
3. a 412 means events may be lost: on a stored token, since the last good poll; with no
   stored token (Redis flushed or restored, a first call that failed), since the webhook's
   creation or the last good poll, whichever is later (asana_hooks.subscription). The fresh
   token is stored together with ``resync_since`` and the gap is crawled
   (``workers.resync``). A crash during the crawl leaves ``resync_since`` behind, and the
   next cycle crawls again.

A resource's first token is taken by ``register`` before its webhook exists, so there is no
first-poll blind window. The gap while a webhook was missing needs no crawl of its own: the
Events API subscription is independent of the webhook and keeps running, so the poll right
after a re-creation recovers it event by event; if the token was lost meanwhile, the
re-creation marks the gap for a crawl from the last good poll.
Every call goes through ``AsanaClient``, so polling shares the workers' budget and 429 pauses.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

import redis
from rq import Queue

from asana_hooks.asana_client import AsanaClient
from asana_hooks.asana_errors import AsanaError, NotFound, SyncTokenExpired
from asana_hooks.events import format_timestamp
from asana_hooks.queueing import enqueue_events, make_queue
from asana_hooks.redis_conn import connect
from asana_hooks.registration import SecretMismatch, register
from asana_hooks.registry import Registration, Registry
from asana_hooks.secretbox import SecretBox
from asana_hooks.settings import Settings
from asana_hooks.subscription import RESYNC_MARGIN, resync_from
from workers.health import judge
from workers.pollcore import Subscription, subscriptions
from workers.pollstate import DEFAULT_LOCK_TTL_MS, LockLost, PollLock, PollStore, new_owner_id
from workers.resync import resync

log = logging.getLogger(__name__)

DUE_FRACTION = 0.9
"""A resource is polled again once this fraction of the interval has passed since the last
attempt by any poller, so several poll processes share the work instead of repeating it."""

MAX_PAGES_PER_POLL = 500
"""At most this many Events API pages (50,000 events) per resource per cycle; the stored
token lets the next cycle go on from there."""

HOOK_PATH = "/hooks/asana/"


@dataclass
class CycleReport:
    """What one pass did, for the log line that closes it."""

    resources: int = 0
    polled: int = 0
    busy: int = 0
    not_due: int = 0
    events: int = 0
    resyncs: int = 0
    errors: int = 0


class Poller:
    """One poll process's worker: ``run_cycle`` is one pass over every watched resource."""

    def __init__(
        self,
        settings: Settings,
        connection: redis.Redis,
        client: AsanaClient,
        *,
        owner: str | None = None,
        force: bool = False,
        lock_ttl_ms: int = DEFAULT_LOCK_TTL_MS,
        resync_margin: timedelta = RESYNC_MARGIN,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.owner = owner or new_owner_id()
        self.force = force
        self.lock_ttl_ms = lock_ttl_ms
        self.resync_margin = resync_margin
        self.clock = clock or (lambda: datetime.now(UTC))
        self._redis = connection
        self._client = client
        self._queue: Queue = make_queue(connection)
        self._store = PollStore(connection)
        box = SecretBox(settings.encryption_keys) if settings.encryption_keys else None
        self._registry = Registry(connection, box)
        self._can_recreate = box is not None

    # One pass -----------------------------------------------------------------------------

    def run_cycle(self) -> CycleReport:
        report = CycleReport()
        for subscription in subscriptions(self._registry.all()):
            report.resources += 1
            self._visit(subscription, report)
        return report

    def _visit(self, subscription: Subscription, report: CycleReport) -> None:
        gid = subscription.resource_gid
        lock = PollLock(self._redis, gid, owner=self.owner, ttl_ms=self.lock_ttl_ms)
        if not lock.acquire():
            report.busy += 1
            log.debug("poll.busy resource=%s holder=%s", gid, lock.holder())
            return
        began = False
        try:
            started = self.clock()
            if not self.force and not self._due(gid, started):
                report.not_due += 1
                return
            began = True
            log.info("poll.begin resource=%s owner=%s", gid, self.owner)
            self._store.commit(
                lock, fields={"last_attempt_at": format_timestamp(started), "owner": self.owner}
            )
            subscription = self._check_health(self._reread(subscription))
            lead = subscription.lead
            if lead is None:
                if not subscription.watched:
                    self._store.forget(gid)
                return
            report.polled += 1
            self._poll(subscription, lead, lock, started=started, report=report)
        except LockLost:
            report.errors += 1
            log.warning(
                "poll.lock_lost resource=%s owner=%s: another poller took over", gid, self.owner
            )
        except AsanaError as exc:
            report.errors += 1
            log.warning("poll.failed resource=%s error=%r: %s; next cycle retries", gid, exc, exc)
            self._note_problem(lock, f"{type(exc).__name__}: {exc}")
        finally:
            if began:
                log.info("poll.end resource=%s owner=%s", gid, self.owner)
            lock.release()

    def _due(self, gid: str, now: datetime) -> bool:
        last = self._store.record(gid).last_attempt_at
        interval = self.settings.poll_interval_seconds * DUE_FRACTION
        return last is None or (now - last).total_seconds() >= interval

    def _note_problem(self, lock: PollLock, problem: str) -> None:
        with contextlib.suppress(LockLost, redis.RedisError):
            self._store.commit(lock, fields={"problem": problem[:300]})

    # Events ---------------------------------------------------------------------------------

    def _poll(
        self,
        subscription: Subscription,
        lead: Registration,
        lock: PollLock,
        *,
        started: datetime,
        report: CycleReport,
    ) -> None:
        gid = subscription.resource_gid
        record = self._store.record(gid)
        token = self._store.token(gid)
        if record.resync_since is not None:
            self._resync(
                subscription,
                lead,
                lock,
                since=record.resync_since,
                reason=record.resync_reason or "unfinished resync",
            )
            report.resyncs += 1
        fed = pages = 0
        while True:
            try:
                page = self._client.events(gid, token)
            except SyncTokenExpired as expired:
                self._on_expired(subscription, lead, lock, expired, token=token, report=report)
                break
            wanted = [event for event in page.data if subscription.wants(event)]
            if wanted:
                self._feed(subscription, lead, wanted)
                fed += len(wanted)
            self._store.commit(lock, token=page.sync)
            token = page.sync
            pages += 1
            if not page.has_more or pages >= MAX_PAGES_PER_POLL:
                break
        report.events += fed
        self._store.commit(
            lock,
            fields={
                "last_good_poll_at": format_timestamp(started),
                "last_poll_at": format_timestamp(self.clock()),
                "last_events": fed,
            },
            clear=("problem",),
        )
        if fed:
            log.info("poll.events resource=%s fed=%d", gid, fed)

    def _on_expired(
        self,
        subscription: Subscription,
        lead: Registration,
        lock: PollLock,
        expired: SyncTokenExpired,
        *,
        token: str | None,
        report: CycleReport,
    ) -> None:
        gid = subscription.resource_gid
        last_good = self._store.record(gid).last_good_poll_at
        created = [registration.created_at for registration in subscription.polled]
        since = resync_from(created, last_good, margin=self.resync_margin)
        if since is None:
            self._store.commit(lock, token=expired.sync)
            log.warning("poll.subscribed resource=%s: no creation time known to resync from", gid)
            return
        if token:
            reason = "sync token expired (412)"
        elif last_good is None:
            reason = "no stored sync token; resyncing from the webhook's creation"
        else:
            reason = "no stored sync token; resyncing from the last good poll"
        self._store.commit(
            lock,
            token=expired.sync,
            fields={"resync_since": format_timestamp(since), "resync_reason": reason},
        )
        log.warning(
            "poll.gap resource=%s last_good_poll=%s since=%s: %s, events may be lost; resyncing",
            gid,
            format_timestamp(last_good) if last_good else "never",
            format_timestamp(since),
            reason,
        )
        self._resync(subscription, lead, lock, since=since, reason=reason)
        report.resyncs += 1

    def _resync(
        self,
        subscription: Subscription,
        lead: Registration,
        lock: PollLock,
        *,
        since: datetime,
        reason: str,
    ) -> None:
        resync(
            self._client,
            self._queue,
            self._store,
            lock,
            subscription=subscription,
            lead=lead,
            since=since,
            reason=reason,
            clock=self.clock,
        )

    def _feed(
        self, subscription: Subscription, lead: Registration, events: list[dict[str, Any]]
    ) -> None:
        enqueue_events(
            self._queue,
            target_id=lead.target_id,
            webhook_gid=lead.webhook_gid,
            source="poller",
            events=events,
            digest=None,
            received_at=format_timestamp(self.clock()),
        )
        self._store.add_events(subscription.resource_gid, len(events))

    # Health ---------------------------------------------------------------------------------

    def _check_health(self, subscription: Subscription) -> Subscription:
        """Judge every webhook of this resource; return the subscription as it now stands."""
        for registration in subscription.watched:
            self._check_one(registration)
        return self._reread(subscription)

    def _reread(self, subscription: Subscription) -> Subscription:
        """The registrations as they are now (another poller may have changed them)."""
        fresh = [self._registry.get(r.target_id) for r in subscription.registrations]
        return replace(subscription, registrations=tuple(r for r in fresh if r is not None))

    def _check_one(self, registration: Registration) -> None:
        webhook_gid = registration.webhook_gid
        try:
            webhook: dict[str, Any] | None = self._client.get(f"/webhooks/{webhook_gid}")
        except NotFound:
            webhook = None
        except AsanaError as exc:
            log.warning("health.unknown webhook=%s error=%r: %s", webhook_gid, exc, exc)
            return
        data = (webhook or {}).get("data") if webhook is not None else None
        if data is not None:
            self._registry.store_asana_status(registration.target_id, data)
        verdict = judge(
            registration,
            data,
            now=self.clock(),
            heartbeat_timeout=self.settings.heartbeat_timeout_seconds,
        )
        if verdict.state != registration.state or verdict.problem != registration.problem:
            self._registry.set_state(registration.target_id, verdict.state, problem=verdict.problem)
        where = (
            f"webhook={webhook_gid} resource={registration.resource_gid} "
            f"target={registration.target_id}"
        )
        if verdict.state == "failing":
            log.warning("webhook.failing %s: %s", where, verdict.problem)
        elif verdict.state == "lost":
            self._on_lost(registration, where)
        elif verdict.state == "deleted":
            log.info(
                "webhook.deleted %s: Asana dropped the retired webhook; no longer polled", where
            )
        elif verdict.level == logging.INFO:
            log.info("webhook.recovered %s: Asana delivers again", where)

    def _on_lost(self, registration: Registration, where: str) -> None:
        if not self.settings.auto_recreate:
            log.warning(
                "webhook.lost %s: Asana no longer has it; HOOKS_AUTO_RECREATE is off, "
                "so it stays lost (the poller still follows its resource)",
                where,
            )
            return
        public_url = _public_base(registration) or self.settings.public_url
        if public_url is None or not self._can_recreate:
            missing = "HOOKS_PUBLIC_URL" if public_url is None else "HOOKS_ENCRYPTION_KEY"
            problem = f"Asana deleted the webhook; cannot re-create it without {missing}"
            self._registry.set_state(registration.target_id, "lost", problem=problem)
            log.error("webhook.lost %s: %s", where, problem)
            return
        log.warning("webhook.lost %s: Asana no longer has it; re-creating", where)
        try:
            created = register(
                self._client,
                self._registry,
                resource_gid=registration.resource_gid,
                public_url=public_url,
                filters=registration.filters,
                target_id=registration.target_id,
                replace_secret=True,
            )
        except (AsanaError, SecretMismatch) as exc:
            log.error("webhook.recreate_failed %s: %s; next cycle tries again", where, exc)
            if self._registry.get(registration.target_id) is not None:
                # register() re-describes the target from Asana's answer; none came.
                self._registry.describe_resource(
                    registration.target_id,
                    resource_type=registration.resource_type,
                    resource_name=registration.resource_name,
                    created_at="",
                )
                problem = f"Asana deleted the webhook; re-creating it failed: {exc}"
                self._registry.set_state(registration.target_id, "lost", problem=problem[:300])
            return
        if created.webhook_gid:
            self._registry.replace_webhook(
                registration.target_id,
                old_gid=registration.webhook_gid,
                new_gid=created.webhook_gid,
            )
        log.warning(
            "webhook.recreated %s new_webhook=%s: deliveries resume on the new webhook",
            where,
            created.webhook_gid,
        )

    # The loop -------------------------------------------------------------------------------

    def run(self, *, stop: threading.Event, once: bool = False) -> None:
        """Cycle every poll interval until ``stop`` is set (or once)."""
        interval = self.settings.poll_interval_seconds
        log.info("poller.start owner=%s interval=%gs once=%s", self.owner, interval, once)
        while not stop.is_set():
            began = time.monotonic()
            try:
                report = self.run_cycle()
            except redis.RedisError as exc:
                if once:
                    raise
                log.error("poll.cycle_failed error=%r: Redis unavailable; next cycle retries", exc)
            except Exception:
                # The loop is the boundary: one bad cycle must not stop every subscription.
                if once:
                    raise
                log.exception("poll.cycle_failed: unexpected error; next cycle retries")
            else:
                log.info(
                    "poll.cycle resources=%d polled=%d busy=%d not_due=%d events=%d "
                    "resyncs=%d errors=%d seconds=%.2f",
                    report.resources,
                    report.polled,
                    report.busy,
                    report.not_due,
                    report.events,
                    report.resyncs,
                    report.errors,
                    time.monotonic() - began,
                )
            if once:
                return
            stop.wait(max(0.0, interval - (time.monotonic() - began)))


def _public_base(registration: Registration) -> str | None:
    """The public URL this target was registered under, so a re-creation keeps its target."""
    suffix = HOOK_PATH + registration.target_id
    if registration.target_url.endswith(suffix):
        return registration.target_url[: -len(suffix)] or None
    return None


def main(settings: Settings, *, once: bool = False) -> None:
    """`asana-hooks poll [--once]`: the process edge."""
    connection = connect(settings.redis_url, socket_timeout=5.0)
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        log.info("poller.stopping signal=%d", signum)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    with AsanaClient(settings, connection) as client:
        Poller(settings, connection, client, force=once).run(stop=stop, once=once)
