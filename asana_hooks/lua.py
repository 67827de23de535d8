"""Redis Lua scripts, kept as .lua files in a ``lua/`` folder beside the module that runs them.
I/O: reads one file at import.

A script reads better as Lua than inside a Python string, and the header of each file names
its KEYS and ARGV. The module registers it with ``redis.Redis.register_script``.
"""

from __future__ import annotations

from pathlib import Path


def load(module_file: str, name: str) -> str:
    """The text of ``lua/<name>.lua`` beside ``module_file`` (pass ``__file__``)."""
    return (Path(module_file).parent / "lua" / f"{name}.lua").read_text(encoding="utf-8")
