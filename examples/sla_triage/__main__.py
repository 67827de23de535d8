"""``python -m examples.sla_triage --config sla_triage.toml``: run the integration. Process edge.

Reads the environment once (``ASANA_ACCESS_TOKEN``, ``ASANA_API_URL``, ``REDIS_URL``, the
budget's ``ASANA_RATE_LIMIT_PER_MINUTE``: the same variables as asana-hooks' own processes),
the configuration file, then consumes the changes until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from asana_hooks.asana_client import AsanaClient
from asana_hooks.consumer import Consumer
from asana_hooks.errors import HooksError
from asana_hooks.redis_conn import connect
from asana_hooks.settings import Settings
from examples.sla_triage import config as config_file
from examples.sla_triage.app import SlaTriage
from examples.sla_triage.store import Store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m examples.sla_triage",
        description="Run the SLA triage integration on the asana-hooks changes stream.",
    )
    parser.add_argument("--config", required=True, help="the TOML file (see config.example.toml)")
    parser.add_argument("--verbose", action="store_true", help="log every write")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # our own lines name every write
    try:
        config = config_file.load(args.config)
        settings = Settings.from_environ(os.environ)
        settings.require_token()
    except (config_file.ConfigError, HooksError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    connection = connect(settings.redis_url, socket_timeout=5.0)
    with AsanaClient(settings, connection) as asana:
        integration = SlaTriage(
            config,
            asana=asana,
            store=Store(connection, prefix=f"{config.group}:"),
            me=SlaTriage.whoami(asana),
        )
        consumer = Consumer(config.group, redis_url=settings.redis_url)
        try:
            integration.run(consumer)
        finally:
            consumer.close()
            connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
