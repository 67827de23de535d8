"""The event model: any JSON in gives a clear error or a fingerprint; both forms agree."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asana_hooks.events import (
    Event,
    MalformedEvent,
    delivery_events,
    parse_event,
    parse_events,
)

EXAMPLES = int(os.environ.get("HOOKS_FUZZ_EXAMPLES", "200"))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)
gids = st.text(alphabet="0123456789", min_size=1, max_size=16)
resource_types = st.sampled_from(["task", "story", "project", "section", "user", "tag"])
timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z")


@st.composite
def asana_events(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """One event in its webhook form and in its Events API form."""
    resource_type = draw(resource_types)
    resource = {"gid": draw(gids), "resource_type": resource_type}
    user = draw(st.none() | gids)
    parent = draw(st.none() | st.fixed_dictionaries({"gid": gids, "resource_type": resource_types}))
    action = draw(st.sampled_from(["changed", "added", "removed", "deleted", "undeleted"]))
    webhook: dict[str, Any] = {
        "action": action,
        "created_at": draw(timestamps),
        "resource": resource | {"resource_subtype": "default_task"},
        "user": {"gid": user, "resource_type": "user"} if user else None,
        "parent": parent,
    }
    events_api = json.loads(json.dumps(webhook))
    events_api["resource"] = resource | {"name": draw(st.text(max_size=20))}
    events_api["type"] = resource_type
    if user:
        events_api["user"]["name"] = draw(st.text(max_size=20))
    if parent:
        events_api["parent"] = parent | {"name": "Launch"}
    if action == "changed":
        field = draw(st.sampled_from(["name", "assignee", "custom_fields", "followers"]))
        change_action = draw(st.sampled_from(["changed", "added", "removed"]))
        value_key = {"changed": "new_value", "added": "added_value", "removed": "removed_value"}
        value = draw(
            st.none() | st.fixed_dictionaries({"gid": gids, "resource_type": resource_types})
        )
        webhook["change"] = {"field": field, "action": change_action}
        events_api["change"] = {"field": field, "action": change_action}
        if value is not None:
            webhook["change"][value_key[change_action]] = value
            events_api["change"][value_key[change_action]] = value | {"name": "compact"}
    return webhook, events_api


class TestFingerprint:
    @settings(max_examples=EXAMPLES)
    @given(asana_events())
    def test_webhook_and_events_api_forms_agree(
        self, forms: tuple[dict[str, Any], dict[str, Any]]
    ) -> None:
        """The same event, seen through a webhook or the Events API, has one fingerprint."""
        webhook, events_api = forms
        assert parse_event(webhook).fingerprint == parse_event(events_api).fingerprint

    @settings(max_examples=EXAMPLES)
    @given(asana_events(), asana_events())
    def test_different_events_differ(
        self,
        first: tuple[dict[str, Any], dict[str, Any]],
        second: tuple[dict[str, Any], dict[str, Any]],
    ) -> None:
        """Two events that differ in what identifies them get different fingerprints.

        Gids are unique across Asana, so a gid alone names a resource, a parent or a value.
        """
        a, b = parse_event(first[0]), parse_event(second[0])
        if _identity(a) != _identity(b):
            assert a.fingerprint != b.fingerprint

    @settings(max_examples=EXAMPLES)
    @given(asana_events())
    def test_round_trip(self, forms: tuple[dict[str, Any], dict[str, Any]]) -> None:
        """to_dict() reads back as the same event."""
        event = parse_event(forms[1])
        assert Event.from_dict(event.to_dict()) == event

    @pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
    def test_timestamps_at_the_edge_of_time_are_errors(self, stamp: str) -> None:
        """Converting to UTC would overflow: a clear error, not a crash."""
        event = {"action": "changed", "created_at": stamp}
        with pytest.raises(MalformedEvent, match="out of range"):
            parse_event(event | {"resource": {"gid": "1", "resource_type": "task"}})

    def test_timestamp_forms_are_normalised(self) -> None:
        """Z, +00:00 and missing milliseconds name the same instant."""
        base = {"action": "changed", "resource": {"gid": "1", "resource_type": "task"}}
        forms = [
            "2026-11-23T10:00:00.000Z",
            "2026-11-23T10:00:00+00:00",
            "2026-11-23T11:00:00+01:00",
        ]
        prints = {parse_event(base | {"created_at": form}).fingerprint for form in forms}
        assert len(prints) == 1


def _identity(event: Event) -> tuple[object, ...]:
    if event.action == "added" and event.resource.resource_type == "story":
        return (event.resource.gid, event.action)  # a story is added once
    parent = event.parent.gid if event.parent else None
    return (
        event.resource.gid,
        event.action,
        event.created_at,
        event.user_gid,
        parent,
        event.change_field,
        event.change_action,
        event.value_gids,
    )


class TestAnyInput:
    @settings(max_examples=EXAMPLES)
    @given(json_values)
    def test_any_json_gives_an_event_or_a_clear_error(self, value: Any) -> None:
        """Never a crash: an Event with a 32-hex fingerprint, or MalformedEvent with a reason."""
        for parse in (parse_event, parse_events, delivery_events):
            try:
                result = parse(value)
            except MalformedEvent as exc:
                problem = exc.problem
                assert problem
                continue
            if isinstance(result, Event):
                assert len(result.fingerprint) == 32

    @pytest.mark.parametrize(
        ("event", "problem"),
        [
            ({}, "resource must be an object"),
            ({"resource": {"gid": "1"}}, "resource.resource_type"),
            ({"resource": {"gid": "", "resource_type": "task"}}, "resource.gid"),
            ({"resource": {"gid": "1", "resource_type": "task"}}, "action"),
            (
                {"resource": {"gid": "1", "resource_type": "task"}, "action": "changed"},
                "created_at",
            ),
            (
                {
                    "resource": {"gid": "1", "resource_type": "task"},
                    "action": "changed",
                    "created_at": "soon",
                },
                "created_at",
            ),
        ],
    )
    def test_errors_say_what_is_wrong(self, event: dict[str, Any], problem: str) -> None:
        with pytest.raises(MalformedEvent, match=problem):
            parse_event(event)

    def test_error_names_the_event_index(self) -> None:
        good = {
            "resource": {"gid": "1", "resource_type": "task"},
            "action": "added",
            "created_at": "2026-11-23T10:00:00.000Z",
        }
        with pytest.raises(MalformedEvent, match=r"events\[1\]"):
            parse_events({"events": [good, {"action": "x"}]})


def old_form(value: Any) -> Any:
    """Asana's older spelling of a reference, still in its docs and in others' fixtures: a
    numeric ``id`` and ``type`` instead of ``gid`` and ``resource_type``."""
    if isinstance(value, list):
        return [old_form(item) for item in value]
    if not isinstance(value, dict):
        return value
    changed = {key: old_form(item) for key, item in value.items()}
    gid = changed.get("gid")
    if isinstance(gid, str) and gid.isdigit() and str(int(gid)) == gid:
        changed["id"] = int(changed.pop("gid"))
    if "resource_type" in changed:
        changed["type"] = changed.pop("resource_type")
    return changed


KNOWN_KEYS = frozenset({"gid", "id", "resource_type", "type", "action", "field", "change"})
new_keys = st.text(max_size=8).filter(lambda key: key not in KNOWN_KEYS | {"created_at"})
json_objects: st.SearchStrategy[dict[str, Any]] = st.dictionaries(new_keys, json_values, max_size=3)


class TestDocumentedShapes:
    """Every shape Asana documents is read; where its meaning is clear, liberally."""

    @settings(max_examples=EXAMPLES)
    @given(asana_events(), st.booleans())
    def test_the_old_numeric_id_form_is_the_same_event(
        self, forms: tuple[dict[str, Any], dict[str, Any]], events_api: bool
    ) -> None:
        event = forms[1] if events_api else forms[0]
        assert parse_event(old_form(event)).fingerprint == parse_event(event).fingerprint

    @settings(max_examples=EXAMPLES)
    @given(asana_events())
    def test_a_change_without_its_action_is_a_change_of_its_field(
        self, forms: tuple[dict[str, Any], dict[str, Any]]
    ) -> None:
        webhook = forms[0]
        if "change" not in webhook:
            return
        webhook["change"].pop("action")
        event = parse_event(webhook)
        assert event.change_field == webhook["change"]["field"]
        assert event.change_action is None
        assert Event.from_dict(event.to_dict()) == event

    @settings(max_examples=EXAMPLES)
    @given(asana_events(), json_objects, json_objects)
    def test_keys_we_do_not_know_change_nothing(
        self,
        forms: tuple[dict[str, Any], dict[str, Any]],
        top: dict[str, Any],
        nested: dict[str, Any],
    ) -> None:
        """Asana adds fields over time: new keys, at the top or inside a reference."""
        webhook = forms[0]
        grown = {**top, **webhook, "resource": {**nested, **webhook["resource"]}}
        assert parse_event(grown).fingerprint == parse_event(webhook).fingerprint

    @pytest.mark.parametrize(
        ("change", "problem"),
        [
            ({"action": "changed"}, "change.field"),
            ("name", "change must be an object"),
            ({"field": "name", "action": 3}, "change.action"),
        ],
    )
    def test_a_change_without_meaning_has_a_reason(self, change: Any, problem: str) -> None:
        event = {
            "action": "changed",
            "created_at": "2026-12-04T10:00:00.000Z",
            "resource": {"gid": "1", "resource_type": "task"},
            "change": change,
        }
        with pytest.raises(MalformedEvent, match=problem):
            parse_event(event)
