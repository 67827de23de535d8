"""The poll lock and the fenced token store (workers.poller.store) against real Redis."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from asana_hooks import keys
from workers.poller.store import LockLost, PollLock, PollStore


class TestPollLock:
    """One poller per resource at a time; only the owner renews or releases."""

    def test_only_one_holder(self, redis_client: redis.Redis) -> None:
        """A second poller cannot take a held lock."""
        first = PollLock(redis_client, "1", owner="a")
        second = PollLock(redis_client, "1", owner="b")
        assert first.acquire()
        assert not second.acquire()
        assert second.holder() == "a"

    def test_only_the_owner_releases(self, redis_client: redis.Redis) -> None:
        """Releasing someone else's lock does nothing."""
        first = PollLock(redis_client, "1", owner="a")
        second = PollLock(redis_client, "1", owner="b")
        assert first.acquire()
        assert not second.release()
        assert first.holder() == "a"
        assert first.release()
        assert second.acquire()

    def test_crashed_holders_lock_expires(self, redis_client: redis.Redis) -> None:
        """A poller that died without releasing frees the resource after the TTL."""
        crashed = PollLock(redis_client, "1", owner="a", ttl_ms=100)
        survivor = PollLock(redis_client, "1", owner="b", ttl_ms=100)
        assert crashed.acquire()
        deadline = time.monotonic() + 2
        while not survivor.acquire():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(LockLost):
            crashed.renew()

    def test_renew_extends(self, redis_client: redis.Redis) -> None:
        """Renewing keeps a long poll's lock alive beyond its first TTL."""
        lock = PollLock(redis_client, "1", owner="a", ttl_ms=200)
        assert lock.acquire()
        for _ in range(4):
            time.sleep(0.1)
            lock.renew()
        assert lock.holder() == "a"
        assert 0 < redis_client.pttl(lock.key) <= 200

    def test_racing_pollers_get_one_winner(self, redis_url: str) -> None:
        """Of many simultaneous attempts exactly one succeeds."""
        wins: list[str] = []
        barrier = threading.Barrier(8)

        def attempt(owner: str) -> None:
            with redis.Redis.from_url(redis_url) as client:
                lock = PollLock(client, "1", owner=owner)
                barrier.wait()
                if lock.acquire():
                    wins.append(owner)

        threads = [threading.Thread(target=attempt, args=(f"p{i}",)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        assert len(wins) == 1


class TestPollStore:
    """Tokens and progress are written only by the lock's owner."""

    def test_commit_stores_token_with_ttl_and_fields(self, redis_client: redis.Redis) -> None:
        """A commit writes the token (24 h TTL), sets and clears fields, and renews the lock."""
        store = PollStore(redis_client)
        lock = PollLock(redis_client, "1", owner="a", ttl_ms=1000)
        assert lock.acquire()
        redis_client.hset(keys.poll_state("1"), "problem", "old")
        store.commit(lock, token="tok", fields={"last_events": 3}, clear=("problem",))
        assert store.token("1") == "tok"
        assert 0 < redis_client.ttl(keys.sync_token("1")) <= 24 * 3600
        assert store.raw("1") == {"last_events": "3"}

    def test_commit_without_the_lock_writes_nothing(self, redis_client: redis.Redis) -> None:
        """A poller that lost its lock cannot move the token back under its successor."""
        store = PollStore(redis_client)
        stale = PollLock(redis_client, "1", owner="a")
        current = PollLock(redis_client, "1", owner="b")
        assert current.acquire()
        store.commit(current, token="new")
        with pytest.raises(LockLost):
            store.commit(stale, token="old", fields={"x": 1})
        assert store.token("1") == "new"
        assert store.raw("1") == {}

    def test_record_parses_times(self, redis_client: redis.Redis) -> None:
        """poll_state's timestamps come back as datetimes."""
        store = PollStore(redis_client)
        lock = PollLock(redis_client, "1", owner="a")
        assert lock.acquire()
        store.commit(
            lock,
            fields={
                "last_good_poll_at": "2025-03-01T12:00:00.000Z",
                "resync_since": "2025-03-01T11:00:00.000Z",
                "resync_reason": "test",
            },
        )
        record = store.record("1")
        assert record.last_good_poll_at is not None
        assert record.last_good_poll_at.hour == 12
        assert record.resync_since is not None
        assert record.resync_reason == "test"
        assert record.last_attempt_at is None

    def test_forget(self, redis_client: redis.Redis) -> None:
        """A resource nobody polls any more leaves no token and no state."""
        store = PollStore(redis_client)
        lock = PollLock(redis_client, "1", owner="a")
        assert lock.acquire()
        store.commit(lock, token="tok", fields={"x": 1})
        store.forget("1")
        assert store.token("1") is None
        assert store.raw("1") == {}
