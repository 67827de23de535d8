"""Move webhooks to a new public URL with no moment without one. I/O edge (Asana API, Redis).

DESIGN.md §6.8. Asana cannot change a webhook's target, so a move is: a new webhook on a new
target under the new URL (``register``: the handshake, the secret check), then the old one
deleted. Both deliver for a moment; dedupe absorbs the doubles, and the resource's Events API
subscription (its sync token, kept per resource, §6.1) carries on across the move, so nothing
is missed either. Every step can be interrupted and run again:

- the new target id is recorded on the old registration (``moving_to``) before Asana is asked,
  so a rerun reaches the same target: Asana's "Duplicated webhook" for one it made then is
  adopted (asana_hooks.adoption), never a second webhook;
- a new target that never got a secret never got a webhook (Asana creates one only after our
  receiver answered its handshake): it is forgotten, and the next run starts afresh;
- the old registration is marked deleted (its target answers 410, so Asana drops it even if the
  delete below fails) only once the new webhook is active, and a watch holds the new target
  before the old one goes (``WatchStore``), so its reconciliation never sees a gap to fill.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from asana_hooks.adoption import adopt, find_webhook
from asana_hooks.asana_client import AsanaClient
from asana_hooks.asana_errors import AsanaError, NotFound, is_duplicate
from asana_hooks.errors import HooksError
from asana_hooks.public_url import target_is_current
from asana_hooks.registration import SecretMismatch, register, target_url
from asana_hooks.registry import Registration, Registry, new_target_id
from asana_hooks.subscription import RESYNC_MARGIN, last_good_poll, resync_from
from asana_hooks.watches import WatchStore

log = logging.getLogger(__name__)

MOVABLE_STATES = frozenset({"pending", "active", "failing"})
"""Webhooks a move covers; retired, deleted and lost ones are left alone (a lost one is the
poller's to re-create, under the current public URL)."""

LIVE_STATES = frozenset({"active", "failing"})


class MoveRefused(HooksError):
    """Asana already has a webhook on the new target, but we hold no secret for it."""


def needs_move(registration: Registration, public_url: str) -> bool:
    """A webhook that still delivers somewhere other than under ``public_url``. Pure."""
    return registration.state in MOVABLE_STATES and not target_is_current(
        registration.target_url, public_url
    )


@dataclass(frozen=True)
class Moved:
    """One webhook's move: its new registration."""

    old: Registration
    new: Registration
    old_deleted_at_asana: bool
    """False when Asana's delete failed: the old target answers 410, so Asana drops it soon."""


@dataclass(frozen=True)
class Outcome:
    """What became of one webhook of a run: moved, or the error that stopped it."""

    old: Registration
    moved: Moved | None = None
    error: AsanaError | SecretMismatch | MoveRefused | None = None


class Retargeter:
    """Moves webhooks to targets under ``public_url``."""

    def __init__(
        self, client: AsanaClient, registry: Registry, watches: WatchStore, *, public_url: str
    ) -> None:
        self._client = client
        self._registry = registry
        self._watches = watches
        self._public_url = public_url.rstrip("/")

    def move_each(self, selection: Iterable[Registration]) -> Iterator[Outcome]:
        """Move each webhook of ``selection`` that still needs it (each is read afresh: a
        concurrent or earlier run may have moved it); the watches they belong to follow."""
        touched: set[str] = set()
        in_progress = {r.moving_to for r in self._registry.all() if r.moving_to}
        try:
            for chosen in selection:
                old = self._registry.get(chosen.target_id)
                if old is None or old.target_id in in_progress:
                    continue
                if not needs_move(old, self._public_url):
                    continue
                if old.watch:
                    touched.add(old.watch)
                try:
                    yield Outcome(old, moved=self.move(old))
                except (AsanaError, SecretMismatch, MoveRefused) as exc:
                    log.warning(
                        "retarget.failed webhook=%s error=%r: %s", old.webhook_gid, exc, exc
                    )
                    yield Outcome(old, error=exc)
        finally:
            self.settle_watches(touched)

    def move(self, old: Registration) -> Moved:
        """Create the new webhook, then retire the old one. Raises ``AsanaError``,
        ``SecretMismatch`` or ``MoveRefused`` when the new one could not be made (the old one
        is then untouched and still delivers)."""
        new = self.open_new(old)
        return self.close_old(old, new)

    def open_new(self, old: Registration) -> Registration:
        """The first half: the new webhook, active beside the old one."""
        new_id = self._registry.start_move(old.target_id, new_target_id())
        found = self._registry.get(new_id)
        url = target_url(self._public_url, new_id)
        if found is not None and found.state in LIVE_STATES and found.target_url == url:
            return found  # made by an interrupted run
        if found is not None and found.has_secret and found.target_url not in ("", url):
            self._delete_stray(old.resource_gid, found.target_url)
        if old.watch:
            self._registry.join_watch(new_id, old.watch)
        since = resync_from(
            [old.created_at],
            last_good_poll(self._registry.connection, old.resource_gid),
            margin=RESYNC_MARGIN,
        )
        try:
            new = register(
                self._client,
                self._registry,
                resource_gid=old.resource_gid,
                public_url=self._public_url,
                filters=old.filters,
                target_id=new_id,
                replace_secret=found is not None and found.has_secret,
                resource_type=old.resource_type,
                resync_since=since,
            )
        except AsanaError as exc:
            if is_duplicate(exc):
                return self._adopt(old, new_id, url)
            self._abandon_unless_held(old, new_id)
            raise
        except SecretMismatch:
            self._registry.abandon_move(old.target_id, new_id)  # register deleted it again
            raise
        log.info(
            "retarget.created webhook=%s new_webhook=%s target=%s",
            old.webhook_gid,
            new.webhook_gid,
            new_id,
        )
        return new

    def close_old(self, old: Registration, new: Registration) -> Moved:
        """The second half: the watch holds the new target, the old webhook goes."""
        if old.watch:
            self._hand_over(old, new)
        self._registry.finish_move(old.target_id, new.target_id)
        deleted = True
        if old.webhook_gid:
            try:
                self._client.delete(f"/webhooks/{old.webhook_gid}")
            except NotFound:
                pass
            except AsanaError as exc:
                deleted = False
                log.warning(
                    "retarget.delete_failed webhook=%s error=%r: %s; its target answers 410, so "
                    "Asana drops it at its next delivery or heartbeat",
                    old.webhook_gid,
                    exc,
                    exc,
                )
        log.info(
            "retarget.moved webhook=%s new_webhook=%s resource=%s to=%s",
            old.webhook_gid,
            new.webhook_gid,
            old.resource_gid,
            new.target_url,
        )
        return Moved(
            old=old, new=self._registry.get(new.target_id) or new, old_deleted_at_asana=deleted
        )

    def settle_watches(self, watch_ids: set[str]) -> None:
        """A watch whose webhooks are all under the new URL records it as its own."""
        for watch_id in sorted(watch_ids):
            watch = self._watches.get(watch_id)
            if watch is None:
                continue
            targets = [*self._watches.projects(watch_id).values(), watch.scope_target]
            held = [self._registry.get(t) for t in targets if t]
            if not any(r is not None and needs_move(r, self._public_url) for r in held):
                self._watches.set_public_url(watch_id, self._public_url)

    # Helpers ----------------------------------------------------------------------------

    def _adopt(self, old: Registration, new_id: str, url: str) -> Registration:
        """Asana made the new webhook in an interrupted run: ours if we hold its secret."""
        current = self._registry.get(new_id)
        webhook = find_webhook(self._client, old.resource_gid, url)
        if webhook is None or current is None or not current.has_secret:
            raise MoveRefused(
                f"Asana already has a webhook on {old.resource_gid} delivering to {url}, but "
                "this receiver holds no secret for it: delete it with `asana-hooks webhooks "
                "delete GID` and run retarget again"
            )
        adopted = adopt(self._registry, current, webhook)
        self._registry.describe_resource(
            new_id,
            resource_type=old.resource_type,
            resource_name=old.resource_name,
            created_at=str(webhook.get("created_at") or ""),
        )
        return self._registry.get(new_id) or adopted

    def _abandon_unless_held(self, old: Registration, new_id: str) -> None:
        """No secret, no webhook at Asana: start afresh next time. With a secret, Asana may
        have made it: keep the target, so the next run adopts it."""
        found = self._registry.get(new_id)
        if found is None or not found.has_secret:
            self._registry.abandon_move(old.target_id, new_id)

    def _delete_stray(self, resource_gid: str, url: str) -> None:
        """An earlier, interrupted move to another URL may have left a webhook there."""
        try:
            stray = find_webhook(self._client, resource_gid, url)
            if stray is not None:
                self._client.delete(f"/webhooks/{stray['gid']}")
                log.warning("retarget.stray_deleted webhook=%s target=%s", stray["gid"], url)
        except NotFound:
            pass

    def _hand_over(self, old: Registration, new: Registration) -> None:
        watch_id = old.watch or ""
        watch = self._watches.get(watch_id)
        if watch is None:
            return
        if watch.scope_target == old.target_id:
            self._watches.set_scope_target(watch_id, new.target_id)
        for project_gid, target_id in self._watches.projects(watch_id).items():
            if target_id == old.target_id:
                self._watches.hold(watch_id, project_gid, new.target_id)
