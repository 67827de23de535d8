"""Dedupe claims and batch transitions, against the real Redis fixture."""

from __future__ import annotations

import time

import redis

from asana_hooks import keys
from asana_hooks.events import parse_event
from workers.batching import Added, Batcher
from workers.dedupe import CLAIM_TTL_SECONDS, Deduper
from workers.emit import Emitter
from workers.model import BatchEvent, Fetched, build_change


def _event(
    gid: str, *, action: str = "changed", field: str | None = "name", ms: int = 0
) -> BatchEvent:
    raw = {
        "action": action,
        "created_at": f"2026-01-01T00:00:00.{ms:03d}Z",
        "resource": {"gid": gid, "resource_type": "task"},
        "user": {"gid": "9", "resource_type": "user"},
        "parent": None,
    }
    if field:
        raw["change"] = {"field": field, "action": "changed"}
    return BatchEvent.of(
        parse_event(raw), source="webhook", webhook_gid="w1", target_id="t1", late=False
    )


def _batcher(connection: redis.Redis, debounce: float = 0.05, max_delay: float = 1.0) -> Batcher:
    return Batcher(connection, debounce_seconds=debounce, max_delay_seconds=max_delay)


def _take(connection: redis.Redis, batcher: Batcher, events: list[BatchEvent]) -> Added:
    """Claim the events for job "job", as intake does, then add them."""
    Deduper(connection).claim(
        job_id="job", target_id=None, digest=None, fingerprints=[e.fingerprint for e in events]
    )
    return batcher.add(events, job_id="job")


class TestDeduper:
    """Claims are per job: duplicates are dropped, a job's own retry is not."""

    def test_second_job_with_same_digest_is_a_duplicate_delivery(
        self, redis_client: redis.Redis
    ) -> None:
        deduper = Deduper(redis_client)
        first = deduper.claim(job_id="a", target_id="t", digest="d", fingerprints=["f1"])
        again = deduper.claim(job_id="b", target_id="t", digest="d", fingerprints=["f1"])
        assert first.claimed == (True,)
        assert again.duplicate_delivery
        assert 0 < redis_client.ttl(keys.delivery_claim("t", "d")) <= CLAIM_TTL_SECONDS

    def test_retry_of_the_same_job_is_not_its_own_duplicate(
        self, redis_client: redis.Redis
    ) -> None:
        """A killed job's retry (same id) finds its own claims and takes them again."""
        deduper = Deduper(redis_client)
        deduper.claim(job_id="a", target_id="t", digest="d", fingerprints=["f1", "f2"])
        retry = deduper.claim(job_id="a", target_id="t", digest="d", fingerprints=["f1", "f2"])
        assert not retry.duplicate_delivery
        assert retry.claimed == (True, True)

    def test_released_claims_let_another_job_take_the_events(
        self, redis_client: redis.Redis
    ) -> None:
        """A failing job gives back its claims; the events are not lost as duplicates."""
        deduper = Deduper(redis_client)
        deduper.claim(job_id="a", target_id="t", digest="d", fingerprints=["f1"])
        assert deduper.release(job_id="a", target_id="t", digest="d", fingerprints=["f1"]) == 2
        other = deduper.claim(job_id="b", target_id="t", digest="d", fingerprints=["f1"])
        assert other.claimed == (True,)

    def test_done_event_is_a_duplicate_for_everyone(self, redis_client: redis.Redis) -> None:
        """Once batched (done mark written), the same event via the poller is dropped."""
        deduper, batcher = Deduper(redis_client), _batcher(redis_client)
        event = _event("1")
        deduper.claim(job_id="a", target_id="t", digest="d", fingerprints=[event.fingerprint])
        batcher.add([event], job_id="a")
        poller = deduper.claim(
            job_id="b", target_id=None, digest=None, fingerprints=[event.fingerprint]
        )
        assert poller.claimed == (False,)
        assert not redis_client.exists(keys.event_claim(event.fingerprint))


