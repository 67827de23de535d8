"""The `asana-hooks` command. I/O edge: reads the environment once, prints, exits.

Every failure a user can cause or fix (a missing setting, Redis away, a bad token, a
target Asana cannot reach) ends as one line on stderr saying what to do, and a non-zero
exit code: 2 for usage and configuration, 3 for Redis, 4 for Asana (or the tunnel service,
`--tunnel`), 1 for anything else.
"""

from __future__ import annotations

import sys

import click
import redis

from asana_hooks import tunnel
from asana_hooks.cli.changes import changes
from asana_hooks.cli.connections import connections
from asana_hooks.cli.context import EXIT_CONFIG, EXIT_REDIS, Failure
from asana_hooks.cli.encryption_keys import keys
from asana_hooks.cli.failed import failed
from asana_hooks.cli.processes import dev, poll, serve, worker
from asana_hooks.cli.quarantine import quarantine
from asana_hooks.cli.watch import watch
from asana_hooks.cli.webhooks import webhooks
from asana_hooks.redis_conn import unreachable_message
from asana_hooks.settings import SettingsError
from asana_hooks.tunnel import TunnelError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Receive Asana webhooks: every change, once, with the fresh resource attached."""


for command in (
    serve,
    worker,
    poll,
    dev,
    webhooks,
    watch,
    keys,
    failed,
    quarantine,
    changes,
    connections,
):
    cli.add_command(command)


def main() -> None:
    try:
        _main()
    except SystemExit as exc:
        if tunnel.sdk_started():
            tunnel.exit_now(exc.code)
        raise
    if tunnel.sdk_started():
        tunnel.exit_now(0)


def _main() -> None:
    try:
        cli.main(prog_name="asana-hooks", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except SettingsError as exc:
        click.echo(f"error: {exc.variable} {exc.problem}", err=True)
        sys.exit(EXIT_CONFIG)
    except (Failure, TunnelError) as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except redis.ConnectionError as exc:
        url = getattr(exc, "redis_url", None) or _redis_url_from_env()
        click.echo(f"error: {unreachable_message(url)}", err=True)
        sys.exit(EXIT_REDIS)
    except KeyboardInterrupt:
        sys.exit(130)


def _redis_url_from_env() -> str:
    import os

    from asana_hooks.settings import DEFAULT_REDIS_URL

    return os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
