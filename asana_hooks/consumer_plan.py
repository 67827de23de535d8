"""What a consumer does next with the entries it holds. Pure, no I/O.

A consumer's pending list (Redis's, for this consumer) holds what it was handed: new
entries, entries another consumer passed to it because it holds their resource, entries it
claimed from a consumer that died, and entries whose handler raised and wait for their retry.
``plan`` walks that list oldest first and says, for each, whether to hand it to the handler
now; an entry of a resource whose older entry is still waiting holds back, so one resource's
changes reach the handler in stream order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

StreamName = Literal["changes", "retry"]
Action = Literal["handle", "redeliver", "dead", "gone"]

BACKOFF_CAP_SECONDS = 30.0
"""The longest wait between two deliveries of a failing entry."""


@dataclass(frozen=True)
class Held:
    """One entry in this consumer's pending list."""

    stream: StreamName
    id: str
    deliveries: int
    """Redis's delivery count: each hand-out, first read or claim or retry, counts one."""
    fields: Mapping[str, str] | None
    """The entry's fields; None when the stream was trimmed before it was handled."""

    @cached_property
    def change(self) -> dict[str, Any]:
        """The change as the handler receives it, with its entry id as "id"."""
        raw = (self.fields or {}).get("change", "null")
        try:
            change = json.loads(raw)
        except ValueError:
            change = None
        found = change if isinstance(change, dict) else {"change": raw}
        return {**found, "id": self.original_id}  # a copy per Held: the handler may change it

    @cached_property
    def original_id(self) -> str:
        """Its id in the changes stream (a retried dead letter carries it as a field)."""
        if self.stream == "retry":
            return (self.fields or {}).get("id") or self.id
        return self.id

    @cached_property
    def resource(self) -> str:
        resource = self.change.get("resource")
        gid = resource.get("gid") if isinstance(resource, dict) else None
        return gid if isinstance(gid, str) else ""


@dataclass(frozen=True)
class Step:
    entry: Held
    action: Action
    """``handle``: a delivery not yet tried here; ``redeliver``: a retry, claimed again first
    (one more delivery); ``dead``: delivered ``max_deliveries`` times already (consumers died
    holding it); ``gone``: trimmed before anyone handled it, to acknowledge."""


def backoff_seconds(deliveries: int, *, base: float, cap: float = BACKOFF_CAP_SECONDS) -> float:
    """Exponential: ``base``, 2 x base, 4 x base ... after the 1st, 2nd, 3rd failure."""
    return float(min(cap, base * 2 ** max(0, deliveries - 1)))


def plan(
    held: list[Held],
    *,
    attempted: Mapping[str, int],
    retry_at: Mapping[str, float],
    now: float,
    max_deliveries: int,
) -> tuple[list[Step], float | None]:
    """The steps to take now, in order, and when the earliest waiting retry falls due.

    ``attempted``: entry id -> the delivery count this process last handled it at;
    ``retry_at``: entry id -> when its retry is due (monotonic seconds)."""
    steps: list[Step] = []
    waiting: set[tuple[str, str]] = set()
    next_due: float | None = None
    for entry in held:
        if entry.fields is None:
            steps.append(Step(entry, "gone"))
            continue
        lane = (entry.stream, entry.resource)
        if entry.resource and lane in waiting:
            continue
        if entry.deliveries > attempted.get(entry.id, 0):
            action: Action = "dead" if entry.deliveries > max_deliveries else "handle"
        else:
            due = retry_at.get(entry.id, 0.0)
            if due > now:
                waiting.add(lane)
                next_due = due if next_due is None else min(next_due, due)
                continue
            action = "redeliver"
        steps.append(Step(entry, action))
    return steps, next_due
