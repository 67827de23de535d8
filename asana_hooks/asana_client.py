"""The one Asana API client every process uses. I/O edge (HTTP via httpx, Redis budget).

Why our own small httpx client instead of the official SDK: every request must first pass
the budget shared in Redis by all processes (``ratelimit.Budget``); a 429 must pause every
process for its ``Retry-After``; a 401 must stop everyone; the poller's requests must give
way to the workers' (``lane``: ``ratelimit``'s two lanes); and the 201 answer to
``POST /webhooks`` carries ``X-Hook-Secret`` beside ``data``, which the SDK drops unless asked.
The SDK also hides sync tokens in its event iterator (python-asana #199, #200). Here every
method returns Asana's full decoded JSON body and errors are ``asana_errors`` exceptions.

Responses are Asana's envelopes: ``{"data": ...}`` (plus ``next_page`` when paginated), or
``{"errors": [{"message": ...}]}`` with a 4xx/5xx status. See
../shared/reference/asana-openapi-subset.yaml (``/batch``, ``ErrorResponse``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx
import redis

from asana_hooks import keys, oauth
from asana_hooks.asana_errors import (
    AsanaError,
    AsanaUnavailable,
    BadToken,
    RateLimited,
    error_for,
)
from asana_hooks.connections import ConnectionStore, Credentials
from asana_hooks.ratelimit import Budget, Lane
from asana_hooks.secretbox import SecretBox
from asana_hooks.series import SeriesWriter
from asana_hooks.settings import Settings

log = logging.getLogger(__name__)

BATCH_MAX_ACTIONS = 10
"""Asana's /batch takes at most ten actions per request."""

USER_AGENT = "asana-hooks/0.1 (+httpx)"


@dataclass(frozen=True)
class BatchAction:
    """One action of a ``POST /batch`` request (BatchRequestAction in the spec)."""

    relative_path: str
    method: str = "get"
    data: dict[str, Any] | None = None
    options: dict[str, Any] | None = None

    @classmethod
    def get(cls, relative_path: str, *, fields: list[str] | None = None) -> BatchAction:
        return cls(relative_path, "get", options={"fields": fields} if fields else None)

    def to_dict(self) -> dict[str, Any]:
        action: dict[str, Any] = {"relative_path": self.relative_path, "method": self.method}
        if self.data is not None:
            action["data"] = self.data
        if self.options is not None:
            action["options"] = self.options
        return action


@dataclass(frozen=True)
class BatchResult:
    """One action's answer inside a ``/batch`` response (BatchResponse in the spec)."""

    status_code: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def data(self) -> Any:
        return self.body.get("data")

    def error(self, path: str = "") -> AsanaError | None:
        """The exception this answer would have raised on its own, or None when it is a 2xx."""
        if self.ok:
            return None
        return error_for(self.status_code, self.body, path=path, retry_after=None)


@dataclass(frozen=True)
class EventsPage:
    """One answer of ``GET /events``: up to 100 events, the next sync token, and more to come."""

    data: list[dict[str, Any]]
    sync: str
    has_more: bool


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


