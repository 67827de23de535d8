"""The workers' pure core: change entries, lateness, flush times, fields per type."""

from __future__ import annotations

from datetime import UTC, datetime

from workers.model import (
    ClosedBatch,
    Fetched,
    build_change,
    flush_time,
    is_late,
    plan_by_connection,
)
from workers.resources import opt_fields, resource_path


def _batch(**overrides: str) -> ClosedBatch:
    raw = {
        "id": "42-1",
        "gid": "42",
        "rtype": "story",
        "count": "3",
        "actions": "added,changed",
        "fields": "text",
        "sources": "poller,webhook",
        "first_at": "2026-01-01T00:00:00.000Z",
        "last_at": "2026-01-01T00:00:02.000Z",
        "webhook_gid": "7",
        "target_id": "t",
        "parent": "",
        "deleted": "0",
        "late": "0",
    }
    raw.update(overrides)
    return ClosedBatch.from_hash(raw)


class TestBuildChange:
    def test_entry_has_every_contract_field(self) -> None:
        """DESIGN.md §2 Output: the keys, sources in contract order, counts as numbers."""
        change = build_change(_batch(), Fetched("ok", {"gid": "42", "target": {"gid": "9"}}))
        assert set(change) == {
            "resource",
            "parent",
            "status",
            "actions",
            "fields",
            "events",
            "first_event_at",
            "last_event_at",
            "sources",
            "webhook_gid",
            "data",
            "connection",
        }
        assert change["sources"] == ["webhook", "poller"]
        assert change["events"] == 3
        assert change["connection"] == "default"

    def test_entry_names_the_connection_that_fetched_it(self) -> None:
        """DESIGN.md §6.5: entries carry "connection": ID."""
        change = build_change(_batch(), Fetched("ok"), connection="c1a2b3")
        assert change["connection"] == "c1a2b3"


class TestPlanByConnection:
    def test_groups_by_the_connection_of_each_target(self) -> None:
        """Each batch goes with its target's connection; an unknown target is the default's;
        groups keep the batches' order."""
        one, two, three = (
            _batch(id="a-1", target_id="t1"),
            _batch(id="b-1", target_id="t2"),
            _batch(id="c-1", target_id=""),
        )
        four = _batch(id="d-1", target_id="t1")
        planned = plan_by_connection([one, two, three, four], {"t1": "cA", "t2": "default"})
        assert [(c, [b.batch_id for b in group]) for c, group in planned] == [
            ("cA", ["a-1", "d-1"]),
            ("default", ["b-1", "c-1"]),
        ]

    def test_story_parent_is_its_task_when_no_event_named_one(self) -> None:
        change = build_change(_batch(), Fetched("ok", {"gid": "42", "target": {"gid": "9"}}))
        assert change["parent"] == {"gid": "9", "resource_type": "task"}

    def test_event_parent_wins(self) -> None:
        batch = _batch(parent='{"gid": "5", "resource_type": "task"}')
        assert build_change(batch, Fetched("not_found"))["parent"]["gid"] == "5"


class TestTimes:
    def test_late_events(self) -> None:
        assert is_late("2026-01-01T00:00:00.000Z", "2026-01-01T00:11:00.000Z", 600)
        assert not is_late("2026-01-01T00:00:00.000Z", "2026-01-01T00:09:00.000Z", 600)

    def test_flush_time_is_never_early(self) -> None:
        """RQ's scheduler keeps whole seconds: round up."""
        assert flush_time(1_700_000_000_001) == datetime.fromtimestamp(1_700_000_001, tz=UTC)
        assert flush_time(1_700_000_000_000) == datetime.fromtimestamp(1_700_000_000, tz=UTC)


class TestResources:
    def test_paths_and_fields(self) -> None:
        assert resource_path("task", "1") == "/tasks/1"
        assert resource_path("webhook_thing", "1") is None
        assert "name" in opt_fields("task", {})
        assert opt_fields("story", {"story": "text, created_at"}) == ["text", "created_at"]

    def test_versioned_types_always_fetch_modified_at(self) -> None:
        """An override without modified_at still gets it for tasks and projects: entries
        remember it so that a resync never repeats a change (workers.versions)."""
        assert opt_fields("task", {"task": "name, notes"}) == ["name", "notes", "modified_at"]
        assert opt_fields("project", {"project": "modified_at,name"}) == ["modified_at", "name"]
