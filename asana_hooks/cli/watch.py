"""`asana-hooks watch ...`: follow a team, workspace or portfolio. I/O edge (Redis, Asana).

``watch add`` checks everything it can before creating anything (the filters, the scope,
Asana's caps), then subscribes every project (asana_hooks.watch_sync) with a progress bar on
a terminal and a plain line per 10 % otherwise. Interrupted, it can be run again, and the
poller finishes the job in any case (DESIGN.md §6.2).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from asana_hooks.asana_errors import AsanaError
from asana_hooks.cli import render
from asana_hooks.cli.asana_messages import asana_failure
from asana_hooks.cli.context import (
    CONNECTION_OPTION,
    EXIT_CONFIG,
    EXIT_FAILURE,
    JSON_OPTION,
    Failure,
    asana_client,
    open_registry,
    settings,
)
from asana_hooks.cli.create import registering
from asana_hooks.filters import FilterSpecError, format_filter, parse_specs
from asana_hooks.keys import DEFAULT_CONNECTION
from asana_hooks.registry import Registry
from asana_hooks.scopes import UnknownScope, list_projects, list_webhooks, resolve
from asana_hooks.watch_plan import ScopeProject, cap_problem, refused_filter, wanted
from asana_hooks.watch_report import WatchReport, report
from asana_hooks.watch_sync import WatchSync
from asana_hooks.watches import Watch, WatchStore


@click.group()
def watch() -> None:
    """Follow every project of a team, workspace or portfolio, as projects come and go."""


@watch.command("add")
@click.option("--team", help="Gid of a team: watch its projects.")
@click.option("--workspace", help="Gid of a workspace: watch its projects.")
@click.option("--portfolio", help="Gid of a portfolio: watch its projects.")
@click.option(
    "--filter",
    "specs",
    multiple=True,
    metavar="SPEC",
    help="For the project webhooks: resource_type[.subtype][:action[:field,...]].",
)
@click.option("--include-archived", is_flag=True, help="Watch archived projects too.")
@CONNECTION_OPTION
@JSON_OPTION
def add_command(
    team: str | None,
    workspace: str | None,
    portfolio: str | None,
    specs: tuple[str, ...],
    include_archived: bool,
    connection_id: str,
    as_json: bool,
) -> None:
    """Subscribe every project of the scope; print the watch id."""
    kind, gid, filters = _checked_input(_scopes(team, workspace, portfolio), specs)
    with registering(connection_id) as session:
        connection, registry, client = session.connection, session.registry, session.client
        public_url = session.public_url
        store = WatchStore(connection)
        try:
            scope = resolve(client, kind, gid)
        except UnknownScope as exc:
            raise Failure(f"--{kind} {gid}: {exc}", EXIT_CONFIG) from None
        except AsanaError as exc:
            raise asana_failure(exc, doing=f"reading {kind} {gid}") from None
        existing = _same_watch(store, kind, gid, filters, include_archived, connection_id)
        try:
            projects = list_projects(client, scope, include_archived=include_archived)
            held = _held(store, registry, existing)
            new = [p.gid for p in wanted(projects, include_archived=include_archived).values()]
            new = [project for project in new if project not in held]
            if existing is None or existing.scope_target is None:
                new.append(scope.gid)
            hooks = list_webhooks(client, scope.workspace_gid)
        except AsanaError as exc:
            raise asana_failure(exc, doing=f"listing the projects of {kind} {gid}") from None
        problem = cap_problem([_resource_gid(w) for w in hooks], new)
        if problem is not None:
            raise Failure(problem, EXIT_CONFIG)
        the_watch = existing or store.create(
            scope,
            filters=filters,
            include_archived=include_archived,
            public_url=public_url,
            connection_id=connection_id,
        )
        sync = WatchSync(client, registry, store, public_url=public_url)
        failures = _subscribe(sync, store, the_watch, projects, quiet=as_json)
        found = report(store, registry, store.get(the_watch.id) or the_watch)
    if as_json:
        render.print_json(
            {**found.to_json(), "failed": [{"project": p, "error": e} for p, e in failures]}
        )
    else:
        click.echo(the_watch.id)
        click.echo(
            f"{found.active_projects} of {len(projects)} projects of {kind} "
            f"{scope.name or gid} have a webhook",
            err=True,
        )
    if failures:
        for project, error in failures:
            click.echo(f"failed: {project}: {error}", err=True)
        click.echo(
            f"{len(failures)} project(s) have no webhook yet; the poller keeps trying them "
            f"(or run `asana-hooks watch add --{kind} {gid}` again)",
            err=True,
        )
        sys.exit(EXIT_FAILURE)


@watch.command("list")
@JSON_OPTION
def list_command(as_json: bool) -> None:
    """Every watch, with its state and how many projects it covers."""
    with open_registry() as (connection, registry):
        store = WatchStore(connection)
        reports = [report(store, registry, w) for w in store.all()]
    if as_json:
        render.print_json([r.to_json() for r in reports])
        return
    render.table(
        ("ID", "STATE", "SCOPE", "PROJECTS", "FILTERS", "RECONCILED", "CREATED"),
        [
            (
                r.watch.id,
                render.styled(r.state, "ok" if r.state == "active" else r.state),
                render.resource_text(r.watch.scope.to_json()),
                f"{r.active_projects}/{len(r.projects)}",
                " ".join(format_filter(f) for f in r.watch.filters) or "(all events)",
                render.ago(r.watch.last_reconciled_at),
                render.ago(r.watch.created_at),
            )
            for r in reports
        ],
        title="watches",
    )


@watch.command("status")
@click.argument("watch_id")
@JSON_OPTION
def status_command(watch_id: str, as_json: bool) -> None:
    """One watch with each of its webhooks."""
    with open_registry() as (connection, registry):
        store = WatchStore(connection)
        found = report(store, registry, _find(store, watch_id))
    if as_json:
        render.print_json(found.to_status_json())
        return
    _print_status(found)


@watch.command("remove")
@click.argument("watch_id")
@JSON_OPTION
def remove_command(watch_id: str, as_json: bool) -> None:
    """Delete every webhook of the watch at Asana, then the watch."""
    with open_registry() as (connection, registry):
        store = WatchStore(connection)
        the_watch = _find(store, watch_id)
        if the_watch.connection == DEFAULT_CONNECTION:
            settings().require_token()
        count = len(store.projects(the_watch.id)) + (1 if the_watch.scope_target else 0)
        public_url = the_watch.public_url or settings().public_url or ""
        with asana_client(connection, the_watch.connection) as client:
            errors = WatchSync(client, registry, store, public_url=public_url).remove(the_watch)
    if as_json:
        render.print_json({"id": watch_id, "webhooks": count, "errors": errors})
    if errors:
        for error in errors:
            click.echo(f"failed: {error}", err=True)
        raise Failure(
            f"watch {watch_id} is marked removed, but {len(errors)} webhook(s) could not be "
            "deleted at Asana; the poller keeps trying (or run `watch remove` again)",
            EXIT_FAILURE,
        )
    if not as_json:
        click.echo(f"removed watch {watch_id}: {count} webhook(s) deleted at Asana")


# Helpers ----------------------------------------------------------------------------------


def _checked_input(
    scopes: list[tuple[str, str | None]], specs: tuple[str, ...]
) -> tuple[str, str, list[dict[str, Any]]]:
    """The scope's kind and gid, and the filters: refused in one line before any call."""
    chosen = [(kind, gid) for kind, gid in scopes if gid]
    if len(chosen) != 1:
        raise Failure("give exactly one of --team, --workspace or --portfolio", EXIT_CONFIG)
    kind, gid = chosen[0]
    if not gid.isdigit():
        raise Failure(f"--{kind} {gid!r}: an Asana gid is a string of digits", EXIT_CONFIG)
    try:
        filters = parse_specs(specs, resource_type="project")
    except FilterSpecError as exc:
        raise Failure(str(exc), EXIT_CONFIG) from None
    refused = refused_filter(filters)
    if refused is not None:
        raise Failure(refused, EXIT_CONFIG)
    return kind, gid, filters


