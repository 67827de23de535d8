"""The watch's decisions, with no I/O: which projects, Asana's caps, refused filters, state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from asana_hooks.watch_plan import (
    ScopeProject,
    cap_problem,
    joined_since,
    plan,
    refused_filter,
    wanted,
    watch_state,
)

A, B, C, D = (ScopeProject(gid) for gid in "1234")
OLD = ScopeProject("9", archived=True)


class TestPlan:
    def test_archived_projects_only_when_asked(self) -> None:
        assert set(wanted([A, OLD], include_archived=False)) == {"1"}
        assert set(wanted([A, OLD], include_archived=True)) == {"1", "9"}

    def test_new_pending_and_deleted_need_a_webhook_and_leavers_go(self) -> None:
        held = {"1": "active", "2": "pending", "3": "deleted", "5": "active", "6": None}
        todo = plan(wanted([A, B, C, D], include_archived=False), held)
        assert [p.gid for p in todo.create] == ["2", "3", "4"]
        assert todo.remove == ("5", "6")
        assert todo.keep == 1

    def test_lost_and_retired_webhooks_are_left_to_the_poller_and_the_operator(self) -> None:
        todo = plan(wanted([A, B], include_archived=False), {"1": "lost", "2": "retired"})
        assert todo.create == ()
        assert todo.remove == ()


class TestCaps:
    def test_under_both_caps(self) -> None:
        assert cap_problem(["1"] * 3, ["1", "2"], per_resource=4, per_user_app=10) is None

    def test_the_per_user_cap_counts_every_webhook_of_the_token(self) -> None:
        problem = cap_problem(["1"] * 8, ["2", "3", "4"], per_resource=100, per_user_app=10)
        assert problem is not None
        assert "3 new webhooks" in problem
        assert "already holds 8" in problem
        assert "per user per app" in problem

    def test_the_per_resource_cap(self) -> None:
        problem = cap_problem(["7"] * 4, ["7"], per_resource=4, per_user_app=100)
        assert problem is not None
        assert problem.startswith("resource 7 already has 4 webhooks")


class TestFilters:
    def test_project_webhooks_refuse_higher_level_types(self) -> None:
        refused = refused_filter([{"resource_type": "task"}, {"resource_type": "team"}])
        assert refused is not None
        assert "team" in refused
        assert refused_filter([{"resource_type": "task", "action": "changed"}]) is None


class TestJoinedSince:
    NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)
    MARGIN = timedelta(seconds=60)

    def test_a_new_project_from_its_creation(self) -> None:
        created = ScopeProject("1", created_at="2026-12-04T12:30:00.000Z")
        since = joined_since(created, self.NOW, margin=self.MARGIN)
        assert since == datetime(2026, 12, 4, 12, 29, tzinfo=UTC)

    def test_an_old_project_moved_in_from_the_last_reconciliation(self) -> None:
        moved = ScopeProject("1", created_at="2020-01-01T00:00:00.000Z")
        assert joined_since(moved, self.NOW, margin=self.MARGIN) == self.NOW - self.MARGIN

    def test_nothing_before_the_first_reconciliation(self) -> None:
        assert joined_since(A, None, margin=self.MARGIN) is None


class TestState:
    def test_states(self) -> None:
        def state(projects: list[str | None], scope: str | None = "active") -> str:
            return watch_state(removed=False, project_states=projects, scope_state=scope)

        assert state(["active", "active"]) == "active"
        assert state(["active", "pending"]) == "syncing"
        assert state(["active", None]) == "syncing"
        assert state(["active"], scope=None) == "syncing"
        assert state(["active", "failing"]) == "failing"
        assert state(["lost"]) == "failing"
        assert state(["active"], scope="lost") == "failing"
        assert watch_state(removed=True, project_states=[], scope_state=None) == "removed"
