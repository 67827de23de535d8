"""Write endpoints on tasks and comments (create, update, delete, comment, add to a project,
add followers). No I/O.

They act as the token's user (``GET /users/me``: the first user in the world) and produce
the same events as the corresponding :class:`~asana_hooks.dev.fake_asana.world.World` methods.
"""

from __future__ import annotations

from typing import Any

from .api import ApiError, ApiRequest, ApiResponse, Router, load, ok, present
from .context import Context
from .model import Project, Task, User
from .world import WorldError

__all__ = ["register"]

UPDATABLE = ("name", "notes", "completed", "assignee", "due_on")


class WriteRoutes:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.world = ctx.world

    def _me(self) -> str | None:
        return self.world.first_user()

    def _task_answer(self, request: ApiRequest, gid: str, status: int = 200) -> ApiResponse:
        with self.world.lock:
            task = load(self.world, gid, Task)
            return ok(present(self.ctx.renderer, task, request, compact=False), status)

    async def create_task(self, request: ApiRequest) -> ApiResponse:
        data = request.data()
        name = data.get("name", "")
        projects = data.get("projects") or []
        if not isinstance(name, str) or not isinstance(projects, list):
            raise ApiError(400, "name, projects: Invalid input")
        if not projects and not data.get("workspace") and not data.get("parent"):
            raise ApiError(400, "workspace: Missing input")
        try:
            gid = self.world.add_task(
                name,
                projects=[str(p) for p in projects],
                by=self._me(),
                notes=str(data.get("notes", "")),
                assignee=self._user(data.get("assignee")),
                due_on=data.get("due_on"),
                parent=data.get("parent"),
                workspace=data.get("workspace"),
            )
        except WorldError as exc:
            raise ApiError(400, str(exc)) from None
        return self._task_answer(request, gid, 201)

    def _user(self, value: Any) -> str | None:
        if value == "me":
            return self._me()
        return str(value) if value is not None else None

    async def update_task(self, request: ApiRequest) -> ApiResponse:
        task = load(self.world, request.params["gid"], Task)
        data = request.data()
        changes: dict[str, Any] = {k: data[k] for k in UPDATABLE if k in data}
        if "assignee" in changes:
            changes["assignee"] = self._user(changes["assignee"])
        try:
            self.world.update_task(task.gid, by=self._me(), **changes)
        except (WorldError, TypeError) as exc:
            raise ApiError(400, str(exc)) from None
        return self._task_answer(request, task.gid)

    async def delete_task(self, request: ApiRequest) -> ApiResponse:
        task = load(self.world, request.params["gid"], Task)
        self.world.delete_task(task.gid, by=self._me())
        return ok({})

    async def add_project(self, request: ApiRequest) -> ApiResponse:
        """``POST /tasks/{gid}/addProject`` ``{data: {project, section?}}``: 200 ``{data: {}}``
        (Asana's EmptyResponse), also when the task is already in the project."""
        task = load(self.world, request.params["gid"], Task)
        data = request.data()
        project, section = data.get("project"), data.get("section")
        if not isinstance(project, str) or not project:
            raise ApiError(400, "project: Missing input")
        if section is not None and not isinstance(section, str):
            raise ApiError(400, "section: Invalid input")
        load(self.world, project, Project)
        try:
            self.world.add_task_to_project(task.gid, project, section=section, by=self._me())
        except WorldError as exc:
            raise ApiError(400, str(exc)) from None
        return ok({})

    async def add_followers(self, request: ApiRequest) -> ApiResponse:
        """``POST /tasks/{gid}/addFollowers`` ``{data: {followers: [user gid, "me" or email]}}``:
        200 with the task (honouring ``opt_fields``)."""
        task = load(self.world, request.params["gid"], Task)
        followers = request.data().get("followers")
        if not isinstance(followers, list) or not followers:
            raise ApiError(400, "followers: Missing input")
        users = [self._follower(value) for value in followers]
        self.world.add_followers(task.gid, users, by=self._me())
        return self._task_answer(request, task.gid)

    def _follower(self, value: Any) -> str:
        if value == "me" and self._me():
            return str(self._me())
        if isinstance(value, str) and "@" in value:
            found = next((u.gid for u in self.world.iter(User) if u.email == value), None)
            if found:
                return found
        if isinstance(value, str) and isinstance(self.world.get(value), User):
            return value
        raise ApiError(400, f"followers: Not a recognized ID: {value}")

    async def add_comment(self, request: ApiRequest) -> ApiResponse:
        task = load(self.world, request.params["gid"], Task)
        text = request.data().get("text")
        if not isinstance(text, str) or not text:
            raise ApiError(400, "text: Missing input")
        gid = self.world.add_comment(task.gid, text, by=self._me())
        with self.world.lock:
            story = self.world.objects[gid]
            return ok(present(self.ctx.renderer, story, request, compact=False), 201)


def register(router: Router, ctx: Context) -> None:
    routes = WriteRoutes(ctx)
    router.add("POST", "/tasks", routes.create_task)
    router.add("PUT", "/tasks/{gid}", routes.update_task)
    router.add("DELETE", "/tasks/{gid}", routes.delete_task)
    router.add("POST", "/tasks/{gid}/stories", routes.add_comment)
    router.add("POST", "/tasks/{gid}/addProject", routes.add_project)
    router.add("POST", "/tasks/{gid}/addFollowers", routes.add_followers)
