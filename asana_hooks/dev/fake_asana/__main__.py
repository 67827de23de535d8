"""``python -m asana_hooks.dev.fake_asana``: run the fake standalone until interrupted.
Network I/O."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from .server import FakeAsana


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m asana_hooks.dev.fake_asana", description=__doc__
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: free)")
    parser.add_argument("--token", default="test-token", help="the accepted bearer token")
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="multiplies Asana's durations"
    )
    parser.add_argument("--no-seed", action="store_true", help="start with an empty world")
    args = parser.parse_args(argv)
    fake = FakeAsana(token=args.token, time_scale=args.time_scale, port=args.port).start()
    print(fake.api_url, flush=True)
    if not args.no_seed:
        print(json.dumps(fake.seed_demo()), flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
