"""The shared API budget and its two lanes, against the real Redis fixture."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from asana_hooks import keys
from asana_hooks.asana_errors import BadToken, BudgetExhausted
from asana_hooks.ratelimit import Budget, Grant
from tests.helpers import wait_for


class TestWindow:
    """The per-minute window counts every request of every process once."""

    def test_grants_up_to_the_limit_then_refuses(self, redis_client: redis.Redis) -> None:
        """Five per minute: five grants, the sixth cannot wait a minute and gives up."""
        budget = Budget(redis_client, per_minute=5)
        for _ in range(5):
            with budget.acquire(read=False):
                pass
        assert budget.used() == 5
        with pytest.raises(BudgetExhausted), budget.acquire(max_wait=0.2):
            pass

    def test_batch_counts_once_per_action(self, redis_client: redis.Redis) -> None:
        """A /batch of 4 actions takes 4 slots, as Asana counts it."""
        budget = Budget(redis_client, per_minute=10)
        with budget.acquire(4):
            pass
        assert budget.used() == 4
        with budget.acquire(6):
            pass
        with pytest.raises(BudgetExhausted), budget.acquire(1, max_wait=0.1):
            pass

    def test_a_slot_counts_from_the_answer(self, redis_client: redis.Redis) -> None:
        """Asana counts a request when it arrives, between our grant and its answer: the
        slots are dated at the answer, so the minute they hold runs from there (dated at the
        grant, the next request could reach Asana less than 60 s after this one)."""
        budget = Budget(redis_client, per_minute=5)
        with budget.acquire(2) as grant:
            time.sleep(0.3)
        seconds, micros = redis_client.time()
        answered_ms = seconds * 1000 + micros // 1000
        for slot in (1, 2):
            dated = redis_client.zscore(keys.API_BUDGET, f"{grant.token}:{slot}")
            assert dated is not None
            assert answered_ms - 100 <= dated <= answered_ms
        assert budget.used() == 2
        assert redis_client.pttl(keys.API_BUDGET) > 59_000
        assert budget.reads_in_flight() == 0

    def test_two_budgets_share_one_window(self, redis_client: redis.Redis) -> None:
        """Two processes' Budget objects draw from the same Redis window."""
        first = Budget(redis_client, per_minute=3)
        second = Budget(redis.Redis(connection_pool=redis_client.connection_pool), per_minute=3)
        with first.acquire(2):
            pass
        with second.acquire(1):
            pass
        with pytest.raises(BudgetExhausted), first.acquire(max_wait=0.1):
            pass


class TestPause:
    """A 429 pauses everyone until its Retry-After has passed."""

    def test_pause_blocks_until_it_ends(self, redis_client: redis.Redis) -> None:
        """After pause_for(0.5) a grant comes no sooner than 0.5 s later."""
        budget = Budget(redis_client, per_minute=100)
        started = time.monotonic()
        budget.pause_for(0.5)
        assert budget.paused_until() is not None
        with budget.acquire(max_wait=5) as grant:
            elapsed = time.monotonic() - started
        assert elapsed >= 0.45
        assert grant.waited > 0.3
        assert budget.paused_until() is None
        assert int(redis_client.hget(keys.STATS, "rate_limit_waits") or 0) == 1

    def test_pause_longer_than_max_wait_gives_up_at_once(self, redis_client: redis.Redis) -> None:
        """A caller that may wait 0.1 s does not sleep through a 5 s pause: it raises."""
        budget = Budget(redis_client, per_minute=100)
        budget.pause_for(5)
        started = time.monotonic()
        with pytest.raises(BudgetExhausted, match="429"), budget.acquire(max_wait=0.1):
            pass
        assert time.monotonic() - started < 0.1

    def test_pause_is_never_shortened(self, redis_client: redis.Redis) -> None:
        """A second, shorter Retry-After keeps the longer pause."""
        budget = Budget(redis_client, per_minute=100)
        first = budget.pause_for(3)
        assert budget.pause_for(1) == first


