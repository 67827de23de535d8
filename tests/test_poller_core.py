"""The poller's pure decisions (workers.poller.plan) and health verdicts (asana_hooks.health).
No I/O."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asana_hooks.events import RESYNC_MARKER, Ref, parse_event
from asana_hooks.health import judge
from asana_hooks.registry import Registration, State
from asana_hooks.subscription import resync_from
from workers.poller.plan import (
    passes_filters,
    resync_event,
    story_events,
    subscriptions,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _registration(
    target_id: str = "t1",
    *,
    resource_gid: str = "100",
    state: State = "active",
    filters: list[dict[str, Any]] | None = None,
    webhook_gid: str | None = "900",
    last_heartbeat_at: str | None = None,
    problem: str | None = None,
) -> Registration:
    return Registration(
        target_id=target_id,
        resource_gid=resource_gid,
        resource_type="project",
        filters=filters or [],
        webhook_gid=webhook_gid,
        state=state,
        last_heartbeat_at=last_heartbeat_at,
        problem=problem,
    )


def _event(
    resource_type: str = "task", action: str = "changed", field: str | None = "name"
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "action": action,
        "created_at": "2025-03-01T11:00:00.000Z",
        "resource": {"gid": "5", "resource_type": resource_type},
        "user": {"gid": "7", "resource_type": "user"},
        "parent": None,
    }
    if field is not None:
        event["change"] = {"field": field, "action": "changed"}
    return event


class TestSubscriptions:
    """Registrations grouped into one Events API subscription per resource."""

    def test_groups_by_resource_and_skips_pending_and_deleted(self) -> None:
        """Pending and deleted registrations are neither polled nor watched."""
        found = subscriptions(
            [
                _registration("a", resource_gid="1"),
                _registration("b", resource_gid="1", state="failing"),
                _registration("c", resource_gid="2", state="pending"),
                _registration("d", resource_gid="3", state="deleted"),
                _registration("e", resource_gid="4", state="retired"),
            ]
        )
        assert [s.resource_gid for s in found] == ["1", "4"]
        assert [r.target_id for r in found[0].polled] == ["a", "b"]
        assert found[1].polled == ()
        assert [r.target_id for r in found[1].watched] == ["e"]

    def test_lead_prefers_an_active_webhook(self) -> None:
        """Poller events go out under a healthy webhook's target when there is one."""
        (subscription,) = subscriptions(
            [_registration("a", state="lost"), _registration("b", state="active")]
        )
        assert subscription.lead is not None
        assert subscription.lead.target_id == "b"

    def test_retired_only_resource_has_no_lead(self) -> None:
        """A resource only retired webhooks watch is checked for health but not polled."""
        (subscription,) = subscriptions([_registration("a", state="retired")])
        assert subscription.lead is None

    def test_wants_the_union_of_the_filters(self) -> None:
        """An event passes when any polled webhook's filters let it through."""
        (subscription,) = subscriptions(
            [
                _registration("a", filters=[{"resource_type": "story", "action": "added"}]),
                _registration("b", filters=[{"resource_type": "task", "fields": ["due_on"]}]),
                _registration("c", state="retired"),
            ]
        )
        assert subscription.wants(_event("story", "added", None))
        assert subscription.wants(_event("task", "changed", "due_on"))
        assert not subscription.wants(_event("task", "changed", "name"))
        assert subscription.wants(_event("task", "changed", None), ignore_fields=True)


class TestPassesFilters:
    """Asana's filter rule applied to Events API events."""

    def test_no_filters_pass_everything(self) -> None:
        """A webhook without filters gets every event on its resource."""
        assert passes_filters(_event(), [])

    @pytest.mark.parametrize(
        ("item", "expected"),
        [
            ({"resource_type": "task"}, True),
            ({"resource_type": "story"}, False),
            ({"resource_type": "task", "action": "changed"}, True),
            ({"resource_type": "task", "action": "added"}, False),
            ({"resource_type": "task", "fields": ["name", "notes"]}, True),
            ({"resource_type": "task", "fields": ["notes"]}, False),
            ({"resource_type": "task", "resource_subtype": "milestone"}, False),
        ],
    )
    def test_each_given_key_must_match(self, item: dict[str, Any], expected: bool) -> None:
        """resource_type, subtype, action and change.field are all compared when given."""
        assert passes_filters(_event(), [item]) is expected

    def test_fields_need_a_change(self) -> None:
        """A fields filter never passes an event without a change."""
        assert not passes_filters(_event(field=None), [{"fields": ["name"]}])


