"""Asana-side durations, multiplied by the fake's time_scale. No I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Timing", "retry_after_seconds"]

MINUTE = 60.0
HOUR = 3600.0


@dataclass
class Timing:
    """Every duration Asana controls, already scaled (real seconds).

    Build it with ``Timing.scaled(time_scale)``; tests may tweak single fields afterwards.
    """

    time_scale: float
    batch_window: float  # events this close together go out in one delivery
    first_heartbeat_delay: float  # heartbeat "shortly after" the handshake
    heartbeat_interval: float  # 8 h
    backoff_base: float  # first retry delay
    backoff_cap: float  # retries never wait longer than this (about an hour)
    failure_deletion: float  # 24 h without a success deletes the webhook
    deleted_resource_webhook_ttl: float  # 72 h after its resource is deleted
    sync_token_ttl: float  # 24 h
    rate_window: float  # the rate limiter's "minute"

    @classmethod
    def scaled(cls, time_scale: float) -> Timing:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")

        def s(seconds: float, floor: float = 0.001) -> float:
            return max(seconds * time_scale, floor)

        return cls(
            time_scale=time_scale,
            batch_window=s(1.0, 0.005),
            first_heartbeat_delay=s(1.0, 0.005),
            heartbeat_interval=s(8 * HOUR),
            backoff_base=s(MINUTE, 0.002),
            backoff_cap=s(HOUR, 0.002),
            failure_deletion=s(24 * HOUR),
            deleted_resource_webhook_ttl=s(72 * HOUR),
            sync_token_ttl=s(24 * HOUR),
            rate_window=s(MINUTE),
        )

    def backoff(self, retry_count: int) -> float:
        """Delay before retry number ``retry_count`` (1-based): exponential, capped."""
        exponent = min(max(retry_count - 1, 0), 40)
        return float(min(self.backoff_base * (2**exponent), self.backoff_cap))


def retry_after_seconds(seconds: float) -> int:
    """Retry-After header value: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(seconds - 1e-9))
