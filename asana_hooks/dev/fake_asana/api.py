"""Request/response types, Asana's error shape, routing and pagination for /api/1.0. No I/O.

Handlers are plain async functions from :class:`ApiRequest` to :class:`ApiResponse`, so the
batch endpoint can call them exactly as HTTP requests do.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from .model import Entity
from .render import FieldTree, Renderer, parse_opt_fields
from .world import World

__all__ = [
    "HELP",
    "ApiError",
    "ApiRequest",
    "ApiResponse",
    "Handler",
    "Router",
    "error_body",
    "load",
    "ok",
    "paginate",
    "present",
]

JSON = dict[str, Any]
HELP = (
    "For more information on API status codes and how to handle them, "
    "read the docs on errors: https://developers.asana.com/docs/errors"
)


def error_body(message: str, *, status: int = 400) -> JSON:
    error: JSON = {"message": message, "help": HELP}
    if status >= 500:
        error["phrase"] = "6 sad squid snuggle softly"
    return {"errors": [error]}


@dataclass
class ApiRequest:
    method: str
    path: str  # relative to the API root, e.g. "/tasks/123"
    query: dict[str, str]
    body: Any
    token: str
    api_url: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def opt_fields(self) -> FieldTree | None:
        return parse_opt_fields(self.query.get("opt_fields"))

    def data(self) -> JSON:
        """The ``data`` object of a JSON body (400 when missing or malformed)."""
        body = self.body
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise ApiError(400, "data: Missing input")
        data: JSON = body["data"]
        return data


@dataclass
class ApiResponse:
    status: int
    body: JSON
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        extra: JSON | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra or {}
        self.headers = headers or {}

    def response(self) -> ApiResponse:
        body = error_body(self.message, status=self.status)
        body.update(self.extra)
        return ApiResponse(self.status, body, dict(self.headers))


Handler = Callable[[ApiRequest], Awaitable[ApiResponse]]


def ok(data: Any, status: int = 200) -> ApiResponse:
    return ApiResponse(status, {"data": data})


class Router:
    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method.upper(), re.compile(f"^{regex}/?$"), handler))

    async def dispatch(self, request: ApiRequest) -> ApiResponse:
        path_matched = False
        for method, regex, handler in self._routes:
            found = regex.match(request.path)
            if found is None:
                continue
            path_matched = True
            if method != request.method:
                continue
            request.params = found.groupdict()
            try:
                return await handler(request)
            except ApiError as exc:
                return exc.response()
        if path_matched:
            return ApiError(405, f"Method {request.method} not allowed for this route").response()
        return ApiError(404, "No matching route for request").response()


def load(world: World, gid: str, kind: type[Entity], label: str | None = None) -> Entity:
    """Look up a live object; 400 for malformed gids, 404 unknown/deleted, 403 hidden."""
    label = label or kind.resource_type
    if not gid.isdigit():
        raise ApiError(400, f"{label}: Not a recognized ID: {gid}")
    with world.lock:
        entity = world.objects.get(gid)
        if not isinstance(entity, kind) or entity.deleted:
            raise ApiError(404, f"{label}: Unknown object: {gid}")
        if gid in world.hidden:
            raise ApiError(403, f"{label}: Forbidden: you do not have access to {gid}")
        return entity


def visible(world: World, entity: Entity) -> bool:
    return not entity.deleted and entity.gid not in world.hidden


def present(renderer: Renderer, entity: Entity, request: ApiRequest, *, compact: bool) -> JSON:
    """The representation of ``entity`` for this request (honours ``opt_fields``)."""
    fields = request.opt_fields
    if fields is None:
        return renderer.compact(entity) if compact else renderer.full(entity)
    return renderer.project(renderer.full(entity), fields)


def _encode_offset(index: int) -> str:
    return base64.urlsafe_b64encode(f"fake-offset:{index}".encode()).decode().rstrip("=")


def _decode_offset(token: str) -> int:
    try:
        padded = token + "=" * (-len(token) % 4)
        text = base64.urlsafe_b64decode(padded.encode()).decode()
        prefix, _, number = text.partition(":")
        if prefix != "fake-offset":
            raise ValueError(text)
        return int(number)
    except ValueError:
        raise ApiError(400, "offset: Your pagination token is invalid.") from None


def paginate(request: ApiRequest, items: list[JSON]) -> ApiResponse:
    """Apply ``limit``/``offset``; ``next_page`` is present only when ``limit`` was given."""
    raw_limit = request.query.get("limit")
    raw_offset = request.query.get("offset")
    if raw_limit is None:
        if raw_offset is not None:
            start = _decode_offset(raw_offset)
            return ok(items[start:])
        return ok(items)
    try:
        limit = int(raw_limit)
    except ValueError:
        raise ApiError(400, "limit: Not an integer") from None
    if not 1 <= limit <= 100:
        raise ApiError(400, "limit: Must be between 1 and 100")
    start = _decode_offset(raw_offset) if raw_offset is not None else 0
    page = items[start : start + limit]
    next_page: JSON | None = None
    if start + limit < len(items):
        token = _encode_offset(start + limit)
        query = {k: v for k, v in request.query.items() if k != "offset"}
        query["offset"] = token
        path = f"{request.path}?{urlencode(query)}"
        next_page = {"offset": token, "path": path, "uri": f"{request.api_url}{path}"}
    return ApiResponse(200, {"data": page, "next_page": next_page})
