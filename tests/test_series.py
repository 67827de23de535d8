"""Per-minute series (DESIGN.md §6.7): shared by every process, bounded, on /status.json."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator

import httpx
import pytest
import redis

from asana_hooks import keys, series
from asana_hooks.registry import Registry
from asana_hooks.secretbox import SecretBox
from asana_hooks.settings import Settings
from receiver.app import create_app
from receiver.signatures import sign
from tests.helpers import serve_in_thread, wait_for


class TestPure:
    def test_percentiles_come_from_the_buckets(self) -> None:
        counts = [0] * (len(series.ACK_BUCKETS_MS) + 1)
        counts[series.ack_bucket(3.0)] = 98  # within 5 ms
        counts[series.ack_bucket(150.0)] = 2  # within 200 ms
        assert series.percentile(counts, 0.5) == 5.0
        assert series.percentile(counts, 0.99) == 200.0
        assert series.percentile([0] * 13, 0.5) is None

    def test_decode_puts_each_minute_in_its_place(self) -> None:
        def at(record: struct.Struct, *slots: tuple[float, ...]) -> bytes:
            data = bytearray(record.size * 6)
            for slot, values in enumerate(slots):
                if values:
                    record.pack_into(data, slot * record.size, *values)
            return bytes(data)

        raw = {
            "deliveries": at(series.VALUE_RECORD, (1005, 7.0), (999, 99.0)),  # 999: too old
            "queue_depth": at(series.VALUE_RECORD, (1005, 3.0)),
            "ack": at(series.ACK_RECORD, (1004, 0, 0, 4, *[0] * 10)),
        }
        found = series.decode(raw, now_minute=1005, minutes=3)
        assert found["deliveries"] == [0, 0, 7]
        assert found["queue_depth"] == [None, None, 3]
        assert found["ack_ms_p50"] == [None, 5.0, None]
        assert found["events"] == [0, 0, 0]
        assert found["resolution_seconds"] == 60


class TestShared:
    def test_writers_add_counters_keep_the_highest_gauge_and_sum_histograms(
        self, redis_client: redis.Redis
    ) -> None:
        one, two = series.SeriesWriter(redis_client), series.SeriesWriter(redis_client)
        one.add({"changes": 3}, {"queue_depth": 5}, [1, 0, 2])
        two.add({"changes": 4, "api_requests": 1}, {"queue_depth": 2}, [0, 1, 1, 1])
        found = series.read(redis_client)
        assert found["changes"][-1] == 7
        assert found["api_requests"][-1] == 1
        assert found["queue_depth"][-1] == 5
        assert found["ack_ms_p50"][-1] == 5.0  # 1, 1, 3, 1 in the 1, 2, 5, 10 ms buckets
        assert len(found["changes"]) == series.SLOTS
        assert 0 < redis_client.ttl(keys.series("changes")) <= series.TTL_SECONDS

    def test_each_series_has_its_full_size_from_the_first_write(
        self, redis_client: redis.Redis
    ) -> None:
        writer = series.SeriesWriter(redis_client)
        writer.add({"changes": 2}, ack=[1])
        full = series.SLOTS * series.VALUE_RECORD.size
        assert redis_client.strlen(keys.series("changes")) == full
        assert redis_client.strlen(keys.series("ack")) == series.SLOTS * series.ACK_RECORD.size
        for _ in range(50):
            writer.add({"changes": 1, "events": 3}, {"queue_depth": 1}, [0, 2])
        assert redis_client.strlen(keys.series("changes")) == full
        assert series.read(redis_client)["changes"][-1] == 52

    def test_a_slot_from_a_day_ago_is_overwritten_not_added_to(
        self, redis_client: redis.Redis
    ) -> None:
        seconds, _ = redis_client.time()
        minute = int(seconds) // 60
        record = series.VALUE_RECORD
        stale = bytearray(series.SLOTS * record.size)
        record.pack_into(stale, (minute % series.SLOTS) * record.size, minute - series.SLOTS, 1000)
        redis_client.set(keys.series("changes"), bytes(stale))
        series.SeriesWriter(redis_client).add({"changes": 2})
        assert series.read(redis_client)["changes"][-1] == 2


class TestReceiver:
    @pytest.fixture
    def url(self, environ: dict[str, str], redis_client: redis.Redis) -> Iterator[str]:
        settings = Settings.from_environ(environ)
        registry = Registry(redis_client, SecretBox(settings.encryption_keys))
        registry.begin(target_id="t1", resource_gid="1200", target_url="", filters=[])
        assert registry.accept_handshake("t1", "s3cret")
        assert registry.confirm("t1", webhook_gid="9001", asana_secret="s3cret")
        with serve_in_thread(create_app(settings)) as served:
            yield served

    def test_deliveries_and_latency_reach_status_json(self, url: str) -> None:
        for n in range(6):
            event = {
                "action": "changed",
                "created_at": "2026-12-04T10:00:00.000Z",
                "resource": {"gid": f"12{n}", "resource_type": "task"},
                "user": {"gid": "1", "resource_type": "user"},
            }
            body = json.dumps({"events": [event, event | {"action": "added"}]}).encode()
            answer = httpx.post(
                f"{url}/hooks/asana/t1",
                content=body,
                headers={"X-Hook-Signature": sign(body, "s3cret")},
                timeout=5,
            )
            assert answer.status_code == 200

        def recorded() -> dict[str, object] | None:
            found = httpx.get(f"{url}/status.json", timeout=5).json()["series"]
            return found if sum(found["deliveries"][-2:]) == 6 else None

        found = wait_for(recorded, timeout=15, every=0.5)
        assert sum(found["events"][-2:]) == 12
        assert any(value is not None for value in found["ack_ms_p50"][-2:])
        assert any(value is not None for value in found["queue_depth"][-2:])
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        assert "asana_hooks_ack_latency_seconds_count 6.0" in metrics
        assert 'asana_hooks_ack_latency_seconds_bucket{le="+Inf"} 6.0' in metrics
