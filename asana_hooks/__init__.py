"""asana-hooks: the shared core of the receiver, the workers, the poller and the CLI.

Settings, Redis key names, the event model and its fingerprint, secret encryption,
the registration store, the Asana API client and its shared budget live here, so that
``receiver`` and ``workers`` depend on this package and never on each other.
"""

from __future__ import annotations

__version__ = "0.1.0"
