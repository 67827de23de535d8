"""The poller's webhook health check against the fake Asana, our receiver and real Redis."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from asana_hooks import keys
from asana_hooks.registration import register
from asana_hooks.registry import Registration
from receiver.app import create_app
from tests.helpers import serve_in_thread, wait_for
from tests.poller_stage import Stage, running_stage
from workers.poller.store import PollStore


@pytest.fixture
def stage(environ: dict[str, str]) -> Iterator[Stage]:
    with running_stage(environ, HOOKS_POLL_INTERVAL_SECONDS="0.3") as running:
        yield running


def current(stage: Stage, registration: Registration) -> Registration:
    found = stage.registry.get(registration.target_id)
    assert found is not None
    return found


def messages(caplog: pytest.LogCaptureFixture, prefix: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith(prefix)]


class TestDeliveryStatus:
    """Asana's delivery fields are kept beside ours; failing webhooks are said loudly."""

    def test_healthy_webhook_stays_active_with_asanas_fields(self, stage: Stage) -> None:
        """A healthy webhook's status fields are stored and its state stays active."""
        registration = stage.register(stage.project())
        stage.poller(force=True).run_cycle()
        found = current(stage, registration)
        assert found.state == "active"
        assert found.asana["active"] is True
        assert found.asana["delivery_retry_count"] == 0
        assert found.asana["failure_deletion_timestamp"] is None

    def test_failing_deliveries_warn_with_the_time_left(
        self, stage: Stage, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Retries and a planned deletion make it failing, with when Asana deletes it."""
        project = stage.project()
        with serve_in_thread(create_app(stage.settings)) as doomed_url:
            registration = register(
                stage.client,
                stage.registry,
                resource_gid=project,
                public_url=doomed_url,
                filters=[],
            )
        stage.fake.world.add_task("nobody hears this", projects=[project], by=stage.user)
        wait_for(
            lambda: (stage.client.get(f"/webhooks/{registration.webhook_gid}")["data"])[
                "failure_deletion_timestamp"
            ],
            timeout=10,
        )
        caplog.set_level(logging.INFO)
        stage.poller(force=True).run_cycle()
        found = current(stage, registration)
        assert found.state == "failing"
        assert found.problem is not None
        assert "Asana deletes it at" in found.problem
        assert found.asana["delivery_retry_count"] > 0
        (warning,) = messages(caplog, "webhook.failing")
        assert warning.levelno == logging.WARNING
        assert str(registration.webhook_gid) in warning.getMessage()
        assert "Asana deletes it at" in warning.getMessage()

    def test_no_heartbeat_is_failing_until_one_comes(
        self, environ: dict[str, str], caplog: pytest.LogCaptureFixture
    ) -> None:
        """A webhook silent for longer than the heartbeat timeout is failing; a heartbeat heals."""
        with running_stage(environ, HOOKS_HEARTBEAT_TIMEOUT_SECONDS="0.5") as stage:
            registration = stage.register(stage.project())
            wait_for(lambda: current(stage, registration).last_heartbeat_at, timeout=5)
            poller = stage.poller(force=True)
            poller.run_cycle()
            assert current(stage, registration).state == "active"
            caplog.set_level(logging.INFO)
            wait_for(
                lambda: poller.run_cycle() and current(stage, registration).state == "failing",
                timeout=5,
                every=0.1,
            )
            problem = current(stage, registration).problem
            assert problem is not None
            assert "no heartbeat" in problem
            assert messages(caplog, "webhook.failing")[0].levelno == logging.WARNING
            before = current(stage, registration).last_heartbeat_at
            stage.fake.send_heartbeat(registration.webhook_gid)
            wait_for(lambda: current(stage, registration).last_heartbeat_at != before, timeout=5)
            poller.run_cycle()
            assert current(stage, registration).state == "active"
            assert current(stage, registration).problem is None
            assert messages(caplog, "webhook.recovered")


class TestLostWebhooks:
    """A webhook Asana deleted is reported lost and re-created on the same target."""

    def test_lost_webhook_is_recreated_and_deliveries_resume(
        self, stage: Stage, caplog: pytest.LogCaptureFixture
    ) -> None:
        """New handshake, new secret, same target and filters; deliveries reach us again."""
        caplog.set_level(logging.INFO)
        project = stage.project()
        filters = [{"resource_type": "task", "action": "added"}]
        registration = stage.register(project, filters=filters)
        old_gid = registration.webhook_gid
        assert old_gid is not None
        stage.fake.delete_webhook_silently(old_gid)
        stage.poller(force=True).run_cycle()
        (lost,) = messages(caplog, "webhook.lost")
        assert lost.levelno == logging.WARNING
        assert old_gid in lost.getMessage()
        found = current(stage, registration)
        assert found.state == "active"
        assert found.webhook_gid not in (None, old_gid)
        assert found.filters == filters
        assert found.target_url == registration.target_url
        assert stage.redis.hget(keys.WEBHOOK_TARGETS, old_gid) is None
        by_new = stage.registry.by_webhook(str(found.webhook_gid))
        assert by_new is not None
        assert by_new.target_id == registration.target_id
        assert messages(caplog, "webhook.recreated")
        new_webhook = stage.fake.webhooks[str(found.webhook_gid)]
        assert new_webhook.to_json()["target"] == registration.target_url
        task = stage.fake.world.add_task("after", projects=[project], by=stage.user)
        wait_for(
            lambda: any(
                d.webhook_gid == found.webhook_gid
                and d.status == 200
                and any(e["resource"]["gid"] == task for e in d.events)
                for d in stage.fake.deliveries
            ),
            timeout=5,
        )
        wait_for(lambda: current(stage, registration).counters["deliveries"] >= 1, timeout=5)

    def test_without_auto_recreate_it_stays_lost_and_polled(
        self, environ: dict[str, str], caplog: pytest.LogCaptureFixture
    ) -> None:
        """HOOKS_AUTO_RECREATE=false: reported lost every cycle; the poller still covers it."""
        with running_stage(environ, HOOKS_AUTO_RECREATE="false") as stage:
            caplog.set_level(logging.INFO)
            project = stage.project()
            registration = stage.register(project)
            assert registration.webhook_gid is not None
            stage.fake.delete_webhook_silently(registration.webhook_gid)
            poller = stage.poller(force=True)
            poller.run_cycle()
            poller.run_cycle()
            found = current(stage, registration)
            assert found.state == "lost"
            assert found.webhook_gid == registration.webhook_gid
            assert len(messages(caplog, "webhook.lost")) == 2
            assert not [
                c for c in stage.fake.calls if c.method == "POST" and c.path == "/webhooks"
            ][1:]
            assert PollStore(stage.redis).token(project)

    def test_retired_webhook_gone_at_asana_becomes_deleted(self, stage: Stage) -> None:
        """A retired webhook Asana dropped is deleted and no longer polled."""
        project = stage.project()
        registration = stage.register(project)
        poller = stage.poller(force=True)
        poller.run_cycle()
        assert PollStore(stage.redis).token(project)
        stage.registry.set_state(registration.target_id, "retired")
        poller.run_cycle()
        assert current(stage, registration).state == "retired"
        assert registration.webhook_gid is not None
        stage.fake.delete_webhook_silently(registration.webhook_gid)
        stage.fake.reset_records()
        poller.run_cycle()
        assert current(stage, registration).state == "deleted"
        assert not [c for c in stage.fake.calls if c.path == "/events"]
        assert PollStore(stage.redis).token(project) is None
        assert poller.run_cycle().resources == 0