class TestBatcher:
    """Batches open, extend and close atomically."""

    def test_events_of_one_resource_fold_into_one_batch(self, redis_client: redis.Redis) -> None:
        batcher = _batcher(redis_client)
        added = _take(redis_client, batcher, [_event("1", ms=1), _event("1", ms=2, field="notes")])
        assert added.added == 2
        assert len(added.opened) == 1
        time.sleep(0.08)
        result = batcher.close("1", added.opened[0].batch_id, owner="job")
        assert result.batch is not None
        assert result.batch.count == 2
        assert result.batch.fields == ("name", "notes")
        assert result.batch.first_event_at < result.batch.last_event_at

    def test_batch_is_not_closed_before_its_quiet_window(self, redis_client: redis.Redis) -> None:
        """A flush that comes early learns the new due time instead."""
        batcher = _batcher(redis_client, debounce=5)
        opened = _take(redis_client, batcher, [_event("1")]).opened[0]
        result = batcher.close("1", opened.batch_id, owner="job")
        assert result.state == "not_due"
        assert result.wait_ms >= opened.due_ms

    def test_max_delay_caps_a_batch_that_keeps_getting_events(
        self, redis_client: redis.Redis
    ) -> None:
        batcher = _batcher(redis_client, debounce=0.2, max_delay=0.3)
        opened = _take(redis_client, batcher, [_event("1", ms=1)]).opened[0]
        for ms in range(2, 6):
            time.sleep(0.07)
            _take(redis_client, batcher, [_event("1", ms=ms)])
        due = int(redis_client.zscore(keys.OPEN_BATCHES, "1") or 0)
        assert due <= int(redis_client.hget(keys.batch("1"), "opened_ms") or 0) + 300
        time.sleep(0.05)
        assert batcher.close("1", opened.batch_id, owner="job").state == "closed"

    def test_deleted_event_makes_the_batch_due_at_once(self, redis_client: redis.Redis) -> None:
        batcher = _batcher(redis_client, debounce=10)
        opened = _take(redis_client, batcher, [_event("1", ms=1)]).opened[0]
        added = _take(redis_client, batcher, [_event("1", ms=2, action="deleted", field=None)])
        assert [u.batch_id for u in added.urgent] == [opened.batch_id]
        result = batcher.close("1", opened.batch_id, owner="job")
        assert result.batch is not None
        assert result.batch.deleted

    def test_each_batch_is_closed_by_exactly_one_flush(self, redis_client: redis.Redis) -> None:
        """Two flush jobs race: one takes the batch, the other is told it is taken."""
        batcher = _batcher(redis_client, debounce=0.01)
        opened = _take(redis_client, batcher, [_event("1")]).opened[0]
        time.sleep(0.03)
        first = batcher.close("1", opened.batch_id, owner="job-a")
        second = batcher.close("1", opened.batch_id, owner="job-b")
        assert first.state == "closed"
        assert second.state == "taken"
        assert batcher.close("1", opened.batch_id, owner="job-a").state == "closed"  # its retry

    def test_event_during_a_flush_starts_the_next_batch(self, redis_client: redis.Redis) -> None:
        """Nothing is lost, and the next batch waits until the first is emitted (order)."""
        batcher = _batcher(redis_client, debounce=0.01)
        emitter = Emitter(redis_client, stream_maxlen=100)
        first = _take(redis_client, batcher, [_event("1", ms=1)]).opened[0]
        time.sleep(0.03)
        closed = batcher.close("1", first.batch_id, owner="job-a").batch
        assert closed is not None
        second = _take(redis_client, batcher, [_event("1", ms=2)]).opened[0]
        assert second.batch_id != first.batch_id
        time.sleep(0.03)
        assert batcher.close("1", second.batch_id, owner="job-b").state == "busy"
        emitter.emit(closed, build_change(closed, Fetched("ok", {"gid": "1"})))
        next_batch = batcher.close("1", second.batch_id, owner="job-b").batch
        assert next_batch is not None
        assert next_batch.count == 1

    def test_resources_waiting_for_their_earlier_batch_do_not_hold_up_the_others(
        self, redis_client: redis.Redis
    ) -> None:
        """60 resources whose earlier batch is still out (a connection deferred or paused)
        are older than one other resource's batch: the flushes' oldest-first look of 51
        would find only them, forever. Found busy once, they go behind, and the other
        resource's batch is taken by the next look."""
        batcher = _batcher(redis_client, debounce=0.01)
        stuck = [str(n) for n in range(100, 160)]
        firsts = {}
        for gid in stuck:
            opened = _take(redis_client, batcher, [_event(gid, ms=1)]).opened[0]
            firsts[gid] = opened.batch_id
        time.sleep(0.03)
        for gid in stuck:
            assert batcher.close(gid, firsts[gid], owner="deferred").state == "closed"
        for gid in stuck:
            _take(redis_client, batcher, [_event(gid, ms=2)])
        time.sleep(0.02)
        other = _take(redis_client, batcher, [_event("7", ms=3)]).opened[0]
        time.sleep(0.03)
        first_look = batcher.due(limit=51)
        assert "7" not in {c.gid for c in first_look}
        states = batcher.close_many([(c.gid, c.batch_id) for c in first_look], owner="tick-1")
        assert {r.state for r in states} == {"busy"}
        second_look = batcher.due(limit=51)
        assert other.batch_id in {c.batch_id for c in second_look}
        taken = batcher.close("7", other.batch_id, owner="tick-2")
        assert taken.state == "closed"


