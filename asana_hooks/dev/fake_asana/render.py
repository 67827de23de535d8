"""JSON representations of world objects, and ``opt_fields`` projection. No I/O.

Without ``opt_fields`` an endpoint answers with its default representation (full for
single-object GETs, compact in lists). With ``opt_fields`` the answer holds ``gid`` plus the
requested fields; a dotted field (``memberships.section.name``) selects inside nested
objects, at any depth: nested objects are expanded from the world when the requested
sub-field is not already in their default form.
"""

from __future__ import annotations

from typing import Any

from .model import (
    CustomField,
    Entity,
    Goal,
    Portfolio,
    Project,
    Section,
    Story,
    Task,
    Team,
    User,
    Workspace,
)
from .world import World

__all__ = ["Renderer", "parse_opt_fields"]

JSON = dict[str, Any]
FieldTree = dict[str, "FieldTree"]


def parse_opt_fields(raw: str | list[str] | None) -> FieldTree | None:
    """``"name,memberships.section.name"`` -> ``{"name": {}, "memberships": {"section": ...}}``."""
    if raw is None:
        return None
    items = raw if isinstance(raw, list) else raw.split(",")
    tree: FieldTree = {}
    for item in items:
        node = tree
        for part in (p for p in item.strip().split(".") if p):
            node = node.setdefault(part, {})
    return tree or None


