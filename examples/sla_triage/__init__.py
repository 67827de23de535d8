"""SLA triage: an integration built on the changes stream (see README.md beside this file).

Modules: ``config`` (the TOML file), ``core`` (pure: a change in, the Asana writes and the
state out; the SLA check), ``store`` (its state in Redis), ``app`` (the I/O: Consumer, the
AsanaClient writes, the sweep), ``__main__`` (``python -m examples.sla_triage --config ...``).
"""
