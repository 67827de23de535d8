"""`asana-hooks connections ...`: the Asana identities this deployment acts as (DESIGN.md §6.5).
I/O edge (Redis, Asana's ``GET /users/me`` and ``DELETE /webhooks``, stdin).

A token is read from a named environment variable or from stdin, never from an argument (it
would show in the process list and the shell history), checked with ``GET /users/me``, and
stored encrypted (asana_hooks.connections). No output, log line or error message shows it.
"""

from __future__ import annotations

import logging
import os
import sys

import click
import redis

from asana_hooks import keys, parked_work
from asana_hooks.asana_client import AsanaClient
from asana_hooks.asana_errors import AsanaError, BadToken, NotFound
from asana_hooks.cli import render
from asana_hooks.cli.asana_messages import asana_failure
from asana_hooks.cli.context import (
    EXIT_ASANA,
    EXIT_CONFIG,
    EXIT_FAILURE,
    JSON_OPTION,
    Failure,
    asana_client,
    redis_connection,
    settings,
)
from asana_hooks.connection_report import LIVE_WEBHOOK_STATES, report
from asana_hooks.connections import Connection, ConnectionStore, Credentials, new_connection_id
from asana_hooks.errors import HooksError
from asana_hooks.oauth import OAuthApp
from asana_hooks.registry import Registry
from asana_hooks.secretbox import Secret, SecretBox
from asana_hooks.settings import Settings
from asana_hooks.watch_sync import WatchSync
from asana_hooks.watches import WatchStore

log = logging.getLogger(__name__)

TOKEN_ENV_OPTION = click.option(
    "--token-env", metavar="VAR", help="Name of the environment variable holding the token."
)
TOKEN_STDIN_OPTION = click.option(
    "--token-stdin", is_flag=True, help="Read the token from stdin (one line)."
)


@click.group()
def connections() -> None:
    """Asana identities (tokens) that register, poll and rehydrate."""


@connections.command("add")
@TOKEN_ENV_OPTION
@TOKEN_STDIN_OPTION
@click.option("--name", help="A name for people (default: the token's user).")
@JSON_OPTION
def add_command(token_env: str | None, token_stdin: bool, name: str | None, as_json: bool) -> None:
    """Check a token with Asana, store it encrypted, print the connection id."""
    token = _read_token(token_env, token_stdin)
    current = settings()
    box = SecretBox(current.require_encryption_keys())
    with redis_connection() as connection:
        store = ConnectionStore(connection, box, default_token=current.asana_access_token)
        user_gid, user_name = _who(connection, store, token)
        added = store.add(
            name=name or user_name or user_gid, token=token, user_gid=user_gid, user_name=user_name
        )
        shown = report(connection, [added], per_minute=current.rate_limit_per_minute)[0]
    if as_json:
        render.print_json(shown)
        return
    click.echo(added.id)
    click.echo(f"connected as {user_name or '?'} ({user_gid})", err=True)


@connections.command("token")
@click.argument("connection_id", metavar="ID")
@TOKEN_ENV_OPTION
@TOKEN_STDIN_OPTION
def token_command(connection_id: str, token_env: str | None, token_stdin: bool) -> None:
    """Give connection ID a new token (a revoked one resumes its waiting work)."""
    token = _read_token(token_env, token_stdin)
    current = settings()
    box = SecretBox(current.require_encryption_keys())
    with redis_connection() as connection:
        store = ConnectionStore(connection, box, default_token=current.asana_access_token)
        if _find(store, connection_id).kind == "oauth":
            raise Failure(
                f"connection {connection_id} is an OAuth grant: its user connects again at "
                "$HOOKS_PUBLIC_URL/oauth/start (a pasted token would never be refreshed)",
                EXIT_CONFIG,
            )
        user_gid, user_name = _who(connection, store, token)
        store.replace_token(connection_id, token, user_gid=user_gid, user_name=user_name)
    click.echo(f"connection {connection_id} now acts as {user_name or '?'} ({user_gid})")


