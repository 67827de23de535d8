"""deploy/grafana and deploy/prometheus: the dashboard queries metrics we export, and the
alert rules load and fire when they should (`promtool`, Debian's `prometheus` package).

promtool is skipped only when absent outside CI (CI=true makes it a failure; .ci/run
installs it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from asana_hooks.settings import Settings
from receiver.app import create_app
from tests.helpers import serve_in_thread

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is required in CI (apt-get install -y prometheus)")
        pytest.skip("promtool is not installed (apt-get install -y prometheus); CI runs this")
    return found


@pytest.fixture
def exported(settings: Settings) -> set[str]:
    with serve_in_thread(create_app(settings)) as url:
        text = httpx.get(f"{url}/metrics", timeout=5).text
    return {family.name for family in text_string_to_metric_families(text)}


def family_of(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


class TestDashboard:
    def test_every_query_names_a_metric_we_export(self, exported: set[str]) -> None:
        dashboard = json.loads((DEPLOY / "grafana" / "asana-hooks.json").read_text())
        queried = {
            family_of(name)
            for panel in dashboard["panels"]
            for target in panel["targets"]
            for name in re.findall(r"asana_hooks_\w+", target["expr"])
        }
        assert len(dashboard["panels"]) >= 7
        assert queried - exported == set()
        assert {"asana_hooks_ack_latency_seconds", "asana_hooks_webhook_health"} <= queried


class TestAlerts:
    def test_rules_load(self, promtool: str) -> None:
        done = subprocess.run(
            [promtool, "check", "rules", str(DEPLOY / "prometheus" / "alerts.yaml")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "SUCCESS: 9 rules found" in done.stdout

    def test_rules_fire_when_they_should(self, promtool: str) -> None:
        done = subprocess.run(
            [promtool, "test", "rules", "alerts_test.yaml"],
            cwd=DEPLOY / "prometheus",
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def test_every_rule_queries_metrics_we_export(self, exported: set[str]) -> None:
        text = (DEPLOY / "prometheus" / "alerts.yaml").read_text()
        named = {family_of(name) for name in re.findall(r"asana_hooks_\w+", text)}
        assert named - exported == set()
