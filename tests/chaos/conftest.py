"""Chaos scenarios: the profile (fast by default, full with HOOKS_CHAOS_FULL=1), and the
rows of the summary table that tests/conftest.py prints at the end of the session.

Each row travels as a line in its test's ``user_properties``, so the table is whole when the
tests run in several processes (pytest-xdist): the report hooks run where the session ends.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.scenarios import CHAOS_LINE, Profile, Row, selected_profile, table_line


@pytest.fixture(scope="session")
def profile() -> Profile:
    return selected_profile()


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Iterator[list[Row]]:
    """Rows appended here are printed in the session's chaos table."""
    rows: list[Row] = []
    yield rows
    request.node.user_properties.extend((CHAOS_LINE, table_line(row)) for row in rows)
