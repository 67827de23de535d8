"""asana_hooks.consumer: real consumer processes on a real Redis, watched from outside."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import redis

from asana_hooks import keys, stream_ids
from asana_hooks.redis_conn import text
from tests.consumers import change_fields, consumer, handled, wait_alive, write_change
from tests.helpers import wait_for


def _ids(records: list[dict[str, object]], gid: str | None = None) -> list[str]:
    return [str(r["id"]) for r in records if gid is None or r["gid"] == gid]


class TestDelivery:
    """At-least-once: acknowledged on return, redelivered when a consumer dies."""

    def test_killed_mid_handler_redelivered_to_another_then_never_again(
        self, redis_url: str, redis_client: redis.Redis, tmp_path: Path
    ) -> None:
        """A consumer SIGKILLed inside its handler: after claim_after_seconds another consumer
        gets the entry; once that one acknowledged it, nobody sees it again."""
        with consumer(
            redis_url, "g", tmp_path, "--mode", "hang", "--name", "a", "--claim-after", "1"
        ) as first:
            wait_alive(redis_client, "g", "a")
            entry = write_change(redis_client, "11")
            wait_for(lambda: handled(redis_client, "start"))
            first.kill()
        with consumer(redis_url, "g", tmp_path, "--name", "b", "--claim-after", "1") as second:
            done = wait_for(lambda: handled(redis_client), timeout=10)
            assert _ids(done) == [entry]
            assert done[0]["consumer"] == "b"
            wait_for(lambda: redis_client.xinfo_groups(keys.CHANGES_STREAM)[0]["pending"] == 0)
            time.sleep(2.5)  # more than two claim passes: nothing comes back
            assert _ids(handled(redis_client)) == [entry]
            assert second.terminate() == 0

    def test_crash_redelivers_the_run_but_dead_letters_only_the_killer(
        self, redis_url: str, redis_client: redis.Redis, tmp_path: Path
    ) -> None:
        """A handler that kills its process (SIGKILL while it hangs), restarted under the same
        name: the entry is dead-lettered after max_deliveries; an entry handled just before it
        (its acknowledgement possibly still in the unsent run) may come again, never dead."""
        args = ("--name", "a", "--hang-gid", "poison", "--max-deliveries", "2")
        with consumer(redis_url, "g", tmp_path, *args) as first:
            wait_alive(redis_client, "g", "a")
            with redis_client.pipeline(transaction=False) as pipe:
                pipe.xadd(keys.CHANGES_STREAM, change_fields("ok"))
                pipe.xadd(keys.CHANGES_STREAM, change_fields("poison"))
                fine, poison = (text(entry_id) for entry_id in pipe.execute())
            wait_for(lambda: len(handled(redis_client, "start")) == 1)
            first.kill()
        with consumer(redis_url, "g", tmp_path, *args) as second:
            wait_for(lambda: len(handled(redis_client, "start")) == 2)
            second.kill()
        with consumer(redis_url, "g", tmp_path, *args) as third:
            wait_for(lambda: redis_client.xlen(keys.dead_letters("g")) == 1)
            wait_for(lambda: redis_client.xpending(keys.CHANGES_STREAM, "g")["pending"] == 0)
            assert third.terminate() == 0
        dead: Any = redis_client.xrange(keys.dead_letters("g"))
        assert [fields[b"id"] for _, fields in dead] == [poison.encode()]
        assert set(_ids(handled(redis_client))) == {fine}
        assert _ids(handled(redis_client, "start")) == [poison, poison]

    def test_sigterm_finishes_the_entry_in_hand(
        self, redis_url: str, redis_client: redis.Redis, tmp_path: Path
    ) -> None:
        """SIGTERM during a handler: it completes and is acknowledged, the next one is left for
        later, and the process exits 0."""
        with consumer(
            redis_url, "g", tmp_path, "--mode", "slow", "--seconds", "1", "--name", "a"
        ) as running:
            wait_alive(redis_client, "g", "a")
            first = write_change(redis_client, "1")
            write_change(redis_client, "2")
            wait_for(lambda: handled(redis_client, "start"))
            assert running.terminate() == 0
        assert _ids(handled(redis_client)) == [first]
        pending = redis_client.xpending(keys.CHANGES_STREAM, "g")
        assert pending["pending"] <= 1  # the second was read in the same batch, not handled
        held: Any = redis_client.xpending_range(keys.CHANGES_STREAM, "g", "-", "+", 10)
        assert first.encode() not in [entry["message_id"] for entry in held]

    def test_two_groups_read_the_same_changes_independently(
        self, redis_url: str, redis_client: redis.Redis, tmp_path: Path
    ) -> None:
        """Each group gets every change; one group acknowledging does not take it from the other."""
        with (
            consumer(redis_url, "billing", tmp_path, "--name", "x") as billing,
            consumer(redis_url, "search", tmp_path, "--name", "y") as search,
        ):
            wait_alive(redis_client, "billing", "x")
            wait_alive(redis_client, "search", "y")
            written = [write_change(redis_client, str(n)) for n in range(5)]
            wait_for(lambda: len(handled(redis_client)) == 10)
            billing.terminate()
            search.terminate()
        by = {
            name: [r["id"] for r in handled(redis_client) if r["consumer"] == name]
            for name in ("x", "y")
        }
        assert by == {"x": written, "y": written}


class TestFailures:
    """A handler that raises: retried with a backoff, then dead-lettered with its error."""

    def test_always_raising_is_dead_lettered_after_max_deliveries(
        self, redis_url: str, redis_client: redis.Redis, tmp_path: Path
    ) -> None:
        with consumer(
            redis_url, "g", tmp_path, "--mode", "fail", "--name", "a", "--max-deliveries", "3"
        ) as running:
            wait_alive(redis_client, "g", "a")
            entry = write_change(redis_client, "7")
            wait_for(lambda: redis_client.xlen(keys.dead_letters("g")) == 1)
            assert running.terminate() == 0
        assert len(handled(redis_client, "failed")) == 3
        dead: Any = redis_client.xrange(keys.dead_letters("g"))
        ((_, fields),) = dead
        assert fields[b"id"] == entry.encode()
        assert fields[b"error"] == b"RuntimeError: cannot handle 7"
        assert fields[b"deliveries"] == b"3"
        assert json.loads(fields[b"change"])["resource"]["gid"] == "7"
        assert redis_client.xpending(keys.CHANGES_STREAM, "g")["pending"] == 0
        assert "consumer.retry" in running.log()
        assert "consumer.dead" in running.log()


class TestOrdering:
    """Several consumers in one group share the work, one resource's entries in order."""

    def test_bursts_on_few_resources_handled_in_stream_order(
        self, redis_url: str, redis_client: redis.Redis, tmp_path: Path
    ) -> None:
        """Two consumers, a slow handler, bursts of 20 entries on each of 3 resources written
        interleaved: each entry is handled once, and each resource's entries are handled in
        the order they were written (which consumer takes which resource depends on who
        reads first: see the next test for the sharing)."""
        args = ("--mode", "slow", "--seconds", "0.01")
        with (
            consumer(redis_url, "g", tmp_path, *args, "--name", "a") as one,
            consumer(redis_url, "g", tmp_path, *args, "--name", "b") as two,
        ):
            wait_alive(redis_client, "g", "a")
            wait_alive(redis_client, "g", "b")
            written: dict[str, list[str]] = {"1": [], "2": [], "3": []}
            for _burst in range(2):
                for _n in range(10):
                    for gid, ids in written.items():
                        ids.append(write_change(redis_client, gid))
                time.sleep(0.2)
            wait_for(lambda: len(handled(redis_client)) >= 60, timeout=20)
            one.terminate()
            two.terminate()
        done = handled(redis_client)
        assert len(done) == 60
        for gid, ids in written.items():
            assert _ids(done, gid) == ids

    def test_a_stuck_resource_does_not_hold_up_the_others(
        self, redis_url: str, redis_client: redis.Redis, tmp_path: Path
    ) -> None:
        """While one consumer is stuck in a handler, the other handles every other resource:
        the group shares the work, a resource at a time."""
        args = ("--hang-gid", "stuck")
        with (
            consumer(redis_url, "g", tmp_path, *args, "--name", "a"),
            consumer(redis_url, "g", tmp_path, *args, "--name", "b"),
        ):
            wait_alive(redis_client, "g", "a")
            wait_alive(redis_client, "g", "b")
            write_change(redis_client, "stuck")
            [started] = wait_for(lambda: handled(redis_client, "start"), timeout=10)
            others = [write_change(redis_client, str(n % 5)) for n in range(20)]
            wait_for(lambda: len(handled(redis_client)) >= 20, timeout=15)
            done = handled(redis_client)
        assert sorted(r["id"] for r in done) == sorted(others)
        assert {r["consumer"] for r in done} == {"a", "b"} - {started["consumer"]}

    def test_many_entries_on_few_resources_three_fast_consumers(
        self, redis_url: str, redis_client: redis.Redis, tmp_path: Path
    ) -> None:
        """300 entries on 3 resources written at once for 3 consumers with a fast handler (so
        entries move between them, and runs are acknowledged together): each handled once, in
        order per resource; no lease or wake key is left once they stop."""
        names = ("a", "b", "c")
        with (
            consumer(redis_url, "g", tmp_path, "--name", "a") as one,
            consumer(redis_url, "g", tmp_path, "--name", "b") as two,
            consumer(redis_url, "g", tmp_path, "--name", "c") as three,
        ):
            for name in names:
                wait_alive(redis_client, "g", name)
            written: dict[str, list[str]] = {"1": [], "2": [], "3": []}
            with redis_client.pipeline(transaction=False) as pipe:
                order = [gid for _n in range(100) for gid in written]
                for gid in order:
                    pipe.xadd(keys.CHANGES_STREAM, change_fields(gid))
                for gid, entry_id in zip(order, pipe.execute(), strict=True):
                    written[gid].append(text(entry_id))
            wait_for(lambda: len(handled(redis_client)) >= 300, timeout=20)
            wait_for(lambda: redis_client.xpending(keys.CHANGES_STREAM, "g")["pending"] == 0)
            for running in (one, two, three):
                assert running.terminate() == 0
        done = handled(redis_client)
        assert len(done) == 300
        for gid, ids in written.items():
            assert _ids(done, gid) == ids
        assert not redis_client.keys(keys.consumer_lease_prefix("g") + "*")
        assert not redis_client.keys(keys.consumer_wake_prefix("g") + "*")


class TestRetention:
    """A group that fell behind the retention is told so, never silently."""

    def test_trimmed_past_a_stopped_group_is_logged_at_start(
        self, redis_url: str, redis_client: redis.Redis, tmp_path: Path
    ) -> None:
        with consumer(redis_url, "late", tmp_path, "--name", "a") as running:
            wait_alive(redis_client, "late", "a")
            write_change(redis_client, "1")
            wait_for(lambda: handled(redis_client))
            assert running.terminate() == 0
        for n in range(20):
            write_change(redis_client, str(n))
        kept = write_change(redis_client, "kept")
        redis_client.xtrim(keys.CHANGES_STREAM, minid=kept, approximate=False)
        with consumer(redis_url, "late", tmp_path, "--name", "b") as again:
            wait_for(lambda: _ids(handled(redis_client))[-1:] == [kept])
            again.terminate()
        assert "consumer.behind_retention group late fell behind the retention" in again.log()
        assert stream_ids.is_before(_ids(handled(redis_client))[0], kept)
