"""Logging for our processes: one dict config applied once at each process edge. No I/O."""

from __future__ import annotations

import logging.config
import os

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure(level: str | None = None) -> None:
    """Apply our format; the level comes from HOOKS_LOG_LEVEL (default INFO)."""
    level = (level or os.environ.get("HOOKS_LOG_LEVEL") or "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        level = "INFO"
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"plain": {"format": FORMAT}},
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "formatter": "plain",
                    "stream": "ext://sys.stderr",
                }
            },
            "root": {"handlers": ["stderr"], "level": level},
            "loggers": {
                "uvicorn.access": {"level": "WARNING"},
                "httpx": {"level": "WARNING"},
                "httpcore": {"level": "WARNING"},
            },
        }
    )
