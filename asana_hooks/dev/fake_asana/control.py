"""The /_fake control API: drive the world and the knobs over HTTP (no auth). No I/O of its
own beyond answering requests. Routes are listed in the package docstring."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .context import Context
from .model import CustomField, Portfolio, Project, Task, Team, User, Workspace
from .world import WorldError

__all__ = ["ControlTarget", "control_routes"]

TASK_FIELDS = ("name", "notes", "completed", "assignee", "due_on")


class ControlTarget(Protocol):
    """What the control API needs from :class:`~asana_hooks.dev.fake_asana.server.FakeAsana`."""

    def calls_json(self, since: int = 0) -> list[dict[str, Any]]: ...
    def deliveries_json(self, since: int = 0) -> list[dict[str, Any]]: ...
    def expire_sync_tokens(self) -> None: ...
    def send_heartbeat(self, webhook_gid: str | None = None) -> list[str]: ...
    def delete_webhook_silently(self, gid: str) -> bool: ...
    def seed_demo(self) -> dict[str, Any]: ...
    def seed_team(
        self, workspace: str, name: str = "Team", projects: int = 0, *, by: str | None = None
    ) -> tuple[str, list[str]]: ...
    def reset_records(self) -> None: ...


Endpoint = Callable[[Request], Awaitable[Response]]


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("body must be a JSON object")
    return value


def _guard(handler: Callable[[Request], Awaitable[Any]]) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            result = await handler(request)
        except (WorldError, KeyError, ValueError, TypeError) as exc:
            return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=400)
        return JSONResponse(result)

    return endpoint


class _Control:
    def __init__(self, ctx: Context, target: ControlTarget) -> None:
        self.ctx = ctx
        self.world = ctx.world
        self.target = target

    def _by(self, body: dict[str, Any]) -> str | None:
        value = body.get("by")
        return str(value) if value else self.world.first_user()

    async def health(self, _: Request) -> Any:
        return {"ok": True}

    async def summary(self, _: Request) -> Any:
        world = self.world
        with world.lock:
            return {
                "workspaces": [{"gid": w.gid, "name": w.name} for w in world.iter(Workspace)],
                "users": [{"gid": u.gid, "name": u.name} for u in world.iter(User)],
                "teams": [{"gid": t.gid, "name": t.name} for t in world.iter(Team)],
                "portfolios": [
                    {"gid": f.gid, "name": f.name, "projects": list(f.projects)}
                    for f in world.iter(Portfolio)
                ],
                "projects": [
                    {
                        "gid": p.gid,
                        "name": p.name,
                        "team": p.team,
                        "archived": p.archived,
                        "deleted": p.deleted,
                        "sections": [
                            {"gid": s.gid, "name": s.name} for s in world.sections_of(p.gid)
                        ],
                    }
                    for p in world.iter(Project)
                ],
                "custom_fields": [
                    {"gid": c.gid, "name": c.name, "type": c.type} for c in world.iter(CustomField)
                ],
                "tasks": [
                    {"gid": t.gid, "name": t.name, "deleted": t.deleted} for t in world.iter(Task)
                ],
            }

    async def seed(self, _: Request) -> Any:
        return self.target.seed_demo()

    async def create_task(self, request: Request) -> Any:
        body = await _json(request)
        project = body.get("project")
        gid = self.world.add_task(
            str(body.get("name", "Untitled task")),
            projects=[str(project)] if project else None,
            section=body.get("section"),
            by=self._by(body),
            notes=str(body.get("notes", "")),
            assignee=body.get("assignee"),
            due_on=body.get("due_on"),
            parent=body.get("parent"),
        )
        return {"gid": gid}

    async def update_task(self, request: Request) -> Any:
        body = await _json(request)
        gid = request.path_params["gid"]
        by = self._by(body)
        changes = {k: body[k] for k in TASK_FIELDS if k in body}
        self.world.update_task(gid, by=by, **changes)
        for field, value in (body.get("custom_fields") or {}).items():
            self.world.set_custom_field(gid, str(field), value, by=by)
        if body.get("section"):
            self.world.move_task_to_section(gid, str(body["section"]), by=by)
        return {"gid": gid}

    async def comment(self, request: Request) -> Any:
        body = await _json(request)
        gid = request.path_params["gid"]
        return {"gid": self.world.add_comment(gid, str(body["text"]), by=self._by(body))}

    async def delete_task(self, request: Request) -> Any:
        body = await _json(request)
        return {"gid": self.world.delete_task(request.path_params["gid"], by=self._by(body))}

    async def remove_story(self, request: Request) -> Any:
        return {"gid": self.world.remove_story(request.path_params["gid"])}

    # -------------------------------------------------------- projects and scopes
    async def create_team(self, request: Request) -> Any:
        body = await _json(request)
        team, projects = self.target.seed_team(
            str(body["workspace"]),
            str(body.get("name", "Team")),
            int(body.get("projects", 0)),
            by=self._by(body),
        )
        return {"gid": team, "projects": projects}

    async def create_portfolio(self, request: Request) -> Any:
        body = await _json(request)
        name = str(body.get("name", "Portfolio"))
        return {"gid": self.world.add_portfolio(str(body["workspace"]), name)}

    async def create_project(self, request: Request) -> Any:
        body = await _json(request)
        team = body.get("team")
        gid = self.world.add_project(
            str(body.get("name", "Untitled project")),
            str(body["workspace"]),
            team=str(team) if team else None,
            notes=str(body.get("notes", "")),
            by=self._by(body),
        )
        return {"gid": gid}

    async def archive_project(self, request: Request) -> Any:
        body = await _json(request)
        archived = body.get("archived", True)
        if not isinstance(archived, bool):
            raise TypeError("archived must be a boolean")
        gid = request.path_params["gid"]
        return {"gid": self.world.archive_project(gid, archived, by=self._by(body))}

    async def move_project(self, request: Request) -> Any:
        body = await _json(request)
        gid = request.path_params["gid"]
        return {"gid": self.world.move_project(gid, team=str(body["team"]), by=self._by(body))}

    async def delete_project(self, request: Request) -> Any:
        body = await _json(request)
        return {"gid": self.world.delete_project(request.path_params["gid"], by=self._by(body))}

    async def undelete_project(self, request: Request) -> Any:
        body = await _json(request)
        gid = request.path_params["gid"]
        return {"gid": self.world.undelete_project(gid, by=self._by(body))}

    async def portfolio_add(self, request: Request) -> Any:
        body = await _json(request)
        folio, project = request.path_params["gid"], str(body["project"])
        return {"gid": self.world.add_project_to_portfolio(folio, project, by=self._by(body))}

    async def portfolio_remove(self, request: Request) -> Any:
        body = await _json(request)
        folio, project = request.path_params["gid"], str(body["project"])
        gid = self.world.remove_project_from_portfolio(folio, project, by=self._by(body))
        return {"gid": gid}

    async def hide(self, request: Request) -> Any:
        return {"gid": self.world.hide(request.path_params["gid"])}

    async def knobs(self, request: Request) -> Any:
        if request.method == "POST":
            self.ctx.knobs.update(await _json(request))
        return self.ctx.knobs.to_json()

    async def heartbeat(self, request: Request) -> Any:
        body = await _json(request)
        return {"webhooks": self.target.send_heartbeat(body.get("webhook"))}

    async def expire(self, _: Request) -> Any:
        self.target.expire_sync_tokens()
        return {"ok": True}

    async def delete_webhook(self, request: Request) -> Any:
        return {"deleted": self.target.delete_webhook_silently(request.path_params["gid"])}

    async def webhooks(self, _: Request) -> Any:
        with self.world.lock:
            return [w.to_json() for w in self.ctx.engine.webhooks.values()]

    async def calls(self, request: Request) -> Any:
        return self.target.calls_json(int(request.query_params.get("since", 0)))

    async def deliveries(self, request: Request) -> Any:
        return self.target.deliveries_json(int(request.query_params.get("since", 0)))

    async def reset(self, _: Request) -> Any:
        self.target.reset_records()
        return {"ok": True}


def control_routes(ctx: Context, target: ControlTarget) -> list[Route]:
    c = _Control(ctx, target)
    post = ["POST"]
    return [
        Route("/health", _guard(c.health)),
        Route("/world", _guard(c.summary)),
        Route("/seed", _guard(c.seed), methods=post),
        Route("/tasks", _guard(c.create_task), methods=post),
        Route("/tasks/{gid}/update", _guard(c.update_task), methods=post),
        Route("/tasks/{gid}/comment", _guard(c.comment), methods=post),
        Route("/tasks/{gid}/delete", _guard(c.delete_task), methods=post),
        Route("/stories/{gid}/remove", _guard(c.remove_story), methods=post),
        Route("/teams", _guard(c.create_team), methods=post),
        Route("/portfolios", _guard(c.create_portfolio), methods=post),
        Route("/projects", _guard(c.create_project), methods=post),
        Route("/projects/{gid}/archive", _guard(c.archive_project), methods=post),
        Route("/projects/{gid}/move", _guard(c.move_project), methods=post),
        Route("/projects/{gid}/delete", _guard(c.delete_project), methods=post),
        Route("/projects/{gid}/undelete", _guard(c.undelete_project), methods=post),
        Route("/portfolios/{gid}/add-project", _guard(c.portfolio_add), methods=post),
        Route("/portfolios/{gid}/remove-project", _guard(c.portfolio_remove), methods=post),
        Route("/objects/{gid}/hide", _guard(c.hide), methods=post),
        Route("/knobs", _guard(c.knobs), methods=["GET", "POST"]),
        Route("/heartbeat", _guard(c.heartbeat), methods=post),
        Route("/expire-sync-tokens", _guard(c.expire), methods=post),
        Route("/webhooks", _guard(c.webhooks)),
        Route("/webhooks/{gid}/delete", _guard(c.delete_webhook), methods=post),
        Route("/calls", _guard(c.calls)),
        Route("/deliveries", _guard(c.deliveries)),
        Route("/reset-records", _guard(c.reset), methods=post),
    ]
