"""Rate limiting (budget per scaled minute, concurrent reads) and chaos, over real HTTP."""

from __future__ import annotations

import concurrent.futures
import time

import httpx

from asana_hooks.dev.fake_asana import FakeAsana

from .conftest import Seed


def test_budget_exceeded_429_with_retry_after(
    fake: FakeAsana, seed: Seed, api: httpx.Client
) -> None:
    fake.knobs.rate_limit_per_minute = 5
    fake.timing.rate_window = 30.0  # the scaled minute (60 ms) is too short to race against
    statuses = [api.get(f"/projects/{seed.project}").status_code for _ in range(7)]
    assert statuses[:5] == [200] * 5
    assert statuses[5:] == [429, 429]
    rejected = api.get(f"/projects/{seed.project}")
    assert rejected.status_code == 429
    retry_after = rejected.headers["Retry-After"]
    assert retry_after.isdigit()
    assert int(retry_after) >= 1
    assert rejected.json()["errors"][0]["message"].startswith("You have made too many requests")
    assert fake.calls[-1].status == 429
    assert fake.calls[-1].response_headers["retry-after"] == retry_after
    fake.timing.rate_window = 0.05
    time.sleep(0.06)  # the minute passed
    assert api.get(f"/projects/{seed.project}").status_code == 200


def test_rejected_requests_count(fake: FakeAsana, seed: Seed) -> None:
    limiter = fake.limiter
    fake.knobs.rate_limit_per_minute = 3
    fake.timing.rate_window = 30.0
    results = [limiter.charge("t", 1) for _ in range(5)]
    assert [r is None for r in results] == [True, True, True, False, False]
    assert results[-1] is not None
    assert 1 <= results[-1].retry_after <= 30


def test_batch_counts_each_action(fake: FakeAsana, seed: Seed, api: httpx.Client) -> None:
    fake.knobs.rate_limit_per_minute = 6
    fake.timing.rate_window = 30.0
    actions = [{"relative_path": f"/projects/{seed.project}", "method": "get"}] * 4
    assert api.post("/batch", json={"data": {"actions": actions}}).status_code == 200
    whole = api.post("/batch", json={"data": {"actions": actions}})
    assert whole.status_code == 429  # 4 + 4 > 6: the whole batch is refused
    assert int(whole.headers["Retry-After"]) >= 1


def test_concurrent_reads_cap(fake: FakeAsana, seed: Seed, api: httpx.Client) -> None:
    fake.knobs.max_concurrent_reads = 2
    fake.knobs.api_latency = 0.4
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        statuses = list(pool.map(lambda _: api.get(f"/users/{seed.user}").status_code, range(5)))
    assert sorted(statuses) == [200, 200, 429, 429, 429]
    rejected = [c for c in fake.calls if c.status == 429]
    assert all(int(c.response_headers["retry-after"]) >= 1 for c in rejected)


def test_api_latency_and_call_records(fake: FakeAsana, seed: Seed, api: httpx.Client) -> None:
    fake.knobs.api_latency = 0.05
    api.get(f"/tasks/{seed.project}", params={"opt_fields": "name"})  # a project: 404
    (call,) = fake.calls
    assert (call.method, call.path, call.query, call.status) == (
        "GET",
        f"/tasks/{seed.project}",
        {"opt_fields": "name"},
        404,
    )
    assert call.ended_at - call.started_at >= 0.045  # asyncio may wake a timer 1 ms early
    assert call.headers["authorization"] == "Bearer test-token"


def test_chaos_knobs(fake: FakeAsana, seed: Seed, api: httpx.Client) -> None:
    fake.knobs.chaos_500_rate = 1.0
    failed = api.get(f"/projects/{seed.project}")
    assert failed.status_code == 500
    assert failed.json()["errors"][0]["message"]
    fake.knobs.chaos_500_rate = 0.0
    fake.knobs.chaos_429_rate = 1.0
    limited = api.get(f"/projects/{seed.project}")
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    fake.knobs.chaos_429_rate = 0.0
    assert api.get(f"/projects/{seed.project}").status_code == 200


def test_unauthorized(fake: FakeAsana, seed: Seed) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        response = httpx.get(
            f"{fake.api_url}/projects/{seed.project}", headers=headers, trust_env=False
        )
        assert response.status_code == 401
        assert response.json()["errors"][0]["message"] == "Not Authorized"
