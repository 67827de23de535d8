"""Knobs (fault injection settings) and the records of API calls and delivery attempts.
No I/O."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["CallRecord", "DeliveryRecord", "Knobs"]


@dataclass
class Knobs:
    """Settable at any time, from any thread; read on every request / delivery."""

    drop_rate: float = 0.0  # fraction of event deliveries silently not sent
    duplicate_deliveries: int = 0  # extra sends of each successful delivery (same bytes)
    delivery_delay: float = 0.0  # real seconds to wait before each send
    reorder: bool = False  # shuffle queued deliveries (and the events inside them)
    rate_limit_per_minute: int = 1500  # per token; the minute is scaled by time_scale
    max_concurrent_reads: int = 50  # per token
    max_concurrent_writes: int = 15  # per token (POST/PUT/DELETE, write actions of /batch)
    max_webhooks_per_resource: int = 1000  # over every token, checked on POST /webhooks
    max_webhooks_per_token: int = 10000  # per token ("per user per app"), same
    chaos_429_rate: float = 0.0
    throttled_tokens: str = ""  # comma-separated bearer tokens answered 429 on every call
    chaos_500_rate: float = 0.0
    api_latency: float = 0.0  # real seconds added to every API answer
    unavailable_paths: str = ""  # comma-separated path prefixes answered 503 (an outage)
    allow_localhost: bool = True  # real Asana refuses localhost targets (403)
    delivery_timeout: float = 10.0  # real seconds; Asana waits 10 s for the target
    handshake_timeout: float = 10.0

    def update(self, values: dict[str, Any]) -> None:
        """Set knobs from a JSON-ish mapping, converting to each knob's type."""
        known = {f.name: f for f in fields(self)}
        for key, value in values.items():
            if key not in known:
                raise KeyError(key)
            current = getattr(self, key)
            if isinstance(current, bool):
                converted: Any = value if isinstance(value, bool) else str(value).lower() == "true"
            else:
                converted = type(current)(value)
            setattr(self, key, converted)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CallRecord:
    """One request to ``/api/1.0``; ``path`` is relative to the API root (``/tasks/1``)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    started_at: float  # time.monotonic()
    status: int = 0
    ended_at: float = 0.0
    response_headers: dict[str, str] = field(default_factory=dict)
    batch_actions: list[tuple[str, str]] = field(default_factory=list)  # (method, path)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["headers"] = {k: v for k, v in self.headers.items() if k != "authorization"}
        return out


@dataclass
class DeliveryRecord:
    """One POST to a webhook target (handshake, heartbeat or events)."""

    webhook_gid: str | None
    target: str
    events: list[dict[str, Any]]
    body: bytes
    signature: str | None
    at: float  # time.monotonic() when the request started
    status: int | None = None
    error: str | None = None
    latency: float = 0.0
    heartbeat: bool = False
    handshake: bool = False
    duplicate: bool = False

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["body"] = self.body.decode("utf-8", "replace")
        return out
