"""The fake's in-memory Asana: objects, mutations and the events they produce. No I/O.

Every mutation takes the shared lock, changes the model, and hands each resulting
:class:`~asana_hooks.dev.fake_asana.event.Event` plus the set of gids it propagates to
("targets") to the registered listeners. Propagation follows Asana's documentation:
a task event reaches the task, its projects (and sections), and its ancestor tasks
with their projects; a story event reaches the story and everything its task reaches;
project events reach the project, its workspace, team and portfolios. Task and story
events never reach workspaces, teams, portfolios or goals (higher-level resources).
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .event import Change, Event, Ref
from .model import (
    CUSTOM_FIELD_TYPES,
    CustomField,
    Entity,
    EnumOption,
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
from .util import GidSource, iso_now

__all__ = ["UNSET", "Listener", "World", "WorldError", "ref_of"]

Listener = Callable[[Event, frozenset[str]], None]
E = TypeVar("E", bound=Entity)


class _Unset(enum.Enum):
    UNSET = 0


UNSET = _Unset.UNSET


class WorldError(LookupError):
    """A mutation referred to an unknown object or an invalid value."""


def ref_of(entity: Entity) -> Ref:
    subtype = entity.subtype if isinstance(entity, Story) else entity.resource_subtype
    name = None if isinstance(entity, Story) else entity.name
    return Ref(entity.gid, entity.resource_type, name, subtype)


class World:
    """Workspaces, users, projects, sections, custom fields, tasks and stories."""

    def __init__(self, lock: threading.RLock | None = None) -> None:
        self.lock = lock or threading.RLock()
        self.objects: dict[str, Entity] = {}
        self.hidden: set[str] = set()
        self._gids = GidSource()
        self._listeners: list[Listener] = []

    # ----------------------------------------------------------------- plumbing
    def subscribe(self, listener: Listener) -> None:
        with self.lock:
            self._listeners.append(listener)

    def new_gid(self) -> str:
        return self._gids.next()

    def get(self, gid: str) -> Entity | None:
        with self.lock:
            return self.objects.get(gid)

    def typed(self, gid: str, kind: type[E]) -> E:
        with self.lock:
            entity = self.objects.get(gid)
        if not isinstance(entity, kind):
            raise WorldError(f"{kind.resource_type}: Unknown object: {gid}")
        return entity

    def iter(self, kind: type[E]) -> Iterator[E]:
        with self.lock:
            items = [o for o in self.objects.values() if isinstance(o, kind)]
        return iter(items)

    def _add(self, entity: E) -> E:
        self.objects[entity.gid] = entity
        return entity

    def _user_ref(self, by: str | None) -> Ref | None:
        return ref_of(self.typed(by, User)) if by else None

    def _emit(
        self,
        action: str,
        resource: Entity,
        targets: set[str],
        *,
        by: str | None,
        parent: Entity | None = None,
        change: Change | None = None,
        created_at: str | None = None,
    ) -> None:
        event = Event(
            action=action,
            resource=ref_of(resource),
            created_at=created_at or iso_now(),
            user=self._user_ref(by),
            parent=ref_of(parent) if parent else None,
            change=change,
        )
        # A deleted project is no longer reached by events (its webhooks and Events API
        # stream fall silent until it is undeleted); delete_project emits its own
        # ``deleted`` event before marking it, so that one still reaches the project.
        frozen = frozenset(t for t in targets if not self._deleted_project(t))
        for listener in list(self._listeners):
            listener(event, frozen)

    def _deleted_project(self, gid: str) -> bool:
        entity = self.objects.get(gid)
        return isinstance(entity, Project) and entity.deleted

    # ------------------------------------------------------------ propagation
    def task_targets(self, task: Task) -> set[str]:
        targets: set[str] = set()
        current: Task | None = task
        seen: set[str] = set()
        while current is not None and current.gid not in seen:
            seen.add(current.gid)
            targets.add(current.gid)
            for project, section in current.memberships:
                targets.update((project, section))
            parent = self.objects.get(current.parent) if current.parent else None
            current = parent if isinstance(parent, Task) else None
        return targets

    def project_targets(self, project: Project) -> set[str]:
        targets = {project.gid, project.workspace}
        if project.team:
            targets.add(project.team)
        targets.update(p.gid for p in self.iter(Portfolio) if project.gid in p.projects)
        return targets

    def workspace_of(self, gid: str) -> str | None:
        with self.lock:
            entity = self.objects.get(gid)
            if entity is None:
                return None
            if isinstance(entity, Workspace):
                return entity.gid
            if isinstance(entity, User):
                return entity.workspaces[0] if entity.workspaces else None
            if isinstance(entity, Section):
                return self.workspace_of(entity.project)
            if isinstance(entity, Story):
                return self.workspace_of(entity.target)
            workspace = getattr(entity, "workspace", None)
            return workspace if isinstance(workspace, str) else None

    # ------------------------------------------------------------- containers
    def add_workspace(self, name: str) -> str:
        with self.lock:
            return self._add(Workspace(gid=self.new_gid(), name=name, created_at=iso_now())).gid

    def add_user(self, name: str, workspace: str | None = None, email: str | None = None) -> str:
        with self.lock:
            if workspace is not None:
                self.typed(workspace, Workspace)
            slug = ".".join(name.lower().split()) or "user"
            user = User(
                gid=self.new_gid(),
                name=name,
                created_at=iso_now(),
                email=email or f"{slug}@example.com",
                workspaces=[workspace] if workspace else [],
            )
            return self._add(user).gid

    def add_team(self, workspace: str, name: str) -> str:
        with self.lock:
            self.typed(workspace, Workspace)
            team = Team(gid=self.new_gid(), name=name, created_at=iso_now(), workspace=workspace)
            return self._add(team).gid

    def add_portfolio(self, workspace: str, name: str) -> str:
        with self.lock:
            self.typed(workspace, Workspace)
            entity = Portfolio(
                gid=self.new_gid(), name=name, created_at=iso_now(), workspace=workspace
            )
            return self._add(entity).gid

    def add_goal(self, workspace: str, name: str) -> str:
        with self.lock:
            self.typed(workspace, Workspace)
            goal = Goal(gid=self.new_gid(), name=name, created_at=iso_now(), workspace=workspace)
            return self._add(goal).gid

    def add_project(
        self,
        name: str,
        workspace: str,
        *,
        team: str | None = None,
        notes: str = "",
        by: str | None = None,
    ) -> str:
        """Create a project (with Asana's default "Untitled section"); emits project ``added``."""
        with self.lock:
            self.typed(workspace, Workspace)
            if team is not None:
                self.typed(team, Team)
            now = iso_now()
            project = self._add(
                Project(
                    gid=self.new_gid(),
                    name=name,
                    created_at=now,
                    modified_at=now,
                    workspace=workspace,
                    team=team,
                    notes=notes,
                )
            )
            self._add(
                Section(
                    gid=self.new_gid(), name="Untitled section", created_at=now, project=project.gid
                )
            )
            parent = self.objects[team or workspace]
            self._emit("added", project, self.project_targets(project), by=by, parent=parent)
            return project.gid

    def add_project_to_portfolio(
        self, portfolio: str, project: str, *, by: str | None = None
    ) -> str:
        with self.lock:
            folio = self.typed(portfolio, Portfolio)
            proj = self.typed(project, Project)
            if proj.gid not in folio.projects:
                folio.projects.append(proj.gid)
                self._emit("added", proj, self.project_targets(proj), by=by, parent=folio)
            return proj.gid

    def remove_project_from_portfolio(
        self, portfolio: str, project: str, *, by: str | None = None
    ) -> str:
        """Take a project out of a portfolio: project ``removed`` with the portfolio as parent.

        Like ``added`` (see :meth:`add_project_to_portfolio`), the event reaches every
        resource the project's events reach *before* the removal, the portfolio included.
        """
        with self.lock:
            folio = self.typed(portfolio, Portfolio)
            proj = self.typed(project, Project)
            if proj.gid in folio.projects:
                targets = self.project_targets(proj)
                folio.projects.remove(proj.gid)
                self._emit("removed", proj, targets, by=by, parent=folio)
            return proj.gid

    def _live_project(self, gid: str) -> Project:
        project = self.typed(gid, Project)
        if project.deleted:
            raise WorldError(f"project: Unknown object: {gid}")
        return project

    def archive_project(self, project: str, archived: bool = True, *, by: str | None = None) -> str:
        """Archive (or unarchive) a project: project ``changed``, change.field ``archived``.

        No event when the value does not change (Asana emits changes only).
        """
        with self.lock:
            proj = self._live_project(project)
            if proj.archived == archived:
                return proj.gid
            proj.archived = archived
            proj.modified_at = now = iso_now()
            self._emit(
                "changed",
                proj,
                self.project_targets(proj),
                by=by,
                change=Change("archived"),
                created_at=now,
            )
            return proj.gid

    def move_project(self, project: str, *, team: str, by: str | None = None) -> str:
        """Move a project to another team of its workspace.

        Emits, with one timestamp and in this order: ``removed`` with the old team as parent,
        to the old team only; ``added`` with the new team as parent, to the new team only;
        ``changed`` field ``team`` (new_value: the new team) to the project's resources after
        the move (project, workspace, new team, portfolios). Asana documents neither the set
        nor the order; this is what webhooks observe in practice: a team webhook learns that a
        project left or joined it (parent: that team), the rest sees a field change.
        """
        with self.lock:
            proj = self._live_project(project)
            new_team = self.typed(team, Team)
            if new_team.workspace != proj.workspace:
                raise WorldError(f"team: {team} is not in the project's workspace")
            if proj.team == new_team.gid:
                return proj.gid
            old_team = self.objects.get(proj.team) if proj.team else None
            proj.team = new_team.gid
            proj.modified_at = now = iso_now()
            if old_team is not None:
                self._emit("removed", proj, {old_team.gid}, by=by, parent=old_team, created_at=now)
            self._emit("added", proj, {new_team.gid}, by=by, parent=new_team, created_at=now)
            change = Change("team", new_value=ref_of(new_team))
            targets = self.project_targets(proj)
            self._emit("changed", proj, targets, by=by, change=change, created_at=now)
            return proj.gid

    def delete_project(self, project: str, *, by: str | None = None) -> str:
        """Delete (trash) a project: ``deleted`` event (no parent), then GET answers 404, it
        leaves every listing, and events no longer reach it (its webhooks fall silent; Asana
        deletes them 72 h later, see ``Timing.deleted_resource_webhook_ttl``)."""
        with self.lock:
            proj = self._live_project(project)
            proj.modified_at = now = iso_now()
            # emitted before the flag is set: the project's own webhooks get this last event
            self._emit("deleted", proj, self.project_targets(proj), by=by, created_at=now)
            proj.deleted = True
            proj.deleted_at = time.monotonic()
            return proj.gid

    def undelete_project(self, project: str, *, by: str | None = None) -> str:
        """Restore a deleted project: ``undeleted`` event; GET and listings see it again."""
        with self.lock:
            proj = self.typed(project, Project)
            if not proj.deleted:
                return proj.gid
            proj.deleted = False
            proj.deleted_at = None
            proj.modified_at = now = iso_now()
            self._emit("undeleted", proj, self.project_targets(proj), by=by, created_at=now)
            return proj.gid

    def seed_team(
        self, workspace: str, name: str, *, projects: int = 0, by: str | None = None
    ) -> tuple[str, list[str]]:
        """A team with ``projects`` projects named "<name> 1".. (each emits ``added``)."""
        with self.lock:
            team = self.add_team(workspace, name)
            gids = [
                self.add_project(f"{name} {i + 1}", workspace, team=team, by=by)
                for i in range(projects)
            ]
            return team, gids

    def add_section(self, project: str, name: str, *, by: str | None = None) -> str:
        with self.lock:
            proj = self.typed(project, Project)
            section = self._add(
                Section(gid=self.new_gid(), name=name, created_at=iso_now(), project=proj.gid)
            )
            self._emit("added", section, {section.gid, proj.gid}, by=by, parent=proj)
            return section.gid

    def sections_of(self, project: str) -> list[Section]:
        with self.lock:
            return [s for s in self.iter(Section) if s.project == project and not s.deleted]

    def add_custom_field(
        self,
        workspace: str,
        name: str,
        *,
        type: str = "text",
        enum_options: list[str] | None = None,
        project: str | None = None,
    ) -> str:
        """Define a custom field; with ``project`` it is also added to that project's settings."""
        if type not in CUSTOM_FIELD_TYPES:
            raise WorldError(f"type: must be one of {', '.join(CUSTOM_FIELD_TYPES)}")
        with self.lock:
            self.typed(workspace, Workspace)
            options = [EnumOption(self.new_gid(), option) for option in enum_options or []]
            field = self._add(
                CustomField(
                    gid=self.new_gid(),
                    name=name,
                    created_at=iso_now(),
                    workspace=workspace,
                    type=type,
                    enum_options=options,
                )
            )
            if project is not None:
                self.typed(project, Project).custom_field_settings.append(field.gid)
            return field.gid

    # ------------------------------------------------------------------ tasks
    def add_task(
        self,
        name: str,
        *,
        projects: list[str] | None = None,
        section: str | None = None,
        by: str | None = None,
        notes: str = "",
        assignee: str | None = None,
        due_on: str | None = None,
        parent: str | None = None,
        workspace: str | None = None,
    ) -> str:
        """Create a task; emits ``added`` once per project (parent: the project).

        A subtask (``parent`` given) emits ``added`` with the parent task as parent. As in
        Asana, the creator and the assignee follow the new task (no event of their own).
        """
        with self.lock:
            memberships = self._initial_memberships(list(projects or []), section)
            parent_task = self.typed(parent, Task) if parent else None
            if assignee is not None:
                self.typed(assignee, User)
            ws = workspace or self._infer_workspace(memberships, parent_task, by)
            now = iso_now()
            task = self._add(
                Task(
                    gid=self.new_gid(),
                    name=name,
                    created_at=now,
                    modified_at=now,
                    workspace=ws,
                    notes=notes,
                    assignee=assignee,
                    due_on=due_on,
                    parent=parent_task.gid if parent_task else None,
                    memberships=memberships,
                    created_by=by,
                    followers=list(dict.fromkeys(u for u in (by, assignee) if u)),
                )
            )
            targets = self.task_targets(task)
            if parent_task is not None:
                self._emit("added", task, targets, by=by, parent=parent_task, created_at=now)
            for project, _ in memberships:
                self._emit(
                    "added", task, targets, by=by, parent=self.objects[project], created_at=now
                )
            if parent_task is None and not memberships:
                self._emit("added", task, targets, by=by, created_at=now)
            return task.gid

    def add_subtask(self, parent: str, name: str, *, by: str | None = None, **kwargs: Any) -> str:
        return self.add_task(name, parent=parent, by=by, **kwargs)

    def _initial_memberships(
        self, projects: list[str], section: str | None
    ) -> list[tuple[str, str]]:
        sec = self.typed(section, Section) if section else None
        if sec is not None and sec.project not in projects:
            projects.append(sec.project)
        memberships: list[tuple[str, str]] = []
        for project in dict.fromkeys(projects):
            self.typed(project, Project)
            chosen = sec.gid if sec is not None and sec.project == project else None
            memberships.append((project, chosen or self._default_section(project)))
        return memberships

    def _default_section(self, project: str) -> str:
        sections = self.sections_of(project)
        if sections:
            return sections[0].gid
        return self._add(
            Section(
                gid=self.new_gid(), name="Untitled section", created_at=iso_now(), project=project
            )
        ).gid

    def _infer_workspace(
        self, memberships: list[tuple[str, str]], parent: Task | None, by: str | None
    ) -> str:
        if memberships:
            return self.typed(memberships[0][0], Project).workspace
        if parent is not None:
            return parent.workspace
        if by is not None and self.typed(by, User).workspaces:
            return self.typed(by, User).workspaces[0]
        workspaces = list(self.iter(Workspace))
        if not workspaces:
            raise WorldError("workspace: a task needs a workspace (add one first)")
        return workspaces[0].gid

    def _live_task(self, gid: str) -> Task:
        task = self.typed(gid, Task)
        if task.deleted:
            raise WorldError(f"task: Unknown object: {gid}")
        return task

    def update_task(
        self,
        task: str,
        *,
        by: str | None = None,
        name: str | _Unset = UNSET,
        notes: str | _Unset = UNSET,
        completed: bool | _Unset = UNSET,
        assignee: str | _Unset | None = UNSET,
        due_on: str | _Unset | None = UNSET,
    ) -> str:
        """Change fields; one ``changed`` event per field whose value actually changed.

        A new assignee also becomes a follower, as in Asana (no event of its own).
        """
        with self.lock:
            entity = self._live_task(task)
            if assignee is not UNSET and assignee is not None:
                self.typed(assignee, User)
            now = iso_now()
            changes: list[Change] = []
            if name is not UNSET and name != entity.name:
                entity.name = name
                changes.append(Change("name"))
            if notes is not UNSET and notes != entity.notes:
                entity.notes = notes
                changes.append(Change("notes"))
            if completed is not UNSET and completed != entity.completed:
                entity.completed = completed
                entity.completed_at = now if completed else None
                changes.append(Change("completed"))
            if assignee is not UNSET and assignee != entity.assignee:
                entity.assignee = assignee
                if assignee and assignee not in entity.followers:
                    entity.followers.append(assignee)
                new_ref = ref_of(self.objects[assignee]) if assignee else None
                changes.append(Change("assignee", new_value=new_ref))
            if due_on is not UNSET and due_on != entity.due_on:
                entity.due_on = due_on
                changes.append(Change("due_on"))
            if changes:
                entity.modified_at = now
            targets = self.task_targets(entity)
            for change in changes:
                self._emit("changed", entity, targets, by=by, change=change, created_at=now)
            return entity.gid

    def set_custom_field(self, task: str, field: str, value: Any, *, by: str | None = None) -> str:
        """Set a custom field value (enum: option gid or name); emits ``changed`` custom_fields."""
        with self.lock:
            entity = self._live_task(task)
            definition = self.typed(field, CustomField)
            stored = self._coerce_custom_value(definition, value)
            if field in entity.custom_values and entity.custom_values[field] == stored:
                return entity.gid
            entity.custom_values[field] = stored
            entity.modified_at = now = iso_now()
            change = Change("custom_fields", new_value=ref_of(definition))
            self._emit(
                "changed", entity, self.task_targets(entity), by=by, change=change, created_at=now
            )
            return entity.gid

    @staticmethod
    def _coerce_custom_value(definition: CustomField, value: Any) -> Any:
        if value is None:
            return None
        if definition.type == "number":
            return float(value)
        if definition.type == "enum":
            for option in definition.enum_options:
                if value in (option.gid, option.name):
                    return option.gid
            raise WorldError(f"custom_fields: {value!r} is not an option of {definition.name}")
        return str(value)

    def add_task_to_project(
        self, task: str, project: str, *, section: str | None = None, by: str | None = None
    ) -> str:
        """Add a task to a project (in ``section``, else its first): task ``added`` with the
        project as parent, reaching the task's projects, the new one included. A task already
        in the project is left as it is (no event)."""
        with self.lock:
            entity = self._live_task(task)
            proj = self._live_project(project)
            if proj.gid in entity.projects:
                return entity.gid
            if section and self.typed(section, Section).project != proj.gid:
                raise WorldError(f"section: {section} is not in project {proj.gid}")
            sec = section or self._default_section(proj.gid)
            entity.memberships.append((proj.gid, sec))
            entity.modified_at = now = iso_now()
            self._emit(
                "added", entity, self.task_targets(entity), by=by, parent=proj, created_at=now
            )
            return entity.gid

    def add_followers(self, task: str, users: list[str], *, by: str | None = None) -> str:
        """Add followers (collaborators): per new follower, task ``changed`` with change
        ``{field: followers, action: added, added_value: the user}`` and no parent, as Asana
        documents; a user who already follows the task changes nothing and emits nothing."""
        with self.lock:
            entity = self._live_task(task)
            added = [self.typed(user, User) for user in dict.fromkeys(users)]
            new = [user for user in added if user.gid not in entity.followers]
            if not new:
                return entity.gid
            entity.followers.extend(user.gid for user in new)
            entity.modified_at = now = iso_now()
            targets = self.task_targets(entity)
            for user in new:
                change = Change("followers", action="added", added_value=ref_of(user))
                self._emit("changed", entity, targets, by=by, change=change, created_at=now)
            return entity.gid

    def remove_task_from_project(self, task: str, project: str, *, by: str | None = None) -> str:
        with self.lock:
            entity = self._live_task(task)
            proj = self.typed(project, Project)
            targets = self.task_targets(entity)
            before = len(entity.memberships)
            entity.memberships = [m for m in entity.memberships if m[0] != proj.gid]
            if len(entity.memberships) != before:
                entity.modified_at = now = iso_now()
                self._emit("removed", entity, targets, by=by, parent=proj, created_at=now)
            return entity.gid

    def move_task_to_section(self, task: str, section: str, *, by: str | None = None) -> str:
        """Move within (or into) the section's project: ``removed`` from the old section
        (if any) and ``added`` to the new one, both with the section as parent."""
        with self.lock:
            entity = self._live_task(task)
            sec = self.typed(section, Section)
            old = next((s for p, s in entity.memberships if p == sec.project), None)
            if old == sec.gid:
                return entity.gid
            targets = self.task_targets(entity) | {sec.gid}
            entity.memberships = [(p, s) for p, s in entity.memberships if p != sec.project]
            entity.memberships.append((sec.project, sec.gid))
            entity.modified_at = now = iso_now()
            if old is not None:
                self._emit(
                    "removed", entity, targets, by=by, parent=self.objects[old], created_at=now
                )
            else:
                project = self.objects[sec.project]
                self._emit("added", entity, targets, by=by, parent=project, created_at=now)
            self._emit("added", entity, targets, by=by, parent=sec, created_at=now)
            return entity.gid

    def delete_task(self, task: str, *, by: str | None = None) -> str:
        """Delete (trash) a task: ``deleted`` event; GET afterwards answers 404."""
        with self.lock:
            entity = self._live_task(task)
            entity.deleted = True
            entity.deleted_at = time.monotonic()
            entity.modified_at = now = iso_now()
            self._emit("deleted", entity, self.task_targets(entity), by=by, created_at=now)
            return entity.gid

    def undelete_task(self, task: str, *, by: str | None = None) -> str:
        with self.lock:
            entity = self.typed(task, Task)
            if not entity.deleted:
                return entity.gid
            entity.deleted = False
            entity.deleted_at = None
            entity.modified_at = now = iso_now()
            self._emit("undeleted", entity, self.task_targets(entity), by=by, created_at=now)
            return entity.gid

    undelete = undelete_task

    # ---------------------------------------------------------------- stories
    def add_comment(self, task: str, text: str, *, by: str | None = None) -> str:
        """Comment on a task: story ``added`` (subtype comment_added) with the task as parent."""
        return self.add_story(task, text, subtype="comment_added", by=by)

    def add_story(
        self, task: str, text: str, *, subtype: str = "comment_added", by: str | None = None
    ) -> str:
        """Add a story of any subtype (system stories: e.g. ``assigned``, ``marked_complete``)."""
        with self.lock:
            entity = self._live_task(task)
            now = iso_now()
            story = self._add(
                Story(
                    gid=self.new_gid(),
                    name="",
                    created_at=now,
                    target=entity.gid,
                    text=text,
                    subtype=subtype,
                    created_by=by,
                )
            )
            entity.modified_at = now
            targets = self.task_targets(entity) | {story.gid}
            self._emit("added", story, targets, by=by, parent=entity, created_at=now)
            return story.gid

    def edit_comment(self, story: str, text: str, *, by: str | None = None) -> str:
        with self.lock:
            entity = self._live_story(story)
            entity.text = text
            entity.is_edited = True
            task = self.typed(entity.target, Task)
            targets = self.task_targets(task) | {entity.gid}
            self._emit("changed", entity, targets, by=by, change=Change("text"))
            return entity.gid

    def delete_comment(self, story: str, *, by: str | None = None) -> str:
        """Delete a comment: story ``removed`` with the task as parent; GET answers 404."""
        with self.lock:
            entity = self._live_story(story)
            entity.deleted = True
            entity.deleted_at = time.monotonic()
            task = self.typed(entity.target, Task)
            targets = self.task_targets(task) | {entity.gid}
            self._emit("removed", entity, targets, by=by, parent=task)
            return entity.gid

    def remove_story(self, story: str) -> str:
        """Story consolidation: the story silently disappears (GET answers 404, no event)."""
        with self.lock:
            entity = self._live_story(story)
            entity.deleted = True
            entity.deleted_at = time.monotonic()
            return entity.gid

    def _live_story(self, gid: str) -> Story:
        story = self.typed(gid, Story)
        if story.deleted:
            raise WorldError(f"story: Unknown object: {gid}")
        return story

    def stories_of(self, task: str) -> list[Story]:
        with self.lock:
            return [s for s in self.iter(Story) if s.target == task and not s.deleted]

    def subtasks_of(self, task: str) -> list[Task]:
        with self.lock:
            return [t for t in self.iter(Task) if t.parent == task and not t.deleted]

    # ----------------------------------------------------------- visibility
    def hide(self, gid: str) -> str:
        """The token may no longer see this object: GET answers 403 (events still flow)."""
        with self.lock:
            if gid not in self.objects:
                raise WorldError(f"Unknown object: {gid}")
            self.hidden.add(gid)
            return gid

    def unhide(self, gid: str) -> str:
        with self.lock:
            self.hidden.discard(gid)
            return gid

    def first_user(self) -> str | None:
        users = list(self.iter(User))
        return users[0].gid if users else None