@connections.command("list")
@JSON_OPTION
def list_command(as_json: bool) -> None:
    """Every connection: who it is, its state, its webhooks and its budget."""
    current = settings()
    with redis_connection() as connection:
        store = ConnectionStore(connection, default_token=current.asana_access_token)
        _learn_default_user(connection, store)
        shown = report(connection, store.all(), per_minute=current.rate_limit_per_minute)
    if as_json:
        render.print_json(shown)
        return
    render.table(
        ("ID", "NAME", "USER", "KIND", "STATE", "WEBHOOKS", "WATCHES", "BUDGET", "WAITING"),
        [
            (
                c["id"],
                c["name"],
                render.dash(c["user"]["name"]),
                c["kind"],
                c["state"],
                str(c["webhooks"]),
                str(c["watches"]),
                f"{c['budget']['used_last_minute']}/{c['budget']['per_minute']}",
                str(c["waiting"]),
            )
            for c in shown
        ],
        title="connections",
    )


@connections.command("remove")
@click.argument("connection_id", metavar="ID")
@click.option(
    "--keep-webhooks",
    is_flag=True,
    help="Leave its webhooks at Asana; the default connection takes them over here.",
)
@JSON_OPTION
def remove_command(connection_id: str, keep_webhooks: bool, as_json: bool) -> None:
    """Delete the connection's webhooks at Asana (unless kept), then its tokens."""
    current = settings()
    if connection_id == keys.DEFAULT_CONNECTION:
        raise Failure(
            "the default connection is ASANA_ACCESS_TOKEN: unset that variable to stop using it",
            EXIT_CONFIG,
        )
    box = SecretBox(current.require_encryption_keys())
    with redis_connection() as connection:
        store = ConnectionStore(connection, box, default_token=current.asana_access_token)
        found = _find(store, connection_id)
        registry = Registry(connection, box)
        dropped = 0
        if keep_webhooks:
            moved = _hand_over(connection, store, registry, connection_id)
            deleted = 0
        else:
            deleted = _delete_webhooks(connection, registry, connection_id)
            moved = 0
        if found.kind == "oauth":
            _revoke_grant(current, store, connection_id)
        store.remove(connection_id)
        if keep_webhooks:
            parked_work.request_resume(connection, connection_id)
        else:
            dropped = parked_work.drop(connection, connection_id)
    if as_json:
        render.print_json(
            {
                "id": connection_id,
                "deleted_webhooks": deleted,
                "kept_webhooks": moved,
                "dropped_batches": dropped,
            }
        )
        return
    what = (
        f"{moved} webhook(s) kept, now the default connection's (and so is its waiting work)"
        if keep_webhooks
        else (f"{deleted} webhook(s) deleted at Asana")
    )
    if dropped:
        what += f"; {dropped} batch(es) that waited for it dropped"
    click.echo(f"removed connection {connection_id}: {what}")


def _revoke_grant(current: Settings, store: ConnectionStore, connection_id: str) -> None:
    """An OAuth connection's grant is revoked at Asana too (best effort: it is removed here
    whatever Asana answers)."""
    refresh = store.refresh_token(connection_id)
    if refresh is None or current.oauth_client_id is None:
        return
    try:
        OAuthApp(current).revoke(refresh)
    except HooksError as exc:
        log.warning("oauth.revoke_failed connection=%s problem=%s", connection_id, exc)


def _read_token(token_env: str | None, token_stdin: bool) -> Secret:
    if bool(token_env) == token_stdin:
        raise Failure("give exactly one of --token-env VAR and --token-stdin", EXIT_CONFIG)
    if token_env:
        value = os.environ.get(token_env, "").strip()
        if not value:
            raise Failure(f"{token_env} is not set or empty", EXIT_CONFIG)
    else:
        value = sys.stdin.readline().strip()
        if not value:
            raise Failure("no token on stdin", EXIT_CONFIG)
    return Secret(value)


