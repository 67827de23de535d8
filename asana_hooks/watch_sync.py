"""Bring a watch's webhooks at Asana in line with its scope. I/O edge (Asana API, Redis).

Used by `asana-hooks watch add/remove` and by the poller's reconciliation (every poll
interval, and soon after the scope webhook reports a project change). Every step can be
interrupted and run again:

- a project's target id is held by the watch before its webhook is asked for; running
  again reaches the same target, so Asana answers "Duplicated webhook" for one it made, and
  that webhook is adopted (asana_hooks.adoption): never a second webhook on a project;
- ``register`` takes the project's Events API sync token before ``POST /webhooks``
  (DESIGN.md §6.1), so a new project's changes are covered from its first second;
- a webhook at Asana on one of the scope's projects delivering to a target of this receiver
  that no registration knows is an orphan of an interrupted run, and is deleted;
- creation runs ``concurrency`` at a time (Asana allows 15 concurrent writes per token),
  every call under the shared budget; a 429 or an exhausted budget is waited out and tried
  again a few times, and what still fails is left for the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asana_hooks.adoption import adopt, find_webhook
from asana_hooks.asana_client import AsanaClient
from asana_hooks.asana_errors import (
    AsanaError,
    AsanaUnavailable,
    BudgetExhausted,
    NotFound,
    RateLimited,
    is_duplicate,
)
from asana_hooks.events import parse_timestamp
from asana_hooks.registration import SecretMismatch, register, target_url
from asana_hooks.registry import Registration, Registry, new_target_id
from asana_hooks.scopes import list_projects, list_webhooks
from asana_hooks.subscription import RESYNC_MARGIN
from asana_hooks.watch_plan import (
    HAS_WEBHOOK,
    NEEDS_WEBHOOK,
    SCOPE_FILTERS,
    ScopeProject,
    joined_since,
    plan,
    wanted,
)
from asana_hooks.watches import Watch, WatchStore

log = logging.getLogger(__name__)

WRITE_CONCURRENCY = 15
"""Asana allows 15 concurrent write requests per token."""

TRANSIENT_TRIES = 3
"""A project whose creation met a 429, a 5xx or a full budget is tried this many times."""

HOOK_PATH = "/hooks/asana/"


@dataclass(frozen=True)
class Subscribed:
    """One project's outcome."""

    project: ScopeProject
    registration: Registration | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.registration is not None and self.registration.state in HAS_WEBHOOK


@dataclass
class Reconciled:
    """What one reconciliation did."""

    wanted: int = 0
    created: int = 0
    removed: int = 0
    orphans: int = 0
    failed: list[Subscribed] = field(default_factory=list)


