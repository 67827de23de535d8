"""GET /status and /status.json over real HTTP: the data, and who may see it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis

from asana_hooks import keys
from asana_hooks.registry import Registry
from asana_hooks.secretbox import Secret, SecretBox
from asana_hooks.settings import Settings
from receiver import operator_auth
from receiver.app import create_app
from tests.helpers import register_active as active_project_webhook
from tests.helpers import serve_in_thread

TOKEN = "operator-token-for-tests"


@pytest.fixture
def registry(redis_client: redis.Redis, settings: Settings) -> Registry:
    return Registry(redis_client, SecretBox(settings.encryption_keys))


def serve(environ: dict[str, str], **extra: str) -> Iterator[str]:
    with serve_in_thread(create_app(Settings.from_environ({**environ, **extra}))) as url:
        yield url


@pytest.fixture
def open_url(environ: dict[str, str]) -> Iterator[str]:
    yield from serve(environ)


@pytest.fixture
def guarded_url(environ: dict[str, str]) -> Iterator[str]:
    yield from serve(environ, HOOKS_OPERATOR_TOKEN=TOKEN)


def register_active(registry: Registry) -> None:
    registry.begin(
        target_id="t1",
        resource_gid="1200",
        target_url="https://example.test/hooks/asana/t1",
        filters=[{"resource_type": "task", "action": "changed"}],
        resource_type="project",
        resource_name="Launch",
    )
    assert registry.accept_handshake("t1", "s3cret")
    assert registry.confirm("t1", webhook_gid="9001", asana_secret="s3cret")


class TestStatusData:
    """/status.json carries webhooks with health, queue, batches, API budget, changes."""

    def test_snapshot(self, open_url: str, registry: Registry, redis_client: redis.Redis) -> None:
        """Everything the page shows is in the JSON, read from Redis."""
        register_active(registry)
        redis_client.hset(
            keys.target("t1"), mapping={"last_heartbeat_at": "2030-01-01T00:00:00.000Z"}
        )
        redis_client.hset(keys.STATS, mapping={"api:429": 2, "events": 7, "duplicates": 3})
        redis_client.zadd(keys.OPEN_BATCHES, {"1201": 1.0})
        redis_client.lpush(
            keys.RECENT_CHANGES, '{"resource": {"gid": "1201", "resource_type": "task"}}'
        )
        answer = httpx.get(f"{open_url}/status.json", timeout=5)
        assert answer.status_code == 200
        data = answer.json()
        [webhook] = data["webhooks"]
        assert webhook["gid"] == "9001"
        assert webhook["health"] == "ok"
        assert webhook["last_heartbeat_at"] == "2030-01-01T00:00:00.000Z"
        assert data["stats"]["api:429"] == 2
        assert data["open_batches"] == 1
        assert data["queue"]["queued"] == 0
        assert data["api"]["budget_per_minute"] == 1500
        assert data["recent_changes"][0]["resource"]["gid"] == "1201"
        assert data["failed_jobs"] == []

    def test_a_long_list_of_webhooks_is_cut_with_those_needing_attention_first(
        self, open_url: str, registry: Registry
    ) -> None:
        """`?webhooks=N` (the page asks for 200) lists N, a lost one first, and
        `webhook_totals` still counts them all; a bad N is a clear 400."""
        for n in range(5):
            active_project_webhook(
                registry,
                f"t{n}",
                resource_gid=str(1300 + n),
                webhook_gid=str(9100 + n),
                base_url="https://example.test",
            )
        registry.set_state("t3", "lost", problem="Asana deleted it")
        everything = httpx.get(f"{open_url}/status.json", timeout=5).json()
        assert len(everything["webhooks"]) == 5
        assert everything["webhook_totals"] == {"count": 5, "need_attention": 1, "deliveries": 0}
        cut = httpx.get(f"{open_url}/status.json?webhooks=2", timeout=5).json()
        assert cut["webhooks"][0]["gid"] == "9103"
        assert len(cut["webhooks"]) == 2
        assert cut["webhook_totals"] == everything["webhook_totals"]
        for bad in ("-1", "two", "1" * 7):
            refused = httpx.get(f"{open_url}/status.json?webhooks={bad}", timeout=5)
            assert refused.status_code == 400
            assert "webhooks=" in refused.json()["error"]

    def test_the_events_api_subscription_and_its_resync(
        self, open_url: str, registry: Registry, redis_client: redis.Redis
    ) -> None:
        """A resource without a sync token says the next poll resyncs it; a pending resync
        says from when and why; a held token with nothing to catch up says nothing."""
        register_active(registry)

        def events_api() -> dict[str, object]:
            data = httpx.get(f"{open_url}/status.json", timeout=5).json()
            return dict(data["webhooks"][0]["events_api"])

        blind = events_api()
        assert blind["subscribed"] is False
        assert "next poll resyncs" in str(blind["note"])
        redis_client.set(keys.sync_token("1200"), "token")
        assert events_api() == {"subscribed": True, "resync": None, "note": None}
        redis_client.hset(
            keys.poll_state("1200"),
            mapping={"resync_since": "2030-01-01T00:00:00.000Z", "resync_reason": "412"},
        )
        pending = events_api()
        assert pending["note"] == "resync from 2030-01-01T00:00:00.000Z pending: 412"
        assert isinstance(pending["resync"], dict)
        assert pending["resync"]["state"] == "pending"

    def test_page_is_self_contained(self, open_url: str, registry: Registry) -> None:
        """The HTML embeds its data and script, loads nothing from elsewhere, sets a CSP."""
        register_active(registry)
        answer = httpx.get(f"{open_url}/status", timeout=5)
        assert answer.status_code == 200
        assert "9001" in answer.text
        svg_namespace = "http://www.w3.org/2000/svg"  # a name for createElementNS, not a fetch
        assert "http://" not in answer.text.replace(open_url, "").replace(svg_namespace, "")
        assert "https://" not in answer.text.replace("https://example.test", "")
        assert "script-src 'nonce-" in answer.headers["content-security-policy"]

    def test_names_cannot_close_the_script(self, open_url: str, registry: Registry) -> None:
        """A resource name with </script> stays inside the embedded JSON."""
        register_active(registry)
        registry.describe_resource(
            "t1", resource_type="project", resource_name="</script><b>x", created_at=""
        )
        page = httpx.get(f"{open_url}/status", timeout=5).text
        assert "</script><b>" not in page


class TestConsumerGroups:
    """Each consumer group's lag, pending and dead counts, and the retention warning."""

    def test_groups_in_status_json(self, open_url: str, redis_client: redis.Redis) -> None:
        ids = [redis_client.xadd(keys.CHANGES_STREAM, {"change": "{}"}) for _ in range(4)]
        redis_client.xgroup_create(keys.CHANGES_STREAM, "search", "$")
        redis_client.xgroup_create(keys.CHANGES_STREAM, "billing", "0")
        redis_client.xreadgroup("billing", "c", {keys.CHANGES_STREAM: ">"}, count=1)
        redis_client.xadd(keys.dead_letters("billing"), {"id": "1-0", "change": "{}"})
        redis_client.xtrim(keys.CHANGES_STREAM, minid=ids[2], approximate=False)
        data = httpx.get(f"{open_url}/status.json", timeout=5).json()
        found = {g["group"]: g for g in data["consumer_groups"]}
        assert {name: (g["lag"], g["pending"], g["dead"]) for name, g in found.items()} == {
            "billing": (3, 1, 1),
            "search": (0, 0, 0),
        }
        assert found["billing"]["behind_retention"] is True
        assert "fell behind the retention" in found["billing"]["warning"]
        assert found["search"]["warning"] is None