class AsanaClient:
    """Calls Asana within the shared budget; see the module docstring for why it exists."""

    def __init__(
        self,
        settings: Settings,
        connection: redis.Redis,
        *,
        timeout: float = 30.0,
        max_wait: float = 30.0,
        lane: Lane = "fresh",
        credentials: Credentials | None = None,
        probe: bool = False,
    ) -> None:
        """``lane``: ``fresh`` for work someone waits for (workers, CLI), ``background`` for
        the poller's, which only uses what fresh work leaves (``ratelimit``).
        ``credentials``: the connection to act as (asana_hooks.connections), each with its
        own budget; the default connection (``ASANA_ACCESS_TOKEN``) when None. ``probe``: the
        token is being checked before it becomes a connection (`connections add`), so a 401
        is only raised: no connection is marked revoked and nothing is logged."""
        if credentials is None:
            credentials = Credentials(keys.DEFAULT_CONNECTION, settings.require_token())
        token = credentials.token
        self.connection_id = credentials.connection_id
        self.budget = Budget(
            connection,
            settings.rate_limit_per_minute,
            settings.max_concurrent_reads,
            lane=lane,
            connection_id=self.connection_id,
        )
        self._connections = ConnectionStore(connection)
        self._settings = settings
        self._credentials = credentials
        self._refresh_lock = threading.Lock()
        self._probe = probe
        self.rejected = False
        """Asana answered 401 to this client: a pool builds a new one (the token may be new)."""
        self._maybe_revoked = True
        """Until a call succeeds, the connection may be marked revoked from an earlier 401."""
        self.max_wait = max_wait
        self._redis = connection
        self._series = SeriesWriter(connection)
        self._http = httpx.Client(
            base_url=settings.asana_api_url + "/",
            headers={
                "Authorization": f"Bearer {token.reveal()}",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
            follow_redirects=False,
            trust_env=False,
        )

    # The one request path -------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: object = None,
        read: bool | None = None,
        cost: int = 1,
    ) -> dict[str, Any]:
        """Send one request within the budget; return the decoded body or raise AsanaError."""
        method = method.upper()
        is_read = method in ("GET", "HEAD") if read is None else read
        if oauth.due(self._credentials):
            self._refresh(path)
        with self.budget.acquire(cost, read=is_read, max_wait=self.max_wait):
            try:
                response = self._http.request(method, path.lstrip("/"), params=params, json=json)
            except httpx.TimeoutException as exc:
                self._count("timeout")
                raise AsanaUnavailable(f"{method} {path} timed out", path=path) from exc
            except httpx.TransportError as exc:
                self._count("unreachable")
                raise AsanaUnavailable(f"{method} {path}: {exc}", path=path) from exc
        self._count(str(response.status_code))
        body = self._decode(response)
        if response.is_success:
            if self._maybe_revoked and not self._probe:
                self._accepted()
            return body
        error = error_for(response.status_code, body, path=path, retry_after=_retry_after(response))
        if isinstance(error, RateLimited):
            self.budget.pause_for(error.retry_after)
        elif isinstance(error, BadToken) and not self._probe:
            self._rejected(path)
        raise error

    def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: object) -> dict[str, Any]:
        return self.request("POST", path, json=json)

    def put(self, path: str, json: object) -> dict[str, Any]:
        return self.request("PUT", path, json=json)

    def delete(self, path: str) -> dict[str, Any]:
        return self.request("DELETE", path)

    # Conveniences built on request --------------------------------------------------------

    def paginate(
        self, path: str, params: dict[str, str] | None = None, *, limit: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Every item of a list endpoint, following ``next_page.offset``."""
        query = dict(params or {})
        query["limit"] = str(limit)
        while True:
            body = self.get(path, query)
            yield from body.get("data") or []
            next_page = body.get("next_page")
            if not isinstance(next_page, dict) or not next_page.get("offset"):
                return
            query["offset"] = str(next_page["offset"])

    def batch(self, actions: list[BatchAction]) -> list[BatchResult]:
        """Run the actions through ``POST /batch``, ten per request, each counted in the budget.

        A request-level failure (429, 5xx, 401) raises; per-action failures come back as
        BatchResults with their own status_code.
        """
        results: list[BatchResult] = []
        for start in range(0, len(actions), BATCH_MAX_ACTIONS):
            chunk = actions[start : start + BATCH_MAX_ACTIONS]
            read = all(action.method.lower() == "get" for action in chunk)
            body = self.request(
                "POST",
                "/batch",
                json={"data": {"actions": [action.to_dict() for action in chunk]}},
                read=read,
                cost=len(chunk),
            )
            answers = body.get("data") or []
            if len(answers) != len(chunk):
                raise AsanaUnavailable(
                    f"/batch answered {len(answers)} results for {len(chunk)} actions",
                    path="/batch",
                )
            for answer in answers:
                results.append(
                    BatchResult(
                        status_code=int(answer.get("status_code", 500)),
                        body=answer.get("body") or {},
                        headers=answer.get("headers") or {},
                    )
                )
        return results

    def events(self, resource: str, sync: str | None) -> EventsPage:
        """One page of ``GET /events``; raises SyncTokenExpired (with a fresh token) on 412."""
        params = {"resource": resource}
        if sync:
            params["sync"] = sync
        body = self.get("/events", params)
        return EventsPage(
            data=list(body.get("data") or []),
            sync=str(body.get("sync") or sync or ""),
            has_more=bool(body.get("has_more")),
        )

    # Plumbing -------------------------------------------------------------------------

    def _refresh(self, path: str) -> None:
        """An OAuth access token near its expiry: take the one another process refreshed, or
        refresh it here (once across processes, asana_hooks.oauth). A refused refresh is a
        revoked grant: handled as a 401 (the connection waits until it is connected again)."""
        with self._refresh_lock:
            if not oauth.due(self._credentials):
                return
            box = SecretBox(self._settings.encryption_keys)
            store = ConnectionStore(self._redis, box)
            try:
                fresh = oauth.fresh_credentials(
                    self._settings, self._redis, store, self._credentials
                )
            except oauth.OAuthRefused as exc:
                self._rejected(path, why=f"OAuth refresh refused ({exc.error})")
                raise BadToken(f"{self.connection_id}: {exc}", status=401, path=path) from None
            self._credentials = fresh
            self._http.headers["Authorization"] = f"Bearer {fresh.token.reveal()}"

    def _rejected(self, path: str, *, why: str = "401") -> None:
        """A 401: this connection stops (every process) and shows ``revoked``; others go on."""
        self.budget.reject_token()
        self._maybe_revoked = True
        self.rejected = True
        try:
            self._connections.set_state(self.connection_id, "revoked", problem=f"{why} on {path}")
        except redis.RedisError:
            log.warning("connections.unavailable connection=%s", self.connection_id)
        if self.connection_id == keys.DEFAULT_CONNECTION:
            log.error(
                "asana.token_rejected connection=%s path=%s: fix ASANA_ACCESS_TOKEN",
                self.connection_id,
                path,
            )
        elif self._credentials.expires_at is not None:
            log.error(
                "asana.token_rejected connection=%s path=%s: an OAuth grant; its user must "
                "connect again (/oauth/start); its work waits",
                self.connection_id,
                path,
            )
        else:
            log.error(
                "asana.token_rejected connection=%s path=%s: give it a new token with "
                "`asana-hooks connections token %s`; its work waits",
                self.connection_id,
                path,
                self.connection_id,
            )

    def _accepted(self) -> None:
        """The first success since this client began (or since a 401): clear a ``revoked``."""
        self._maybe_revoked = False
        try:
            if self._connections.state(self.connection_id) == "revoked":
                self._connections.set_state(self.connection_id, "ok")
                log.info("asana.token_accepted connection=%s", self.connection_id)
        except redis.RedisError:
            log.warning("connections.unavailable connection=%s", self.connection_id)

    def _decode(self, response: httpx.Response) -> dict[str, Any]:
        if not response.content:
            return {}
        try:
            body = response.json()
        except ValueError:
            if response.is_success:
                raise AsanaUnavailable(
                    f"Asana answered {response.status_code} with a body that is not JSON",
                    status=response.status_code,
                ) from None
            return {}
        return body if isinstance(body, dict) else {"data": body}

    def _count(self, outcome: str) -> None:
        try:
            self._redis.hincrby(keys.STATS, f"api:{outcome}", 1)
            self._series.add({"api_requests": 1, "api_429": int(outcome == "429")})
        except redis.RedisError:
            log.warning("stats.unavailable field=api:%s", outcome)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AsanaClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
