"""A running system for the operator tests: fake Asana, receiver, and the CLI as a subprocess.

Everything listens on 127.0.0.1: the fake Asana (its own uvicorn thread), our receiver
(``serve_in_thread``) and, when asked, a burst of the real worker process.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asana_hooks.cli import main
from asana_hooks.cli.context import settings
from asana_hooks.dev.fake_asana import FakeAsana
from asana_hooks.settings import Settings
from receiver.app import create_app
from tests.helpers import serve_in_thread

CLI = str(Path(sys.executable).parent / "asana-hooks")
CLI_TIMEOUT_SECONDS = 30


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class System:
    fake: FakeAsana
    receiver_url: str
    env: dict[str, str]
    workspace: str
    project: str
    user: str

    def cli(self, *args: str, **extra_env: str) -> CliResult:
        """Run `asana-hooks ARGS` in this process (the real entry point, fast)."""
        return invoke_cli(*args, env={**self.env, **extra_env})

    def process(self, *args: str, **extra_env: str) -> CliResult:
        """Run `asana-hooks ARGS` as a real process with this system's environment."""
        return run_cli(*args, env={**self.env, **extra_env})


_CLI_LOCK = threading.Lock()


def invoke_cli(*args: str, env: dict[str, str], stdin: str = "") -> CliResult:
    """The console script's ``main()`` with this argv, stdin and exactly this environment."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with _CLI_LOCK, _exact_environ(env), redirect_stdout(out), redirect_stderr(err):
        saved_argv, saved_stdin = sys.argv, sys.stdin
        sys.argv = ["asana-hooks", *args]
        sys.stdin = io.StringIO(stdin)
        settings.cache_clear()
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.argv, sys.stdin = saved_argv, saved_stdin
            settings.cache_clear()
    return CliResult(code, out.getvalue(), err.getvalue())


@contextmanager
def _exact_environ(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update({"PATH": saved.get("PATH", "/usr/bin:/bin"), "NO_COLOR": "1", **env})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_cli(*args: str, env: dict[str, str]) -> CliResult:
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/nonexistent"),
        "LANG": "C.UTF-8",
        "NO_COLOR": "1",
        "COLUMNS": "200",
        **env,
    }
    done = subprocess.run(
        [CLI, *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


@contextmanager
def running_system(environ: dict[str, str], *, time_scale: float = 0.001) -> Iterator[System]:
    """Fake Asana with a workspace and a project, and our receiver, both on 127.0.0.1."""
    with FakeAsana(token="test-token", time_scale=time_scale) as fake:
        env = {**environ, "ASANA_API_URL": fake.api_url}
        settings = Settings.from_environ(env)
        with serve_in_thread(create_app(settings)) as receiver_url:
            workspace = fake.world.add_workspace("Acme")
            user = fake.world.add_user("Greg", workspace=workspace)
            project = fake.world.add_project("Launch", workspace=workspace)
            yield System(
                fake=fake,
                receiver_url=receiver_url,
                env={**env, "HOOKS_PUBLIC_URL": receiver_url},
                workspace=workspace,
                project=project,
                user=user,
            )