def _same_watch(
    store: WatchStore,
    kind: str,
    gid: str,
    filters: list[dict[str, Any]],
    include_archived: bool,
    connection_id: str,
) -> Watch | None:
    """The watch already on this scope, to finish; refused when it was made differently
    (other filters, or by another connection)."""
    existing = store.of_scope(gid)
    if existing is not None and (
        existing.filters != filters
        or existing.include_archived != include_archived
        or existing.connection != connection_id
    ):
        raise Failure(
            f"{kind} {gid} is already watched by {existing.id} with other filters or "
            f"another connection ({existing.connection}); "
            f"`asana-hooks watch remove {existing.id}` first",
            EXIT_CONFIG,
        )
    return existing


def _scopes(
    team: str | None, workspace: str | None, portfolio: str | None
) -> list[tuple[str, str | None]]:
    return [("team", team), ("workspace", workspace), ("portfolio", portfolio)]


def _find(store: WatchStore, watch_id: str) -> Watch:
    found = store.get(watch_id)
    if found is None:
        raise Failure(f"no watch {watch_id}: `asana-hooks watch list` shows them", EXIT_FAILURE)
    return found


def _held(store: WatchStore, registry: Registry, existing: Watch | None) -> set[str]:
    """Projects that already have a webhook of this watch (a second run needs no new one)."""
    if existing is None:
        return set()
    return {
        project
        for project, target in store.projects(existing.id).items()
        if (found := registry.get(target)) is not None and found.webhook_gid
    }