class TestReads:
    """At most max_concurrent_reads reads in flight across processes."""

    def test_concurrent_reads_are_capped(self, redis_client: redis.Redis) -> None:
        """With a cap of 2, three threads never hold more than 2 read slots at once."""
        budget = Budget(redis_client, per_minute=1000, max_concurrent_reads=2)
        peak = 0
        lock = threading.Lock()
        holding = 0

        def read() -> None:
            nonlocal peak, holding
            for _ in range(5):
                with budget.acquire(max_wait=5):
                    with lock:
                        holding += 1
                        peak = max(peak, holding)
                    time.sleep(0.02)
                    with lock:
                        holding -= 1

        threads = [threading.Thread(target=read) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert peak == 2
        assert budget.reads_in_flight() == 0

    def test_writes_do_not_take_read_slots(self, redis_client: redis.Redis) -> None:
        """A write is counted in the window but not as a concurrent read."""
        budget = Budget(redis_client, per_minute=10, max_concurrent_reads=1)
        with budget.acquire(), budget.acquire(read=False):
            assert budget.reads_in_flight() == 1


class TestRejectedToken:
    """After a 401 nobody calls Asana."""

    def test_rejected_token_stops_every_caller(self, redis_client: redis.Redis) -> None:
        """Once the token is flagged, acquire raises BadToken without waiting."""
        budget = Budget(redis_client, per_minute=10)
        budget.reject_token()
        with pytest.raises(BadToken, match="ASANA_ACCESS_TOKEN"), budget.acquire():
            pass
        assert budget.used() == 0
        budget.clear_token_rejected()
        with budget.acquire():
            pass


def lanes(connection: redis.Redis, *, reads: int) -> tuple[Budget, Budget]:
    """A background and a fresh budget on one Redis, with room in the window."""
    return (
        Budget(connection, per_minute=1000, max_concurrent_reads=reads, lane="background"),
        Budget(connection, per_minute=1000, max_concurrent_reads=reads),
    )


def fill_reads(budget: Budget, count: int) -> list[Grant]:
    return [budget.take(max_wait=1) for _ in range(count)]


class TestLanes:
    """Background requests (the poller) only use what fresh ones (rehydration, CLI) leave."""

    def test_background_never_takes_the_reserve(self, redis_client: redis.Redis) -> None:
        """10 % of the minute and a fifth of the read slots stay for fresh requests."""
        background = Budget(redis_client, per_minute=10, lane="background")
        fresh = Budget(redis_client, per_minute=10)
        for _ in range(9):
            background.take(read=False, max_wait=0.1)
        with pytest.raises(BudgetExhausted, match="background lane, per-minute"):
            background.take(read=False, max_wait=0.1)
        fresh.take(read=False, max_wait=0.1)
        assert fresh.used() == 10

    def test_background_leaves_read_slots(self, redis_client: redis.Redis) -> None:
        """With 10 read slots, background holds at most 8; fresh still gets the other two."""
        background = Budget(
            redis_client, per_minute=1000, max_concurrent_reads=10, lane="background"
        )
        fresh = Budget(redis_client, per_minute=1000, max_concurrent_reads=10)
        fill_reads(background, 8)
        with pytest.raises(BudgetExhausted, match="read slots busy"):
            background.take(max_wait=0.1)
        fill_reads(fresh, 2)
        assert fresh.reads_in_flight() == 10

    def test_a_waiting_fresh_request_goes_before_waiting_background_ones(
        self, redis_client: redis.Redis
    ) -> None:
        """Every read slot taken; three background reads wait, then one fresh read. When the
        slots free up, the fresh one is granted first."""
        background = Budget(
            redis_client, per_minute=1000, max_concurrent_reads=10, lane="background"
        )
        fresh = Budget(redis_client, per_minute=1000, max_concurrent_reads=10)
        held = fill_reads(background, 8)
        fill_reads(fresh, 2)
        order: list[str] = []
        lock = threading.Lock()

        def read(budget: Budget, name: str) -> None:
            grant = budget.take(max_wait=20)
            with lock:
                order.append(name)
            budget.release(grant)

        waiting = [
            threading.Thread(target=read, args=(background, f"background-{n}")) for n in range(3)
        ]
        for thread in waiting:
            thread.start()
        time.sleep(0.2)
        waiting.append(threading.Thread(target=read, args=(fresh, "fresh")))
        waiting[-1].start()
        wait_for(lambda: redis_client.zcard(keys.API_FRESH_WAITING) == 1, timeout=10)
        assert order == []
        for grant in held:
            background.release(grant)
        for thread in waiting:
            thread.join(20)
        assert sorted(order) == ["background-0", "background-1", "background-2", "fresh"]
        assert order[0] == "fresh"
        assert redis_client.zcard(keys.API_FRESH_WAITING) == 0

    def test_background_yields_while_fresh_waits_for_anything(
        self, redis_client: redis.Redis
    ) -> None:
        """A fresh read waits for a slot: a background write, though the window has room,
        waits too, and goes once the fresh read is granted."""
        background = Budget(
            redis_client, per_minute=1000, max_concurrent_reads=5, lane="background"
        )
        fresh = Budget(redis_client, per_minute=1000, max_concurrent_reads=5)
        held = fill_reads(fresh, 5)
        granted = threading.Event()

        def fresh_read() -> None:
            fresh.take(max_wait=20)
            granted.set()

        thread = threading.Thread(target=fresh_read)
        thread.start()
        wait_for(lambda: redis_client.zcard(keys.API_FRESH_WAITING) == 1, timeout=10)
        with pytest.raises(BudgetExhausted, match="yielding to fresh requests"):
            background.take(read=False, max_wait=0.2)
        fresh.release(held[0])
        thread.join(20)
        assert granted.is_set()
        assert background.take(read=False, max_wait=1).waited < 1

    def test_a_fresh_request_that_gives_up_stops_counting(self, redis_client: redis.Redis) -> None:
        """A fresh request that ran out of patience no longer holds background back."""
        fresh = Budget(redis_client, per_minute=1000, max_concurrent_reads=5)
        fill_reads(fresh, 5)
        with pytest.raises(BudgetExhausted):
            fresh.take(max_wait=0.1)
        assert redis_client.zcard(keys.API_FRESH_WAITING) == 0
        background = Budget(
            redis_client, per_minute=1000, max_concurrent_reads=5, lane="background"
        )
        background.take(read=False, max_wait=0.1)

    def test_the_lane_is_checked(self, redis_client: redis.Redis) -> None:
        with pytest.raises(ValueError, match="lane"):
            Budget(redis_client, per_minute=10, lane="urgent")  # type: ignore[arg-type]
