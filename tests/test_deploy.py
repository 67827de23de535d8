"""deploy/: the compose file, the Kubernetes manifests, the Dockerfile and the Procfile.

No container engine runs here, so the files are parsed and their structure asserted;
`kubectl kustomize` (offline) renders the manifests when kubectl is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in load_all(path):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def container(doc: dict[str, Any]) -> dict[str, Any]:
    first: dict[str, Any] = doc["spec"]["template"]["spec"]["containers"][0]
    return first


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


class TestCompose:
    """Redis with AOF on a volume and noeviction, a receiver, two workers, one poller."""

    def test_redis(self, compose: dict[str, Any]) -> None:
        """Append-only file, noeviction, data on a named volume."""
        redis = compose["services"]["redis"]
        command = " ".join(redis["command"])
        assert "--appendonly yes" in command
        assert "--maxmemory-policy noeviction" in command
        volume = redis["volumes"][0].split(":")
        assert volume[1] == "/data"
        assert volume[0] in compose["volumes"]

    def test_processes(self, compose: dict[str, Any]) -> None:
        """Every app service runs our one image with the right command and Redis URL."""
        services = compose["services"]
        assert services["receiver"]["command"][:2] == ["asana-hooks", "serve"]
        assert services["worker"]["command"] == ["asana-hooks", "worker"]
        assert services["worker"]["deploy"]["replicas"] == 2
        assert services["poller"]["command"] == ["asana-hooks", "poll"]
        for name in ("receiver", "worker", "poller"):
            service = services[name]
            assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0"
            assert service["depends_on"]["redis"]["condition"] == "service_healthy"
            assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert "/readyz" in " ".join(services["receiver"]["healthcheck"]["test"])

    def test_secrets_come_from_the_environment(self) -> None:
        """No token or key is written in the compose file."""
        text = (DEPLOY / "compose.yaml").read_text()
        assert re.search(r"ASANA_ACCESS_TOKEN: \$\{ASANA_ACCESS_TOKEN", text)
        assert re.search(r"HOOKS_ENCRYPTION_KEY: \$\{HOOKS_ENCRYPTION_KEY", text)


class TestKubernetes:
    """Receiver with readiness on /readyz, workers, poller, Redis, and a Secret."""

    def test_receiver(self) -> None:
        """Readiness on /readyz, liveness on /healthz, settings from the Secret."""
        found = manifests()
        receiver = container(found[("Deployment", "asana-hooks-receiver")])
        assert receiver["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert receiver["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert receiver["envFrom"] == [{"secretRef": {"name": "asana-hooks"}}]
        assert ("Service", "asana-hooks-receiver") in found

    def test_workers_poller_redis_secret(self) -> None:
        """Two workers, one poller, Redis with AOF and noeviction on a volume."""
        found = manifests()
        workers = found[("Deployment", "asana-hooks-worker")]
        assert workers["spec"]["replicas"] == 2
        assert container(workers)["command"] == ["asana-hooks", "worker"]
        assert container(found[("Deployment", "asana-hooks-poller")])["command"] == [
            "asana-hooks",
            "poll",
        ]
        conf = found[("ConfigMap", "asana-hooks-redis")]["data"]["redis.conf"]
        assert "appendonly yes" in conf
        assert "maxmemory-policy noeviction" in conf
        assert found[("StatefulSet", "asana-hooks-redis")]["spec"]["volumeClaimTemplates"]
        secret = found[("Secret", "asana-hooks")]["stringData"]
        assert {"ASANA_ACCESS_TOKEN", "HOOKS_ENCRYPTION_KEY", "REDIS_URL"} <= set(secret)

    def test_every_pod_runs_as_non_root(self) -> None:
        """No container of ours runs as root."""
        for (kind, _), doc in manifests().items():
            if kind in ("Deployment", "StatefulSet"):
                assert doc["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]

    @pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
    def test_kustomize_renders(self) -> None:
        """kubectl kustomize (offline) renders every manifest."""
        kubectl = shutil.which("kubectl")
        assert kubectl is not None
        done = subprocess.run(
            [kubectl, "kustomize", str(DEPLOY / "k8s")],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        kinds = [doc["kind"] for doc in yaml.safe_load_all(done.stdout) if doc]
        assert kinds.count("Deployment") == 3


class TestImageAndProcfile:
    """A slim, non-root image with a HEALTHCHECK on /healthz; Procfile web/worker/poller."""

    def test_dockerfile(self) -> None:
        """Slim base, non-root user, HEALTHCHECK on /healthz."""
        text = (DEPLOY / "Dockerfile").read_text()
        assert "FROM python:3.12-slim" in text
        assert re.search(r"^USER 10001", text, re.MULTILINE)
        assert "HEALTHCHECK" in text
        assert "/healthz" in text

    def test_procfile(self) -> None:
        """The three process kinds, the web one on $PORT."""
        lines = dict(
            line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
        )
        assert lines == {
            "web": "asana-hooks serve --port $PORT",
            "worker": "asana-hooks worker",
            "poller": "asana-hooks poll",
        }
