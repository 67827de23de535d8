"""What to GET for each Asana resource type: its path and the fields we ask for. Pure.

The defaults name what an integration usually needs next to a change; HOOKS_OPT_FIELDS_<TYPE>
(``settings.opt_fields``) replaces the list for one type, e.g.
``HOOKS_OPT_FIELDS_TASK=name,completed,assignee.name``.
"""

from __future__ import annotations

from collections.abc import Mapping

COLLECTIONS: dict[str, str] = {
    "task": "tasks",
    "story": "stories",
    "project": "projects",
    "section": "sections",
    "portfolio": "portfolios",
    "goal": "goals",
    "tag": "tags",
    "user": "users",
    "team": "teams",
    "workspace": "workspaces",
    "custom_field": "custom_fields",
    "attachment": "attachments",
    "status_update": "status_updates",
    "project_template": "project_templates",
}
"""resource_type -> the collection its GET lives under (``/tasks/{gid}``)."""

DEFAULT_OPT_FIELDS: dict[str, str] = {
    "task": (
        "name,resource_subtype,completed,completed_at,assignee.name,followers.name,due_on,"
        "due_at,start_on,notes,created_at,modified_at,parent.name,memberships.project.name,"
        "memberships.section.name,custom_fields.name,custom_fields.display_value,tags.name,"
        "workspace.name,permalink_url"
    ),
    "story": (
        "resource_subtype,type,text,created_at,created_by.name,is_edited,target.name,"
        "target.resource_type"
    ),
    "project": (
        "name,archived,color,notes,created_at,modified_at,owner.name,team.name,"
        "workspace.name,permalink_url"
    ),
    "section": "name,created_at,project.name",
    "portfolio": "name,color,created_at,owner.name,workspace.name,permalink_url",
    "goal": "name,notes,due_on,start_on,status,owner.name,workspace.name",
    "tag": "name,color,notes,workspace.name",
    "user": "name,email,workspaces.name",
    "team": "name,description,organization.name",
    "workspace": "name,is_organization",
    "custom_field": "name,resource_subtype,description,enum_options.name",
    "attachment": "name,resource_subtype,created_at,host,parent.name,permanent_url",
    "status_update": "title,text,status_type,created_at,created_by.name,parent.name",
    "project_template": "name,description,owner.name,team.name",
}
"""Fields fetched per resource type unless settings.opt_fields overrides them."""


def resource_path(resource_type: str, gid: str) -> str | None:
    """``/tasks/123`` for a task; None for a type that has no GET of its own."""
    collection = COLLECTIONS.get(resource_type)
    return f"/{collection}/{gid}" if collection else None


VERSIONED_TYPES = frozenset({"task", "project"})
"""Types whose ``modified_at`` is always fetched, overrides or not: entries remember it so
that a resync never repeats what was emitted (workers.versions)."""


def opt_fields(resource_type: str, overrides: Mapping[str, str]) -> list[str]:
    """The fields to ask for: the override for this type, else our default, else Asana's;
    plus ``modified_at`` for the types in VERSIONED_TYPES."""
    raw = overrides.get(resource_type) or DEFAULT_OPT_FIELDS.get(resource_type, "")
    fields = [name.strip() for name in raw.split(",") if name.strip()]
    if resource_type in VERSIONED_TYPES and "modified_at" not in fields:
        fields.append("modified_at")
    return fields