def _resource_gid(webhook: dict[str, object]) -> str:
    resource = webhook.get("resource")
    return str(resource.get("gid", "")) if isinstance(resource, dict) else ""


def _subscribe(
    sync: WatchSync,
    store: WatchStore,
    the_watch: Watch,
    projects: list[ScopeProject],
    *,
    quiet: bool,
) -> list[tuple[str, str]]:
    """The scope webhook, then every project with progress; returns (what, error) failures."""
    failures: list[tuple[str, str]] = []
    try:
        sync.ensure_scope_webhook(the_watch)
    except Exception as exc:  # reported, and the poller re-creates it
        failures.append((f"scope webhook on {the_watch.scope.gid}", f"{exc}"))
    want = list(wanted(projects, include_archived=the_watch.include_archived).values())
    with _progress(len(want), quiet=quiet) as tick:
        results = sync.subscribe_all(
            store.get(the_watch.id) or the_watch, want, on_done=lambda _: tick()
        )
    failures.extend((r.project.gid, r.error or "no webhook") for r in results if not r.ok)
    store.reconciled(the_watch.id, problem=f"{len(failures)} failed" if failures else None)
    return failures


@contextmanager
def _progress(total: int, *, quiet: bool) -> Iterator[Callable[[], None]]:
    """A progress bar on a terminal, else one plain line per 10 % on stderr."""
    lock = threading.Lock()
    done = [0]
    if sys.stderr.isatty() and not quiet:
        bar = Progress(
            TextColumn("subscribing projects"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        task = bar.add_task("projects", total=total)
        with bar:
            yield lambda: bar.advance(task)
        return

    def tick() -> None:
        with lock:
            before = done[0] * 10 // total
            done[0] += 1
            if not quiet and done[0] * 10 // total > before:
                click.echo(
                    f"subscribed {done[0]}/{total} projects ({done[0] * 100 // total}%)", err=True
                )

    yield tick


def _print_status(found: WatchReport) -> None:
    the_watch = found.watch
    click.echo(f"watch    {the_watch.id} ({found.state})")
    click.echo(f"scope    {render.resource_text(the_watch.scope.to_json())}")
    click.echo(f"projects {found.active_projects}/{len(found.projects)} with an active webhook")
    click.echo(f"checked  {render.ago(the_watch.last_reconciled_at)}")
    if the_watch.problem:
        click.echo(f"problem  {the_watch.problem}")
    scope = found.scope_webhook
    scope_gid = scope.webhook_gid if scope else None
    click.echo(f"scope webhook {render.dash(scope_gid)} ({scope.state if scope else 'none'})")
    rows = []
    for gid, registration in sorted(found.projects.items()):
        if registration is None:
            rows.append((gid, "-", "none", "-"))
            continue
        rows.append(
            (
                f"{registration.resource_name} {gid}".strip(),
                render.dash(registration.webhook_gid),
                registration.state,
                render.ago(registration.last_delivery_at),
            )
        )
    render.table(("PROJECT", "WEBHOOK", "STATE", "LAST DELIVERY"), rows, title="webhooks")
