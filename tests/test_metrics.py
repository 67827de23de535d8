"""GET /metrics: Prometheus text read from the Redis counters at scrape time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from asana_hooks import keys
from asana_hooks.registry import Registry
from asana_hooks.secretbox import SecretBox
from asana_hooks.settings import Settings
from receiver.app import create_app
from receiver.metrics import METRICS, PREFIX
from tests.helpers import serve_in_thread


@pytest.fixture
def url(settings: Settings) -> Iterator[str]:
    with serve_in_thread(create_app(settings)) as base:
        yield base


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    answer = httpx.get(f"{url}/metrics", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


class TestMetrics:
    """Counters written by any process show up; every documented family is exported."""

    def test_counters_from_redis(
        self, url: str, redis_client: redis.Redis, settings: Settings
    ) -> None:
        """Stats written by receivers and workers become labelled counters and gauges."""
        registry = Registry(redis_client, SecretBox(settings.encryption_keys))
        registry.begin(target_id="t1", resource_gid="1200", target_url="https://x/t1", filters=[])
        registry.accept_handshake("t1", "s")
        registry.confirm("t1", webhook_gid="9001", asana_secret="s")
        redis_client.hset(keys.target("t1"), mapping={"deliveries": 4, "heartbeats": 2})
        redis_client.hset(
            keys.STATS,
            mapping={
                "http:200": 5,
                "http:401": 1,
                "api:200": 9,
                "api:429": 2,
                "events": 11,
                "duplicates": 3,
                "late": 1,
                "batches": 4,
                "changes": 4,
                "rate_limit_waits": 6,
                "redundant": 2,
            },
        )
        metrics = scrape(url)
        assert ({"code": "401"}, 1.0) in metrics[PREFIX + "http_responses_total"]
        assert ({"status": "429"}, 2.0) in metrics[PREFIX + "api_requests_total"]
        assert metrics[PREFIX + "events_received_total"] == [({}, 11.0)]
        assert metrics[PREFIX + "events_duplicate_total"] == [({}, 3.0)]
        assert metrics[PREFIX + "changes_emitted_total"] == [({}, 4.0)]
        assert metrics[PREFIX + "rate_limit_waits_total"] == [({}, 6.0)]
        assert metrics[PREFIX + "batches_redundant_total"] == [({}, 2.0)]
        labels = {"webhook": "9001", "resource": "1200"}
        assert (labels, 4.0) in metrics[PREFIX + "webhook_deliveries_total"]
        assert ({**labels, "health": "ok"}, 1.0) in metrics[PREFIX + "webhook_health"]
        assert ({**labels, "health": "failing"}, 0.0) in metrics[PREFIX + "webhook_health"]
        assert ({"state": "queued"}, 0.0) in metrics[PREFIX + "queue_jobs"]

    def test_consumer_groups(self, url: str, redis_client: redis.Redis) -> None:
        """Per group: lag, pending, dead letters, and 1 when it fell behind the retention."""
        redis_client.xgroup_create(keys.CHANGES_STREAM, "billing", "$", mkstream=True)
        for _ in range(3):
            redis_client.xadd(keys.CHANGES_STREAM, {"change": "{}"})
        redis_client.xreadgroup("billing", "c", {keys.CHANGES_STREAM: ">"}, count=1)
        redis_client.xadd(keys.dead_letters("billing"), {"id": "1-0", "change": "{}"})
        metrics = scrape(url)
        group = {"group": "billing"}
        assert metrics[PREFIX + "consumer_group_lag"] == [(group, 2.0)]
        assert metrics[PREFIX + "consumer_group_pending"] == [(group, 1.0)]
        assert metrics[PREFIX + "consumer_group_dead"] == [(group, 1.0)]
        assert metrics[PREFIX + "consumer_group_behind_retention"] == [(group, 0.0)]

    def test_every_documented_metric_is_exported(self, url: str) -> None:
        """The names in METRICS and in README.md's table are the names on the wire."""
        answer = httpx.get(f"{url}/metrics", timeout=5).text
        families = {family.name for family in text_string_to_metric_families(answer)}
        documented = {PREFIX + name.removesuffix("_total") for name in METRICS}
        assert documented == families
        readme = (Path(__file__).parent.parent / "README.md").read_text()
        in_readme = {
            name.removesuffix("_total") for name in re.findall(r"`(asana_hooks_\w+)`", readme)
        }
        assert in_readme == families
