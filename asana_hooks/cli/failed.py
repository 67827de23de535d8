"""`asana-hooks failed list|replay`: jobs that failed after all their retries. I/O edge (Redis).

Failed jobs stay in RQ's FailedJobRegistry for a week (``queueing.FAILURE_TTL_SECONDS``).
Replaying puts them back on the queue under the same id; every job is idempotent, so
replaying one that in fact got through changes nothing. The work is ``asana_hooks.failed_jobs``'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from asana_hooks import failed_jobs
from asana_hooks.cli import render
from asana_hooks.cli.context import (
    EXIT_CONFIG,
    JSON_OPTION,
    Failure,
    redis_connection,
    report_missing,
)

LIST_LIMIT = 1000


@click.group()
def failed() -> None:
    """List and replay jobs that failed after all their retries."""


@failed.command("list")
@JSON_OPTION
def list_command(as_json: bool) -> None:
    """Every failed job, oldest first, with the last lines of its error."""
    with redis_connection() as connection:
        jobs = [job.to_json() for job in failed_jobs.list_failed(connection, limit=LIST_LIMIT)]
    if as_json:
        render.print_json(jobs)
        return
    render.table(
        ("JOB", "FUNCTION", "FAILED", "ERROR"),
        [
            (
                job["id"],
                job["function"] or "-",
                render.ago(job["ended_at"]),
                (job["error"] or "-").splitlines()[-1],
            )
            for job in jobs
        ],
        title="failed jobs",
    )


@failed.command("replay")
@click.argument("job_ids", nargs=-1)
@click.option("--all", "replay_all", is_flag=True, help="Replay every failed job.")
@JSON_OPTION
def replay_command(job_ids: tuple[str, ...], replay_all: bool, as_json: bool) -> None:
    """Put failed jobs back on the queue (JOB_ID..., or --all)."""
    if bool(job_ids) == replay_all:
        raise Failure("name the jobs to replay, or pass --all (not both)", EXIT_CONFIG)
    replayed: list[str] = []
    missing: list[str] = []
    with redis_connection() as connection:
        wanted = (
            [job.job_id for job in failed_jobs.list_failed(connection, limit=LIST_LIMIT)]
            if replay_all
            else list(job_ids)
        )
        with _progress(enabled=not as_json) as advance:
            for job_id in advance(wanted):
                done = failed_jobs.replay_failed(connection, [job_id])
                (replayed if done else missing).append(job_id)
    if as_json:
        render.print_json({"replayed": replayed, "missing": missing})
    else:
        click.echo(f"replayed {len(replayed)} failed jobs")
    report_missing(missing, "failed registry", any_done=bool(replayed))


@contextmanager
def _progress(*, enabled: bool) -> Iterator[Any]:
    """A progress bar on stderr (stdout stays clean for scripts)."""
    if not enabled:
        yield lambda items: items
        return
    columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        yield lambda items: progress.track(items, total=len(items))
