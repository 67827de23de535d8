"""A watch's scope at Asana: what it is, and its projects. I/O edge (Asana API).

Listings are paged at Asana's maximum (``limit=100``, then ``offset``), so a reconciliation
costs one request per 100 projects. Archived projects are left out by Asana itself
(``archived=false``) unless the watch includes them; a portfolio's items are filtered here.
"""

from __future__ import annotations

from asana_hooks.asana_client import AsanaClient
from asana_hooks.asana_errors import NotFound
from asana_hooks.errors import HooksError
from asana_hooks.watch_plan import ScopeProject
from asana_hooks.watches import Scope

PAGE_LIMIT = 100
PROJECT_FIELDS = "name,archived,resource_type,created_at"


class UnknownScope(HooksError):
    """Asana has no such team, workspace or portfolio (or the token cannot see it)."""


def resolve(client: AsanaClient, resource_type: str, gid: str) -> Scope:
    """The scope as Asana describes it; ``UnknownScope`` when the gid is not one of that type."""
    try:
        body = client.get(f"/{resource_type}s/{gid}", {"opt_fields": "name,workspace"})
    except NotFound:
        raise UnknownScope(
            f"Asana has no {resource_type} {gid} that this token can see (is it the gid of "
            f"another kind of object, a task or a project?)"
        ) from None
    data = body.get("data") or {}
    workspace = data.get("workspace") or {}
    workspace_gid = gid if resource_type == "workspace" else str(workspace.get("gid") or "")
    return Scope(
        gid=gid,
        resource_type=resource_type,
        name=str(data.get("name") or ""),
        workspace_gid=workspace_gid,
    )


def list_projects(
    client: AsanaClient, scope: Scope, *, include_archived: bool
) -> list[ScopeProject]:
    """Every project in the scope, paged (archived ones only when asked)."""
    params = {"opt_fields": PROJECT_FIELDS}
    if scope.resource_type == "portfolio":
        items = client.paginate(f"/portfolios/{scope.gid}/items", params, limit=PAGE_LIMIT)
        projects = [
            ScopeProject.from_asana(item)
            for item in items
            if item.get("resource_type", "project") == "project"
        ]
        return [p for p in projects if include_archived or not p.archived]
    params[scope.resource_type] = scope.gid
    if not include_archived:
        params["archived"] = "false"
    return [
        ScopeProject.from_asana(item)
        for item in client.paginate("/projects", params, limit=PAGE_LIMIT)
    ]


def list_webhooks(client: AsanaClient, workspace_gid: str) -> list[dict[str, object]]:
    """Every webhook this token holds in the workspace (Asana's full objects), paged."""
    params = {"workspace": workspace_gid}
    return [dict(w) for w in client.paginate("/webhooks", params, limit=PAGE_LIMIT)]
