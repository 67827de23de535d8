"""Plain data classes for the objects in the fake's world. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "CustomField",
    "Entity",
    "EnumOption",
    "Goal",
    "Portfolio",
    "Project",
    "Section",
    "Story",
    "Task",
    "Team",
    "User",
    "Workspace",
]

CUSTOM_FIELD_TYPES = ("text", "number", "enum")


@dataclass(eq=False, kw_only=True)
class Entity:
    resource_type: ClassVar[str] = ""
    resource_subtype: ClassVar[str | None] = None

    gid: str
    name: str
    created_at: str
    deleted: bool = False
    deleted_at: float | None = None  # time.monotonic() of the deletion


@dataclass(eq=False, kw_only=True)
class Workspace(Entity):
    resource_type: ClassVar[str] = "workspace"


@dataclass(eq=False, kw_only=True)
class User(Entity):
    resource_type: ClassVar[str] = "user"
    email: str
    workspaces: list[str] = field(default_factory=list)


@dataclass(eq=False, kw_only=True)
class Team(Entity):
    resource_type: ClassVar[str] = "team"
    workspace: str


@dataclass(eq=False, kw_only=True)
class Portfolio(Entity):
    resource_type: ClassVar[str] = "portfolio"
    workspace: str
    projects: list[str] = field(default_factory=list)


@dataclass(eq=False, kw_only=True)
class Goal(Entity):
    resource_type: ClassVar[str] = "goal"
    workspace: str


@dataclass(eq=False, kw_only=True)
class Project(Entity):
    resource_type: ClassVar[str] = "project"
    workspace: str
    team: str | None = None
    notes: str = ""
    archived: bool = False
    modified_at: str = ""
    custom_field_settings: list[str] = field(default_factory=list)


@dataclass(eq=False, kw_only=True)
class Section(Entity):
    resource_type: ClassVar[str] = "section"
    project: str


@dataclass(frozen=True)
class EnumOption:
    gid: str
    name: str
    color: str = "none"


@dataclass(eq=False, kw_only=True)
class CustomField(Entity):
    resource_type: ClassVar[str] = "custom_field"
    workspace: str
    type: str
    enum_options: list[EnumOption] = field(default_factory=list)


@dataclass(eq=False, kw_only=True)
class Task(Entity):
    resource_type: ClassVar[str] = "task"
    resource_subtype: ClassVar[str | None] = "default_task"
    workspace: str
    notes: str = ""
    completed: bool = False
    completed_at: str | None = None
    assignee: str | None = None
    due_on: str | None = None
    parent: str | None = None
    memberships: list[tuple[str, str]] = field(default_factory=list)  # (project, section)
    custom_values: dict[str, Any] = field(default_factory=dict)  # field gid -> value
    modified_at: str = ""
    created_by: str | None = None
    followers: list[str] = field(default_factory=list)  # user gids, in the order they followed

    @property
    def projects(self) -> list[str]:
        return [project for project, _ in self.memberships]


@dataclass(eq=False, kw_only=True)
class Story(Entity):
    resource_type: ClassVar[str] = "story"
    target: str
    text: str
    subtype: str = "comment_added"
    created_by: str | None = None
    is_edited: bool = False

    @property
    def story_type(self) -> str:
        return "comment" if self.subtype == "comment_added" else "system"
