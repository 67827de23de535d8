"""FakeAsana: wires the world, the Events API, the delivery engine and the HTTP app, and runs
uvicorn on 127.0.0.1 in a background thread. Does network I/O."""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
import threading
import time
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from .app import API_PREFIX, build_app
from .context import Context
from .delivery import DeliveryEngine
from .event import Event
from .events_api import EventLog
from .oauth import OAuthServer
from .ratelimit import RateLimiter
from .records import CallRecord, DeliveryRecord, Knobs
from .render import Renderer
from .timing import Timing
from .util import iso_now
from .webhooks import Webhook
from .world import World

__all__ = ["FakeAsana"]

HOST = "127.0.0.1"


class _QuickServer(uvicorn.Server):
    """uvicorn notices ``should_exit`` every 100 ms; tests start many fakes, so poll faster."""

    async def main_loop(self) -> None:
        ticks = 0
        while True:
            if ticks % 10 == 0:
                if await self.on_tick(ticks // 10):
                    return
            elif self.should_exit:
                return
            ticks += 1
            await asyncio.sleep(0.01)


class FakeAsana:
    """A fake Asana served over real HTTP. See the package docstring for the API."""

    def __init__(
        self,
        token: str = "test-token",  # noqa: S107 - the fake's well-known test token
        time_scale: float = 1.0,
        port: int = 0,
        *,
        max_webhooks_per_resource: int | None = None,
        max_webhooks_per_token: int | None = None,
        max_concurrent_writes: int | None = None,
    ) -> None:
        """The keyword arguments set the knobs of the same name (see :class:`Knobs`; Asana's
        values by default: 1,000 webhooks per resource, 10,000 per token, 15 concurrent
        writes); every knob stays settable later through ``fake.knobs`` or ``/_fake/knobs``."""
        self.token = token
        self.timing = Timing.scaled(time_scale)
        self.knobs = Knobs()
        overrides = {
            "max_webhooks_per_resource": max_webhooks_per_resource,
            "max_webhooks_per_token": max_webhooks_per_token,
            "max_concurrent_writes": max_concurrent_writes,
        }
        self.knobs.update({k: v for k, v in overrides.items() if v is not None})
        self.world = World()
        self.lock = self.world.lock
        self.tokens: set[str] = {token}
        self._port = port
        self._calls: list[CallRecord] = []
        self._deliveries: list[DeliveryRecord] = []
        self._dropped: list[DeliveryRecord] = []
        self.events = EventLog(self.lock, self.timing.sync_token_ttl)
        self.engine = DeliveryEngine(
            self.world, self.timing, self.knobs, self._record_delivery, self._record_dropped
        )
        self.limiter = RateLimiter(
            self.lock,
            window=lambda: self.timing.rate_window,
            budget=lambda: self.knobs.rate_limit_per_minute,
            max_concurrent=lambda: self.knobs.max_concurrent_reads,
            max_concurrent_writes=lambda: self.knobs.max_concurrent_writes,
        )
        self._http: list[httpx.AsyncClient] = []
        self.context = Context(
            world=self.world,
            renderer=Renderer(self.world),
            engine=self.engine,
            events=self.events,
            limiter=self.limiter,
            knobs=self.knobs,
            timing=self.timing,
            tokens=self.tokens,
            record_delivery=self._record_delivery,
            record_call=self._record_call,
            http=self._http_client,
        )
        self.oauth = OAuthServer(
            self.world, self.tokens, self.context.token_users, self.lock, time_scale
        )
        """Asana's OAuth endpoints under ``/-/`` (ASANA_OAUTH_URL = ``oauth_url``)."""
        self.context.expired = self.oauth.expired
        self.world.subscribe(self._on_event)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    # ------------------------------------------------------------- lifecycle
    def start(self) -> FakeAsana:
        """Serve on 127.0.0.1 (a free port unless one was given); blocks until it answers."""
        if self._server is not None:
            return self
        self.engine.start()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, self._port))
        sock.listen(512)
        self._socket = sock
        self._port = sock.getsockname()[1]
        app = build_app(self.context, self, self._http, self.oauth.routes())
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=1,
            timeout_keep_alive=5,
        )
        self._server = _QuickServer(config)
        server = self._server
        self._thread = threading.Thread(
            target=lambda: server.run(sockets=[sock]), name="fake-asana-http", daemon=True
        )
        self._thread.start()
        self._wait_until_answering()
        return self

    def _wait_until_answering(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self._thread is not None and not self._thread.is_alive():
                    raise RuntimeError("fake Asana server thread died during startup")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.base_url}/_fake/health").status_code == 200:
                        return
                time.sleep(0.01)
        raise TimeoutError("fake Asana did not start answering")

    def stop(self) -> None:
        """Stop deliveries and the HTTP server; quick and idempotent."""
        self.engine.stop()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._socket is not None:
            self._socket.close()
        self._server = None
        self._thread = None
        self._socket = None

    def __enter__(self) -> FakeAsana:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ URLs
    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self._port}"

    @property
    def api_url(self) -> str:
        return self.base_url + API_PREFIX

    # ------------------------------------------------------------ plumbing
    def _http_client(self) -> httpx.AsyncClient:
        if not self._http:
            raise RuntimeError("the fake's HTTP server is not running")
        return self._http[0]

    def _on_event(self, event: Event, targets: frozenset[str]) -> None:
        self.events.append(event, targets)
        self.engine.route(event, targets)

    def _record_call(self, record: CallRecord) -> None:
        with self.lock:
            self._calls.append(record)

    def _record_delivery(self, record: DeliveryRecord) -> None:
        with self.lock:
            self._deliveries.append(record)

    def _record_dropped(self, record: DeliveryRecord) -> None:
        with self.lock:
            self._dropped.append(record)

    # ------------------------------------------------------ test-facing API
    @property
    def calls(self) -> list[CallRecord]:
        """Every /api/1.0 request so far (a snapshot list)."""
        with self.lock:
            return list(self._calls)

    @property
    def deliveries(self) -> list[DeliveryRecord]:
        """Every POST to a webhook target so far: handshakes, heartbeats, events, duplicates."""
        with self.lock:
            return list(self._deliveries)

    @property
    def dropped(self) -> list[DeliveryRecord]:
        """Deliveries the drop_rate knob swallowed (never sent)."""
        with self.lock:
            return list(self._dropped)

    @property
    def webhooks(self) -> dict[str, Webhook]:
        """Live webhooks by gid (a snapshot dict of the live objects)."""
        with self.lock:
            return dict(self.engine.webhooks)

    def reset_records(self) -> None:
        with self.lock:
            self._calls.clear()
            self._deliveries.clear()
            self._dropped.clear()

    def calls_json(self, since: int = 0) -> list[dict[str, Any]]:
        return [c.to_json() for c in self.calls[since:]]

    def deliveries_json(self, since: int = 0) -> list[dict[str, Any]]:
        return [d.to_json() for d in self.deliveries[since:]]

    @property
    def oauth_url(self) -> str:
        """What ASANA_OAUTH_URL is for this fake (Asana's is https://app.asana.com/-/)."""
        return self.base_url + "/-/"

    def add_token(self, token: str) -> None:
        """Accept another bearer token (rate limits are per token)."""
        with self.lock:
            self.tokens.add(token)

    def revoke_token(self, token: str) -> None:
        """Stop accepting a bearer token: every call with it is answered 401 from now on."""
        with self.lock:
            self.tokens.discard(token)

    def hold_webhooks(self, count: int, *, resource: str, token: str | None = None) -> list[str]:
        """``count`` webhooks on ``resource`` made earlier by this app and user for some other
        receiver: they take room under Asana's caps and list in ``GET /webhooks``, but never
        deliver (no heartbeat is ever due, their target is a closed local port)."""
        with self.lock:
            entity = self.world.get(resource)
            if entity is None:
                raise KeyError(resource)
            gids = []
            for _ in range(count):
                webhook = Webhook(
                    gid=self.world.new_gid(),
                    resource_gid=resource,
                    resource_type=entity.resource_type,
                    resource_name=entity.name,
                    target="https://127.0.0.1:9/elsewhere",
                    secret="held",  # noqa: S106 - never used: it never delivers
                    filters=[],
                    token=token or self.token,
                    created_at=iso_now(),
                    workspace=self.world.workspace_of(resource),
                    next_heartbeat_at=math.inf,
                )
                self.engine.webhooks[webhook.gid] = webhook
                gids.append(webhook.gid)
            return gids

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Block until no delivery is buffered, queued, retrying or in flight."""
        deadline = time.monotonic() + timeout
        while not self.engine.is_idle():
            if time.monotonic() >= deadline:
                raise TimeoutError("fake Asana still has deliveries pending")
            time.sleep(0.005)

    def expire_sync_tokens(self) -> None:
        """Every existing sync token now answers 412 (with a fresh token)."""
        self.events.expire_all()

    def send_heartbeat(self, webhook_gid: str | None = None) -> list[str]:
        """Queue a heartbeat for one webhook (or all); returns the gids."""
        return self.engine.heartbeat(webhook_gid)

    def delete_webhook_silently(self, gid: str) -> bool:
        """As if Asana deleted the webhook on its own: GET /webhooks/{gid} answers 404."""
        return self.engine.remove(gid) is not None

    def seed_team(
        self, workspace: str, name: str = "Team", projects: int = 0, *, by: str | None = None
    ) -> tuple[str, list[str]]:
        """A new team in ``workspace`` with ``projects`` projects: (team gid, project gids)."""
        return self.world.seed_team(workspace, name, projects=projects, by=by)

    def seed_demo(self) -> dict[str, Any]:
        """A small world for demos (idempotent): workspace, user, project with sections."""
        world = self.world
        with self.lock:
            existing = getattr(self, "_demo", None)
            if isinstance(existing, dict):
                return existing
            ws = world.add_workspace("Acme")
            user = world.add_user("Greg Sanchez", workspace=ws)
            project = world.add_project("Launch", ws, by=user)
            sections = [world.add_section(project, n, by=user) for n in ("To do", "Doing", "Done")]
            field = world.add_custom_field(ws, "Status note", type="text", project=project)
            self._demo: dict[str, Any] = {
                "workspace": ws,
                "user": user,
                "project": project,
                "sections": sections,
                "custom_field": field,
            }
            return self._demo
