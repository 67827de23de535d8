"""Receiver throughput against a bare Starlette app, measured in the same run.

    .venv/bin/python bench/receiver_throughput.py [--seconds 5] [--rounds 3] [--connections 32]

Starts an embedded Redis, our receiver (`asana-hooks serve`) in both durability modes
(HOOKS_DURABILITY=memory and fsync) and the bare app (same uvicorn settings) as separate
processes, and drives each with wrk (else bench/loadgen.py) in its own process: signed
deliveries of 5 events, 32 connections, the apps in alternating rounds. Prints deliveries/s,
p50 and p99 latency (median round), the ratio to the bare app and the cost of fsync.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from asana_hooks.dev.redis_server import EmbeddedRedis, free_port
from asana_hooks.registry import Registry
from asana_hooks.secretbox import Secret, SecretBox, generate_key
from receiver.signatures import sign

HERE = Path(__file__).resolve().parent
SECRET = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81"
FSYNC = "fsync, always"
"""Our receiver with HOOKS_DURABILITY=fsync (200 once Redis's AOF has the delivery on disk)
against Redis with ``appendfsync always``; and with Redis's default ``everysec``, whose
background fsync WAITAOF waits for (about 100 ms)."""
FSYNC_EVERYSEC = "fsync, everysec"
APPENDFSYNC = {FSYNC: "always", FSYNC_EVERYSEC: "everysec"}


def delivery_body(events: int) -> bytes:
    return json.dumps(
        {
            "events": [
                {
                    "user": {"gid": "1199", "resource_type": "user"},
                    "created_at": f"2026-11-23T10:00:0{n}.123Z",
                    "action": "changed",
                    "resource": {
                        "gid": f"12000{n}",
                        "resource_type": "task",
                        "resource_subtype": "default_task",
                    },
                    "parent": None,
                    "change": {"field": "custom_fields", "action": "changed"},
                }
                for n in range(events)
            ]
        }
    ).encode()


def wait_http(url: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def load(url: str, body_file: str, headers: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """wrk when installed (C, little CPU of its own), else bench/loadgen.py."""
    if shutil.which("wrk") and not args.python_loadgen:
        return load_with_wrk(url, body_file, headers, args)
    command = [sys.executable, str(HERE / "loadgen.py"), url, "--body", body_file]
    command += ["--connections", str(args.connections), "--seconds", str(args.seconds)]
    for header in headers:
        command += ["--header", header]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(output)
    return result


WRK_SCRIPT = """
wrk.method = "POST"
local file = io.open("%s", "rb")
wrk.body = file:read("*a")
file:close()
%s
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%f %%f\\n", summary.requests, summary.duration,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
  for status, count in pairs(summary.errors) do io.write("ERR ", status, " ", count, "\\n") end
end
"""


def load_with_wrk(
    url: str, body_file: str, headers: list[str], args: argparse.Namespace
) -> dict[str, Any]:
    header_lines = "\n".join(
        f'wrk.headers["{name.strip()}"] = "{value.strip()}"'
        for name, _, value in (
            h.partition(":") for h in [*headers, "Content-Type: application/json"]
        )
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % (body_file, header_lines))
    # Warm-up, then the measured run.
    base = ["wrk", "-t1", f"-c{args.connections}", "-s", script.name, url]
    subprocess.run([*base[:3], "-d1s", *base[3:]], check=True, capture_output=True)
    output = subprocess.run(
        [*base[:3], f"-d{args.seconds:g}s", *base[3:]], check=True, capture_output=True, text=True
    ).stdout
    os.unlink(script.name)
    result_line = next(line for line in output.splitlines() if line.startswith("RESULT"))
    _, requests, micros, p50, p99 = result_line.split()
    non_2xx = next((line for line in output.splitlines() if "Non-2xx" in line), None)
    return {
        "requests": int(requests),
        "per_second": int(requests) / (int(micros) / 1e6),
        "p50_ms": float(p50),
        "p99_ms": float(p99),
        "codes": {"non-2xx": int(non_2xx.split()[-1])} if non_2xx else {"2xx": int(requests)},
        "loadgen": "wrk",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--log-level", default="WARNING", help="our receiver's HOOKS_LOG_LEVEL")
    parser.add_argument("--python-loadgen", action="store_true", help="use loadgen.py, not wrk")
    args = parser.parse_args()
    body = delivery_body(5)
    with EmbeddedRedis() as server, tempfile.NamedTemporaryFile(suffix=".json") as body_file:
        body_file.write(body)
        body_file.flush()
        key = generate_key()
        client = redis.Redis.from_url(server.url)
        registry = Registry(client, SecretBox([Secret(key)]))
        registry.begin(target_id="bench", resource_gid="1", target_url="https://x", filters=[])
        registry.accept_handshake("bench", SECRET)
        registry.confirm("bench", webhook_gid="1", asana_secret=SECRET)

        results: dict[str, dict[str, Any]] = {}
        ours_port, bare_port, fsync_port = free_port(), free_port(), free_port()
        env = os.environ | {
            "REDIS_URL": server.url,
            "HOOKS_ENCRYPTION_KEY": key,
            "HOOKS_LOG_LEVEL": args.log_level,
        }
        serve = [sys.executable, "-m", "asana_hooks", "serve"]
        processes = {
            "bare Starlette": subprocess.Popen(
                [sys.executable, str(HERE / "bare_app.py"), str(bare_port)], env=env
            ),
            "asana-hooks": subprocess.Popen(
                [*serve, "--host", "127.0.0.1", "--port", str(ours_port)],
                env=env,
            ),
            FSYNC: subprocess.Popen(
                [*serve, "--host", "127.0.0.1", "--port", str(fsync_port)],
                env=env | {"HOOKS_DURABILITY": "fsync"},
            ),
        }
        ports = {
            "bare Starlette": bare_port,
            "asana-hooks": ours_port,
            FSYNC: fsync_port,
            FSYNC_EVERYSEC: fsync_port,
        }
        try:
            for port in ports.values():
                wait_http(f"http://127.0.0.1:{port}/healthz")
            # Alternate the two apps, round after round, so that a change in the machine's
            # load touches both alike; report each app's median round.
            rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in ports}
            for _ in range(args.rounds):
                for name, port in ports.items():
                    client.config_set("appendfsync", APPENDFSYNC.get(name, "everysec"))
                    rounds[name].append(
                        load(
                            f"http://127.0.0.1:{port}/hooks/asana/bench",
                            body_file.name,
                            [f"X-Hook-Signature: {sign(body, SECRET)}"],
                            args,
                        )
                    )
            for name, measured in rounds.items():
                results[name] = sorted(measured, key=lambda r: r["per_second"])[len(measured) // 2]
        finally:
            for process in processes.values():
                process.terminate()
                process.wait(10)
        queued = client.llen("rq:queue:asana-hooks")
        client.close()

    print(f"{'app':<16}{'deliveries/s':>14}{'p50 ms':>10}{'p99 ms':>10}  codes")
    print("(asana-hooks: HOOKS_DURABILITY=memory, appendfsync everysec; fsync: =fsync)")
    for name, result in results.items():
        print(
            f"{name:<16}{result['per_second']:>14.0f}{result['p50_ms']:>10.2f}"
            f"{result['p99_ms']:>10.2f}  {result['codes']}"
        )
    ratio = results["asana-hooks"]["per_second"] / results["bare Starlette"]["per_second"]
    print(f"ratio asana-hooks / bare: {ratio:.2f}  (jobs in Redis afterwards: {queued})")
    for name in (FSYNC, FSYNC_EVERYSEC):
        cost = results[name]["per_second"] / results["asana-hooks"]["per_second"]
        print(f"ratio {name} / memory durability: {cost:.2f}")


if __name__ == "__main__":
    main()
