"""The long-running commands: serve, worker, poll, and dev, which runs them all together.

With ``asana_hooks.dev`` this is the composition root: the only place that starts the receiver
and the workers, each imported when its command runs, so a process loads only its own code.
"""

from __future__ import annotations

import logging

import click
import redis

from asana_hooks import logs
from asana_hooks.cli.context import EXIT_CONFIG, EXIT_REDIS, Failure, settings
from asana_hooks.cli.tunneling import ServeSupervisor, tunnel_options
from asana_hooks.redis_conn import (
    connect,
    fsync_advice,
    fsync_problem,
    unreachable_message,
)
from asana_hooks.settings import Settings
from asana_hooks.tunnel import Tunnel, open_for, require_sdk, under_tunnel

log = logging.getLogger("asana_hooks.cli")


@click.command()
@click.option("--host", default="0.0.0.0", show_default=True, help="Interface to listen on.")  # noqa: S104 - a public receiver
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@tunnel_options
def serve(host: str, port: int, tunnel: bool, tunnel_domain: str | None) -> None:
    """Run the receiver (uvicorn)."""
    current = settings()
    logs.configure()
    if not (tunnel or tunnel_domain):
        _serve(current, host=host, port=port)
        return
    opened = open_for(current, port, tunnel_domain)
    try:
        _serve(under_tunnel(current, opened), host=host, port=port, tunnel=opened)
    finally:
        opened.close()


def _serve(current: Settings, *, host: str, port: int, tunnel: Tunnel | None = None) -> None:
    import uvicorn

    from receiver.app import create_app

    app = create_app(current)
    problem = None
    try:
        with connect(current.redis_url) as connection:
            connection.ping()
            if current.durability == "fsync":
                problem = fsync_problem(connection)
                advice = None if problem else fsync_advice(connection)
                if advice:
                    log.warning("startup %s", advice)
    except redis.RedisError:
        log.warning(
            "startup %s; answering 503 until it is back", unreachable_message(current.redis_url)
        )
    if problem is not None:
        raise Failure(problem, EXIT_CONFIG)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=10,
            server_header=False,
        )
    )
    supervisor = None if tunnel is None else ServeSupervisor(current, tunnel, server)
    if supervisor is not None:
        supervisor.start()
    try:
        server.run()
    finally:
        if supervisor is not None:
            supervisor.stop()
    if supervisor is not None and supervisor.failure is not None:
        raise supervisor.failure


@click.command()
@click.option("--burst", is_flag=True, help="Process what is queued (and due), then exit.")
def worker(burst: bool) -> None:
    """Run an RQ worker with the scheduler that flushes batches."""
    current = settings()
    logs.configure()
    _require_redis(current.redis_url)
    from workers.rq_worker import main

    main(current, burst=burst)


@click.command()
@click.option("--once", is_flag=True, help="One pass over every webhook, then exit.")
def poll(once: bool) -> None:
    """Run the fallback poller on Asana's Events API and watch webhook health."""
    current = settings()
    current.require_token()
    logs.configure()
    _require_redis(current.redis_url)
    from workers.poller import main

    main(current, once=once)


@click.command()
@click.option("--demo", is_flag=True, help="Also run a local fake Asana that plays a script.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@tunnel_options
def dev(demo: bool, port: int, tunnel: bool, tunnel_domain: str | None) -> None:
    """Run it all locally: Redis (embedded unless REDIS_URL is set), receiver, worker, poller."""
    from asana_hooks.dev.server import run_dev

    if tunnel or tunnel_domain:
        require_sdk(settings().ngrok_authtoken)  # before anything starts
    run_dev(demo=demo, port=port, tunnel=tunnel or bool(tunnel_domain), tunnel_domain=tunnel_domain)


def _require_redis(url: str) -> None:
    try:
        connect(url).ping()
    except redis.RedisError:
        raise Failure(unreachable_message(url), EXIT_REDIS) from None