class TestResyncEvent:
    """Synthetic events a resync feeds into the shared pipeline."""

    def test_parses_as_a_changed_event_with_a_marker(self) -> None:
        """The synthetic event is valid input for process_delivery and says where it came from."""
        raw = resync_event(
            {"gid": "42", "resource_type": "task", "resource_subtype": "default_task", "name": "x"},
            modified_at="2025-03-01T10:00:00.000Z",
            now=NOW,
        )
        event = parse_event(raw)
        assert event.resource.gid == "42"
        assert event.action == "changed"
        assert event.created_at == "2025-03-01T10:00:00.000Z"
        assert raw[RESYNC_MARKER] is True

    def test_same_modification_same_fingerprint(self) -> None:
        """A task crawled twice without changing in between is deduplicated."""
        task = {"gid": "42", "resource_type": "task"}
        first = resync_event(task, modified_at="2025-03-01T10:00:00.000Z", now=NOW)
        again = resync_event(task, modified_at="2025-03-01T10:00:00Z", now=NOW + timedelta(1))
        assert parse_event(first).fingerprint == parse_event(again).fingerprint

    def test_without_modified_at_uses_now(self) -> None:
        """The resource itself (no modified_at known) is stamped with the crawl's time."""
        raw = resync_event({"gid": "1", "resource_type": "project"}, modified_at=None, now=NOW)
        assert raw["created_at"] == "2025-03-01T12:00:00.000Z"

    @given(st.text(alphabet="0123456789", min_size=1, max_size=20))
    def test_any_gid_round_trips(self, gid: str) -> None:
        """Whatever gid Asana gives, the synthetic event parses back to it."""
        raw = resync_event({"gid": gid}, modified_at=None, now=NOW)
        assert parse_event(raw).resource.gid == gid


class TestStoryEvents:
    """Stories a resync finds on a modified task, fed as the webhook would have sent them."""

    STORIES: tuple[dict[str, Any], ...] = (
        {"gid": "7", "created_at": "2025-03-01T09:00:00.000Z", "resource_subtype": "comment_added"},
        {
            "gid": "8",
            "created_at": "2025-03-01T11:00:00Z",
            "resource_subtype": "comment_added",
            "created_by": {"gid": "5", "resource_type": "user"},
        },
        {"gid": "9", "created_at": "not a time"},
    )

    def test_only_stories_made_since_the_gap_began(self) -> None:
        """Older stories and ones without a readable created_at are left out."""
        since = NOW - timedelta(hours=2)
        events = story_events(self.STORIES, task_gid="42", since=since)
        assert [(e["resource"]["gid"], e["action"]) for e in events] == [("8", "added")]
        event = parse_event(events[0])
        assert (event.parent, event.user_gid, event.resource_subtype) == (
            Ref("42", "task"),
            "5",
            "comment_added",
        )

    def test_same_fingerprint_as_the_delivered_event(self) -> None:
        """The webhook's event for the story (its own created_at) is not emitted twice."""
        found = story_events(self.STORIES, task_gid="42", since=NOW - timedelta(days=1))[1]
        delivered = {
            "action": "added",
            "created_at": "2025-03-01T11:00:00.731Z",
            "resource": {"gid": "8", "resource_type": "story", "resource_subtype": "comment_added"},
            "parent": {"gid": "42", "resource_type": "task"},
            "user": {"gid": "5", "resource_type": "user"},
        }
        assert parse_event(found).fingerprint == parse_event(delivered).fingerprint

    @pytest.mark.parametrize(
        ("filters", "wanted"),
        [
            ([], True),
            ([{"resource_type": "story", "action": "added"}], True),
            ([{"action": "added"}], True),
            ([{"resource_type": "task"}], False),
            ([{"resource_type": "story", "action": "removed"}], False),
        ],
    )
    def test_listing_stories_only_when_a_filter_lets_them_through(
        self, filters: list[dict[str, Any]], wanted: bool
    ) -> None:
        subscription = subscriptions([_registration(filters=filters)])[0]
        assert subscription.wants_stories is wanted


class TestResyncFrom:
    """Where a resync crawl begins when a resource has no valid sync token."""

    MARGIN = timedelta(seconds=60)

    def test_last_good_poll_less_margin(self) -> None:
        """Polled since the webhook was made: the crawl starts a margin before the last good
        poll, the last moment the Events API is known to have covered."""
        created = ["2025-03-01T08:00:00.000Z"]
        assert resync_from(created, NOW, margin=self.MARGIN) == NOW - self.MARGIN

    def test_never_polled_means_from_the_webhooks_creation(self) -> None:
        """No good poll yet (a token that could not be taken, a flushed Redis): everything
        since the webhook was made is crawled, never just a fresh token taken."""
        assert resync_from(["2025-03-01T11:00:00.000Z"], None, margin=self.MARGIN) == (
            NOW - timedelta(hours=1) - self.MARGIN
        )

    def test_the_later_of_creation_and_last_good_poll(self) -> None:
        """A last good poll older than the registration (a restored snapshot) does not pull
        the crawl back before the registration existed; the earliest registration counts."""
        created = ["2025-03-01T11:30:00.000Z", "2025-03-01T11:00:00.000Z", None, "garbage"]
        old_poll = NOW - timedelta(hours=5)
        assert resync_from(created, old_poll, margin=timedelta(0)) == NOW - timedelta(hours=1)

    def test_nothing_known_means_no_start(self) -> None:
        """Without any time to start from there is no crawl to plan."""
        assert resync_from([None, ""], None, margin=self.MARGIN) is None


