"""Read endpoints for tasks, stories, projects, sections, users, workspaces, teams and
portfolios. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .api import ApiError, ApiRequest, ApiResponse, Router, load, ok, paginate, present, visible
from .context import Context
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
from .util import parse_iso

__all__ = ["register"]

SIMPLE_GETS: tuple[tuple[str, type[Entity]], ...] = (
    ("/tasks/{gid}", Task),
    ("/stories/{gid}", Story),
    ("/projects/{gid}", Project),
    ("/sections/{gid}", Section),
    ("/workspaces/{gid}", Workspace),
    ("/custom_fields/{gid}", CustomField),
    ("/teams/{gid}", Team),
    ("/portfolios/{gid}", Portfolio),
    ("/goals/{gid}", Goal),
)


def _since(request: ApiRequest, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if raw == "now":
        return datetime.now(UTC)
    try:
        return parse_iso(raw)
    except ValueError:
        raise ApiError(400, f"{name}: Not a valid date-time: {raw}") from None


def _task_filter(request: ApiRequest, tasks: list[Task]) -> list[Task]:
    modified_since = _since(request, "modified_since")
    completed_since = _since(request, "completed_since")
    out = []
    for task in tasks:
        if modified_since is not None and parse_iso(task.modified_at) < modified_since:
            continue
        if (
            completed_since is not None
            and task.completed
            and (task.completed_at is None or parse_iso(task.completed_at) < completed_since)
        ):
            continue
        out.append(task)
    return out


def _archived(request: ApiRequest) -> bool | None:
    raw = request.query.get("archived")
    if raw is None:
        return None
    if raw.lower() not in ("true", "false"):
        raise ApiError(400, f"archived: Not a boolean: {raw}")
    return raw.lower() == "true"


class ResourceRoutes:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.world = ctx.world

    def _list(self, request: ApiRequest, entities: list[Any]) -> ApiResponse:
        renderer = self.ctx.renderer
        with self.world.lock:
            items = [
                present(renderer, e, request, compact=True)
                for e in entities
                if visible(self.world, e)
            ]
        return paginate(request, items)

    def getter(self, kind: type[Entity]) -> Any:
        async def handler(request: ApiRequest) -> ApiResponse:
            with self.world.lock:
                entity = load(self.world, request.params["gid"], kind)
                return ok(present(self.ctx.renderer, entity, request, compact=False))

        return handler

    async def get_user(self, request: ApiRequest) -> ApiResponse:
        gid = request.params["gid"]
        if gid == "me":
            gid = self.ctx.token_users.get(request.token) or self.world.first_user() or ""
            if not gid:
                raise ApiError(404, "user: Unknown object: me")
        with self.world.lock:
            entity = load(self.world, gid, User)
            return ok(present(self.ctx.renderer, entity, request, compact=False))

    async def task_stories(self, request: ApiRequest) -> ApiResponse:
        task = load(self.world, request.params["gid"], Task)
        return self._list(request, self.world.stories_of(task.gid))

    async def task_subtasks(self, request: ApiRequest) -> ApiResponse:
        task = load(self.world, request.params["gid"], Task)
        return self._list(request, self.world.subtasks_of(task.gid))

    def _tasks_where(self, predicate: Any) -> list[Task]:
        return [t for t in self.world.iter(Task) if predicate(t)]

    async def project_tasks(self, request: ApiRequest) -> ApiResponse:
        project = load(self.world, request.params["gid"], Project)
        tasks = self._tasks_where(lambda t: project.gid in t.projects)
        return self._list(request, _task_filter(request, tasks))

    async def section_tasks(self, request: ApiRequest) -> ApiResponse:
        section = load(self.world, request.params["gid"], Section)
        tasks = self._tasks_where(lambda t: any(s == section.gid for _, s in t.memberships))
        return self._list(request, _task_filter(request, tasks))

    async def project_sections(self, request: ApiRequest) -> ApiResponse:
        project = load(self.world, request.params["gid"], Project)
        return self._list(request, self.world.sections_of(project.gid))

    def _projects(
        self, request: ApiRequest, *, workspace: str | None = None, team: str | None = None
    ) -> ApiResponse:
        """Projects of a workspace and/or team, oldest first; ``archived=true|false`` keeps
        only archived / unarchived ones (both without it, as Asana documents)."""
        archived = _archived(request)
        projects = [
            p
            for p in self.world.iter(Project)
            if (workspace is None or p.workspace == workspace)
            and (team is None or p.team == team)
            and (archived is None or p.archived == archived)
        ]
        return self._list(request, projects)

    async def workspace_projects(self, request: ApiRequest) -> ApiResponse:
        workspace = load(self.world, request.params["gid"], Workspace)
        return self._projects(request, workspace=workspace.gid)

    async def team_projects(self, request: ApiRequest) -> ApiResponse:
        team = load(self.world, request.params["gid"], Team)
        return self._projects(request, team=team.gid)

    async def get_projects(self, request: ApiRequest) -> ApiResponse:
        query = request.query
        workspace = team = None
        if "workspace" in query:
            workspace = load(self.world, query["workspace"], Workspace, "workspace").gid
        if "team" in query:
            team = load(self.world, query["team"], Team, "team").gid
        if workspace is None and team is None:
            # Asana answers projects of every workspace of the user here, which may time out
            # on large domains; the fake asks for a scope instead (its callers always give one)
            raise ApiError(400, "Must specify one of workspace or team")
        return self._projects(request, workspace=workspace, team=team)

    async def portfolio_items(self, request: ApiRequest) -> ApiResponse:
        gid = load(self.world, request.params["gid"], Portfolio).gid
        with self.world.lock:
            items = [self.world.objects.get(p) for p in self.world.typed(gid, Portfolio).projects]
        return self._list(request, [p for p in items if isinstance(p, Project)])

    async def get_tasks(self, request: ApiRequest) -> ApiResponse:
        query = request.query
        if "project" in query:
            project = load(self.world, query["project"], Project, "project")
            tasks = self._tasks_where(lambda t: project.gid in t.projects)
        elif "section" in query:
            section = load(self.world, query["section"], Section, "section")
            tasks = self._tasks_where(lambda t: any(s == section.gid for _, s in t.memberships))
        elif "assignee" in query and "workspace" in query:
            workspace = load(self.world, query["workspace"], Workspace, "workspace")
            assignee = query["assignee"]
            if assignee == "me":
                assignee = self.world.first_user() or ""
            tasks = self._tasks_where(
                lambda t: t.assignee == assignee and t.workspace == workspace.gid
            )
        else:
            raise ApiError(
                400,
                "Must specify exactly one of project, tag, section, user task list, "
                "or assignee + workspace",
            )
        return self._list(request, _task_filter(request, tasks))


def register(router: Router, ctx: Context) -> None:
    routes = ResourceRoutes(ctx)
    for pattern, kind in SIMPLE_GETS:
        router.add("GET", pattern, routes.getter(kind))
    router.add("GET", "/users/{gid}", routes.get_user)
    router.add("GET", "/tasks", routes.get_tasks)
    router.add("GET", "/tasks/{gid}/stories", routes.task_stories)
    router.add("GET", "/tasks/{gid}/subtasks", routes.task_subtasks)
    router.add("GET", "/projects/{gid}/tasks", routes.project_tasks)
    router.add("GET", "/projects/{gid}/sections", routes.project_sections)
    router.add("GET", "/sections/{gid}/tasks", routes.section_tasks)
    router.add("GET", "/workspaces/{gid}/projects", routes.workspace_projects)
    router.add("GET", "/projects", routes.get_projects)
    router.add("GET", "/teams/{gid}/projects", routes.team_projects)
    router.add("GET", "/portfolios/{gid}/items", routes.portfolio_items)
