"""`asana-hooks dev --demo` from a fresh directory: the script's changes reach the stream."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import redis

from asana_hooks import keys
from asana_hooks.dev.redis_server import free_port
from tests.helpers import wait_for


class TestDemo:
    def test_demo_shows_each_kind_of_change(self, tmp_path: Path) -> None:
        """Edits, a comment, a folded burst, a deletion and a dropped delivery all arrive once."""
        port = free_port()
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("HOOKS_", "ASANA_", "REDIS_"))
        }
        env["HOOKS_POLL_INTERVAL_SECONDS"] = "3"
        process = subprocess.Popen(
            [sys.executable, "-m", "asana_hooks", "dev", "--demo", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: list[str] = []

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            changes = wait_for(lambda: _changes(lines, 6), timeout=90, every=0.5)
            text = "\n".join(changes)
            assert "[changed: name]" in text
            assert re.search(r"\[changed: custom_fields\] (\d+) event", text)
            burst = int(re.search(r"custom_fields\] (\d+) event", text).group(1))  # type: ignore[union-attr]
            assert burst > 5, "the keystroke burst is folded into one change"
            assert "story" in text
            assert " deleted [" in text
            assert "[changed: due_on] 1 event(s) via poller" in text, "the dropped delivery"
            assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
            # The status page a newcomer opens next (loopback needs no token).
            page = httpx.get(f"http://127.0.0.1:{port}/status")
            assert page.status_code == 200
            assert "text/html" in page.headers["content-type"]
            status = httpx.get(f"http://127.0.0.1:{port}/status.json").json()
            assert [w["state"] for w in status["webhooks"]] == ["active"]
            assert len(status["recent_changes"]) >= 6
            redis_url = re.search(r"dev redis=(\S+)", "".join(lines)).group(1)  # type: ignore[union-attr]
            client = redis.Redis.from_url(redis_url)
            entries: Any = client.xrange(keys.CHANGES_STREAM)
            seen = [
                (c["resource"]["gid"], c["first_event_at"])
                for c in (json.loads(fields[b"change"]) for _id, fields in entries)
            ]
            assert len(seen) == len(set(seen)), "no change is emitted twice"
            client.close()
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(30)
            reader.join(5)
            if process.stdout is not None:
                process.stdout.close()
        assert process.returncode == 0, "".join(lines[-20:])
        assert "dev stopped" in "".join(lines)


def _changes(lines: list[str], at_least: int) -> list[str]:
    found = [line for line in list(lines) if "demo change:" in line or " change: " in line]
    text = "".join(found)
    if len(found) >= at_least and "via poller" in text and " deleted [" in text:
        return found
    return []