class WatchSync:
    def __init__(
        self,
        client: AsanaClient,
        registry: Registry,
        store: WatchStore,
        *,
        public_url: str,
        concurrency: int = WRITE_CONCURRENCY,
    ) -> None:
        self._client = client
        self._registry = registry
        self._store = store
        self._public_url = public_url.rstrip("/")
        self._concurrency = concurrency

    # The scope webhook ------------------------------------------------------------------

    def ensure_scope_webhook(self, watch: Watch) -> Registration:
        """The scope's own webhook (project lifecycle events); created when missing."""
        current = self._registry.get(watch.scope_target) if watch.scope_target else None
        if current is not None and current.state not in NEEDS_WEBHOOK:
            return current
        target_id = current.target_id if current is not None else new_target_id()
        if current is None:
            self._registry.join_watch(target_id, watch.id)
            self._store.set_scope_target(watch.id, target_id)
        return self._register(
            watch,
            resource_gid=watch.scope.gid,
            resource_type=watch.scope.resource_type,
            target_id=target_id,
            filters=[dict(f) for f in SCOPE_FILTERS],
        )

    # Projects ---------------------------------------------------------------------------

    def subscribe(
        self, watch: Watch, project: ScopeProject, *, resync_since: datetime | None = None
    ) -> Subscribed:
        """Make sure one project has a webhook of this watch; ``resync_since``: crawl its
        changes from then on (it joined the scope then, before its webhook existed)."""
        target_id = self._store.projects(watch.id).get(project.gid)
        current = self._registry.get(target_id) if target_id else None
        if current is not None and current.state not in NEEDS_WEBHOOK:
            return Subscribed(project, current)
        if current is None or current.state == "deleted":
            target_id = new_target_id()
            self._registry.join_watch(target_id, watch.id)
            self._store.hold(watch.id, project.gid, target_id)
        assert target_id is not None  # noqa: S101 (set just above when it was missing)
        error = "not tried"
        for _ in range(TRANSIENT_TRIES):
            try:
                registration = self._register(
                    watch,
                    resource_gid=project.gid,
                    resource_type="project",
                    target_id=target_id,
                    filters=watch.filters,
                    resync_since=resync_since,
                )
            except (RateLimited, BudgetExhausted, AsanaUnavailable) as exc:
                error = f"{type(exc).__name__}: {exc}"
                continue
            except (AsanaError, SecretMismatch) as exc:
                return Subscribed(project, self._registry.get(target_id), f"{exc}")
            return Subscribed(project, registration)
        return Subscribed(project, self._registry.get(target_id), error)

    def subscribe_all(
        self,
        watch: Watch,
        projects: Iterable[ScopeProject],
        *,
        on_done: Callable[[Subscribed], None] | None = None,
        joined: Callable[[ScopeProject], datetime | None] | None = None,
    ) -> list[Subscribed]:
        """Every project, ``concurrency`` at a time; ``on_done`` after each (progress);
        ``joined``: when each entered the scope, if its changes since must be crawled."""
        results: list[Subscribed] = []

        def one(project: ScopeProject) -> Subscribed:
            try:
                since = joined(project) if joined is not None else None
                found = self.subscribe(watch, project, resync_since=since)
            except Exception as exc:  # one project's failure is reported, never fatal
                log.exception("watch.subscribe_failed watch=%s project=%s", watch.id, project.gid)
                found = Subscribed(project, None, f"{type(exc).__name__}: {exc}")
            if on_done is not None:
                on_done(found)
            return found

        with ThreadPoolExecutor(self._concurrency, thread_name_prefix="watch") as pool:
            results.extend(pool.map(one, projects))
        return results

    def unsubscribe(self, watch: Watch, project_gid: str) -> str | None:
        """Delete one project's webhook at Asana and here; returns the error, if any."""
        target_id = self._store.projects(watch.id).get(project_gid)
        registration = self._registry.get(target_id) if target_id else None
        error = self._delete(registration)
        if error is None:
            self._store.release(watch.id, project_gid)
        return error

    # Whole watch ------------------------------------------------------------------------

    def reconcile(self, watch: Watch) -> Reconciled:
        """List the scope (one request per 100 projects); create what is missing, delete what
        left, delete orphans; make sure the scope webhook exists."""
        report = Reconciled()
        projects = list_projects(self._client, watch.scope, include_archived=True)
        want = wanted(projects, include_archived=watch.include_archived)
        report.wanted = len(want)
        held = self._held_states(watch)
        todo = plan(want, held)
        for gid in todo.remove:
            error = self.unsubscribe(watch, gid)
            if error is None:
                report.removed += 1
                log.info("watch.project_left watch=%s project=%s: webhook deleted", watch.id, gid)
            else:
                log.warning(
                    "watch.unsubscribe_failed watch=%s project=%s: %s", watch.id, gid, error
                )
        report.orphans = self.delete_orphans(watch, {p.gid for p in projects})
        self.ensure_scope_webhook(watch)
        last = parse_timestamp(watch.last_reconciled_at)

        def joined(project: ScopeProject) -> datetime | None:
            return joined_since(project, last, margin=RESYNC_MARGIN)

        for outcome in self.subscribe_all(watch, todo.create, joined=joined):
            if outcome.ok:
                report.created += 1
                log.info(
                    "watch.project_joined watch=%s project=%s webhook=%s",
                    watch.id,
                    outcome.project.gid,
                    outcome.registration.webhook_gid if outcome.registration else None,
                )
            else:
                report.failed.append(outcome)
        return report

    def remove(self, watch: Watch) -> list[str]:
        """Delete every webhook of the watch at Asana; the errors (the watch stays, marked
        removed, and the poller finishes the job)."""
        self._store.mark_removed(watch.id)
        errors = []
        for gid in sorted(self._store.projects(watch.id)):
            error = self.unsubscribe(watch, gid)
            if error is not None:
                errors.append(f"project {gid}: {error}")
        scope = self._registry.get(watch.scope_target) if watch.scope_target else None
        error = self._delete(scope)
        if error is not None:
            errors.append(f"scope webhook: {error}")
        if not errors:
            self._store.forget(watch.id)
        return errors

    def delete_orphans(self, watch: Watch, projects: set[str]) -> int:
        """Webhooks at Asana on the scope or its projects, delivering to a target of ours that
        no live registration knows (an interrupted run): deleted."""
        ours = self._public_url + HOOK_PATH
        deleted = 0
        for webhook in list_webhooks(self._client, watch.scope.workspace_gid):
            resource = webhook.get("resource") or {}
            target = str(webhook.get("target") or "")
            resource_gid = str(resource.get("gid") or "") if isinstance(resource, dict) else ""
            if not target.startswith(ours) or (
                resource_gid not in projects and resource_gid != watch.scope.gid
            ):
                continue
            known = self._registry.get(target[len(ours) :])
            if known is not None and known.state != "deleted":
                continue
            try:
                self._client.delete(f"/webhooks/{webhook['gid']}")
            except NotFound:
                continue
            deleted += 1
            log.warning(
                "watch.orphan_deleted watch=%s webhook=%s resource=%s target=%s",
                watch.id,
                webhook.get("gid"),
                resource_gid,
                target,
            )
        return deleted

    # Helpers ----------------------------------------------------------------------------

    def _held_states(self, watch: Watch) -> dict[str, str | None]:
        held: dict[str, str | None] = {}
        for project_gid, target_id in self._store.projects(watch.id).items():
            registration = self._registry.get(target_id)
            held[project_gid] = registration.state if registration is not None else None
        return held

    def _register(
        self,
        watch: Watch,
        *,
        resource_gid: str,
        resource_type: str,
        target_id: str,
        filters: list[dict[str, Any]],
        resync_since: datetime | None = None,
    ) -> Registration:
        previous = self._registry.get(target_id)
        try:
            return register(
                self._client,
                self._registry,
                resource_gid=resource_gid,
                public_url=self._public_url,
                filters=filters,
                target_id=target_id,
                replace_secret=previous is not None and previous.has_secret,
                resource_type=resource_type,
                resync_since=resync_since,
            )
        except AsanaError as exc:
            if not is_duplicate(exc):
                raise
        url = target_url(self._public_url, target_id)
        webhook = find_webhook(
            self._client, resource_gid, url, workspaces=[watch.scope.workspace_gid]
        )
        current = self._registry.get(target_id)
        if webhook is None or current is None or not current.has_secret:
            raise SecretMismatch(
                f"Asana already has a webhook on {resource_gid} delivering to {url}, but this "
                "receiver holds no secret for it"
            )
        return adopt(self._registry, current, webhook)

    def _delete(self, registration: Registration | None) -> str | None:
        if registration is None:
            return None
        if registration.webhook_gid and registration.state != "deleted":
            try:
                self._client.delete(f"/webhooks/{registration.webhook_gid}")
            except NotFound:
                pass
            except AsanaError as exc:
                return f"{exc}"
        self._registry.set_state(registration.target_id, "deleted")
        return None


