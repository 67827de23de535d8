"""A Consumer run in the test process itself (its main thread, as in a program), stopped by
``stop()`` from another thread: handles, retries with backoff, dead-letters, acknowledges.

The crash, ordering and retention cases run consumers as processes (tests/test_consumer.py);
this one also lets coverage see the consumer's code.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import redis

from asana_hooks import keys
from asana_hooks.consumer import Consumer
from asana_hooks.redis_conn import decode_hash
from tests.consumers import write_change


def test_handled_retried_dead_lettered_and_stopped(
    redis_url: str, redis_client: redis.Redis
) -> None:
    written = [write_change(redis_client, gid) for gid in ("1", "2", "bad", "3")]
    handled: list[str] = []
    attempts: dict[str, int] = {}

    def handler(change: dict[str, Any]) -> None:
        gid = change["resource"]["gid"]
        attempts[gid] = attempts.get(gid, 0) + 1
        if gid == "bad":
            raise ValueError("this change cannot be applied")
        handled.append(change["id"])

    consumer = Consumer(
        "inproc",
        redis_url=redis_url,
        name="main",
        max_deliveries=3,
        claim_after_seconds=2,
        start="0",
        backoff_seconds=0.05,
    )

    def stop_when_done() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if len(handled) == 3 and redis_client.xlen(keys.dead_letters("inproc")) == 1:
                break
            time.sleep(0.05)
        consumer.stop()

    stopper = threading.Thread(target=stop_when_done, daemon=True)
    stopper.start()
    consumer.run(handler)
    stopper.join(5)
    consumer.close()

    assert handled == [written[0], written[1], written[3]]
    assert attempts["bad"] == 3
    [(_, fields)] = redis_client.xrange(keys.dead_letters("inproc")) or []
    dead = decode_hash(fields or {})
    assert "this change cannot be applied" in dead["error"]
    assert json.loads(dead["change"])["resource"]["gid"] == "bad"
    pending = redis_client.xpending(keys.CHANGES_STREAM, "inproc")
    assert pending["pending"] == 0  # all four acknowledged, the dead one too
