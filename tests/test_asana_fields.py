"""asana_fields.json (Asana's spec, per resource type) and the opt_fields check built on it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import asana_hooks
from asana_hooks.opt_fields import KNOWN_TYPES, SOURCE, unknown_field
from workers.resources import COLLECTIONS, DEFAULT_OPT_FIELDS

DATA_FILE = Path(asana_hooks.__file__).with_name("asana_fields.json")


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return data


def targets(fields: dict[str, Any]) -> set[str]:
    """Every resource type the fields refer to, at any depth."""
    found: set[str] = set()
    for value in fields.values():
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, dict):
            found |= targets(value)
    return found


class TestDataFile:
    """What tools/asana_fields.py wrote."""

    def test_names_its_source_and_commit(self) -> None:
        data = load()
        assert re.fullmatch(r"[0-9a-f]{40}", data["commit"])
        assert data["source"] == (
            f"https://github.com/Asana/openapi/blob/{data['commit']}/defs/asana_oas.yaml"
        )
        assert data["generated_by"].startswith("python tools/asana_fields.py ")
        assert data["source"] == SOURCE

    def test_is_sorted_and_indented_by_one(self) -> None:
        text = DATA_FILE.read_text(encoding="utf-8")
        assert text == json.dumps(load(), indent=1, sort_keys=True) + "\n"

    def test_every_reference_is_a_known_type(self) -> None:
        types = load()["types"]
        for resource_type, fields in types.items():
            assert targets(fields) <= set(types), resource_type

    def test_task_fields_have_the_three_forms(self) -> None:
        task = load()["types"]["task"]
        assert task["name"] is None
        assert task["assignee"] == "user"
        assert task["projects"] == "project"
        assert task["parent"] == "task"
        assert task["custom_fields"] == "custom_field"
        assert task["memberships"] == {"project": "project", "section": "section"}


class TestKnownTypes:
    def test_has_every_type_we_fetch(self) -> None:
        assert set(COLLECTIONS) <= KNOWN_TYPES
        assert set(DEFAULT_OPT_FIELDS) <= KNOWN_TYPES

    def test_has_the_membership_types(self) -> None:
        assert {"webhook", "team_membership", "workspace_membership"} <= KNOWN_TYPES
        assert {"project_membership"} <= KNOWN_TYPES

    @pytest.mark.parametrize("name", ["tasks", "Task", "widget", ""])
    def test_an_unknown_type_is_not_known(self, name: str) -> None:
        assert name not in KNOWN_TYPES

    def test_an_unknown_type_cannot_be_checked(self) -> None:
        with pytest.raises(ValueError, match="widget"):
            unknown_field("widget", "name")


class TestUnknownField:
    @pytest.mark.parametrize(("resource_type", "spec"), sorted(DEFAULT_OPT_FIELDS.items()))
    def test_every_default_is_known(self, resource_type: str, spec: str) -> None:
        assert unknown_field(resource_type, spec) is None

    def test_a_typo_is_found(self) -> None:
        assert unknown_field("task", "name,nmae") == "nmae"

    def test_the_first_unknown_is_returned(self) -> None:
        assert unknown_field("task", "nmae,assignee.nmae") == "nmae"

    def test_a_bad_nested_segment_is_found(self) -> None:
        assert unknown_field("task", "name,assignee.nmae") == "assignee.nmae"

    def test_a_bad_segment_inside_an_inline_object_is_found(self) -> None:
        assert unknown_field("task", "memberships.secton.name") == "memberships.secton.name"

    def test_a_bad_segment_after_two_references_is_found(self) -> None:
        assert unknown_field("task", "parent.assignee.emial") == "parent.assignee.emial"

    @pytest.mark.parametrize(
        "path",
        [
            "memberships.project.name",
            "custom_fields.display_value",
            "parent.name",
            "parent.assignee.email",
            "memberships.section.project.team.name",
        ],
    )
    def test_a_deep_valid_path_passes(self, path: str) -> None:
        assert unknown_field("task", path) is None

    def test_gid_and_resource_type_are_valid_at_every_level(self) -> None:
        spec = "gid,resource_type,assignee.gid,memberships.resource_type,memberships.project.gid"
        assert unknown_field("task", spec) is None

    def test_a_scalar_accepts_anything_below(self) -> None:
        assert unknown_field("task", "name.anything") is None

    def test_whitespace_and_empty_parts_are_ignored(self) -> None:
        assert unknown_field("task", " name , ,assignee.name,, ") is None
        assert unknown_field("task", "") is None
        assert unknown_field("task", " name , nmae ") == "nmae"

    @pytest.mark.parametrize("path", ["assignee..name", ".name", "name.", "assignee."])
    def test_an_empty_segment_is_unknown(self, path: str) -> None:
        assert unknown_field("task", f"name,{path}") == path

    def test_fields_are_per_type(self) -> None:
        assert unknown_field("project", "owner.name") is None
        assert unknown_field("task", "owner.name") == "owner.name"
