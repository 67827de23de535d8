"""Filter SPECs: parsing and Asana's rules, checked before any call to Asana."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asana_hooks.filters import (
    ACTIONS,
    HIGHER_LEVEL_ALLOWED,
    FilterSpecError,
    format_filter,
    parse_spec,
    parse_specs,
)


class TestParseSpec:
    """One SPEC becomes one filter object of POST /webhooks."""

    @pytest.mark.parametrize(
        ("spec", "expected"),
        [
            ("task", {"resource_type": "task"}),
            ("story:added", {"resource_type": "story", "action": "added"}),
            (
                "task:changed:name,notes",
                {"resource_type": "task", "action": "changed", "fields": ["name", "notes"]},
            ),
            (
                "task.milestone:changed:due_on",
                {
                    "resource_type": "task",
                    "resource_subtype": "milestone",
                    "action": "changed",
                    "fields": ["due_on"],
                },
            ),
            ("section:deleted", {"resource_type": "section", "action": "deleted"}),
        ],
    )
    def test_valid_specs(self, spec: str, expected: dict[str, object]) -> None:
        """The contract's examples parse to Asana's filter objects."""
        assert parse_spec(spec) == expected

    @pytest.mark.parametrize(
        ("spec", "problem"),
        [
            ("task:added:name", "only allowed with the action 'changed'"),
            ("task:edited", "unknown action"),
            ("", "resource type"),
            ("Task:changed", "resource type"),
            ("task.:changed", "resource subtype"),
            ("task:changed:", "fields"),
            ("task:changed:name:x", "expected"),
        ],
    )
    def test_invalid_specs(self, spec: str, problem: str) -> None:
        """A bad SPEC names itself and the rule it breaks."""
        with pytest.raises(FilterSpecError, match=problem) as caught:
            parse_spec(spec)
        assert repr(spec) in str(caught.value)

    @given(
        kind=st.sampled_from(["task", "story", "project", "section"]),
        subtype=st.one_of(st.none(), st.sampled_from(["milestone", "comment"])),
        action=st.one_of(st.none(), st.sampled_from(ACTIONS)),
        fields=st.lists(st.sampled_from(["name", "notes", "due_on"]), min_size=1, max_size=3),
    )
    def test_format_round_trips(
        self, kind: str, subtype: str | None, action: str | None, fields: list[str]
    ) -> None:
        """format_filter gives back a SPEC that parses to the same filter."""
        item: dict[str, object] = {"resource_type": kind}
        if subtype:
            item["resource_subtype"] = subtype
        if action:
            item["action"] = action
            if action == "changed":
                item["fields"] = fields
        assert parse_spec(format_filter(item)) == item


class TestHigherLevel:
    """Webhooks on a workspace, team, portfolio or goal take filters from Asana's table."""

    @pytest.mark.parametrize("resource_type", ["workspace", "team", "portfolio", "goal"])
    def test_filters_required(self, resource_type: str) -> None:
        """No filter at all is refused, and the message lists what is allowed."""
        with pytest.raises(FilterSpecError, match="needs at least one --filter"):
            parse_specs([], resource_type=resource_type)

    def test_allowed_table(self) -> None:
        """Every combination of Asana's table is accepted."""
        specs = [
            f"{kind}:{action}" for kind, acts in HIGHER_LEVEL_ALLOWED.items() for action in acts
        ]
        assert len(parse_specs(specs, resource_type="team")) == len(specs)

    @pytest.mark.parametrize(
        ("spec", "problem"),
        [
            ("task:changed", "not allowed on a workspace webhook"),
            ("portfolio:changed", "not allowed"),
            ("project", "not allowed"),
            ("project:changed:name", "takes no fields"),
        ],
    )
    def test_refused(self, spec: str, problem: str) -> None:
        """Tasks, stories, missing actions and fields are refused before calling Asana."""
        with pytest.raises(FilterSpecError, match=problem):
            parse_specs([spec], resource_type="workspace")

    def test_lower_level_takes_anything_valid(self) -> None:
        """A project webhook may filter on tasks with fields, or take no filter at all."""
        assert parse_specs([], resource_type="project") == []
        assert parse_specs(["task:changed:name"], resource_type=None)[0]["fields"] == ["name"]
