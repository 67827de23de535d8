"""What every CLI command shares: settings read once, exit codes, the one-line Failure, and
the connections a command opens (Redis, the registry, the Asana client)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import click
import redis

from asana_hooks import keys
from asana_hooks.asana_client import AsanaClient
from asana_hooks.connections import ConnectionStore, Credentials, UnknownConnection
from asana_hooks.dev_state import dev_defaults
from asana_hooks.errors import HooksError
from asana_hooks.redis_conn import connect
from asana_hooks.registry import Registration, Registry
from asana_hooks.secretbox import SecretBox
from asana_hooks.settings import Settings

EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_REDIS = 3
EXIT_ASANA = 4

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


class Failure(HooksError):
    """A failure the user can act on: printed as one line, exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@cache
def settings() -> Settings:
    """The environment, over the Redis and key of a `dev` running here (asana_hooks.dev_state)."""
    return Settings.from_environ({**dev_defaults(), **os.environ})


@contextmanager
def redis_connection() -> Iterator[redis.Redis]:
    """Redis, checked to answer (an unreachable one ends the command with exit code 3)."""
    connection = connect(settings().redis_url, socket_timeout=5.0)
    try:
        connection.ping()
        yield connection
    finally:
        connection.close()


@contextmanager
def open_registry(*, secrets: bool = False) -> Iterator[tuple[redis.Redis, Registry]]:
    """The registrations; ``secrets`` when the command must read or write webhook secrets."""
    box = SecretBox(settings().require_encryption_keys()) if secrets else None
    with redis_connection() as connection:
        yield connection, Registry(connection, box)


CONNECTION_OPTION = click.option(
    "--connection",
    "connection_id",
    default=keys.DEFAULT_CONNECTION,
    show_default=True,
    metavar="ID",
    help="Which connection registers, polls and rehydrates (`asana-hooks connections list`).",
)


@contextmanager
def asana_client(
    connection: redis.Redis, connection_id: str = keys.DEFAULT_CONNECTION
) -> Iterator[AsanaClient]:
    """The API client of one connection (the default one: ASANA_ACCESS_TOKEN) under its
    budget, waiting at most 10 s for room in it; an unknown connection fails with exit 1."""
    with AsanaClient(
        settings(),
        connection,
        timeout=30.0,
        max_wait=10.0,
        credentials=credentials_of(connection, connection_id),
    ) as client:
        yield client


def credentials_of(connection: redis.Redis, connection_id: str) -> Credentials:
    """The token of a connection, or the one-line failure saying there is no such one."""
    current = settings()
    if connection_id == keys.DEFAULT_CONNECTION:
        return Credentials(connection_id, current.require_token())
    store = ConnectionStore(connection, SecretBox(current.require_encryption_keys()))
    try:
        return store.credentials(connection_id)
    except UnknownConnection:
        raise Failure(
            f"no connection {connection_id}: `asana-hooks connections list` shows the ids",
            EXIT_FAILURE,
        ) from None


def find_registration(registry: Registry, gid: str) -> Registration:
    """A registration by webhook gid (or target id); a clear failure when there is none."""
    found = registry.by_webhook(gid) or registry.get(gid)
    if found is None:
        raise Failure(
            f"no webhook {gid} here: `asana-hooks webhooks list` shows the gids", EXIT_FAILURE
        )
    return found


def report_missing(missing: list[str], where: str, *, any_done: bool) -> None:
    """After a replay: ids that were not there fail the command when nothing was replayed,
    and are a warning on stderr otherwise."""
    if not missing:
        return
    message = f"not in the {where}: {' '.join(missing)}"
    if not any_done:
        raise Failure(message, EXIT_FAILURE)
    click.echo(f"warning: {message}", err=True)