class Renderer:
    def __init__(self, world: World, app_url: str = "https://app.asana.com") -> None:
        self.world = world
        self.app_url = app_url

    # ---------------------------------------------------------------- compact
    def compact(self, entity: Entity) -> JSON:
        out: JSON = {"gid": entity.gid, "resource_type": entity.resource_type}
        if isinstance(entity, Story):
            out.update(
                created_at=entity.created_at,
                created_by=self._user(entity.created_by),
                resource_subtype=entity.subtype,
                text=entity.text,
            )
            return out
        out["name"] = entity.name
        if isinstance(entity, Task):
            out["resource_subtype"] = entity.resource_subtype
        return out

    def _ref(self, gid: str | None) -> JSON | None:
        entity = self.world.objects.get(gid) if gid else None
        return self.compact(entity) if entity is not None else None

    def _user(self, gid: str | None) -> JSON | None:
        return self._ref(gid)

    # ------------------------------------------------------------------- full
    def full(self, entity: Entity) -> JSON:
        with self.world.lock:
            if isinstance(entity, Task):
                return self._task(entity)
            if isinstance(entity, Story):
                return self._story(entity)
            out = self.compact(entity)
            out["created_at"] = entity.created_at
            if isinstance(entity, Project):
                out.update(
                    archived=entity.archived,
                    color=None,
                    notes=entity.notes,
                    modified_at=entity.modified_at,
                    workspace=self._ref(entity.workspace),
                    team=self._ref(entity.team),
                    custom_field_settings=[
                        {"custom_field": self._ref(cf)} for cf in entity.custom_field_settings
                    ],
                    permalink_url=f"{self.app_url}/0/{entity.gid}/list",
                )
            elif isinstance(entity, Section):
                out["project"] = self._ref(entity.project)
            elif isinstance(entity, User):
                out.update(
                    email=entity.email,
                    photo=None,
                    workspaces=[self._ref(w) for w in entity.workspaces],
                )
            elif isinstance(entity, Workspace):
                out.update(email_domains=["example.com"], is_organization=True)
            elif isinstance(entity, CustomField):
                out.update(self._custom_field_definition(entity))
            elif isinstance(entity, Team | Portfolio | Goal):
                out["workspace"] = self._ref(entity.workspace)
            return out

    def _custom_field_definition(self, field: CustomField) -> JSON:
        out: JSON = {
            "type": field.type,
            "resource_subtype": field.type,
            "representation_type": field.type,
            "is_formula_field": False,
            "enabled": True,
        }
        if field.type == "enum":
            out["enum_options"] = [
                {
                    "gid": o.gid,
                    "resource_type": "enum_option",
                    "name": o.name,
                    "enabled": True,
                    "color": o.color,
                }
                for o in field.enum_options
            ]
        return out

    def custom_field_value(self, field: CustomField, value: Any) -> JSON:
        out: JSON = {"gid": field.gid, "resource_type": "custom_field", "name": field.name}
        out.update(self._custom_field_definition(field))
        display: str | None = None
        if field.type == "text":
            out["text_value"] = value
            display = value
        elif field.type == "number":
            out["number_value"] = value
            out["precision"] = 0 if value is None or float(value).is_integer() else 2
            if value is not None:
                display = f"{value:g}" if float(value).is_integer() else f"{value:.2f}"
        else:
            option = next((o for o in field.enum_options if o.gid == value), None)
            out["enum_value"] = (
                {
                    "gid": option.gid,
                    "resource_type": "enum_option",
                    "name": option.name,
                    "enabled": True,
                    "color": option.color,
                }
                if option
                else None
            )
            display = option.name if option else None
        out["display_value"] = display
        return out

    def _task_custom_fields(self, task: Task) -> list[JSON]:
        field_gids: list[str] = []
        for project in task.projects:
            proj = self.world.objects.get(project)
            if isinstance(proj, Project):
                field_gids.extend(proj.custom_field_settings)
        field_gids.extend(task.custom_values)
        out = []
        for gid in dict.fromkeys(field_gids):
            field = self.world.objects.get(gid)
            if isinstance(field, CustomField):
                out.append(self.custom_field_value(field, task.custom_values.get(gid)))
        return out

    def _task(self, task: Task) -> JSON:
        out = self.compact(task)
        out.update(
            approval_status=None,
            assignee=self._ref(task.assignee),
            assignee_status="inbox" if task.assignee else None,
            completed=task.completed,
            completed_at=task.completed_at,
            completed_by=None,
            created_at=task.created_at,
            created_by=self._ref(task.created_by) if task.created_by else None,
            custom_fields=self._task_custom_fields(task),
            due_at=None,
            due_on=task.due_on,
            followers=[self._ref(user) for user in task.followers],
            hearted=False,
            hearts=[],
            html_notes=f"<body>{task.notes}</body>",
            liked=False,
            likes=[],
            memberships=[
                {"project": self._ref(p), "section": self._ref(s)} for p, s in task.memberships
            ],
            modified_at=task.modified_at,
            notes=task.notes,
            num_hearts=0,
            num_likes=0,
            num_subtasks=len(self.world.subtasks_of(task.gid)),
            parent=self._ref(task.parent),
            permalink_url=f"{self.app_url}/1/{task.workspace}/task/{task.gid}",
            projects=[self._ref(p) for p in task.projects],
            start_at=None,
            start_on=None,
            tags=[],
            workspace=self._ref(task.workspace),
        )
        return out

    def _story(self, story: Story) -> JSON:
        out = self.compact(story)
        comment = story.story_type == "comment"
        out.update(
            type=story.story_type,
            html_text=f"<body>{story.text}</body>",
            is_editable=comment,
            is_edited=story.is_edited,
            is_pinned=False,
            liked=False,
            likes=[],
            num_likes=0,
            previews=[],
            source="web",
            target=self._ref(story.target),
        )
        return out

    # ------------------------------------------------------------- projection
    def project(self, value: JSON, fields: FieldTree) -> JSON:
        """Keep ``gid`` and the requested fields, expanding nested objects as needed."""
        with self.world.lock:
            return self._project_obj(value, fields)

    def _project_obj(self, value: JSON, fields: FieldTree) -> JSON:
        out: JSON = {}
        if "gid" in value:
            out["gid"] = value["gid"]
        expanded: JSON | None = None
        for key, sub in fields.items():
            if key in value:
                source = value
            else:
                if expanded is None:
                    expanded = self._expand(value)
                if key not in expanded:
                    continue
                source = expanded
            out[key] = self._project_value(source[key], sub)
        return out

    def _project_value(self, value: Any, sub: FieldTree) -> Any:
        if not sub:
            return value
        if isinstance(value, list):
            return [self._project_value(item, sub) for item in value]
        if isinstance(value, dict):
            return self._project_obj(value, sub)
        return value

    def _expand(self, value: JSON) -> JSON:
        gid = value.get("gid")
        entity = self.world.objects.get(gid) if isinstance(gid, str) else None
        return self.full(entity) if entity is not None else {}
