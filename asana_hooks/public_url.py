"""The public URL the service runs under now, and whether a webhook's target is under it.

DESIGN.md §6.8: the current public URL is the tunnel's while a ``--tunnel`` process runs (it
records it in Redis, renewed every minute, so the CLI and the poller in other processes see
it), else ``HOOKS_PUBLIC_URL``. A webhook whose target is under another URL (a tunnel that came
back on a new address, a domain that changed) is not current: ``webhooks status`` and
``/status`` say so, and ``webhooks retarget`` moves it. ``target_is_current`` is pure; the rest
is a thin edge over three Redis keys (``keys.TUNNEL_*``), the last one the tunnel watchdog's
latest check, for ``/status``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from asana_hooks import keys
from asana_hooks.events import format_timestamp
from asana_hooks.redis_conn import decode_hash, optional_text

HOOK_PATH = "/hooks/asana/"
"""Every target is ``<public URL>/hooks/asana/<target id>`` (asana_hooks.registration)."""

LIVE_TTL_SECONDS = 180
"""The live tunnel URL outlives a missed renewal (every minute) but not a dead process."""


def target_is_current(target_url: str, public_url: str | None) -> bool | None:
    """Whether ``target_url`` is under ``public_url``; None when no public URL is known."""
    if not public_url:
        return None
    return target_url.startswith(public_url.rstrip("/") + HOOK_PATH)


def current_public_url(connection: redis.Redis, configured: str | None) -> str | None:
    """The running tunnel's URL, else ``configured`` (HOOKS_PUBLIC_URL), else None."""
    return live_tunnel(connection) or configured


def live_tunnel(connection: redis.Redis) -> str | None:
    return optional_text(connection.get(keys.TUNNEL_URL))


def record_live_tunnel(connection: redis.Redis, url: str) -> None:
    """Announce (or renew) the tunnel's URL as the current public URL."""
    connection.set(keys.TUNNEL_URL, url, ex=LIVE_TTL_SECONDS)


def clear_live_tunnel(connection: redis.Redis, url: str) -> None:
    """The tunnel stopped: its URL is no longer current (unless another process took over)."""
    if live_tunnel(connection) == url:
        connection.delete(keys.TUNNEL_URL, keys.TUNNEL_HEALTH)


def last_tunnel(connection: redis.Redis) -> str | None:
    """The tunnel address whose webhooks were last brought up to date, if any."""
    return optional_text(connection.get(keys.TUNNEL_LAST_URL))


def remember_tunnel(connection: redis.Redis, url: str) -> None:
    connection.set(keys.TUNNEL_LAST_URL, url)


def record_tunnel_check(connection: redis.Redis, url: str, *, problem: str | None) -> None:
    """The watchdog's latest check of the tunnel's public /healthz (None: it answered)."""
    now = format_timestamp(datetime.now(UTC))
    pipe = connection.pipeline()
    pipe.hset(
        keys.TUNNEL_HEALTH, mapping={"url": url, "ok": "0" if problem else "1", "checked_at": now}
    )
    if problem is None:
        pipe.hset(keys.TUNNEL_HEALTH, "last_ok_at", now)
        pipe.hdel(keys.TUNNEL_HEALTH, "problem")
    else:
        pipe.hset(keys.TUNNEL_HEALTH, "problem", problem)
    pipe.expire(keys.TUNNEL_HEALTH, LIVE_TTL_SECONDS)
    pipe.execute()


def tunnel_health(connection: redis.Redis) -> dict[str, object] | None:
    """The watchdog's last check, for /status; None when no tunnel runs."""
    raw = decode_hash(connection.hgetall(keys.TUNNEL_HEALTH))
    if not raw:
        return None
    return {
        "url": raw.get("url"),
        "ok": raw.get("ok") == "1",
        "checked_at": raw.get("checked_at"),
        "last_ok_at": raw.get("last_ok_at"),
        "problem": raw.get("problem"),
    }