class TestJudge:
    """Health verdicts from Asana's webhook object."""

    def test_healthy(self) -> None:
        """No retries, no deletion planned, a recent heartbeat: active, quietly."""
        verdict = judge(
            _registration(last_heartbeat_at="2025-03-01T11:00:00.000Z"),
            {"active": True, "delivery_retry_count": 0, "failure_deletion_timestamp": None},
            now=NOW,
            heartbeat_timeout=9 * 3600,
        )
        assert (verdict.state, verdict.problem, verdict.level) == ("active", None, logging.DEBUG)

    def test_failing_says_when_asana_deletes_it(self) -> None:
        """failure_deletion_timestamp makes it failing, with the time left in the problem."""
        verdict = judge(
            _registration(),
            {
                "active": True,
                "delivery_retry_count": 4,
                "last_failure_at": "2025-03-01T11:50:00.000Z",
                "last_failure_content": "503 Service Unavailable",
                "failure_deletion_timestamp": "2025-03-01T17:00:00.000Z",
            },
            now=NOW,
            heartbeat_timeout=9 * 3600,
        )
        assert verdict.state == "failing"
        assert verdict.level == logging.WARNING
        assert verdict.problem is not None
        assert "4 retries" in verdict.problem
        assert "503 Service Unavailable" in verdict.problem
        assert "2025-03-01T17:00:00.000Z (in 5.0 h)" in verdict.problem

    def test_retries_alone_are_failing(self) -> None:
        """delivery_retry_count > 0 is failing even before a deletion is planned."""
        verdict = judge(
            _registration(), {"delivery_retry_count": 1}, now=NOW, heartbeat_timeout=9 * 3600
        )
        assert verdict.state == "failing"

    def test_inactive_is_failing(self) -> None:
        """Asana's active=false means it sends nothing."""
        verdict = judge(_registration(), {"active": False}, now=NOW, heartbeat_timeout=9 * 3600)
        assert verdict.state == "failing"

    def test_no_heartbeat_is_failing(self) -> None:
        """No heartbeat for longer than the timeout is failing."""
        verdict = judge(
            _registration(last_heartbeat_at="2025-03-01T02:00:00.000Z"),
            {"active": True, "created_at": "2025-02-01T00:00:00.000Z"},
            now=NOW,
            heartbeat_timeout=9 * 3600,
        )
        assert verdict.state == "failing"
        assert verdict.problem is not None
        assert "no heartbeat for 10.0 h" in verdict.problem

    def test_new_webhook_counts_from_its_creation(self) -> None:
        """A re-created webhook is not silent just because the old one was."""
        verdict = judge(
            _registration(last_heartbeat_at="2025-02-01T00:00:00.000Z", state="lost"),
            {"active": True, "created_at": "2025-03-01T11:59:00.000Z"},
            now=NOW,
            heartbeat_timeout=9 * 3600,
        )
        assert (verdict.state, verdict.level) == ("active", logging.INFO)

    def test_404_is_lost(self) -> None:
        """Asana no longer has it."""
        verdict = judge(_registration(), None, now=NOW, heartbeat_timeout=9 * 3600)
        assert verdict.state == "lost"
        assert verdict.level == logging.WARNING

    def test_retired_and_gone_is_deleted(self) -> None:
        """A retired webhook Asana dropped becomes deleted."""
        retired = _registration(state="retired")
        assert judge(retired, None, now=NOW, heartbeat_timeout=1).state == "deleted"
        assert judge(retired, {"active": True}, now=NOW, heartbeat_timeout=1).state == "retired"

    def test_recovered_is_said(self) -> None:
        """Back to active from failing is logged at INFO and clears the problem."""
        verdict = judge(
            _registration(state="failing", problem="old"),
            {"active": True, "delivery_retry_count": 0},
            now=NOW,
            heartbeat_timeout=9 * 3600,
        )
        assert (verdict.state, verdict.problem, verdict.level) == ("active", None, logging.INFO)
