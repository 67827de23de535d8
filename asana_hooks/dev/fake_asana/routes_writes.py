"""Write endpoints on tasks and comments (create, update, delete, comment). No I/O.

They act as the token's user (``GET /users/me``: the first user in the world) and produce
the same events as the corresponding :class:`~asana_hooks.dev.fake_asana.world.World` methods.
"""

from __future__ import annotations

from typing import Any

from .api import ApiError, ApiRequest, ApiResponse, Router, load, ok, present
from .context import Context
from .model import Task
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
