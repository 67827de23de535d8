"""The /_fake control API and ``python -m asana_hooks.dev.fake_asana``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from asana_hooks.dev.fake_asana import FakeAsana

from .conftest import Receiver, create_webhook

ROOT = Path(__file__).resolve().parents[2]


def test_control_api_drives_the_world(fake: FakeAsana, receiver: Receiver) -> None:
    with httpx.Client(base_url=fake.base_url, trust_env=False) as control:
        knobs = control.post("/_fake/knobs", json={"drop_rate": "0.5", "reorder": True}).json()
        assert knobs["drop_rate"] == 0.5
        assert knobs["reorder"] is True
        assert fake.knobs.drop_rate == 0.5
        assert control.post("/_fake/knobs", json={"nonsense": 1}).status_code == 400
        control.post("/_fake/knobs", json={"drop_rate": 0})
        seeded = control.post("/_fake/seed").json()
        assert control.post("/_fake/seed").json() == seeded  # idempotent
        headers = {"Authorization": "Bearer test-token"}
        with httpx.Client(base_url=fake.api_url, headers=headers, trust_env=False) as api:
            assert create_webhook(api, seeded["project"], receiver.url).status_code == 201
        task = control.post(
            "/_fake/tasks", json={"name": "From control", "project": seeded["project"]}
        ).json()["gid"]
        control.post(
            f"/_fake/tasks/{task}/update",
            json={
                "name": "Renamed",
                "custom_fields": {seeded["custom_field"]: "note"},
                "section": seeded["sections"][1],
            },
        )
        story = control.post(f"/_fake/tasks/{task}/comment", json={"text": "hi"}).json()["gid"]
        control.post(f"/_fake/stories/{story}/remove")
        control.post(f"/_fake/tasks/{task}/delete")
        webhook = control.get("/_fake/webhooks").json()[0]["gid"]
        assert control.post("/_fake/heartbeat", json={}).json() == {"webhooks": [webhook]}
        fake.wait_idle()
        deliveries = control.get("/_fake/deliveries").json()
        fields = [
            (e["action"], (e.get("change") or {}).get("field"))
            for d in deliveries
            for e in d["events"]
        ]
        assert ("changed", "name") in fields
        assert ("changed", "custom_fields") in fields
        assert ("deleted", None) in fields
        assert control.get("/_fake/calls").json()[0]["path"] == "/webhooks"
        assert control.get("/_fake/world").json()["tasks"][0]["deleted"] is True
        assert control.post("/_fake/expire-sync-tokens").json() == {"ok": True}
        assert control.post(f"/_fake/webhooks/{webhook}/delete").json() == {"deleted": True}
        assert fake.webhooks == {}
        assert control.post("/_fake/tasks/123/update", json={"name": "x"}).status_code == 400


def test_python_dash_m_runs_standalone() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "asana_hooks.dev.fake_asana",
            "--token",
            "cli-token",
            "--time-scale",
            "0.01",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        api_url = process.stdout.readline().strip()
        assert api_url.startswith("http://127.0.0.1:")
        assert api_url.endswith("/api/1.0")
        response = httpx.get(
            f"{api_url}/users/me", headers={"Authorization": "Bearer cli-token"}, trust_env=False
        )
        assert response.status_code == 200
        assert response.json()["data"]["name"] == "Greg Sanchez"
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
