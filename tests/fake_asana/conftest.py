"""Fixtures for the fake Asana's tests: a started fake, a seeded world, an HTTP client and a
webhook target (a tiny threaded http.server on 127.0.0.1). Does network I/O (loopback)."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from asana_hooks.dev.fake_asana import FakeAsana

TOKEN = "test-token"
SCALE = 0.001


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A webhook target. Behaviour is set by attributes; requests are recorded."""

    url: str = ""
    echo_secret: bool = True
    handshake_status: int = 200
    status: int = 200  # answer to deliveries
    statuses: list[int] = field(default_factory=list)  # consumed first, then `status`
    secret: str | None = None
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def deliveries(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if "x-hook-secret" not in r.headers]

    def next_status(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else self.status


def _handler_for(receiver: Receiver) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            with receiver.lock:
                receiver.received.append(Received(self.path, headers, body, time.monotonic()))
            secret = headers.get("x-hook-secret")
            if secret is not None:
                receiver.secret = secret
                self.send_response(receiver.handshake_status)
                if receiver.echo_secret:
                    self.send_header("X-Hook-Secret", secret)
                status = receiver.handshake_status
            else:
                status = receiver.next_status()
                self.send_response(status)
            payload = b"" if status in (200, 204) else b"receiver says no"
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    target = Receiver()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(target))
    server.daemon_threads = True
    target.url = f"http://127.0.0.1:{server.server_address[1]}/hook?app=1"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield target
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake() -> Iterator[FakeAsana]:
    with FakeAsana(token=TOKEN, time_scale=SCALE) as instance:
        yield instance


@dataclass
class Seed:
    ws: str
    user: str
    project: str
    section: str
    field: str


@pytest.fixture
def seed(fake: FakeAsana) -> Seed:
    w = fake.world
    ws = w.add_workspace("Acme")
    user = w.add_user("Greg Sanchez", workspace=ws)
    project = w.add_project("Launch", workspace=ws)
    section = w.add_section(project, "To do")
    field = w.add_custom_field(ws, "Status note", type="text")
    return Seed(ws, user, project, section, field)


@pytest.fixture
def api(fake: FakeAsana) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=fake.api_url, headers=headers, trust_env=False, timeout=15) as c:
        yield c


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def create_webhook(
    api: httpx.Client, resource: str, target: str, filters: list[dict[str, Any]] | None = None
) -> httpx.Response:
    data: dict[str, Any] = {"resource": resource, "target": target}
    if filters is not None:
        data["filters"] = filters
    return api.post("/webhooks", json={"data": data})


WEBHOOK_FIELDS = {  # every key of a full webhook object, as GET /webhooks/{gid} answers
    "gid",
    "resource_type",
    "active",
    "resource",
    "target",
    "created_at",
    "filters",
    "last_success_at",
    "last_failure_at",
    "last_failure_content",
    "delivery_retry_count",
    "next_attempt_after",
    "failure_deletion_timestamp",
}
