"""Operators' opt_fields checked against the fields Asana's OpenAPI spec lists. Pure, no I/O
but reading the packaged ``asana_fields.json`` once, at import.

``HOOKS_OPT_FIELDS_<TYPE>=name,assignee.name,memberships.project.name`` names Asana opt_fields,
dotted paths allowed. ``asana_fields.json`` (written by ``tools/asana_fields.py`` from Asana's
spec, see SOURCE) maps each resource type's fields to ``null`` (a scalar or a field of unknown
structure: anything below it is accepted), the name of another resource type (a reference: the
path goes on in that type's fields) or a mapping of the same form (an inline object).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TypeAlias, cast

Field: TypeAlias = "str | Mapping[str, Field] | None"

_DATA = json.loads(Path(__file__).with_name("asana_fields.json").read_text(encoding="utf-8"))

SOURCE: str = _DATA["source"]
"""Where the fields come from: Asana's spec at one commit, for messages."""

_TYPES = cast(Mapping[str, Mapping[str, Field]], _DATA["types"])

KNOWN_TYPES: frozenset[str] = frozenset(_TYPES)
"""Every resource type Asana's spec has a GET-by-gid for."""

ALWAYS = frozenset({"gid", "resource_type"})
"""Fields every object has, at every level."""


def unknown_field(resource_type: str, spec: str) -> str | None:
    """The first dotted path of the comma-separated ``spec`` that Asana's spec does not list
    for ``resource_type``, or None when it lists them all. Whitespace around a path and empty
    parts (``a,,b``) are ignored; an empty segment (``assignee..name``) is unknown.

    Raises ValueError for a type not in KNOWN_TYPES."""
    if resource_type not in _TYPES:
        raise ValueError(f"unknown Asana resource type {resource_type!r}")
    for raw in spec.split(","):
        path = raw.strip()
        if path and not _known(_TYPES[resource_type], path.split(".")):
            return path
    return None


def _known(fields: Mapping[str, Field], segments: list[str]) -> bool:
    if "" in segments:
        return False
    node: Field = fields
    for segment in segments:
        if isinstance(node, str):
            node = _TYPES[node]
        if node is None:
            return True  # a scalar or unknown structure: anything deeper is accepted
        if segment in node:
            node = node[segment]
        elif segment in ALWAYS:
            node = None
        else:
            return False
    return True
