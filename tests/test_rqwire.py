"""The receiver writes RQ jobs by hand; RQ must not be able to tell them from its own."""

from __future__ import annotations

import json

import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from asana_hooks import keys, rqwire
from asana_hooks.queueing import Delivery, enqueue_delivery, make_queue
from asana_hooks.redis_conn import text

BODY = b'{"events": [{"action": "changed", "resource": {"gid": "1", "resource_type": "task"}}]}'
VOLATILE = {b"created_at", b"enqueued_at", b"data", b"description"}


def write_by_hand(client: redis.Redis, target_id: str = "t1") -> str:
    stamp = "2026-11-23T10:00:00.123456Z"
    kwargs = rqwire.delivery_kwargs(
        target_id=target_id, webhook_gid="9", digest="d", received_at=stamp[:23] + "Z", body=BODY
    )
    frame = rqwire.frame(kwargs, target_id=target_id, events=1, rq_stamp=stamp)
    script_keys, argv = rqwire.enqueue_command([frame])
    client.eval(rqwire.ENQUEUE_SCRIPT, len(script_keys), *script_keys, *argv)
    return text(client.lindex("rq:queue:" + keys.QUEUE, -1) or b"")


class TestJobRecord:
    """Same fields as RQ's enqueue_call for the same job; readable by RQ's Job.fetch."""

    def test_fields_match_what_rq_writes(self, redis_client: redis.Redis) -> None:
        """Every field RQ writes is there, with RQ's value (but ids, times and data)."""
        ours = redis_client.hgetall(f"rq:job:{write_by_hand(redis_client)}")
        delivery = Delivery(
            source="webhook",
            target_id="t1",
            webhook_gid="9",
            digest="d",
            received_at="x",
            events=(),
        )
        theirs_job = enqueue_delivery(make_queue(redis_client), delivery)
        theirs = redis_client.hgetall(f"rq:job:{theirs_job.id}")
        assert set(ours) == set(theirs)
        assert {k: v for k, v in ours.items() if k not in VOLATILE} == {
            k: v for k, v in theirs.items() if k not in VOLATILE
        }

    def test_rq_reads_kwargs_and_queue(self, redis_client: redis.Redis) -> None:
        """Job.fetch decodes it; the queue lists it; the target's counters moved."""
        job_id = write_by_hand(redis_client)
        job = Job.fetch(job_id, connection=redis_client, serializer=JSONSerializer)
        assert job.func_name == keys.PROCESS_DELIVERY_JOB
        expected = Delivery(
            source="webhook",
            target_id="t1",
            webhook_gid="9",
            digest="d",
            received_at="2026-11-23T10:00:00.123Z",
            events=tuple(json.loads(BODY)["events"]),
        )
        assert job.kwargs == {"delivery": expected.to_dict()}
        assert Delivery.from_dict(job.kwargs["delivery"]) == expected
        assert job.created_at is not None
        assert make_queue(redis_client).job_ids == [job_id]
        assert redis_client.sismember("rq:queues", "rq:queue:" + keys.QUEUE)
        assert redis_client.hmget(keys.target("t1"), ["deliveries", "events"]) == [b"1", b"1"]

    def test_a_batch_is_one_atomic_command(self, redis_client: redis.Redis) -> None:
        """Many frames, one script call: every job is queued in order."""
        frames = [
            rqwire.frame(
                rqwire.delivery_kwargs(
                    target_id=f"t{n}", webhook_gid=None, digest=str(n), received_at="x", body=BODY
                ),
                target_id=f"t{n}",
                events=1,
                rq_stamp="2026-11-23T10:00:00.000000Z",
            )
            for n in range(50)
        ]
        script_keys, argv = rqwire.enqueue_command(frames)
        stored = redis_client.eval(rqwire.ENQUEUE_SCRIPT, len(script_keys), *script_keys, *argv)
        assert stored == 50
        jobs = [
            Job.fetch(text(job_id), connection=redis_client, serializer=JSONSerializer)
            for job_id in make_queue(redis_client).job_ids
        ]
        assert [job.kwargs["delivery"]["digest"] for job in jobs] == [str(n) for n in range(50)]
        assert redis_client.hget(keys.STATS, "http:200") == b"50"


class TestJobIds:
    def test_a_forked_child_draws_ids_of_its_own(self) -> None:
        """Two processes forked from one never write the same job id."""
        import os

        reader, writer = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            os.write(writer, rqwire.frame(b"{}", target_id="t", events=1, rq_stamp="s")[:40])
            os._exit(0)
        os.waitpid(child, 0)
        theirs = os.read(reader, 40).split(b" ")[0]
        ours = rqwire.frame(b"{}", target_id="t", events=1, rq_stamp="s").split(b" ")[0]
        assert theirs != ours
        assert theirs.split(b"-")[0] != ours.split(b"-")[0]
