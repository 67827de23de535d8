"""Lost and doubled changes: the stream compared with what the fake Asana did. Pure, no I/O.

What the product promises is "every change, once, with the fresh resource attached". How
events fall into batches (a (resource, batch) pair) depends on timing, so chaos scenarios
compare at the level of that promise instead, with the fake's world as ground truth:

- **expected**: every resource the fake changed in the watched scope (one ``Expected`` per
  resource gid: how many distinct events the fake generated for it, and its final state:
  ``status`` ``ok`` or ``deleted`` and field values such as the last name it was given).
- **emitted**: an expected resource whose *last* entry in the stream reflects that final
  state: the same ``status`` and, for ``ok``, ``data`` holding every expected field value. A
  deleted resource may end on ``not_found`` once one of its entries says ``deleted``: an
  older event that reaches us late (a killed job's retry, the poller) opens a batch after
  the deletion, and its GET answers 404.
- **lost** = expected - emitted: no entry at all, or the last entry shows an older state.
- **doubled**: an expected resource for which some event is represented twice, seen two ways:
  the ``events`` counted across its entries exceed the events the fake generated for it
  (plus ``extra_events``, the synthetic events a resync crawl may add: one per crawled
  resource, see workers.poller.resync), or two of its entries repeat the same
  ``first_event_at``/``last_event_at`` window.
- **unexpected**: entries for resources the fake did not change (a resync rehydrates the
  watched project itself); reported, not counted as lost or doubled.

``events_short`` (events generated, less events counted, where positive) is informational:
a delivery Asana never sends and a 412 gap are recovered by resource, not by event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Expected", "Verdict", "compare"]


@dataclass(frozen=True)
class Expected:
    """One resource the fake changed: its event count and final state."""

    gid: str
    events: int
    status: str = "ok"
    fields: Mapping[str, Any] = field(default_factory=dict)
    extra_events: int = 0


@dataclass(frozen=True)
class Verdict:
    """The comparison of one scenario's stream with the fake's world."""

    expected: int
    emitted: int
    entries: int
    lost: dict[str, str]
    """gid -> why (no entry, or what the last entry shows instead)."""
    doubled: dict[str, str]
    """gid -> why (events over-counted, or a repeated window)."""
    unexpected: int
    events_short: int

    @property
    def ok(self) -> bool:
        return not self.lost and not self.doubled


def compare(expected: Mapping[str, Expected], entries: Sequence[Mapping[str, Any]]) -> Verdict:
    """Compare the stream's ``change`` objects (in stream order) with the expected resources."""
    by_gid: dict[str, list[Mapping[str, Any]]] = {}
    unexpected = 0
    for entry in entries:
        gid = str(entry["resource"]["gid"])
        if gid in expected:
            by_gid.setdefault(gid, []).append(entry)
        else:
            unexpected += 1
    lost: dict[str, str] = {}
    doubled: dict[str, str] = {}
    short = 0
    for gid, want in expected.items():
        found = by_gid.get(gid, [])
        problem = _stale(want, found) if found else "no entry"
        if problem:
            lost[gid] = problem
        counted = sum(int(entry.get("events", 0)) for entry in found)
        short += max(0, want.events - counted)
        repeat = _repeated_window(found)
        if counted > want.events + want.extra_events:
            doubled[gid] = (
                f"{counted} events counted in {len(found)} entries, "
                f"{want.events} generated (+{want.extra_events} allowed)"
            )
        elif repeat:
            doubled[gid] = f"window {repeat} emitted {len(found)} times"
    return Verdict(
        expected=len(expected),
        emitted=len(expected) - len(lost),
        entries=len(entries),
        lost=lost,
        doubled=doubled,
        unexpected=unexpected,
        events_short=short,
    )


def _stale(want: Expected, found: Sequence[Mapping[str, Any]]) -> str:
    """Why the last entry does not show the final state ('' when it does)."""
    last = found[-1]
    status = last.get("status")
    if want.status == "deleted" and status == "not_found":
        if any(entry.get("status") == "deleted" for entry in found):
            return ""
        return "last entry has status 'not_found' and no entry says 'deleted'"
    if status != want.status:
        return f"last entry has status {status!r}, expected {want.status!r}"
    if want.status != "ok":
        return ""
    data = last.get("data") or {}
    for name, value in want.fields.items():
        if data.get(name) != value:
            return f"last entry has {name}={data.get(name)!r}, expected {value!r}"
    return ""


def _repeated_window(found: Sequence[Mapping[str, Any]]) -> str:
    windows = Counter((e.get("first_event_at"), e.get("last_event_at")) for e in found)
    repeated = [window for window, count in windows.items() if count > 1]
    return f"{repeated[0][0]}..{repeated[0][1]}" if repeated else ""
