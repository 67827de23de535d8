"""``GET /events`` (the Events API) and ``POST /batch``. No I/O of their own."""

from __future__ import annotations

from typing import Any

from .api import ApiError, ApiRequest, ApiResponse, Router, load
from .context import Context
from .events_api import SyncExpired
from .model import Entity

__all__ = ["MAX_BATCH_ACTIONS", "batch_actions", "register"]

MAX_BATCH_ACTIONS = 10
SYNC_MESSAGE = (
    "Sync token invalid or too old. If you are attempting to keep resources in sync, you "
    "must fetch the full dataset for this query now and use the new sync token for the "
    "next sync."
)


def batch_actions(body: Any) -> list[dict[str, Any]] | None:
    """The actions of a batch body, or None when the body is malformed."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        return None
    actions = body["data"].get("actions")
    if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
        return None
    return actions


def register(router: Router, ctx: Context) -> None:
    async def get_events(request: ApiRequest) -> ApiResponse:
        resource = request.query.get("resource")
        if not resource:
            raise ApiError(400, "resource: Missing input")
        load(ctx.world, resource, Entity, "resource")
        try:
            answer = ctx.events.read(resource, request.query.get("sync") or None)
        except SyncExpired as exc:
            raise ApiError(412, SYNC_MESSAGE, extra={"sync": exc.fresh}) from None
        body = {"data": answer.data, "sync": answer.sync, "has_more": answer.has_more}
        return ApiResponse(200, body)

    async def batch(request: ApiRequest) -> ApiResponse:
        actions = batch_actions(request.body)
        if actions is None:
            raise ApiError(400, "data.actions: Missing input")
        if not actions:
            raise ApiError(400, "data.actions: Must contain at least one action")
        if len(actions) > MAX_BATCH_ACTIONS:
            raise ApiError(400, f"data.actions: At most {MAX_BATCH_ACTIONS} actions are allowed")
        results = []
        for action in actions:
            sub = _sub_request(request, action)
            if isinstance(sub, ApiResponse):
                response = sub
            elif sub.path.rstrip("/") == "/batch":
                response = ApiError(400, "relative_path: Batch requests cannot nest").response()
            else:
                response = await router.dispatch(sub)
            results.append(
                {"status_code": response.status, "headers": response.headers, "body": response.body}
            )
        return ApiResponse(200, {"data": results})

    router.add("GET", "/events", get_events)
    router.add("POST", "/batch", batch)


def _sub_request(parent: ApiRequest, action: dict[str, Any]) -> ApiRequest | ApiResponse:
    path = action.get("relative_path")
    method = action.get("method")
    if not isinstance(path, str) or not path.startswith("/"):
        return ApiError(400, "relative_path: Missing input").response()
    if not isinstance(method, str) or method.lower() not in {"get", "post", "put", "delete"}:
        return ApiError(400, "method: Must be one of get, post, put, delete").response()
    path, _, raw_query = path.partition("?")
    query: dict[str, str] = {}
    for pair in filter(None, raw_query.split("&")):
        key, _, value = pair.partition("=")
        query[key] = value
    data = action.get("data")
    body: Any = None
    if method.lower() == "get" and isinstance(data, dict):
        query.update({k: str(v) for k, v in data.items()})
    elif isinstance(data, dict):
        body = {"data": data}
    options = action.get("options")
    if isinstance(options, dict):
        fields = options.get("fields")
        if isinstance(fields, list):
            query["opt_fields"] = ",".join(str(f) for f in fields)
        for key in ("limit", "offset"):
            if options.get(key) is not None:
                query[key] = str(options[key])
    return ApiRequest(
        method=method.upper(),
        path=path,
        query=query,
        body=body,
        token=parent.token,
        api_url=parent.api_url,
    )
