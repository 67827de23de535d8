"""The /webhooks endpoints; creation performs the handshake before answering (network I/O
through :mod:`.handshake`)."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from .api import ApiError, ApiRequest, ApiResponse, Router, load, ok, paginate
from .context import Context
from .filters import FilterError, parse_filters
from .handshake import perform_handshake
from .model import Entity, Story
from .util import iso_now, new_secret
from .webhooks import Webhook

__all__ = ["register", "validate_target"]


def validate_target(target: Any, *, allow_localhost: bool) -> str:
    if not isinstance(target, str) or not target:
        raise ApiError(400, "target: Missing input")
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(400, f"target: Not a valid URL: {target}")
    if not allow_localhost and _is_local(parts.hostname):
        raise ApiError(403, f"target: Invalid hostname: {parts.hostname}")
    return target


def _is_local(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


class WebhookRoutes:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _answer(self, request: ApiRequest, webhook: Webhook, *, compact: bool = False) -> Any:
        fields = request.opt_fields
        if fields is None:
            return webhook.compact_json() if compact else webhook.to_json()
        return self.ctx.renderer.project(webhook.to_json(), fields)

    def _duplicate(self, resource: str, target: str, token: str) -> Webhook | None:
        with self.ctx.world.lock:
            for webhook in self.ctx.engine.webhooks.values():
                if (webhook.resource_gid, webhook.target, webhook.token) == (
                    resource,
                    target,
                    token,
                ):
                    return webhook
        return None

    def _refuse_duplicate(self, resource: str, target: str, token: str) -> None:
        existing = self._duplicate(resource, target, token)
        if existing is not None:
            raise ApiError(
                403,
                f"Duplicated webhook: a webhook for resource {resource} and this target "
                f"already exists ({existing.gid}).",
            )

    async def create(self, request: ApiRequest) -> ApiResponse:
        data = request.data()
        resource = data.get("resource")
        if not isinstance(resource, str) or not resource:
            raise ApiError(400, "resource: Missing input")
        target = validate_target(data.get("target"), allow_localhost=self.ctx.knobs.allow_localhost)
        entity = load(self.ctx.world, resource, Entity, "resource")
        try:
            filters = parse_filters(data.get("filters"), entity.resource_type)
        except FilterError as exc:
            raise ApiError(400, str(exc)) from None
        self._refuse_duplicate(resource, target, request.token)
        secret = new_secret()
        result = await perform_handshake(
            self.ctx.http(), target, secret, self.ctx.knobs.handshake_timeout
        )
        self.ctx.record_delivery(result.record)
        if not result.ok:
            raise ApiError(400, result.message)
        self._refuse_duplicate(resource, target, request.token)
        webhook = Webhook(
            gid=self.ctx.world.new_gid(),
            resource_gid=entity.gid,
            resource_type=entity.resource_type,
            resource_name=None if isinstance(entity, Story) else entity.name,
            target=target,
            secret=secret,
            filters=filters,
            token=request.token,
            created_at=iso_now(),
            workspace=self.ctx.world.workspace_of(entity.gid),
        )
        result.record.webhook_gid = webhook.gid
        self.ctx.engine.add(webhook)
        with self.ctx.world.lock:
            body = {"data": self._answer(request, webhook), "X-Hook-Secret": secret}
        return ApiResponse(201, body)

    def _load(self, request: ApiRequest) -> Webhook:
        gid = request.params["gid"]
        with self.ctx.world.lock:
            webhook = self.ctx.engine.webhooks.get(gid)
        if webhook is None or webhook.token != request.token:
            raise ApiError(404, f"webhook: Unknown object: {gid}")
        return webhook

    async def get_one(self, request: ApiRequest) -> ApiResponse:
        webhook = self._load(request)
        with self.ctx.world.lock:
            return ok(self._answer(request, webhook))

    async def get_many(self, request: ApiRequest) -> ApiResponse:
        workspace = request.query.get("workspace")
        if not workspace:
            raise ApiError(400, "workspace: Missing input")
        resource = request.query.get("resource")
        with self.ctx.world.lock:
            items = [
                self._answer(request, w)
                for w in self.ctx.engine.webhooks.values()
                if w.workspace == workspace
                and w.token == request.token
                and (resource is None or w.resource_gid == resource)
            ]
        return paginate(request, items)

    async def update(self, request: ApiRequest) -> ApiResponse:
        webhook = self._load(request)
        data = request.data()
        try:
            filters = parse_filters(data.get("filters"), webhook.resource_type)
        except FilterError as exc:
            raise ApiError(400, str(exc)) from None
        with self.ctx.world.lock:
            webhook.filters = filters
            return ok(self._answer(request, webhook))

    async def delete(self, request: ApiRequest) -> ApiResponse:
        webhook = self._load(request)
        self.ctx.engine.remove(webhook.gid)
        return ok({})


def register(router: Router, ctx: Context) -> None:
    routes = WebhookRoutes(ctx)
    router.add("POST", "/webhooks", routes.create)
    router.add("GET", "/webhooks", routes.get_many)
    router.add("GET", "/webhooks/{gid}", routes.get_one)
    router.add("PUT", "/webhooks/{gid}", routes.update)
    router.add("DELETE", "/webhooks/{gid}", routes.delete)
