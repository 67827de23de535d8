"""The dedupe window (workers.window): how long marks are found, that every bucket expires,
that a retried job is never its own duplicate, and that the earlier layout's keys still count.
Real Redis, real scripts; only the workers' clock is set."""

from __future__ import annotations

import time

import pytest
import redis

from asana_hooks import keys
from asana_hooks.events import parse_event
from asana_hooks.queueing import JOB_RETRY
from asana_hooks.redis_conn import text
from asana_hooks.settings import Settings
from workers.batching import Batcher
from workers.dedupe import Deduper
from workers.emit import EMITTED_TTL_SECONDS, Emitter
from workers.intake import _add_unclaimed
from workers.model import BatchEvent, ClosedBatch, Fetched, build_change
from workers.runtime import Runtime
from workers.window import (
    BUCKET_SECONDS,
    BUCKETS_BEHIND,
    READ_BUCKETS,
    SKEW_SECONDS,
    WINDOW_SECONDS,
    WRITE_INDEX,
    Window,
)

ASANA_RETRIES_FOR = 24 * 3600
"""Asana retries a delivery, and keeps Events API events, for at most 24 hours."""


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _event(gid: str, ms: int = 0) -> BatchEvent:
    raw = {
        "action": "changed",
        "created_at": f"2026-01-01T00:00:00.{ms:03d}Z",
        "resource": {"gid": gid, "resource_type": "task"},
        "user": {"gid": "9", "resource_type": "user"},
        "change": {"field": "name", "action": "changed"},
    }
    return BatchEvent.of(
        parse_event(raw), source="webhook", webhook_gid="w1", target_id="t", late=False
    )


class Worker:
    """A worker's deduper and batcher, on one (settable) clock."""

    def __init__(self, connection: redis.Redis, clock: Clock) -> None:
        window = Window(clock)
        self.deduper = Deduper(connection, window)
        self.batcher = Batcher(
            connection, debounce_seconds=0.01, max_delay_seconds=1, window=window
        )

    def take(self, job_id: str, events: list[BatchEvent], digest: str | None = "d") -> int:
        """What intake does: claim, then add what was claimed; returns the events added."""
        fingerprints = [event.fingerprint for event in events]
        claim = self.deduper.claim(
            job_id=job_id, target_id="t", digest=digest, fingerprints=fingerprints
        )
        if claim.duplicate_delivery:
            return -1
        fresh = [event for event, ok in zip(events, claim.claimed, strict=True) if ok]
        return self.batcher.add(fresh, job_id=job_id, digest=digest, target_id="t").added


