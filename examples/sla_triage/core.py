"""The integration's logic: a change in, the Asana writes and the state out; the SLA check.
Pure: no I/O, no clock (``now`` is an argument).

Every decision converges on a wanted state, judged from the entry's ``data`` (the task as
GET returned it after the change) and from ``TaskState`` (what this integration already did),
so handling an entry twice, or the entry our own write caused, asks for nothing new: that is
what makes at-least-once delivery harmless and keeps our writes from looping.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from examples.sla_triage.config import Config, Route

MARKER = "sla-triage"
"""Tags our warning comments: ``[sla-triage due YYYY-MM-DD]`` (one warning per due date)."""


@dataclass(frozen=True)
class TaskState:
    """What the integration knows of one task and did to it (kept in Redis, see ``store``)."""

    combined: bool = False
    """Added to the combined project (or found there)."""
    priority: str | None = None
    """The priority whose due date was set."""
    routed: bool = False
    """Assignee and followers given by a keyword in the notes."""
    triaged: bool = False
    """Its priority (last seen) is one of ``sla_days``."""
    completed: bool = False
    due_on: str | None = None
    """The due date last seen (or set)."""
    responded: bool = False
    """Someone other than the integration commented."""
    warned: str | None = None
    """The due date an SLA warning was posted for."""
    seen_id: str | None = None
    """The stream id of the newest task entry applied: an entry no newer is a redelivery
    or a replay, whose data may predate what we know."""

    def to_hash(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            out[item.name] = ("1" if value else "") if isinstance(value, bool) else value or ""
        return out

    @classmethod
    def from_hash(cls, raw: dict[str, str]) -> TaskState:
        values: dict[str, Any] = {}
        for item in fields(cls):
            value = raw.get(item.name) or None
            values[item.name] = value == "1" if item.type == "bool" else value
        return cls(**values)

    def deadline(self) -> datetime | None:
        """When its SLA is missed, if it still needs a warning; else None."""
        waiting = self.triaged and not self.completed and not self.responded
        if self.due_on and waiting and self.warned != self.due_on:
            return sla_deadline(self.due_on)
        return None


@dataclass(frozen=True)
class Write:
    """One Asana write: ``method path`` with the JSON body ``{"data": data}``."""

    method: Literal["POST", "PUT"]
    path: str
    data: dict[str, Any]


def add_to_project(task: str, project: str) -> Write:
    return Write("POST", f"/tasks/{task}/addProject", {"project": project})


def update_task(task: str, fields: dict[str, Any]) -> Write:
    return Write("PUT", f"/tasks/{task}", fields)


def add_followers(task: str, users: list[str]) -> Write:
    return Write("POST", f"/tasks/{task}/addFollowers", {"followers": users})


def comment(task: str, text: str) -> Write:
    return Write("POST", f"/tasks/{task}/stories", {"text": text})


@dataclass(frozen=True)
class Plan:
    """What to do for one change: make ``writes`` in order, then keep ``state``; track the
    task's SLA ``deadline`` (None: the task needs no warning, stop tracking it)."""

    task: str
    writes: tuple[Write, ...]
    state: TaskState
    deadline: datetime | None


def task_of(change: dict[str, Any]) -> str | None:
    """The task a change is about: the task itself, or a story's task (its parent)."""
    resource = change.get("resource") or {}
    if resource.get("resource_type") == "task":
        return str(resource["gid"])
    if resource.get("resource_type") == "story":
        parent = change.get("parent") or (change.get("data") or {}).get("target") or {}
        return str(parent["gid"]) if parent.get("gid") else None
    return None


def plan_change(
    change: dict[str, Any], state: TaskState, *, config: Config, me: str, now: datetime
) -> Plan | None:
    """The plan for one stream entry, or None when it does not concern the integration.

    ``me``: the integration's own user (the token's); ``now`` dates a triage when the
    entry has no ``last_event_at``.
    """
    resource_type = (change.get("resource") or {}).get("resource_type")
    if resource_type == "story":
        return _plan_story(change, state, me=me)
    if resource_type == "task":
        return _plan_task(change, state, config=config, now=now)
    return None


def _plan_story(change: dict[str, Any], state: TaskState, *, me: str) -> Plan | None:
    """A comment from anyone but us is a response: the task no longer needs a warning."""
    data = change.get("data") or {}
    task = task_of(change)
    author = (data.get("created_by") or {}).get("gid")
    if change.get("status") != "ok" or task is None or not author or author == me:
        return None
    if data.get("resource_subtype") != "comment_added":
        return None
    state = replace(state, responded=True)
    return Plan(task, (), state, state.deadline())


