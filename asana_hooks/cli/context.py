"""What every CLI command shares: settings read once, exit codes, the one-line Failure."""

from __future__ import annotations

import os
from functools import cache

from asana_hooks.settings import Settings

EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_REDIS = 3
EXIT_ASANA = 4


class Failure(Exception):
    """A failure the user can act on: printed as one line, exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@cache
def settings() -> Settings:
    return Settings.from_environ(os.environ)
