"""The chaos scenarios' yardstick: lost and doubled, on hand-made streams."""

from __future__ import annotations

from typing import Any

from tests.chaos.verdict import Expected, compare


def entry(
    gid: str,
    *,
    events: int = 1,
    window: tuple[str, str] = ("t1", "t1"),
    status: str = "ok",
    name: str | None = None,
) -> dict[str, Any]:
    return {
        "resource": {"gid": gid, "resource_type": "task"},
        "status": status,
        "events": events,
        "first_event_at": window[0],
        "last_event_at": window[1],
        "data": {"name": name} if name is not None else None,
    }


TASK = Expected("1", events=3, fields={"name": "final"})


class TestLost:
    def test_every_resource_in_its_final_state_is_emitted(self) -> None:
        stream = [
            entry("1", events=2, window=("t1", "t2"), name="first"),
            entry("1", events=1, window=("t3", "t3"), name="final"),
        ]
        verdict = compare({"1": TASK}, stream)
        assert (verdict.expected, verdict.emitted, verdict.entries) == (1, 1, 2)
        assert verdict.ok
        assert verdict.events_short == 0

    def test_a_resource_without_entry_is_lost(self) -> None:
        verdict = compare({"1": TASK, "2": Expected("2", events=1)}, [entry("2")])
        assert verdict.lost == {"1": "no entry"}
        assert verdict.emitted == 1

    def test_a_last_entry_with_an_older_state_is_lost(self) -> None:
        stream = [entry("1", events=1, name="final"), entry("1", events=1, name="older")]
        verdict = compare({"1": TASK}, stream)
        assert "name='older'" in verdict.lost["1"]
        assert verdict.events_short == 1

    def test_a_deleted_resource_must_end_deleted(self) -> None:
        gone = Expected("1", events=2, status="deleted")
        assert compare({"1": gone}, [entry("1", events=2, status="deleted")]).ok
        verdict = compare({"1": gone}, [entry("1", events=2, name="x")])
        assert "status 'ok'" in verdict.lost["1"]

    def test_a_late_batch_after_the_deletion_may_say_not_found(self) -> None:
        gone = Expected("1", events=3, status="deleted")
        late = [
            entry("1", events=1, window=("t3", "t3"), status="deleted"),
            entry("1", events=2, window=("t1", "t2"), status="not_found"),
        ]
        assert compare({"1": gone}, late).ok
        verdict = compare({"1": gone}, [entry("1", events=3, status="not_found")])
        assert verdict.lost["1"] == "last entry has status 'not_found' and no entry says 'deleted'"

    def test_other_resources_are_counted_apart(self) -> None:
        verdict = compare({"1": TASK}, [entry("9"), entry("1", events=3, name="final")])
        assert verdict.ok
        assert verdict.unexpected == 1


class TestDoubled:
    def test_more_events_than_the_fake_generated(self) -> None:
        stream = [
            entry("1", events=3, window=("t1", "t3"), name="final"),
            entry("1", events=1, window=("t4", "t4"), name="final"),
        ]
        verdict = compare({"1": TASK}, stream)
        assert "4 events counted in 2 entries" in verdict.doubled["1"]
        assert not verdict.lost

    def test_synthetic_resync_events_are_allowed_when_declared(self) -> None:
        crawled = Expected("1", events=3, fields={"name": "final"}, extra_events=1)
        stream = [
            entry("1", events=3, window=("t1", "t3"), name="final"),
            entry("1", events=1, window=("t3", "t4"), name="final"),
        ]
        assert compare({"1": crawled}, stream).ok

    def test_a_repeated_window_is_doubled(self) -> None:
        stream = [
            entry("1", events=1, window=("t1", "t1"), name="final"),
            entry("1", events=1, window=("t1", "t1"), name="final"),
        ]
        verdict = compare({"1": TASK}, stream)
        assert verdict.doubled["1"] == "window t1..t1 emitted 2 times"
        assert not verdict.ok