def _plan_task(
    change: dict[str, Any], state: TaskState, *, config: Config, now: datetime
) -> Plan | None:
    gid = str(change["resource"]["gid"])
    if change.get("status") in ("deleted", "not_found"):
        return Plan(gid, (), state, None)
    data = change.get("data")
    if change.get("status") != "ok" or not data or not _in_intake(change, data, config):
        return None
    entry_id = str(change.get("id") or "") or None
    if _not_newer(entry_id, state.seen_id):
        return Plan(gid, (), state, state.deadline())
    writes: list[Write] = []
    if config.combined_project not in _projects(data) and not state.combined:
        writes.append(add_to_project(gid, config.combined_project))
    state = replace(state, combined=True)
    changes: dict[str, Any] = {}
    followers: list[str] = []
    priority = custom_value(data, config.priority_field)
    triaged = priority is not None and priority in config.sla_days
    due_on: str | None = data.get("due_on")
    if priority is not None and triaged and priority != state.priority:
        day = _day(change.get("last_event_at")) or now.astimezone(UTC).date()
        wanted = (day + timedelta(days=config.sla_days[priority])).isoformat()
        if due_on != wanted:
            changes["due_on"] = wanted
        due_on = wanted
        state = replace(state, priority=priority)
    if triaged and not state.routed:
        notes = str(data.get("notes") or "")
        matched = [route for route in config.routes if route.matches(notes)]
        followers, assignee = _routing(data, matched)
        if assignee and not data.get("assignee"):
            changes["assignee"] = assignee
        state = replace(state, routed=bool(matched))
    if changes:
        writes.append(update_task(gid, changes))
    if followers:
        writes.append(add_followers(gid, followers))
    state = replace(
        state,
        triaged=triaged,
        completed=bool(data.get("completed")),
        due_on=due_on,
        seen_id=entry_id or state.seen_id,
    )
    return Plan(gid, tuple(writes), state, state.deadline())


def _not_newer(entry_id: str | None, applied: str | None) -> bool:
    """An entry no newer than the last one applied (a redelivery after its state was kept,
    or a replay): nothing to do, and its data must not overwrite what we know."""
    entry, last = _stream_id(entry_id), _stream_id(applied)
    return entry is not None and last is not None and entry <= last


def _stream_id(value: str | None) -> tuple[int, int] | None:
    """``"1733571234567-3"`` -> (1733571234567, 3), to compare entry ids."""
    millis, _, sequence = (value or "").partition("-")
    if not millis.isdigit() or not (sequence or "0").isdigit():
        return None
    return int(millis), int(sequence or "0")


def _in_intake(change: dict[str, Any], data: dict[str, Any], config: Config) -> bool:
    """In an intake project now (its memberships); the entry's parent when the data does not
    carry memberships (an opt_fields override that leaves them out)."""
    if "memberships" in data:
        return bool(_projects(data) & config.intake_projects)
    parent = change.get("parent") or {}
    return parent.get("resource_type") == "project" and parent.get("gid") in config.intake_projects


def _projects(data: dict[str, Any]) -> set[str]:
    return {
        str(m["project"]["gid"])
        for m in data.get("memberships") or []
        if isinstance(m, dict) and isinstance(m.get("project"), dict)
    }


def custom_value(data: dict[str, Any], name: str) -> str | None:
    """The ``display_value`` of the custom field called ``name`` (None when unset)."""
    for field in data.get("custom_fields") or []:
        if isinstance(field, dict) and field.get("name") == name:
            value = field.get("display_value")
            return str(value) if value is not None else None
    return None


def _routing(data: dict[str, Any], matched: list[Route]) -> tuple[list[str], str | None]:
    """The followers of every matched route (less those already following), and the first
    matched route's assignee (a task whose notes mention no keyword is left alone)."""
    assignee = next((route.assignee for route in matched if route.assignee), None)
    following = {str(f.get("gid")) for f in data.get("followers") or [] if isinstance(f, dict)}
    wanted = dict.fromkeys(user for route in matched for user in route.followers)
    return [user for user in wanted if user not in following], assignee


def _moment(timestamp: Any) -> datetime | None:
    if not isinstance(timestamp, str) or not timestamp:
        return None
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def _day(timestamp: Any) -> date | None:
    moment = _moment(timestamp)
    return moment.date() if moment else None


# The SLA sweep ------------------------------------------------------------------------------


def sla_deadline(due_on: str) -> datetime:
    """A task due on a day misses its SLA at the end of that day (UTC)."""
    return datetime.combine(date.fromisoformat(due_on) + timedelta(days=1), time(), UTC)


def warn_from(now: datetime, config: Config) -> datetime:
    """Tasks whose deadline is at or before this moment are due a warning."""
    return now + config.warn_before


def marker(due_on: str) -> str:
    return f"[{MARKER} due {due_on}]"


def warning_text(due_on: str) -> str:
    return (
        f"This task is due on {due_on} and has had no response yet: "
        f"it is about to miss its SLA. {marker(due_on)}"
    )


Check = Literal["warn", "warned", "responded"]


def check_stories(stories: list[dict[str, Any]], *, me: str, due_on: str) -> Check:
    """From the task's stories: "warned" when our warning for this due date is there (posted
    by an earlier sweep that crashed before its bookkeeping), "responded" when someone else
    commented, else "warn"."""
    found: Check = "warn"
    for story in stories:
        if story.get("resource_subtype") != "comment_added":
            continue
        author = (story.get("created_by") or {}).get("gid")
        if author == me and marker(due_on) in str(story.get("text") or ""):
            return "warned"
        if author and author != me:
            found = "responded"
    return found
