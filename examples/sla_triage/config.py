"""The integration's configuration, read from a TOML file. No I/O beyond reading that file.

Every problem names its key and stops the process at start (``ConfigError``), as our own
settings do.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

DEFAULT_GROUP = "sla-triage"
"""The consumer group on ``asana-hooks:changes`` (and the prefix of the state in Redis)."""


class ConfigError(ValueError):
    """The configuration file is missing a key or holds a bad value."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class Route:
    """Tasks whose notes mention ``keyword`` go to ``assignee``, with ``followers``."""

    keyword: str
    assignee: str | None
    followers: tuple[str, ...]

    def matches(self, notes: str) -> bool:
        return self.keyword.casefold() in notes.casefold()


@dataclass(frozen=True)
class Config:
    intake_projects: frozenset[str]
    combined_project: str
    sla_days: Mapping[str, int]
    """Priority (the enum option's name) -> days from triage to the due date."""
    routes: tuple[Route, ...] = ()
    priority_field: str = "Priority"
    warn_before: timedelta = timedelta(hours=24)
    """How long before the SLA deadline (the end of the due date, UTC) to warn."""
    group: str = DEFAULT_GROUP
    sweep_every_seconds: float = 60.0

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Config:
        intake = _gids(raw.get("intake_projects"), "intake_projects")
        if not intake:
            raise ConfigError("intake_projects", "name at least one project gid")
        combined = _gid(raw.get("combined_project"), "combined_project")
        if combined in intake:
            raise ConfigError("combined_project", "must not be one of the intake projects")
        sla_days = raw.get("sla_days")
        if not isinstance(sla_days, Mapping) or not sla_days:
            raise ConfigError("sla_days", "a table of priority name = days, e.g. High = 1")
        for name, days in sla_days.items():
            if not isinstance(days, int) or isinstance(days, bool) or days < 0:
                raise ConfigError(f"sla_days.{name}", f"days must be a whole number >= 0: {days!r}")
        warn_hours = raw.get("warn_before_hours", 24)
        sweep_every = raw.get("sweep_every_seconds", 60)
        for key, value in (("warn_before_hours", warn_hours), ("sweep_every_seconds", sweep_every)):
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ConfigError(key, f"must be a positive number: {value!r}")
        return cls(
            intake_projects=frozenset(intake),
            combined_project=combined,
            sla_days=dict(sla_days),
            routes=tuple(_route(item, n) for n, item in enumerate(raw.get("routes") or [])),
            priority_field=str(raw.get("priority_field", "Priority")),
            warn_before=timedelta(hours=float(warn_hours)),
            group=str(raw.get("group", DEFAULT_GROUP)),
            sweep_every_seconds=float(sweep_every),
        )


def load(path: str | Path) -> Config:
    """Read and check the TOML file at ``path``."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), f"cannot be read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"is not valid TOML: {exc}") from exc
    return Config.from_dict(raw)


def _gid(value: Any, key: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.isdigit():
        raise ConfigError(key, f"must be an Asana gid (digits, best quoted): {value!r}")
    return value


def _gids(values: Any, key: str) -> list[str]:
    values = values or []
    if not isinstance(values, list):
        raise ConfigError(key, "must be a list of gids")
    return [_gid(value, f"{key}[{n}]") for n, value in enumerate(values)]


def _route(item: Any, n: int) -> Route:
    key = f"routes[{n}]"
    if not isinstance(item, Mapping) or not str(item.get("keyword") or "").strip():
        raise ConfigError(f"{key}.keyword", "each route needs a keyword")
    assignee = item.get("assignee")
    return Route(
        keyword=str(item["keyword"]).strip(),
        assignee=_gid(assignee, f"{key}.assignee") if assignee is not None else None,
        followers=tuple(_gids(item.get("followers"), f"{key}.followers")),
    )
