"""Settings read once from the environment into one frozen object. No I/O beyond the mapping.

Every process builds ``Settings.from_environ(os.environ)`` at start; a missing or malformed
value raises ``SettingsError`` naming the variable, which the CLI prints as one line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from asana_hooks import opt_fields
from asana_hooks.errors import HooksError
from asana_hooks.secretbox import InvalidKey, Secret, check_key

DEFAULT_API_URL = "https://app.asana.com/api/1.0"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_OAUTH_URL = "https://app.asana.com/-/"
"""Asana's OAuth endpoints are ``<this>oauth_authorize``, ``oauth_token``, ``oauth_revoke``."""


Durability = Literal["memory", "fsync"]
DURABILITIES = ("memory", "fsync")


class SettingsError(HooksError):
    """A configuration variable is missing or malformed."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


@dataclass(frozen=True)
class Settings:
    """Everything a process of ours reads from its environment."""

    asana_access_token: Secret | None = None
    asana_api_url: str = DEFAULT_API_URL
    redis_url: str = DEFAULT_REDIS_URL
    redis_url_is_set: bool = False
    public_url: str | None = None
    encryption_keys: tuple[Secret, ...] = ()
    operator_token: Secret | None = None
    debounce_seconds: float = 2.0
    max_delay_seconds: float = 15.0
    poll_interval_seconds: float = 300.0
    rate_limit_per_minute: int = 1500
    max_concurrent_reads: int = 50
    auto_recreate: bool = True
    max_body_bytes: int = 10 * 1024 * 1024
    body_timeout_seconds: float = 10.0
    handlers: tuple[str, ...] = ()
    forward_url: str | None = None
    forward_secret: Secret | None = None
    stream_maxlen: int = 100_000
    stream_retention_hours: float = 168.0
    """Entries older than this are trimmed from the changes stream (as MAXLEN: whichever
    trims first)."""
    late_event_seconds: float = 600.0
    heartbeat_timeout_seconds: float = 9 * 3600.0
    opt_fields: Mapping[str, str] = field(default_factory=dict)
    ngrok_authtoken: Secret | None = None
    """NGROK_AUTHTOKEN, for `--tunnel` (asana_hooks.tunnel)."""
    ngrok_server_addr: str | None = None
    """NGROK_SERVER_ADDR: where the ngrok agent connects (ngrok's own service by default)."""
    oauth_client_id: str | None = None
    """HOOKS_OAUTH_CLIENT_ID: the Asana app's client id; without it /oauth/* answer 404."""
    oauth_client_secret: Secret | None = None
    """HOOKS_OAUTH_CLIENT_SECRET: the app's secret (the callback and every refresh need it)."""
    oauth_url: str = DEFAULT_OAUTH_URL
    """ASANA_OAUTH_URL, always ending in ``/``."""
    durability: Durability = "memory"
    """``memory``: 200 once Redis holds a delivery; ``fsync``: once Redis's AOF has it on disk."""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Read and check every variable; raise SettingsError naming the first bad one."""
        env = _Reader(environ)
        debounce = env.positive_float("HOOKS_DEBOUNCE_SECONDS", 2.0)
        max_delay = env.positive_float("HOOKS_MAX_DELAY_SECONDS", 15.0)
        if max_delay < debounce:
            raise SettingsError(
                "HOOKS_MAX_DELAY_SECONDS",
                f"must be at least HOOKS_DEBOUNCE_SECONDS ({debounce:g}), got {max_delay:g}",
            )
        return cls(
            asana_access_token=env.secret("ASANA_ACCESS_TOKEN"),
            asana_api_url=env.url("ASANA_API_URL", DEFAULT_API_URL).rstrip("/"),
            redis_url=env.redis_url("REDIS_URL"),
            redis_url_is_set=bool(environ.get("REDIS_URL", "").strip()),
            public_url=env.optional_url("HOOKS_PUBLIC_URL"),
            encryption_keys=env.fernet_keys("HOOKS_ENCRYPTION_KEY"),
            operator_token=env.secret("HOOKS_OPERATOR_TOKEN"),
            debounce_seconds=debounce,
            max_delay_seconds=max_delay,
            poll_interval_seconds=env.positive_float("HOOKS_POLL_INTERVAL_SECONDS", 300.0),
            rate_limit_per_minute=env.positive_int("ASANA_RATE_LIMIT_PER_MINUTE", 1500),
            max_concurrent_reads=env.positive_int("ASANA_MAX_CONCURRENT_READS", 50),
            auto_recreate=env.boolean("HOOKS_AUTO_RECREATE", True),
            max_body_bytes=env.positive_int("HOOKS_MAX_BODY_BYTES", 10 * 1024 * 1024),
            body_timeout_seconds=env.positive_float("HOOKS_BODY_TIMEOUT_SECONDS", 10.0),
            handlers=env.handler_list("HOOKS_HANDLERS"),
            forward_url=env.optional_url("HOOKS_FORWARD_URL"),
            forward_secret=env.secret("HOOKS_FORWARD_SECRET"),
            stream_maxlen=env.positive_int("HOOKS_STREAM_MAXLEN", 100_000),
            stream_retention_hours=env.positive_float(
                "HOOKS_STREAM_RETENTION_HOURS", 168.0, unit="hours"
            ),
            late_event_seconds=env.positive_float("HOOKS_LATE_EVENT_SECONDS", 600.0),
            heartbeat_timeout_seconds=env.positive_float(
                "HOOKS_HEARTBEAT_TIMEOUT_SECONDS", 9 * 3600.0
            ),
            opt_fields=env.opt_fields("HOOKS_OPT_FIELDS_"),
            ngrok_authtoken=env.secret("NGROK_AUTHTOKEN"),
            ngrok_server_addr=env.host_port("NGROK_SERVER_ADDR"),
            oauth_client_id=(environ.get("HOOKS_OAUTH_CLIENT_ID") or "").strip() or None,
            oauth_client_secret=env.secret("HOOKS_OAUTH_CLIENT_SECRET"),
            oauth_url=env.url("ASANA_OAUTH_URL", DEFAULT_OAUTH_URL).rstrip("/") + "/",
            durability="fsync"
            if env.choice("HOOKS_DURABILITY", DURABILITIES) == "fsync"
            else "memory",
        )

    def require_token(self) -> Secret:
        if self.asana_access_token is None:
            raise SettingsError(
                "ASANA_ACCESS_TOKEN",
                "is not set; create a personal access token in Asana "
                "(My settings > Apps > Developer apps) and export it",
            )
        return self.asana_access_token

    def require_oauth_secret(self) -> Secret:
        if self.oauth_client_secret is None:
            raise SettingsError(
                "HOOKS_OAUTH_CLIENT_SECRET",
                "is not set; copy the client secret of your app in Asana's developer console",
            )
        return self.oauth_client_secret

    def require_public_url(self) -> str:
        if self.public_url is None:
            raise SettingsError(
                "HOOKS_PUBLIC_URL",
                "is not set; export the https URL that reaches this receiver "
                "(for example the one `ngrok http 8000` prints)",
            )
        return self.public_url

    def require_encryption_keys(self) -> tuple[Secret, ...]:
        if not self.encryption_keys:
            raise SettingsError(
                "HOOKS_ENCRYPTION_KEY",
                "is not set; run `asana-hooks keys generate` and export the key it prints",
            )
        return self.encryption_keys


class _Reader:
    """Typed reads of one environment mapping; each failure names its variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def _raw(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def secret(self, name: str) -> Secret | None:
        raw = self._raw(name)
        return Secret(raw) if raw is not None else None

    def positive_float(self, name: str, default: float, *, unit: str = "seconds") -> float:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(name, f"must be a number of {unit}, got {raw!r}") from None
        if not value > 0 or value == float("inf"):
            raise SettingsError(name, f"must be greater than 0, got {raw!r}")
        return value

    def positive_int(self, name: str, default: int) -> int:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(name, f"must be a whole number, got {raw!r}") from None
        if value <= 0:
            raise SettingsError(name, f"must be greater than 0, got {raw!r}")
        return value

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        """One of ``choices``; the first when unset."""
        raw = self._raw(name)
        if raw is None:
            return choices[0]
        if raw.lower() not in choices:
            raise SettingsError(name, f"must be one of {', '.join(choices)}, got {raw!r}")
        return raw.lower()

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._raw(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(name, f"must be true or false, got {raw!r}")

    def url(self, name: str, default: str) -> str:
        return self.optional_url(name) or default

    def optional_url(self, name: str) -> str | None:
        raw = self._raw(name)
        if raw is None:
            return None
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SettingsError(name, f"must be an http(s) URL, got {raw!r}")
        return raw.rstrip("/")

    def host_port(self, name: str) -> str | None:
        raw = self._raw(name)
        if raw is None:
            return None
        host, _, port = raw.rpartition(":")
        if not host or not port.isdigit():
            raise SettingsError(name, f"must look like host:port, got {raw!r}")
        return raw

    def redis_url(self, name: str) -> str:
        raw = self._raw(name)
        if raw is None:
            return DEFAULT_REDIS_URL
        if urlsplit(raw).scheme not in ("redis", "rediss", "unix"):
            raise SettingsError(name, "must start with redis://, rediss:// or unix://")
        return raw

    def fernet_keys(self, name: str) -> tuple[Secret, ...]:
        raw = self._raw(name)
        if raw is None:
            return ()
        keys = tuple(part.strip() for part in raw.split(",") if part.strip())
        for position, key in enumerate(keys, start=1):
            try:
                check_key(key)
            except InvalidKey:
                raise SettingsError(
                    name,
                    f"key {position} is not a Fernet key (32 url-safe base64 bytes); "
                    "run `asana-hooks keys generate` for a new one",
                ) from None
        return tuple(Secret(key) for key in keys)

    def handler_list(self, name: str) -> tuple[str, ...]:
        raw = self._raw(name)
        if raw is None:
            return ()
        specs = tuple(part.strip() for part in raw.split(",") if part.strip())
        for spec in specs:
            module, _, function = spec.partition(":")
            if not module or not function:
                raise SettingsError(name, f"each handler must look like pkg.mod:func, got {spec!r}")
        return specs

    def opt_fields(self, prefix: str) -> dict[str, str]:
        """HOOKS_OPT_FIELDS_TASK=name,notes overrides the fields fetched for tasks."""
        found: dict[str, str] = {}
        for name, value in self._environ.items():
            if name.startswith(prefix) and value.strip():
                resource_type = name[len(prefix) :].lower()
                _check_opt_fields(name, resource_type, value)
                found[resource_type] = value.strip()
        return found


def _check_opt_fields(name: str, resource_type: str, value: str) -> None:
    """A typo would thin every entry without a word: stop at start, naming the field."""
    if resource_type not in opt_fields.KNOWN_TYPES:
        raise SettingsError(name, f"names no Asana resource type ({resource_type!r})")
    unknown = opt_fields.unknown_field(resource_type, value)
    if unknown is not None:
        raise SettingsError(
            name,
            f"names {unknown!r}, which Asana does not list for a {resource_type}: fix or "
            "drop it (Asana's fields per type: asana_hooks/asana_fields.json)",
        )