class TestAccess:
    """Loopback only without a token (proxies are not loopback); bearer or cookie with one."""

    @pytest.mark.parametrize(
        "header",
        [
            {"X-Forwarded-For": "203.0.113.9"},
            {"Forwarded": "for=203.0.113.9"},
            {"X-Real-IP": "203.0.113.9"},
            {"ngrok-skip-browser-warning": "1"},
        ],
    )
    def test_proxied_loopback_is_refused(self, open_url: str, header: dict[str, str]) -> None:
        """ngrok connects from 127.0.0.1: a forwarding header means the internet, 403."""
        for path in ("/status", "/status.json", "/metrics"):
            answer = httpx.get(f"{open_url}{path}", headers=header, timeout=5)
            assert answer.status_code == 403, path
            assert "HOOKS_OPERATOR_TOKEN" in answer.text

    def test_bearer(self, guarded_url: str) -> None:
        """With a token set, even loopback needs it; a wrong one is 401."""
        assert httpx.get(f"{guarded_url}/status.json", timeout=5).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert httpx.get(f"{guarded_url}/status.json", headers=wrong, timeout=5).status_code == 401
        right = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.get(f"{guarded_url}/status.json", headers=right, timeout=5).status_code == 200
        assert httpx.get(f"{guarded_url}/metrics", headers=right, timeout=5).status_code == 200

    def test_login_form_sets_an_httponly_cookie(self, guarded_url: str) -> None:
        """The form answers 401 to a wrong token; the right one sets a cookie that works."""
        with httpx.Client(base_url=guarded_url, timeout=5) as client:
            page = client.get("/status")
            assert page.status_code == 401
            assert 'name="token"' in page.text
            assert client.post("/status/login", data={"token": "nope"}).status_code == 401
            login = client.post("/status/login", data={"token": TOKEN})
            assert login.status_code == 303
            cookie = login.headers["set-cookie"]
            assert "HttpOnly" in cookie
            assert "samesite=strict" in cookie.lower()
            assert TOKEN not in cookie
            assert client.get("/status").status_code == 200
            assert client.get("/status.json").status_code == 200

    def test_loopback_rules(self) -> None:
        """Loopback addresses only, with no forwarding header."""
        assert operator_auth.is_loopback("127.0.0.1", {})
        assert operator_auth.is_loopback("::1", {})
        assert not operator_auth.is_loopback("10.0.0.5", {})
        assert not operator_auth.is_loopback("testclient", {})
        assert not operator_auth.is_loopback(None, {})
        assert not operator_auth.is_loopback("127.0.0.1", {"x-forwarded-proto": "https"})
        assert not operator_auth.allowed(
            Secret(TOKEN), client_host="127.0.0.1", headers={}, cookies={"x": "y"}
        )
