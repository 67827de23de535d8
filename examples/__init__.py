"""Worked examples built on asana-hooks' changes stream (each one a package of its own)."""