def _who(connection: redis.Redis, store: ConnectionStore, token: Secret) -> tuple[str, str]:
    """Ask Asana who the token is (``GET /users/me``) under a budget of its own, which is
    dropped again: only a stored connection keeps keys."""
    probe = new_connection_id()
    try:
        with AsanaClient(
            settings(),
            connection,
            timeout=30.0,
            max_wait=10.0,
            credentials=Credentials(probe, token),
            probe=True,
        ) as client:
            me = client.get("/users/me", {"opt_fields": "name"}).get("data") or {}
    except BadToken:
        raise Failure(
            "Asana refused the token (401): check that it is current", EXIT_ASANA
        ) from None
    except AsanaError as exc:
        raise asana_failure(exc, doing="checking the token (GET /users/me)") from None
    finally:
        store.remove(probe)
    return str(me.get("gid") or ""), str(me.get("name") or "")


def _learn_default_user(connection: redis.Redis, store: ConnectionStore) -> None:
    """The default connection's user, asked once and remembered (none when Asana says no)."""
    found = store.get(keys.DEFAULT_CONNECTION)
    if found is None or found.user_gid:
        return
    try:
        with asana_client(connection) as client:
            me = client.get("/users/me", {"opt_fields": "name"}).get("data") or {}
    except AsanaError:
        return
    store.describe_user(
        keys.DEFAULT_CONNECTION,
        user_gid=str(me.get("gid") or ""),
        user_name=str(me.get("name") or ""),
    )


def _find(store: ConnectionStore, connection_id: str) -> Connection:
    found = store.get(connection_id)
    if found is None:
        raise Failure(
            f"no connection {connection_id}: `asana-hooks connections list` shows the ids",
            EXIT_FAILURE,
        )
    return found


def _delete_webhooks(connection: redis.Redis, registry: Registry, connection_id: str) -> int:
    """Delete every webhook of the connection at Asana, as it; the tokens stay when one fails."""
    deleted = 0
    errors: list[str] = []
    with asana_client(connection, connection_id) as client:
        store = WatchStore(connection)
        for watch in store.all():
            if watch.connection == connection_id and not watch.removed:
                sync = WatchSync(client, registry, store, public_url=watch.public_url)
                errors += sync.remove(watch)
        for registration in registry.all():
            if registration.connection != connection_id:
                continue
            if registration.state not in LIVE_WEBHOOK_STATES or not registration.webhook_gid:
                continue
            try:
                client.delete(f"/webhooks/{registration.webhook_gid}")
            except NotFound:
                pass
            except AsanaError as exc:
                errors.append(f"webhook {registration.webhook_gid}: {exc}")
                continue
            registry.set_state(registration.target_id, "deleted")
            deleted += 1
    if errors:
        raise Failure(
            f"{len(errors)} webhook(s) could not be deleted at Asana ({errors[0]}); the "
            "connection is kept: run `connections remove` again, or add --keep-webhooks",
            EXIT_ASANA,
        )
    return deleted


def _hand_over(
    connection: redis.Redis, store: ConnectionStore, registry: Registry, connection_id: str
) -> int:
    """--keep-webhooks: the webhooks stay at Asana and here, polled and rehydrated by the
    default connection from now on; without one, nothing could, so the removal is refused."""
    if store.get(keys.DEFAULT_CONNECTION) is None:
        raise Failure(
            "--keep-webhooks needs a default connection (ASANA_ACCESS_TOKEN) to take its "
            "webhooks over; set it, or remove without --keep-webhooks",
            EXIT_CONFIG,
        )
    moved = registry.hand_over(connection_id, keys.DEFAULT_CONNECTION)
    WatchStore(connection).hand_over(connection_id, keys.DEFAULT_CONNECTION)
    return moved
