"""What a running `asana-hooks dev` leaves for the CLI in the same directory. I/O (two files).

`dev` starts its own Redis on a free port and keeps its own encryption key
(``.asana-hooks/dev-key``), so a `webhooks create` or `watch add` typed in another terminal
could reach neither. While it runs, `dev` writes its Redis URL beside the key; the CLI reads
both as defaults (the environment still wins), which makes the README's three steps work:
a token, `asana-hooks dev --tunnel`, then `webhooks create` in the same directory.
"""

from __future__ import annotations

from pathlib import Path

STATE_DIR = Path(".asana-hooks")
REDIS_URL_FILE = "redis-url"
"""Written when `dev` starts its embedded Redis, removed when it stops."""
KEY_FILE = "dev-key"


def dev_defaults(state_dir: Path = STATE_DIR) -> dict[str, str]:
    """REDIS_URL and HOOKS_ENCRYPTION_KEY of a `dev` running from this directory, if any."""
    url_file = state_dir / REDIS_URL_FILE
    if not url_file.is_file():
        return {}
    found = {"REDIS_URL": url_file.read_text().strip()}
    key_file = state_dir / KEY_FILE
    if key_file.is_file():
        found["HOOKS_ENCRYPTION_KEY"] = key_file.read_text().strip()
    return found


def announce(url: str, state_dir: Path = STATE_DIR) -> Path:
    """Record the embedded Redis's URL; returns the file to remove at the end."""
    state_dir.mkdir(exist_ok=True)
    path = state_dir / REDIS_URL_FILE
    path.write_text(url)
    return path