def reconcile_exclusively(
    sync: WatchSync, store: WatchStore, watch_id: str, *, owner: str
) -> Reconciled | None:
    """Reconcile (or finish removing) one watch, one process at a time. When another holds
    it, ask that one to go once more (the change it may have missed) and return None."""
    for _ in range(3):
        if not store.lock(watch_id, owner):
            store.ask_again(watch_id)
            return None
        try:
            result = _reconcile_until_quiet(sync, store, watch_id)
        finally:
            store.unlock(watch_id, owner)
        if not store.take_again(watch_id):  # asked between the last pass and the unlock
            return result
        store.ask_again(watch_id)
    return None


def _reconcile_until_quiet(sync: WatchSync, store: WatchStore, watch_id: str) -> Reconciled:
    result = Reconciled()
    while True:
        store.take_again(watch_id)
        watch = store.get(watch_id)
        if watch is None:
            return result
        if watch.removed:
            errors = sync.remove(watch)
            if errors:
                store.reconciled(watch_id, problem="; ".join(errors))
            return result
        result = sync.reconcile(watch)
        problem = None
        if result.failed:
            first = result.failed[0]
            problem = f"{len(result.failed)} project(s) without a webhook ({first.error})"
        store.reconciled(watch_id, problem=problem)
        if not store.take_again(watch_id):
            return result
