"""RQ's job record for ``process_delivery``, written without RQ's per-call overhead. Pure.

The receiver's hot path cannot afford RQ's ``Queue.enqueue_call`` (a Job object, its
description, a pipeline of four commands and a thread hop per delivery: about 0.03 of a
bare Starlette app's throughput). RQ itself builds the record once, at import, from the same
Retry and TTLs that ``queueing.enqueue_delivery`` uses; per delivery only the id, the times,
and the JSON ``data`` change. ``ENQUEUE_SCRIPT`` then stores it and pushes
its id exactly as RQ's enqueue does (HSET, RPUSH, SADD rq:queues), for a whole batch of
deliveries in one atomic command.
tests/test_rqwire.py checks the record against RQ's own for the same call, and that real RQ
workers run it, so an RQ upgrade that changes the format fails the tests.
"""

from __future__ import annotations

import itertools
import json
import os
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.serializers import JSONSerializer

from asana_hooks import keys
from asana_hooks.queueing import (
    FAILURE_TTL_SECONDS,
    JOB_RETRY,
    JOB_TIMEOUT_SECONDS,
    UNREAD_RESULT_TTL_SECONDS,
)

QUEUE_KEY = Queue.redis_queue_namespace_prefix + keys.QUEUE
QUEUES_SET = Queue.redis_queues_keys
JOB_KEY_PREFIX = Job.redis_job_namespace_prefix


def _template() -> dict[str, Any]:
    """RQ's own record for a process_delivery job, minus what changes per delivery."""
    job = Job.create(
        keys.PROCESS_DELIVERY_JOB,
        kwargs={},
        connection=redis.Redis(),  # never used: to_dict() does no I/O
        serializer=JSONSerializer,
        result_ttl=UNREAD_RESULT_TTL_SECONDS,
        failure_ttl=FAILURE_TTL_SECONDS,
        timeout=JOB_TIMEOUT_SECONDS,
        origin=keys.QUEUE,
        status=JobStatus.QUEUED,
    )
    job.retries_left = JOB_RETRY.max
    job.retry_intervals = JOB_RETRY.intervals
    job.enqueued_at = job.created_at
    record = job.to_dict()
    record["status"] = JobStatus.QUEUED.value
    record["description"] = "webhook delivery for asana-hooks"
    for changing in ("created_at", "enqueued_at", "data"):
        record.pop(changing, None)
    return record


TEMPLATE: dict[str, Any] = _template()


def _lua_string(value: object) -> str:
    text = str(value)
    if not text.isascii() or not text.isprintable() or '"' in text or "\\" in text:
        raise ValueError(f"RQ job field {text!r} cannot be written into the enqueue script")
    return f'"{text}"'


# Enqueue a batch of deliveries in one atomic command, as RQ's enqueue writes each one
# (job hash, RPUSH onto the queue, SADD rq:queues), and count them on their targets. The
# fields every job shares are written into the script itself, from TEMPLATE. The batch comes
# as one framed argument (see ``frame``), which spares the client encoding a handful of
# arguments per delivery: the job and target keys are built here from their prefixes, so
# this script, like RQ itself, needs one Redis primary, not a Cluster.
# KEYS: queue list, rq:queues, stats hash. ARGV: job key prefix, target key prefix, batch.
ENQUEUE_SCRIPT = (
    "local template = {"
    + ", ".join(_lua_string(part) for pair in TEMPLATE.items() for part in pair)
    + "}\n"
    + """
local batch, position, count, targets = ARGV[3], 1, 0, {}
while position <= #batch do
  local eol = string.find(batch, "\\n", position, true)
  local job_id, stamp, target_id, events, size = string.match(
    string.sub(batch, position, eol - 1), "^(%S+) (%S+) (%S+) (%d+) (%d+)$")
  size = tonumber(size)
  redis.call('HSET', ARGV[1] .. job_id, 'created_at', stamp, 'enqueued_at', stamp,
             'data', string.sub(batch, eol + 1, eol + size), unpack(template))
  redis.call('RPUSH', KEYS[1], job_id)
  local target = targets[target_id] or {0, 0}
  targets[target_id] = {target[1] + 1, target[2] + tonumber(events), stamp}
  position = eol + size + 1
  count = count + 1
end
for target_id, seen in pairs(targets) do
  local key = ARGV[2] .. target_id
  redis.call('HSET', key, 'last_delivery_at', string.sub(seen[3], 1, 23) .. 'Z')
  redis.call('HINCRBY', key, 'deliveries', seen[1])
  redis.call('HINCRBY', key, 'events', seen[2])
end
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('HINCRBY', KEYS[3], 'http:200', count)
return count
"""
)


def rq_timestamp(moment: datetime) -> str:
    """RQ's utcformat: microseconds and Z (its first 23 characters and Z are ours)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:26] + "Z"


_DATA_PREFIX = json.dumps([keys.PROCESS_DELIVERY_JOB, None, []])[:-1].encode() + b","


def delivery_kwargs(
    *, target_id: str, webhook_gid: str | None, digest: str, received_at: str, body: bytes
) -> bytes:
    """The job's keyword arguments as JSON: ``queueing.Delivery.to_dict``'s form, with the
    delivery body embedded as it came.

    ``body`` must be UTF-8 JSON already decoded once by the caller (``{"events": [...]}``);
    embedding its bytes spares a second serialization of every event.
    """
    head = orjson.dumps(
        {
            "source": "webhook",
            "target_id": target_id,
            "webhook_gid": webhook_gid,
            "digest": digest,
            "received_at": received_at,
        }
    )
    return b"".join((b'{"delivery": ', head[:-1], b', "body": ', body, b"}}"))


_JOB_ID_PREFIX = ""
_job_numbers = itertools.count()


def _new_id_space() -> None:
    """Job ids are a random prefix per process and a counter: unique, with no syscall per
    id. A forked child (gunicorn --preload, say) gets a prefix of its own."""
    global _JOB_ID_PREFIX, _job_numbers
    _JOB_ID_PREFIX = os.urandom(8).hex() + "-"
    _job_numbers = itertools.count()


_new_id_space()
os.register_at_fork(after_in_child=_new_id_space)


def frame(kwargs_json: bytes, *, target_id: str, events: int, rq_stamp: str) -> bytes:
    """One delivery's part of ENQUEUE_SCRIPT's batch: a header line, then the job's data.

    ``data`` is the JSON [func, instance, args, kwargs] that RQ's JSONSerializer writes. RQ
    compresses it with zlib and reads uncompressed data as it is (Job.restore falls back when
    zlib refuses it); we leave it uncompressed, which saves the receiver a compression per
    delivery. ``target_id`` is checked by the receiver ([A-Za-z0-9_-]); tests/test_rqwire.py
    runs such jobs on real RQ workers.
    """
    size = len(_DATA_PREFIX) + len(kwargs_json) + 1
    header = f"{_JOB_ID_PREFIX}{next(_job_numbers):x} {rq_stamp} {target_id} {events} {size}\n"
    return b"".join((header.encode(), _DATA_PREFIX, kwargs_json, b"]"))


def enqueue_command(frames: list[bytes]) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of ENQUEUE_SCRIPT for a batch of framed deliveries."""
    return [QUEUE_KEY, QUEUES_SET, keys.STATS], [
        JOB_KEY_PREFIX,
        keys.target(""),
        b"".join(frames),
    ]
