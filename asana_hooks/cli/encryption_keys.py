"""`asana-hooks keys ...`: encryption keys for stored secrets. I/O edge (stdout, Redis).

Rotation, step by step: put a new key first in HOOKS_ENCRYPTION_KEY (``new,old``), restart
the processes, run `keys rotate` (every stored secret, webhook secrets and connection tokens
alike, is re-encrypted under the first key),
then drop the old key from the list. Keys and secrets are never printed, except the new key
that `keys generate` exists to print.
"""

from __future__ import annotations

import click

from asana_hooks.cli import render
from asana_hooks.cli.context import EXIT_CONFIG, Failure, settings
from asana_hooks.connections import ConnectionStore
from asana_hooks.redis_conn import connect
from asana_hooks.registry import Registry
from asana_hooks.secretbox import SecretBox, UndecryptableSecret, generate_key


@click.group()
def keys() -> None:
    """Encryption keys for the webhook secrets stored in Redis."""


@keys.command()
def generate() -> None:
    """Print a new Fernet key for HOOKS_ENCRYPTION_KEY."""
    click.echo(generate_key())


@keys.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def rotate(as_json: bool) -> None:
    """Re-encrypt every stored secret under the first key of HOOKS_ENCRYPTION_KEY."""
    current = settings()
    box = SecretBox(current.require_encryption_keys())
    connection = connect(current.redis_url, socket_timeout=5.0)
    try:
        rotated = Registry(connection, box).rotate_secrets()
        rotated += ConnectionStore(connection, box).rotate_secrets()
    except UndecryptableSecret:
        raise Failure(
            "a stored secret cannot be decrypted by any key in HOOKS_ENCRYPTION_KEY: keep the "
            "old key in the list, after the new one, until `keys rotate` succeeds",
            EXIT_CONFIG,
        ) from None
    finally:
        connection.close()
    if as_json:
        render.print_json({"rotated": rotated, "keys": len(current.encryption_keys)})
        return
    click.echo(f"re-encrypted {rotated} secrets under the first key of HOOKS_ENCRYPTION_KEY")
    if len(current.encryption_keys) > 1:
        click.echo(
            "once every process runs with the new list, the other keys can be removed from it"
        )