def _bucket_start(now: float) -> float:
    return (int(now) // BUCKET_SECONDS + 1) * BUCKET_SECONDS


class TestWindowLength:
    """A mark must be found for as long as Asana may send its delivery or event again."""

    def test_window_covers_asanas_retries_with_margin(self) -> None:
        assert WINDOW_SECONDS >= ASANA_RETRIES_FOR + 3600
        assert BUCKETS_BEHIND * BUCKET_SECONDS == WINDOW_SECONDS

    @pytest.mark.parametrize("into_bucket", [0, 1, BUCKET_SECONDS - 1])
    def test_marks_are_found_a_whole_window_later(
        self, redis_client: redis.Redis, into_bucket: int
    ) -> None:
        """Written at the start, middle or end of a bucket, a mark is still found 25 h later
        (by another worker), so a repeat of the delivery or of its event is dropped."""
        start = _bucket_start(time.time()) + into_bucket
        clock = Clock(start)
        worker = Worker(redis_client, clock)
        event = _event("1")
        assert worker.take("job-a", [event]) == 1
        clock.now = start + WINDOW_SECONDS - 1
        assert worker.take("job-b", [event]) == -1  # the delivery again
        assert worker.take("job-c", [event], digest=None) == 0  # its event, via the poller

    def test_marks_are_not_read_past_window_and_buckets(self, redis_client: redis.Redis) -> None:
        """Reads are bounded too: 31 h on, a mark's bucket is not among the keys read."""
        start = _bucket_start(time.time())
        clock = Clock(start)
        worker = Worker(redis_client, clock)
        event = _event("1")
        worker.take("job-a", [event])
        clock.now = start + WINDOW_SECONDS + BUCKET_SECONDS + SKEW_SECONDS
        assert worker.take("job-b", [event]) == 1

    def test_a_worker_whose_clock_runs_behind_finds_marks_of_one_ahead(
        self, redis_client: redis.Redis
    ) -> None:
        """The bucket ahead is read: a worker 10 min behind sees what a worker on time wrote
        just after the bucket changed."""
        start = _bucket_start(time.time())
        event = _event("1")
        Worker(redis_client, Clock(start + 1)).take("job-a", [event])
        behind = Worker(redis_client, Clock(start + 1 - 600))
        assert behind.take("job-b", [event]) == -1
        assert behind.take("job-c", [event], digest=None) == 0


class TestBucketsExpire:
    """Every bucket has a TTL, and keeps it no longer than the window needs."""

    def test_every_bucket_written_has_an_expiry(self, redis_client: redis.Redis) -> None:
        worker = Worker(redis_client, Clock(time.time()))
        worker.take("job-a", [_event(str(gid)) for gid in range(50)])
        buckets = list(redis_client.scan_iter(match=f"{keys.PREFIX}seen-*"))
        assert len(buckets) >= 40  # the events' shards and the delivery's
        limit = WINDOW_SECONDS + 2 * BUCKET_SECONDS + SKEW_SECONDS
        for key in buckets:
            assert 0 < redis_client.ttl(key) <= limit, key

    def test_a_bucket_lives_until_the_last_read_of_it(self) -> None:
        """The last worker reading bucket b reads it at the end of bucket b + 5 (+ skew)."""
        window = Window()
        for bucket in (0, 100_000):
            last_read = (bucket + BUCKETS_BEHIND + 1) * BUCKET_SECONDS - 1 + SKEW_SECONDS
            assert window.expire_at(bucket) >= last_read
            assert window.expire_at(bucket) <= last_read + BUCKET_SECONDS + 1

    def test_keys_are_the_window_the_current_bucket_and_one_ahead(self) -> None:
        """The bucket ahead only in the last SKEW_SECONDS of a bucket."""
        start = BUCKET_SECONDS * 1000
        middle = Window(Clock(start + 5))
        mark = middle.event("fp", middle.span())
        assert len(mark.keys) == READ_BUCKETS - 1
        assert mark.keys[0].split(b":")[-2] == str(1000 - BUCKETS_BEHIND).encode()
        assert mark.keys[WRITE_INDEX] == keys.event_marks(1000, int(mark.keys[0][-3:], 16)).encode()
        late = Window(Clock(start + BUCKET_SECONDS - SKEW_SECONDS))
        mark = late.event("fp", late.span())
        assert len(mark.keys) == READ_BUCKETS
        assert mark.keys[WRITE_INDEX].split(b":")[-2] == b"1000"
        assert mark.keys[-1].split(b":")[-2] == b"1001"


class TestRetries:
    """A retried RQ job (same id) is never its own duplicate; another job is."""

    def test_retry_after_the_batch_step_is_its_own_delivery(
        self, redis_client: redis.Redis
    ) -> None:
        """Killed after its events were batched: its retry is not a duplicate delivery,
        its events are done (not added twice), and another job's copy is a duplicate."""
        worker = Worker(redis_client, Clock(time.time()))
        events = [_event("1", 1), _event("2", 2)]
        assert worker.take("job-a", events) == 2
        retry = worker.deduper.claim(
            job_id="job-a", target_id="t", digest="d", fingerprints=[e.fingerprint for e in events]
        )
        assert not retry.duplicate_delivery
        assert retry.claimed == (False, False)
        assert worker.take("job-b", events) == -1

    def test_retry_after_the_claim_takes_its_events(self, redis_client: redis.Redis) -> None:
        """Killed between claim and batch: the retry finds its own claims and adds them."""
        worker = Worker(redis_client, Clock(time.time()))
        events = [_event("1", 1), _event("2", 2)]
        worker.deduper.claim(
            job_id="job-a", target_id="t", digest="d", fingerprints=[e.fingerprint for e in events]
        )
        assert worker.take("job-b", events) == -1
        assert worker.take("job-a", events) == 2
        assert redis_client.xlen(keys.CHANGES_STREAM) == 0
        assert redis_client.zcard(keys.OPEN_BATCHES) == 2

    def test_a_stalled_job_does_not_add_what_another_job_added(
        self, redis_client: redis.Redis, worker_settings: Settings
    ) -> None:
        """Its claims expired and another job took one event meanwhile: the batch step leaves
        both alone, the job claims them again, and only the other one is added."""
        runtime = Runtime.build(worker_settings)
        taken, left = _event("1", 1), _event("2", 2)
        fingerprints = [taken.fingerprint, left.fingerprint]
        runtime.deduper.claim(
            job_id="job-a", target_id=None, digest=None, fingerprints=fingerprints
        )
        redis_client.delete(*(keys.event_claim(fp) for fp in fingerprints))  # they expired
        other = Worker(redis_client, Clock(time.time()))
        assert other.take("job-b", [taken], digest=None) == 1
        added = runtime.batcher.add([taken, left], job_id="job-a")
        assert (added.added, added.unclaimed) == (0, (0, 1))
        final = _add_unclaimed(runtime, added, [taken, left], job_id="job-a", target_id=None)
        assert (final.added, final.duplicates, final.unclaimed) == (1, 1, ())
        assert int(redis_client.hget(keys.batch("1"), "count") or 0) == 1
        assert int(redis_client.hget(keys.batch("2"), "count") or 0) == 1

    def test_a_record_across_two_records_is_no_match(self, redis_client: redis.Redis) -> None:
        """Records count at aligned offsets only: the bytes of one event's record found
        straddling two others do not make it a duplicate."""
        window = Window()
        event = _event("1")
        mark = window.event(event.fingerprint, window.span())
        redis_client.set(mark.keys[WRITE_INDEX], b"\0" * 4 + mark.record + b"\0" * 4)
        claim = Deduper(redis_client, window).claim(
            job_id="job-a", target_id=None, digest=None, fingerprints=[event.fingerprint]
        )
        assert claim.claimed == (True,)


class TestEarlierLayout:
    """Keys written before the upgrade still mark deliveries, events and batches done."""

    def test_old_delivery_and_event_keys_are_done(self, redis_client: redis.Redis) -> None:
        worker = Worker(redis_client, Clock(time.time()))
        event, other = _event("1", 1), _event("2", 2)
        redis_client.set(keys.delivery_seen("t", "d"), "old-job", ex=3600)
        redis_client.set(keys.event_done(event.fingerprint), "1", ex=3600)
        assert worker.take("job-b", [event]) == -1
        assert worker.take("old-job", [event, other]) == 1  # a job enqueued before, retried
        assert worker.take("job-c", [event], digest=None) == 0
        assert worker.batcher.add([event], job_id="job-c").added == 0

    @pytest.mark.parametrize(("hours_since_upgrade", "read"), [(47, True), (49, False)])
    def test_old_keys_are_read_for_48_hours_after_the_upgrade(
        self, redis_client: redis.Redis, hours_since_upgrade: int, read: bool
    ) -> None:
        """The earlier layout kept its keys 48 h; past that nothing of it is left to read."""
        now = time.time()
        redis_client.set(keys.DEDUPE_LAYOUT_SINCE, int(now - hours_since_upgrade * 3600))
        event = _event("1")
        redis_client.set(keys.event_done(event.fingerprint), "1", ex=3600)
        claim = Deduper(redis_client, Window(Clock(now))).claim(
            job_id="job-a", target_id=None, digest=None, fingerprints=[event.fingerprint]
        )
        assert claim.claimed == (not read,)

    def test_old_emitted_mark_keeps_a_batch_from_a_second_entry(
        self, redis_client: redis.Redis
    ) -> None:
        worker, closed = _closed_batch(redis_client)
        redis_client.set(keys.batch_emitted(closed.batch_id), "1-1", ex=3600)
        emitter = Emitter(redis_client, stream_maxlen=100)
        _entry, new = emitter.emit(closed, build_change(closed, Fetched("ok", {"gid": "1"})))
        assert not new
        assert worker.batcher.close("1", closed.batch_id, owner="flush-1").state == "emitted"
        assert redis_client.xlen(keys.CHANGES_STREAM) == 0


class TestEmittedMarks:
    def test_marks_live_in_the_flush_jobs_hash_with_a_ttl(self, redis_client: redis.Redis) -> None:
        """One small hash per flush job, gone after EMITTED_TTL_SECONDS; its retry still
        finds the batch emitted and the entry."""
        worker, closed = _closed_batch(redis_client)
        batch_id = closed.batch_id
        emitter = Emitter(redis_client, stream_maxlen=100)
        entry_id, new = emitter.emit(closed, build_change(closed, Fetched("ok", {"gid": "1"})))
        assert new
        assert 0 < redis_client.ttl(keys.flush_emitted("flush-1")) <= EMITTED_TTL_SECONDS
        assert redis_client.object("encoding", keys.flush_emitted("flush-1")) == b"listpack"
        assert worker.batcher.close("1", batch_id, owner="flush-1").state == "emitted"
        found = emitter.emitted_change("flush-1", batch_id)
        assert found is not None
        assert found[0] == entry_id

    def test_marks_outlive_the_flush_jobs_retries(self) -> None:
        """RQ's Retry intervals (asana_hooks.queueing) add up to about 19 minutes."""
        assert 10 * sum(JOB_RETRY.intervals) <= EMITTED_TTL_SECONDS


def _closed_batch(redis_client: redis.Redis) -> tuple[Worker, ClosedBatch]:
    """One event for resource 1, its batch closed by flush job ``flush-1``."""
    worker = Worker(redis_client, Clock(time.time()))
    worker.take("job-a", [_event("1")])
    time.sleep(0.03)
    batch_id = text(redis_client.hget(keys.batch("1"), "id") or "")
    closed = worker.batcher.close("1", batch_id, owner="flush-1").batch
    assert closed is not None
    return worker, closed
