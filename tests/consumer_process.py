"""A consumer process for the tests: ``python -m tests.consumer_process GROUP --mode MODE``.

Its handler writes what it sees to Redis (list ``test:handled``, one JSON object per call:
entry id, resource gid, consumer name, phase), so a test watches a real process from outside.
Modes: ``record`` (return), ``fail`` (always raise), ``slow`` (sleep ``--seconds`` first),
``hang`` (note the start, then sleep an hour: for SIGKILL). ``--hang-gid GID``: hang (as
``hang``) on that resource's entries only.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from typing import Any

import redis

from asana_hooks.consumer import Consumer

HANDLED = "test:handled"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("group")
    parser.add_argument("--mode", default="record")
    parser.add_argument("--name")
    parser.add_argument("--seconds", type=float, default=0.0)
    parser.add_argument("--hang-gid")
    parser.add_argument("--claim-after", type=float, default=60.0)
    parser.add_argument("--max-deliveries", type=int, default=5)
    parser.add_argument("--start", default="$")
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    recorder = redis.Redis.from_url(args.redis_url)
    consumer = Consumer(
        args.group,
        redis_url=args.redis_url,
        name=args.name,
        max_deliveries=args.max_deliveries,
        claim_after_seconds=args.claim_after,
        start=args.start,
        backoff_seconds=0.05,
    )

    def note(change: dict[str, Any], phase: str) -> None:
        record = {
            "id": change["id"],
            "gid": change["resource"]["gid"],
            "consumer": consumer.name,
            "phase": phase,
        }
        recorder.rpush(HANDLED, json.dumps(record))

    def handler(change: dict[str, Any]) -> None:
        if args.mode == "fail":
            note(change, "failed")
            raise RuntimeError(f"cannot handle {change['resource']['gid']}")
        if args.mode == "hang" or change["resource"]["gid"] == args.hang_gid:
            note(change, "start")
            threading.Event().wait()  # until the test SIGKILLs this process
        if args.mode == "slow":
            note(change, "start")
            time.sleep(args.seconds)
        note(change, "done")

    consumer.run(handler)


if __name__ == "__main__":
    main()
