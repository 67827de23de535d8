"""Chaos scenarios: the profile (fast by default, full with HOOKS_CHAOS_FULL=1) and the
summary table printed at the end of the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.scenarios import Profile, Row, selected_profile, table

ROWS: list[Row] = []


@pytest.fixture(scope="session")
def profile() -> Profile:
    return selected_profile()


@pytest.fixture
def record() -> Iterator[list[Row]]:
    """Rows appended here are printed in the session's chaos table."""
    rows: list[Row] = []
    yield rows
    ROWS.extend(rows)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if ROWS:
        terminalreporter.section("chaos: lost and doubled changes")
        terminalreporter.write_line(table(ROWS, profile=selected_profile().name))
