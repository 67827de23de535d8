"""A watch as operators see it: its webhooks, how many projects are covered, its state.
I/O edge (Redis reads only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asana_hooks.registry import Registration, Registry
from asana_hooks.watch_plan import HAS_WEBHOOK, watch_state
from asana_hooks.watches import Watch, WatchStore


@dataclass(frozen=True)
class WatchReport:
    watch: Watch
    projects: dict[str, Registration | None]
    """Project gid -> its webhook's registration (None: not asked for yet)."""
    scope_webhook: Registration | None

    @property
    def active_projects(self) -> int:
        return sum(1 for r in self.projects.values() if r is not None and r.state in HAS_WEBHOOK)

    @property
    def state(self) -> str:
        return watch_state(
            removed=self.watch.removed,
            project_states=[r.state if r else None for r in self.projects.values()],
            scope_state=self.scope_webhook.state if self.scope_webhook else None,
        )

    def to_json(self) -> dict[str, Any]:
        """The contract's `watch list --json` object."""
        return self.watch.to_json(state=self.state, projects=self.active_projects)

    def to_status_json(self) -> dict[str, Any]:
        """The contract's `watch status --json` object."""
        webhooks = []
        for project_gid, registration in sorted(self.projects.items()):
            if registration is None:
                continue
            found = registration.to_status_json()
            found["project"] = {"gid": project_gid, "name": registration.resource_name}
            webhooks.append(found)
        return {
            **self.to_json(),
            "webhooks": webhooks,
            "scope_webhook": self.scope_webhook.to_status_json() if self.scope_webhook else None,
            "last_reconciled_at": self.watch.last_reconciled_at,
        }


def report(store: WatchStore, registry: Registry, watch: Watch) -> WatchReport:
    projects = {
        project_gid: registry.get(target_id)
        for project_gid, target_id in store.projects(watch.id).items()
    }
    scope = registry.get(watch.scope_target) if watch.scope_target else None
    return WatchReport(watch, projects, scope)
