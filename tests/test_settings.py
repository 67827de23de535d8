"""Settings: every variable of the contract, and one clear line for every bad value."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from asana_hooks.secretbox import generate_key
from asana_hooks.settings import Settings, SettingsError


class TestFromEnviron:
    def test_defaults_match_the_contract(self) -> None:
        settings = Settings.from_environ({})
        assert settings.asana_api_url == "https://app.asana.com/api/1.0"
        assert settings.redis_url == "redis://localhost:6379/0"
        assert settings.debounce_seconds == 2
        assert settings.max_delay_seconds == 15
        assert settings.poll_interval_seconds == 300
        assert settings.rate_limit_per_minute == 1500
        assert settings.auto_recreate is True
        assert settings.max_body_bytes == 10485760
        assert settings.handlers == ()
        assert settings.forward_url is None

    def test_every_variable_is_read(self) -> None:
        key = generate_key()
        settings = Settings.from_environ(
            {
                "ASANA_ACCESS_TOKEN": "tok",
                "ASANA_API_URL": "http://127.0.0.1:9/api/1.0/",
                "REDIS_URL": "redis://127.0.0.1:1/2",
                "HOOKS_PUBLIC_URL": "https://example.ngrok.app/",
                "HOOKS_ENCRYPTION_KEY": f"{key}, {generate_key()}",
                "HOOKS_OPERATOR_TOKEN": "op",
                "HOOKS_DEBOUNCE_SECONDS": "0.5",
                "HOOKS_MAX_DELAY_SECONDS": "3",
                "HOOKS_POLL_INTERVAL_SECONDS": "60",
                "ASANA_RATE_LIMIT_PER_MINUTE": "150",
                "HOOKS_AUTO_RECREATE": "false",
                "HOOKS_MAX_BODY_BYTES": "1000",
                "HOOKS_HANDLERS": "pkg.mod:func, other:handle",
                "HOOKS_FORWARD_URL": "http://127.0.0.1:9/in",
            }
        )
        assert settings.asana_access_token is not None
        assert settings.asana_access_token.reveal() == "tok"
        assert settings.asana_api_url == "http://127.0.0.1:9/api/1.0"
        assert settings.redis_url_is_set
        assert settings.public_url == "https://example.ngrok.app"
        assert len(settings.encryption_keys) == 2
        assert settings.encryption_keys[0].reveal() == key
        assert (settings.debounce_seconds, settings.max_delay_seconds) == (0.5, 3)
        assert settings.rate_limit_per_minute == 150
        assert settings.auto_recreate is False
        assert settings.handlers == ("pkg.mod:func", "other:handle")

    def test_retention_hours(self) -> None:
        """A week by default; fractions of an hour are fine."""
        assert Settings.from_environ({}).stream_retention_hours == 168
        retention = Settings.from_environ({"HOOKS_STREAM_RETENTION_HOURS": "0.5"})
        assert retention.stream_retention_hours == 0.5

    def test_secrets_never_show_in_a_repr(self) -> None:
        """Tokens and keys are masked wherever the settings are printed."""
        key = generate_key()
        settings = Settings.from_environ(
            {"ASANA_ACCESS_TOKEN": "very-secret", "HOOKS_ENCRYPTION_KEY": key}
        )
        assert "very-secret" not in repr(settings)
        assert key not in repr(settings)

    @pytest.mark.parametrize(
        ("variable", "value", "says"),
        [
            ("HOOKS_DEBOUNCE_SECONDS", "soon", "number of seconds"),
            ("HOOKS_DEBOUNCE_SECONDS", "-1", "greater than 0"),
            ("HOOKS_MAX_DELAY_SECONDS", "1", "at least HOOKS_DEBOUNCE_SECONDS"),
            ("ASANA_RATE_LIMIT_PER_MINUTE", "1.5", "whole number"),
            ("HOOKS_AUTO_RECREATE", "maybe", "true or false"),
            ("HOOKS_PUBLIC_URL", "ftp://x", "http(s) URL"),
            ("REDIS_URL", "http://x", "redis://"),
            ("HOOKS_ENCRYPTION_KEY", "short", "not a Fernet key"),
            ("HOOKS_HANDLERS", "nocolon", "pkg.mod:func"),
            ("HOOKS_STREAM_RETENTION_HOURS", "a week", "number of hours"),
            ("HOOKS_STREAM_RETENTION_HOURS", "0", "greater than 0"),
        ],
    )
    def test_bad_values_name_the_variable(self, variable: str, value: str, says: str) -> None:
        with pytest.raises(SettingsError, match=re.escape(says)) as caught:
            Settings.from_environ({variable: value})
        assert caught.value.variable == variable


class TestClearFailures:
    """What a user sees: one line saying what to do, no traceback, a script-friendly code."""

    def run(self, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("HOOKS_", "ASANA_"))}
        return subprocess.run(
            [sys.executable, "-m", "asana_hooks", *args],
            env=clean | env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def test_malformed_setting(self) -> None:
        result = self.run("serve", env={"HOOKS_MAX_BODY_BYTES": "lots"})
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            "error: HOOKS_MAX_BODY_BYTES must be a whole number, got 'lots'"
        ]

    @pytest.mark.parametrize(
        ("variable", "value", "named"),
        [
            ("HOOKS_OPT_FIELDS_TASK", "name,nmae", "'nmae', which Asana does not list for a task"),
            ("HOOKS_OPT_FIELDS_TASK", "name, assignee.emial", "'assignee.emial', which"),
            ("HOOKS_OPT_FIELDS_TAKS", "name", "no Asana resource type ('taks')"),
        ],
    )
    def test_an_opt_field_asana_does_not_list_stops_the_process(
        self, variable: str, value: str, named: str
    ) -> None:
        """A typo in HOOKS_OPT_FIELDS_<TYPE> would thin every entry in silence."""
        result = self.run("worker", env={variable: value, "HOOKS_ENCRYPTION_KEY": generate_key()})
        assert result.returncode == 2
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(f"error: {variable} names ")
        assert named in line

    def test_durability_is_memory_or_fsync(self) -> None:
        assert Settings.from_environ({}).durability == "memory"
        assert Settings.from_environ({"HOOKS_DURABILITY": "FSYNC"}).durability == "fsync"
        with pytest.raises(SettingsError, match="must be one of memory, fsync, got 'disk'"):
            Settings.from_environ({"HOOKS_DURABILITY": "disk"})

    def test_opt_fields_asana_lists_are_taken(self) -> None:
        settings = Settings.from_environ(
            {"HOOKS_OPT_FIELDS_TASK": "name, assignee.email,memberships.section.name"}
        )
        assert settings.opt_fields == {"task": "name, assignee.email,memberships.section.name"}

    def test_missing_encryption_key(self) -> None:
        result = self.run("serve", env={})
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1
        assert "HOOKS_ENCRYPTION_KEY" in lines[0]
        assert "keys generate" in lines[0]

    def test_unreachable_redis(self) -> None:
        result = self.run(
            "worker",
            env={"REDIS_URL": "redis://127.0.0.1:1/0", "HOOKS_ENCRYPTION_KEY": generate_key()},
        )
        assert result.returncode == 3
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1
        assert "Redis at redis://127.0.0.1:1/0 is unreachable" in lines[0]
        assert "Traceback" not in result.stderr
