"""The status page in a real headless Chromium while the whole system runs.

Fake Asana, our receiver, a real `asana-hooks worker` process and a webhook created with the
CLI; after a task changes, Chromium loads /status and the DOM must show the webhook, its
last heartbeat and the change. The screenshot is kept in tests/artifacts/ (gitignored).
Skipped only when Chromium is absent outside CI (CI=true makes it a failure).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from asana_hooks import keys, quarantine
from asana_hooks.queueing import Delivery
from asana_hooks.registry import Registry
from asana_hooks.secretbox import Secret, SecretBox
from receiver.status import PAGE_WEBHOOKS
from tests.helpers import register_active, wait_for
from tests.operator_system import CLI, System, running_system

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Rows(HTMLParser):
    """Collects the status page's rows: tag classes, data-* attributes and cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, object]] = []
        self._cell: dict[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "tr":
            self.rows.append({"class": values.get("class", ""), **values, "cells": []})
        elif tag == "td" and self.rows:
            self._cell = {"class": values.get("class", ""), "at": values.get("data-at", "")}
            self._cell["text"] = ""
            cells = self.rows[-1]["cells"]
            assert isinstance(cells, list)
            cells.append(self._cell)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data


@pytest.fixture
def chromium() -> str:
    found = find_chromium()
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is required in CI (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium); CI runs this")
    return found


@pytest.fixture
def system(environ: dict[str, str]) -> Iterator[System]:
    with running_system(environ) as running:
        yield running


@pytest.fixture
def worker(system: System) -> Iterator[subprocess.Popen[bytes]]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", **system.env}
    process = subprocess.Popen(
        [CLI, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    yield process
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
    if process.stderr is not None:
        process.stderr.close()


def browse(chromium: str, url: str, *, screenshot: Path | None = None) -> str:
    """The DOM after the page's scripts ran; fails on any error in the page's console."""
    with tempfile.TemporaryDirectory() as profile:
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            "--window-size=1400,1000",
            "--enable-logging=stderr",
            "--v=0",
        ]
        if screenshot is not None:
            done = subprocess.run(
                [chromium, *flags, f"--screenshot={screenshot}", url],
                capture_output=True,
                timeout=90,
                check=False,
            )
            assert screenshot.exists(), done.stderr.decode(errors="replace")[-2000:]
        dom = subprocess.run(
            [chromium, *flags, "--dump-dom", url],
            capture_output=True,
            timeout=90,
            check=False,
        )
        log = dom.stderr.decode(errors="replace")
        assert dom.returncode == 0, log[-2000:]
        console = [line for line in log.splitlines() if "CONSOLE" in line]
        assert console == [], console
        return dom.stdout.decode()


class Charts(HTMLParser):
    """The trends: each figure's name, and each polyline's series, values and points."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, dict[str, Any]] = {}
        self._current: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "figure" and "data-chart" in values:
            self._current = {"lines": {}, "marks": 0}
            self.charts[values["data-chart"]] = self._current
        elif self._current is not None and tag == "svg":
            self._current["max"] = float(values["data-max"])
            self._current["minutes"] = int(values["data-minutes"])
        elif self._current is not None and tag == "polyline":
            self._current["lines"][values["data-series"]] = {
                "values": json.loads(values["data-values"]),
                "points": [tuple(map(float, p.split(","))) for p in values["points"].split()],
            }


@pytest.mark.browser
def test_status_page_in_chromium(
    chromium: str,
    system: System,
    worker: subprocess.Popen[bytes],
    redis_client: redis.Redis,
) -> None:
    """Chromium shows the webhook, its last heartbeat and a recent change."""
    created = system.cli("webhooks", "create", "--resource", system.project, "--json")
    assert created.code == 0, created.stderr
    webhook_gid = created.json()["gid"]
    wait_for(
        lambda: redis_client.hget(keys.target(created.json()["target_id"]), "last_heartbeat_at")
    )

    world = system.fake.world
    task = world.add_task("Write the docs", projects=[system.project], by=system.user)
    world.update_task(task, name="Write the operations docs", by=system.user)
    try:
        wait_for(lambda: redis_client.llen(keys.RECENT_CHANGES), timeout=30)
    except AssertionError:
        worker.terminate()
        err = worker.stderr.read().decode()[-3000:] if worker.stderr else ""
        stats = redis_client.hgetall(keys.STATS)
        raise AssertionError(f"no change emitted; stats={stats} worker log={err}") from None
    assert worker.poll() is None, (worker.stderr.read() if worker.stderr else b"").decode()

    # An event Asana signed that this version cannot read: a card, a row, a webhook warning.
    target_id = created.json()["target_id"]
    odd = Delivery("webhook", target_id, webhook_gid, None, "2026-12-04T10:00:00.000Z", ())
    quarantine.keep(redis_client, odd, [({"action": "changed"}, "resource must be an object")])

    # A consumer group that fell behind the retention: its row, with the warning.
    redis_client.xgroup_create(keys.CHANGES_STREAM, "billing", "0")
    redis_client.xadd(keys.CHANGES_STREAM, {"change": "{}"})
    redis_client.xtrim(keys.CHANGES_STREAM, maxlen=1, approximate=False)

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "status.png"
    screenshot.unlink(missing_ok=True)
    dom = browse(chromium, f"{system.receiver_url}/status", screenshot=screenshot)

    parser = Rows()
    parser.feed(dom)
    [hook] = [r for r in parser.rows if "webhook" in str(r["class"]).split()]
    assert hook["data-gid"] == webhook_gid
    assert hook["data-health"] == "ok"
    cells = {str(c["class"]): c for c in hook["cells"]}  # type: ignore[attr-defined]
    assert cells["heartbeat"]["at"]
    assert cells["heartbeat"]["text"].endswith("ago")
    changes = [r for r in parser.rows if "change" in str(r["class"]).split()]
    assert any(r["data-gid"] == task for r in changes), changes
    [kept] = [r for r in parser.rows if "quarantined-event" in str(r["class"]).split()]
    assert "resource must be an object" in str(kept["cells"])
    assert "1 event(s) we could not read" in dom
    [group] = [r for r in parser.rows if "consumer-group" in str(r["class"]).split()]
    assert group["data-group"] == "billing"
    assert "bad" in str(group["class"]).split()
    assert "group billing fell behind the retention" in str(group["cells"])
    updated = re.search(r'<span class="([^"]*)" id="updated">([^<]*)</span>', dom)
    assert updated is not None
    assert updated.group(1) == "meta", updated.group(2)
    assert updated.group(2).startswith("updated ")
    cards = re.search(r'<section id="cards".*?</section>', dom, re.S)
    assert cards is not None
    assert "/min" in cards.group(0)
    assert "…" not in cards.group(0)  # rates come from the server's series, even on a first load


@pytest.mark.browser
def test_trends_are_drawn_from_the_series(
    chromium: str,
    system: System,
    worker: subprocess.Popen[bytes],
    redis_client: redis.Redis,
) -> None:
    """Every chart has data after the demo's kind of traffic, and its points are the
    series of /status.json: one per minute with a value, scaled to the chart's maximum."""
    created = system.cli("webhooks", "create", "--resource", system.project, "--json")
    assert created.code == 0, created.stderr
    world = system.fake.world
    tasks = [
        world.add_task(f"Task {n}", projects=[system.project], by=system.user) for n in range(5)
    ]
    for task in tasks:
        world.update_task(task, name=f"{task} renamed", by=system.user)
    wait_for(lambda: redis_client.xlen(keys.CHANGES_STREAM) >= 5, timeout=30)
    polled = system.cli("poll", "--once")
    assert polled.code == 0, polled.stderr
    series_now = wait_for(lambda: _with_every_series(system.receiver_url), timeout=30, every=0.5)
    many = _register_without_asana(redis_client, system, PAGE_WEBHOOKS + 1)

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "status-trends.png"
    screenshot.unlink(missing_ok=True)
    dom = browse(chromium, f"{system.receiver_url}/status", screenshot=screenshot)
    parser = Charts()
    parser.feed(dom)
    assert set(parser.charts) == {"throughput", "latency", "api", "queue", "lag"}
    throughput = parser.charts["throughput"]
    assert throughput["minutes"] == 60
    deliveries = throughput["lines"]["deliveries"]
    drawn = deliveries["values"]
    assert sum(drawn) >= sum(series_now["deliveries"][-60:-1])
    assert sum(drawn) > 0
    top = max(float(v) for v in drawn)
    assert throughput["max"] >= top
    assert len(deliveries["points"]) == sum(1 for v in drawn if v is not None)
    highest = min(deliveries["points"], key=lambda point: point[1])
    assert highest[1] == pytest.approx(10 + 120 * (1 - top / float(throughput["max"])), abs=0.1)
    for name in ("latency", "api", "queue", "lag"):
        assert any(line["points"] for line in parser.charts[name]["lines"].values()), name
    # More webhooks than the page lists: it lists PAGE_WEBHOOKS and says so; the card counts all.
    rows = Rows()
    rows.feed(dom)
    listed = [r for r in rows.rows if "webhook" in str(r["class"]).split()]
    assert len(listed) == PAGE_WEBHOOKS
    assert f"showing {PAGE_WEBHOOKS} of {many + 1} webhooks" in dom


def _register_without_asana(connection: redis.Redis, system: System, count: int) -> int:
    """``count`` active registrations written straight to the store (no call to Asana)."""
    box = SecretBox((Secret(system.env["HOOKS_ENCRYPTION_KEY"]),))
    registry = Registry(connection, box)
    for n in range(count):
        register_active(
            registry,
            f"many{n}",
            resource_gid=str(1_500_000 + n),
            webhook_gid=str(2_500_000 + n),
            base_url=system.receiver_url,
        )
    return count


def _with_every_series(url: str) -> dict[str, Any] | None:
    """/status.json's series once the receiver, the workers and the poller wrote each kind."""
    found: dict[str, Any] = httpx.get(f"{url}/status.json", timeout=5).json()["series"]
    counted = ("deliveries", "changes", "api_requests", "ack_ms_p50")
    sampled = ("queue_depth", "poller_lag_seconds")
    if not all(any(v for v in found[key][-3:] if v is not None) for key in counted):
        return None
    if not all(any(v is not None for v in found[key][-3:]) for key in sampled):
        return None
    return found
