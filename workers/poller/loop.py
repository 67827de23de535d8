"""One poll process's passes over every followed resource. I/O edge (Asana, Redis, RQ).

``Poller.run_cycle`` visits each resource a registered webhook watches, under its lock
(``workers.poller.store``): the webhooks' care (``workers.poller.webhooks``), judged from the
cycle's one listing of Asana's webhooks (``workers.poller.listing``, taken before the first
due resource is locked and never under a lock), then the Events API from the stored sync
token, then, after a 412 or without a token, a resync (``workers.poller.resync``). A team,
workspace or portfolio has no Events API stream: its webhooks get the care alone. The
package docstring (``workers.poller``) tells the whole story.

Each registration is cared for by its own connection's client (asana_hooks.asana_clients), and
a resource is polled by the connection of its lead registration. A connection paused by a 429
or revoked by a 401 is skipped for the cycle instead of waited for (``held``), so it never
slows the others; its resources are polled by the next cycle that finds it able to call.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from rq import Queue

from asana_hooks import parked_work
from asana_hooks.asana_client import AsanaClient
from asana_hooks.asana_clients import Clients
from asana_hooks.asana_errors import AsanaError, SyncTokenExpired
from asana_hooks.connections import UnknownConnection
from asana_hooks.events import format_timestamp
from asana_hooks.queueing import enqueue_delivery, make_queue
from asana_hooks.registry import Registration, Registry
from asana_hooks.secretbox import SecretBox
from asana_hooks.settings import Settings, SettingsError
from asana_hooks.subscription import RESYNC_MARGIN
from workers.poller.listing import Listing, list_webhooks
from workers.poller.plan import (
    CycleReport,
    Subscription,
    gap_after_412,
    poller_delivery,
    subscriptions,
)
from workers.poller.resync import resync
from workers.poller.store import DEFAULT_LOCK_TTL_MS, LockLost, PollLock, PollStore, new_owner_id
from workers.poller.watches import WatchCare
from workers.poller.webhooks import WebhookCare

log = logging.getLogger(__name__)

DUE_FRACTION = 0.9
"""A resource is polled again once this fraction of the interval has passed since the last
attempt by any poller, so several poll processes share the work instead of repeating it."""

MAX_PAGES_PER_POLL = 500
"""At most this many Events API pages (50,000 events) per resource per cycle; the stored
token lets the next cycle go on from there."""


class Poller:
    """One poll process's worker: ``run_cycle`` is one pass over every watched resource."""

    def __init__(
        self,
        settings: Settings,
        connection: redis.Redis,
        client: AsanaClient | Clients,
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
        self._clients = (
            Clients.around(settings, connection, client)
            if isinstance(client, AsanaClient)
            else client
        )
        self._queue: Queue = make_queue(connection)
        self._store = PollStore(connection)
        box = SecretBox(settings.encryption_keys) if settings.encryption_keys else None
        self._registry = Registry(connection, box)
        self._webhooks = WebhookCare(
            settings, self._clients, self._registry, clock=self.clock, can_recreate=box is not None
        )
        self._watches = WatchCare(
            settings,
            self._clients,
            self._registry,
            owner=self.owner,
            clock=self.clock,
            can_create=box is not None,
            due_fraction=DUE_FRACTION,
        )
        self._listings: dict[str, Listing] = {}

    # One pass -----------------------------------------------------------------------------

    def run_cycle(self) -> CycleReport:
        report = CycleReport()
        report.watches = self._watches.cycle(force=self.force)
        self._listings = {}
        try:
            for subscription in subscriptions(self._registry.all()):
                report.resources += 1
                self._visit(subscription, report)
        finally:
            self._listings = {}
        self._resume_parked()
        return report

    def _resume_parked(self) -> None:
        """Ask for the resume of each connection whose parked work could go out now (able to
        call, and not marked revoked): the safety net behind the callers that say so at once."""
        for connection_id in parked_work.connections_waiting(self._redis):
            try:
                able = self._clients.held_back(connection_id) is None
                revoked = self._clients.store.state(connection_id) == "revoked"
            except (UnknownConnection, SettingsError):
                continue
            if able and not revoked:
                parked_work.request_resume(self._redis, connection_id)

    def _visit(self, subscription: Subscription, report: CycleReport) -> None:
        gid = subscription.resource_gid
        held = self._held(subscription)
        if held:
            report.held += 1
            log.debug("poll.held resource=%s: %s", gid, held)
            return
        if subscription.watched and (self.force or self._due(gid, self.clock())):
            self._take_listings(subscription)
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
            log.debug("poll.begin resource=%s owner=%s", gid, self.owner)
            self._store.commit(
                lock, fields={"last_attempt_at": format_timestamp(started), "owner": self.owner}
            )
            subscription = self._check_health(self._reread(subscription))
            lead = subscription.lead
            if lead is None:
                if not subscription.watched:
                    self._store.forget(gid)
                return
            if not subscription.streams_events:
                report.health_only += 1
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
                log.debug("poll.end resource=%s owner=%s", gid, self.owner)
            lock.release()

    def _take_listings(self, subscription: Subscription) -> None:
        """The cycle's listing of each connection of these webhooks, taken once, never under
        a resource's lock."""
        for connection_id in sorted({r.connection for r in subscription.watched}):
            if connection_id not in self._listings:
                client = self._clients.get(connection_id)
                self._listings[connection_id] = list_webhooks(client, self._redis)

    def _held(self, subscription: Subscription) -> str | None:
        """Why one of this resource's connections cannot call now (skip it this cycle)."""
        for connection_id in sorted({r.connection for r in subscription.registrations}):
            try:
                reason = self._clients.held_back(connection_id)
            except UnknownConnection:
                reason = "unknown"
            if reason:
                return f"connection {connection_id} is {reason}"
        return None

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
                page = self._clients.get(lead.connection).events(gid, token)
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
        gap = gap_after_412(
            had_token=bool(token),
            last_good=last_good,
            created_at=created,
            margin=self.resync_margin,
        )
        if gap is None:
            self._store.commit(lock, token=expired.sync)
            log.warning("poll.subscribed resource=%s: no creation time known to resync from", gid)
            return
        since, reason = gap
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
            self._clients.get(lead.connection),
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
        enqueue_delivery(self._queue, poller_delivery(lead, events, now=self.clock()))
        self._store.add_events(subscription.resource_gid, len(events))

    # Health ---------------------------------------------------------------------------------

    def _check_health(self, subscription: Subscription) -> Subscription:
        """Care for every webhook of this resource; return the subscription as it now stands."""
        for registration in subscription.watched:
            self._webhooks.check(registration, self._listings.get(registration.connection))
        return self._reread(subscription)

    def _reread(self, subscription: Subscription) -> Subscription:
        """The registrations as they are now (another poller may have changed them)."""
        fresh = [self._registry.get(r.target_id) for r in subscription.registrations]
        return replace(subscription, registrations=tuple(r for r in fresh if r is not None))

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
                # A cycle with nothing to report is DEBUG: `dev`'s terminal is for changes.
                level = logging.INFO if once or report.noteworthy else logging.DEBUG
                log.log(level, "poll.cycle %s seconds=%.2f", report, time.monotonic() - began)
            if once:
                return
            stop.wait(max(0.0, interval - (time.monotonic() - began)))
