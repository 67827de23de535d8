"""Test helpers: real servers on 127.0.0.1, conditions waited for with a bound."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from asana_hooks.dev.redis_server import free_port
from asana_hooks.registry import Registry


@contextmanager
def serve_in_thread(app: Any, *, port: int | None = None) -> Iterator[str]:
    """Run an ASGI app under uvicorn in a thread; yield its base URL."""
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def wait_for(condition: Callable[[], Any], *, timeout: float = 10.0, every: float = 0.02) -> Any:
    """Poll until condition() is truthy; return its value, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(every)


def register_active(
    registry: Registry, target_id: str, *, resource_gid: str, webhook_gid: str, base_url: str
) -> None:
    """An active project webhook written straight to the store, as a handshake and Asana's
    201 would leave it (no call to Asana)."""
    registry.begin(
        target_id=target_id,
        resource_gid=resource_gid,
        target_url=f"{base_url}/hooks/asana/{target_id}",
        filters=[],
        resource_type="project",
        resource_name=f"Project {resource_gid}",
    )
    assert registry.accept_handshake(target_id, "s3cret")
    assert registry.confirm(target_id, webhook_gid=webhook_gid, asana_secret="s3cret")
