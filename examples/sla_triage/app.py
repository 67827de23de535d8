"""The integration's I/O: the Consumer hands it changes, AsanaClient makes its writes, the
sweep posts SLA warnings. I/O edge (Redis, Asana through the shared budget).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from asana_hooks.asana_client import AsanaClient
from asana_hooks.asana_errors import NotFound
from asana_hooks.consumer import Consumer
from examples.sla_triage import core
from examples.sla_triage.config import Config
from examples.sla_triage.store import Store

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
"""Now, as an aware datetime: the sweep's only notion of time (tests move it)."""

STORY_FIELDS = "resource_subtype,text,created_by"


def system_clock() -> datetime:
    return datetime.now(UTC)


class SlaTriage:
    """``handle`` is the Consumer's handler; ``sweep`` warns the tasks about to miss their SLA."""

    def __init__(
        self,
        config: Config,
        *,
        asana: AsanaClient,
        store: Store,
        me: str,
        clock: Clock = system_clock,
    ) -> None:
        self.config = config
        self.asana = asana
        self.store = store
        self.me = me
        self.clock = clock

    @classmethod
    def whoami(cls, asana: AsanaClient) -> str:
        """The token's user: the author of our writes, whose own changes we ignore."""
        return str(asana.request("GET", "/users/me", params={"opt_fields": "gid"})["data"]["gid"])

    def handle(self, change: dict[str, Any]) -> None:
        """One stream entry: plan, write, then keep the state (a crash in between replays
        the entry, and the plan asks only for what is still missing)."""
        task = core.task_of(change)
        if task is None:
            return
        state = self.store.load(task)
        plan = core.plan_change(change, state, config=self.config, me=self.me, now=self.clock())
        if plan is None:
            return
        try:
            for write in plan.writes:
                self.asana.request(write.method, write.path, json={"data": write.data})
                logger.info(
                    "sla_triage.write entry=%s %s %s", change.get("id"), write.method, write.path
                )
        except NotFound:
            logger.info("sla_triage.gone task=%s entry=%s", task, change.get("id"))
            return
        self.store.save(plan)

    def sweep(self) -> int:
        """Warn every tracked task whose deadline is within ``warn_before`` of the clock's
        now, once: the task's stories are read first, and a warning already there (a crash
        after posting) or a comment by someone else settles it without a new comment."""
        posted = 0
        for task in self.store.due(core.warn_from(self.clock(), self.config)):
            with self.store.lock(task) as held:
                if held and self._warn(task):
                    posted += 1
        return posted

    def _warn(self, task: str) -> bool:
        due_on = self.store.load(task).due_on
        if due_on is None:
            self.store.settle(task)
            return False
        try:
            stories = self.asana.request(
                "GET", f"/tasks/{task}/stories", params={"opt_fields": STORY_FIELDS}
            )
        except NotFound:
            self.store.settle(task)
            return False
        found = core.check_stories(stories.get("data") or [], me=self.me, due_on=due_on)
        if found == "responded":
            self.store.settle(task, responded=True)
            return False
        if found == "warn":
            write = core.comment(task, core.warning_text(due_on))
            self.asana.request(write.method, write.path, json={"data": write.data})
            logger.info("sla_triage.warned task=%s due_on=%s", task, due_on)
        self.store.settle(task, warned=due_on)
        return found == "warn"

    def run(self, consumer: Consumer, *, sweep_every: float | None = None) -> None:
        """Handle changes until the consumer stops (SIGTERM, or ``consumer.stop()``), with a
        sweep every ``sweep_every`` seconds in a thread beside it."""
        done = threading.Event()
        every = sweep_every or self.config.sweep_every_seconds

        def sweeping() -> None:
            while not done.wait(every):
                try:
                    self.sweep()
                except Exception:  # a failed sweep is retried at the next one
                    logger.warning("sla_triage.sweep_failed", exc_info=True)

        thread = threading.Thread(target=sweeping, name="sla-triage-sweep", daemon=True)
        thread.start()
        try:
            consumer.run(self.handle)
        finally:
            done.set()
            thread.join(30)
