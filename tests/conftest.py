"""Fixtures: one real Redis-protocol server per session, flushed around each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from asana_hooks.dev.fake_asana import FakeAsana
from asana_hooks.dev.redis_server import EmbeddedRedis
from asana_hooks.secretbox import generate_key
from asana_hooks.settings import Settings
from tests.chaos.scenarios import CHAOS_LINE, selected_profile, table

CHAOS_LINES: list[str] = []


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> Iterator[str]:
    if not redis_server.running:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield redis_server.url
    if not redis_server.running:
        redis_server.start()
    client.flushall()
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def encryption_key() -> str:
    return generate_key()


@pytest.fixture
def environ(redis_url: str, encryption_key: str) -> dict[str, str]:
    """A complete environment for our processes; tests add to it."""
    return {
        "REDIS_URL": redis_url,
        "HOOKS_ENCRYPTION_KEY": encryption_key,
        "ASANA_ACCESS_TOKEN": "test-token",
        "HOOKS_DEBOUNCE_SECONDS": "0.3",
        "HOOKS_MAX_DELAY_SECONDS": "2",
    }


@pytest.fixture
def settings(environ: dict[str, str]) -> Settings:
    return Settings.from_environ(environ)


# Workers (workers/, asana_hooks/asana_client.py) -------------------------------------------


@pytest.fixture
def fake_asana() -> Iterator[FakeAsana]:
    """The fake Asana over real HTTP on 127.0.0.1, Asana's durations scaled down."""
    with FakeAsana(token="test-token", time_scale=0.001) as fake:
        yield fake


@pytest.fixture
def worker_environ(environ: dict[str, str], fake_asana: FakeAsana) -> dict[str, str]:
    """``environ`` pointed at the fake Asana, with a quiet window short enough for tests."""
    return {**environ, "ASANA_API_URL": fake_asana.api_url}


@pytest.fixture
def worker_settings(worker_environ: dict[str, str]) -> Iterator[Settings]:
    from workers import runtime

    yield Settings.from_environ(worker_environ)
    runtime.reset()


# The chaos table, gathered from every test process ---------------------------------------


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        CHAOS_LINES.extend(str(v) for name, v in report.user_properties if name == CHAOS_LINE)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if CHAOS_LINES:
        terminalreporter.section("chaos: lost and doubled changes")
        terminalreporter.write_line(table(CHAOS_LINES, profile=selected_profile().name))
