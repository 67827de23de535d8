"""`python -m asana_hooks` is the `asana-hooks` command."""

from __future__ import annotations

from asana_hooks.cli import main

main()