class TestEmitter:
    """One entry per batch, however often the flush runs."""

    def test_emit_twice_writes_one_entry(self, redis_client: redis.Redis) -> None:
        batcher = _batcher(redis_client, debounce=0.01)
        emitter = Emitter(redis_client, stream_maxlen=100)
        opened = _take(redis_client, batcher, [_event("1")]).opened[0]
        time.sleep(0.03)
        batch = batcher.close("1", opened.batch_id, owner="job").batch
        assert batch is not None
        change = build_change(batch, Fetched("ok", {"gid": "1", "name": "x"}))
        entry_id, new = emitter.emit(batch, change)
        again_id, again_new = emitter.emit(batch, change)
        assert new
        assert not again_new
        assert again_id == entry_id
        assert redis_client.xlen(keys.CHANGES_STREAM) == 1
        assert redis_client.llen(keys.RECENT_CHANGES) == 1
        stats = redis_client.hgetall(keys.STATS)
        assert stats[b"changes"] == b"1"
        assert stats[b"batches"] == b"1"
        found = emitter.emitted_change("job", batch.batch_id)
        assert found is not None
        assert found[1]["data"]["name"] == "x"

    def test_entries_past_the_retention_are_trimmed_at_the_next_emit(
        self, redis_client: redis.Redis
    ) -> None:
        """HOOKS_STREAM_RETENTION_HOURS trims by the entries' age even far below MAXLEN: a
        week-old node of entries goes when a new entry is written; recent ones stay."""
        now_ms = int(time.time() * 1000)
        week_ago = now_ms - 8 * 24 * 3_600_000
        for seq in range(1, 301):
            redis_client.xadd(keys.CHANGES_STREAM, {"change": "{}"}, id=f"{week_ago}-{seq}")
        recent = redis_client.xadd(keys.CHANGES_STREAM, {"change": "{}"})
        batcher = _batcher(redis_client, debounce=0.01)
        emitter = Emitter(redis_client, stream_maxlen=100_000, retention_hours=168)
        opened = _take(redis_client, batcher, [_event("1")]).opened[0]
        time.sleep(0.03)
        batch = batcher.close("1", opened.batch_id, owner="job").batch
        assert batch is not None
        entry_id, _new = emitter.emit(batch, build_change(batch, Fetched("ok", {"gid": "1"})))
        left = [entry for entry, _fields in redis_client.xrange(keys.CHANGES_STREAM) or []]
        assert len(left) < 100  # whole nodes of old entries went (MINID ~)
        assert left[-2:] == [recent, entry_id.encode()]
