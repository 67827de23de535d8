"""Free RQ's scheduler lock when the scheduler holding it is dead. I/O edge (Redis).

One RQ scheduler per queue enqueues scheduled jobs (our batch flushes, RQ's retries); it
holds ``rq:scheduler-lock:<queue>`` for 61 s and renews it every second. When the worker
running it is SIGKILLed, nothing is flushed until that lock expires, although another
worker would take over at its next maintenance. The scheduler's own record names its host
and pid, so a worker on the same host can tell that the holder is gone and delete the lock
(only if it still names that scheduler); the takeover then comes within a maintenance
interval. A holder on another host is left to expire.
"""

from __future__ import annotations

import logging
import os
import socket

import redis
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler

from asana_hooks.redis_conn import text

log = logging.getLogger(__name__)

_DELETE_IF_HELD_BY = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def release_if_holder_died(connection: redis.Redis, queue_name: str) -> bool:
    """Delete the queue's scheduler lock if its holder ran on this host and has exited."""
    lock_key = RQScheduler.get_locking_key(queue_name)
    holder = connection.get(lock_key)
    if holder is None:
        return False
    name = text(holder)
    host, pid = connection.hmget(SCHEDULER_KEY_TEMPLATE % name, ["hostname", "pid"])
    if not host or not pid or text(host) != socket.gethostname() or _alive(int(pid)):
        return False
    released = bool(connection.eval(_DELETE_IF_HELD_BY, 1, lock_key, holder))
    if released:
        log.warning("scheduler.lock_released holder=%s pid=%s: its process has exited", name, pid)
    return released


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process now has that pid
    return True
