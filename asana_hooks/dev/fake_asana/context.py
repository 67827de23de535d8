"""The shared state every route handler needs, in one object. No I/O."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from .delivery import DeliveryEngine
from .events_api import EventLog
from .ratelimit import RateLimiter
from .records import CallRecord, DeliveryRecord, Knobs
from .render import Renderer
from .timing import Timing
from .world import World

__all__ = ["Context"]


@dataclass
class Context:
    world: World
    renderer: Renderer
    engine: DeliveryEngine
    events: EventLog
    limiter: RateLimiter
    knobs: Knobs
    timing: Timing
    tokens: set[str]
    record_delivery: Callable[[DeliveryRecord], None]
    record_call: Callable[[CallRecord], None]
    http: Callable[[], httpx.AsyncClient]  # the server loop's client (handshakes)
    token_users: dict[str, str] = field(default_factory=dict)  # OAuth token -> its user
    expired: Callable[[str], bool] = lambda _token: False  # an OAuth access token ran out
