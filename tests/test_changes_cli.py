"""`asana-hooks changes ...` as a real process, against consumer processes on a real Redis."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from asana_hooks import keys
from tests.consumers import cli, consumer, handled, wait_alive, write_change
from tests.helpers import wait_for


class TestTail:
    """Changes printed one line (or one JSON object) each, filtered."""

    def test_json_lines_filtered_by_resource_watch_and_since(
        self, redis_url: str, redis_client: redis.Redis
    ) -> None:
        first = write_change(redis_client, "100")
        second = write_change(redis_client, "200", watch="w1")
        third = write_change(redis_client, "100", watch="w1")
        everything = cli(redis_url, "changes", "tail", "--json")
        assert everything.code == 0, everything.stderr
        lines = [line for line in everything.stdout.splitlines() if line]
        assert [__import__("json").loads(line)["id"] for line in lines] == [first, second, third]
        by_resource = cli(redis_url, "changes", "tail", "--json", "--resource", "100")
        assert [line.count('"gid":"100"') > 0 for line in by_resource.stdout.splitlines()] == [
            True,
            True,
        ]
        watched = cli(redis_url, "changes", "tail", "--watch", "w1", "--since", first)
        assert watched.code == 0
        assert [line.split("  ")[1] for line in watched.stdout.splitlines()] == [
            "task 200",
            "task 100",
        ]
        assert '"Task 200"  changed: name  via webhook' in watched.stdout


class TestGroupsAndReplay:
    """What `changes groups` reports, and `changes replay --since` moving a group back."""

    def test_groups_report_and_replay_since_redelivers(
        self, redis_url: str, redis_client: redis.Redis, tmp_path: Path
    ) -> None:
        with consumer(redis_url, "g", tmp_path, "--name", "a") as running:
            wait_alive(redis_client, "g", "a")
            before = time.time()
            written = [write_change(redis_client, str(n)) for n in range(3)]
            wait_for(lambda: len(handled(redis_client)) == 3)
            (group,) = cli(redis_url, "changes", "groups", "--json").json()
            assert {k: group[k] for k in ("group", "consumers", "lag", "pending", "dead")} == {
                "group": "g",
                "consumers": 1,
                "lag": 0,
                "pending": 0,
                "dead": 0,
            }
            assert group["behind_retention"] is False
            moved = cli(redis_url, "changes", "replay", "--group", "g", "--since", str(int(before)))
            assert moved.code == 0, moved.stderr
            wait_for(lambda: len(handled(redis_client)) == 6)
            running.terminate()
        assert [r["id"] for r in handled(redis_client)] == written + written

    def test_a_stopped_group_overtaken_by_retention_is_reported(
        self, redis_url: str, redis_client: redis.Redis, tmp_path: Path
    ) -> None:
        with consumer(redis_url, "late", tmp_path, "--name", "a") as running:
            wait_alive(redis_client, "late", "a")
            running.terminate()
        for n in range(5):
            write_change(redis_client, str(n))
        kept = write_change(redis_client, "kept")
        redis_client.xtrim(keys.CHANGES_STREAM, minid=kept, approximate=False)
        report = cli(redis_url, "changes", "groups", "--json").json()
        assert [(g["group"], g["behind_retention"]) for g in report] == [("late", True)]
        table = cli(redis_url, "changes", "groups")
        assert "behind the retention" in table.stdout
        assert "warning: group late fell behind the retention" in table.stderr


class TestDeadLetters:
    """Dead letters listed, and handed back to their own group only."""

    def test_dead_replay_reaches_that_group_only(
        self, redis_url: str, redis_client: redis.Redis, tmp_path: Path
    ) -> None:
        with (
            consumer(
                redis_url,
                "flaky",
                tmp_path,
                "--mode",
                "fail",
                "--name",
                "f",
                "--max-deliveries",
                "2",
            ) as failing,
            consumer(redis_url, "other", tmp_path, "--name", "o") as other,
        ):
            wait_alive(redis_client, "flaky", "f")
            wait_alive(redis_client, "other", "o")
            entry = write_change(redis_client, "9")
            wait_for(lambda: redis_client.xlen(keys.dead_letters("flaky")) == 1)
            wait_for(lambda: handled(redis_client))
            failing.terminate()
            (letter,) = cli(redis_url, "changes", "dead", "--group", "flaky", "--json").json()
            assert set(letter) == {"id", "change", "error", "deliveries", "dead_at"}
            assert (letter["id"], letter["deliveries"]) == (entry, 2)
            assert letter["error"] == "RuntimeError: cannot handle 9"
            assert letter["change"]["resource"]["gid"] == "9"
            put_back = cli(redis_url, "changes", "dead", "--group", "flaky", "--replay")
            assert put_back.code == 0, put_back.stderr
            assert put_back.stdout.strip() == "handed 1 dead letters back to group flaky"
            with consumer(redis_url, "flaky", tmp_path, "--name", "f2") as fixed:
                wait_for(lambda: len(handled(redis_client)) == 2)
                time.sleep(0.7)  # "other" polls too: it must not get the entry again
                fixed.terminate()
            other.terminate()
        assert [(r["consumer"], r["id"]) for r in handled(redis_client)] == [
            ("o", entry),
            ("f2", entry),
        ]
        assert cli(redis_url, "changes", "dead", "--group", "flaky", "--json").json() == []
        assert redis_client.xlen(keys.retry_stream("flaky")) == 0


class TestBadInput:
    """What a user can get wrong: one line on stderr, exit code 2."""

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (("replay", "--group", "nope", "--since", "1700000000"), "no consumer group 'nope'"),
            (("replay", "--group", "g", "--since", "2999-01-01T00:00:00Z"), "is in the future"),
            (("replay", "--group", "g", "--since", "yesterday"), "is not a time"),
            (("tail", "--since", "soon"), "is not a time"),
            (("dead", "--group", "nope"), "no consumer group 'nope'"),
        ],
    )
    def test_one_line_exit_2(
        self, redis_url: str, redis_client: redis.Redis, args: tuple[str, ...], message: str
    ) -> None:
        redis_client.xgroup_create(keys.CHANGES_STREAM, "g", "$", mkstream=True)
        result = cli(redis_url, "changes", *args)
        assert result.code == 2
        assert len(result.stderr.strip().splitlines()) == 1
        assert message in result.stderr
