"""Stop a loop on SIGTERM or SIGINT after the work in hand. I/O edge (signal handlers).

A long-running loop (a ``Consumer``) checks a ``threading.Event`` between units of work; this
sets it on SIGTERM or SIGINT and puts the previous handlers back afterwards. Python allows
signal handlers only in the main thread: elsewhere it does nothing, and the loop's owner
stops it with the event itself.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)


@contextmanager
def stop_on_signals(stop: threading.Event, message: str) -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT log ``message`` with the signal and set ``stop``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s signal=%s", message, signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
