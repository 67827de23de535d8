"""What the poller spends at Asana per cycle, against the fake Asana over HTTP and real Redis.

Webhook health comes from one listing per cycle (``GET /webhooks?workspace=``, 100 a page),
not one ``GET /webhooks/{gid}`` per webhook; a team, workspace or portfolio is never asked
``GET /events``. Counted at the fake, which records every request it answers.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from asana_hooks import keys
from asana_hooks.asana_clients import Clients
from asana_hooks.registration import register
from asana_hooks.registry import Registration
from asana_hooks.settings import Settings
from receiver.app import create_app
from tests.helpers import serve_in_thread, wait_for
from tests.poller_stage import Stage, running_stage
from workers.poller.listing import list_webhooks
from workers.poller.store import PollStore
from workers.poller.webhooks import WebhookCare

IDLE = 30
"""Webhooks on idle projects: enough to show the cost per webhook, few enough to be quick."""

HIGHER_LEVEL_FILTERS = [{"resource_type": "project", "action": "added"}]
"""Asana requires filters on a team or workspace webhook; projects added is allowed."""


@pytest.fixture
def stage(environ: dict[str, str]) -> Iterator[Stage]:
    with running_stage(environ, HOOKS_POLL_INTERVAL_SECONDS="0.3") as running:
        yield running


def current(stage: Stage, registration: Registration) -> Registration:
    found = stage.registry.get(registration.target_id)
    assert found is not None
    return found


def requests(stage: Stage) -> Counter[tuple[str, str]]:
    """The cycle's requests at the fake; every ``GET /webhooks/{gid}`` counts as one kind."""
    counted: Counter[tuple[str, str]] = Counter()
    for call in stage.fake.calls:
        path = "/webhooks/{gid}" if call.path.startswith("/webhooks/") else call.path
        counted[(call.method, path)] += 1
    return counted


def listing_requests(counted: Counter[tuple[str, str]]) -> int:
    return counted[("GET", "/webhooks")] + counted[("GET", "/users/me")]


def care(stage: Stage) -> WebhookCare:
    return WebhookCare(
        stage.settings,
        Clients.around(stage.settings, stage.redis, stage.client),
        stage.registry,
        clock=lambda: datetime.now(UTC),
        can_recreate=True,
    )


class TestListing:
    """One listing per cycle judges every webhook; only a missing one costs its own GET."""

    def test_idle_webhooks_cost_one_poll_each_and_one_listing(self, stage: Stage) -> None:
        """N idle webhooks: N Events API polls and at most ceil(N/100)+1 listing requests per
        cycle, no GET per webhook; every one judged active with Asana's fields stored."""
        registrations = [stage.register(stage.project(f"P{n}")) for n in range(IDLE)]
        poller = stage.poller(force=True)
        stage.fake.reset_records()
        first = poller.run_cycle()
        counted = requests(stage)
        assert first.polled == IDLE
        assert counted[("GET", "/events")] == IDLE
        assert counted[("GET", "/webhooks/{gid}")] == 0
        assert listing_requests(counted) <= math.ceil(IDLE / 100) + 1
        assert sum(counted.values()) == IDLE + listing_requests(counted)
        for registration in registrations:
            found = current(stage, registration)
            assert found.state == "active"
            assert found.asana["delivery_retry_count"] == 0
            assert found.asana["active"] is True
        stage.fake.reset_records()
        poller.run_cycle()
        counted = requests(stage)
        assert counted == Counter({("GET", "/events"): IDLE, ("GET", "/webhooks"): 1}), (
            "the user's workspaces are kept in Redis: the next cycle lists webhooks alone"
        )

    def test_lost_and_failing_webhooks_are_still_found(
        self, stage: Stage, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Among idle webhooks, one Asana deleted is confirmed by one GET (404), reported lost
        and re-created; one whose deliveries fail is failing; the rest cost nothing more."""
        registrations = [stage.register(stage.project(f"P{n}")) for n in range(10)]
        doomed_project = stage.project("doomed")
        with serve_in_thread(create_app(stage.settings)) as doomed_url:
            doomed = register(
                stage.client,
                stage.registry,
                resource_gid=doomed_project,
                public_url=doomed_url,
                filters=[],
            )
        stage.fake.world.add_task("nobody hears this", projects=[doomed_project], by=stage.user)
        wait_for(
            lambda: stage.client.get(f"/webhooks/{doomed.webhook_gid}")["data"][
                "failure_deletion_timestamp"
            ],
            timeout=10,
        )
        lost = registrations[3]
        assert lost.webhook_gid is not None
        stage.fake.delete_webhook_silently(lost.webhook_gid)
        stage.fake.reset_records()
        caplog.set_level(logging.INFO)
        stage.poller(force=True).run_cycle()
        gets = [c.path for c in stage.fake.calls if c.method == "GET" and c.path != "/events"]
        assert gets.count(f"/webhooks/{lost.webhook_gid}") == 1
        assert [p for p in gets if p.startswith("/webhooks/")] == [f"/webhooks/{lost.webhook_gid}"]
        recreated = current(stage, lost)
        assert recreated.state == "active"
        assert recreated.webhook_gid not in (None, lost.webhook_gid)
        assert any(r.getMessage().startswith("webhook.recreated") for r in caplog.records)
        failing = current(stage, doomed)
        assert failing.state == "failing"
        assert failing.problem is not None
        assert "Asana deletes it at" in failing.problem
        for registration in registrations:
            if registration is not lost:
                assert current(stage, registration).state == "active"

    def test_a_webhook_made_after_the_listing_is_asked_for_not_lost(self, stage: Stage) -> None:
        """Missing from a listing taken before it existed, it is confirmed by its own GET."""
        stage.register(stage.project("early"))
        listing = list_webhooks(stage.client, stage.redis)
        later = stage.register(stage.project("late"))
        assert later.webhook_gid is not None
        assert later.webhook_gid not in listing.webhooks
        stage.fake.reset_records()
        care(stage).check(later, listing)
        assert [(c.method, c.path, c.status) for c in stage.fake.calls] == [
            ("GET", f"/webhooks/{later.webhook_gid}", 200)
        ]
        assert current(stage, later).state == "active"

    def test_an_incomplete_listing_judges_no_missing_webhook(self, stage: Stage) -> None:
        """A workspace that could not be listed: a webhook missing from the listing is not
        judged this cycle (nor asked for), and the next full listing finds it lost."""
        registration = stage.register(stage.project())
        assert registration.webhook_gid is not None
        stage.fake.knobs.unavailable_paths = "/webhooks"
        listing = list_webhooks(stage.client, stage.redis)
        stage.fake.knobs.unavailable_paths = ""
        assert not listing.complete
        stage.fake.delete_webhook_silently(registration.webhook_gid)
        stage.fake.reset_records()
        care(stage).check(registration, listing)
        assert stage.fake.calls == []
        assert current(stage, registration).state == "active"
        stage.fake.reset_records()
        with_recreation_off = Settings.from_environ({**stage.env, "HOOKS_AUTO_RECREATE": "false"})
        WebhookCare(
            with_recreation_off,
            Clients.around(stage.settings, stage.redis, stage.client),
            stage.registry,
            clock=lambda: datetime.now(UTC),
            can_recreate=True,
        ).check(registration, list_webhooks(stage.client, stage.redis))
        assert current(stage, registration).state == "lost"

    def test_the_users_workspaces_are_kept_for_an_hour(self, stage: Stage) -> None:
        """GET /users/me once, then read from Redis with a TTL of about an hour."""
        list_webhooks(stage.client, stage.redis)
        list_webhooks(stage.client, stage.redis)
        assert [c.path for c in stage.fake.calls].count("/users/me") == 1
        assert 3000 < stage.redis.ttl(keys.USER_WORKSPACES) <= 3600


class TestNoEventStream:
    """Teams, workspaces and portfolios have no Events API stream: health care alone."""

    def higher_level(self, stage: Stage, gid: str, resource_type: str) -> Registration:
        return register(
            stage.client,
            stage.registry,
            resource_gid=gid,
            public_url=stage.settings.require_public_url(),
            filters=HIGHER_LEVEL_FILTERS,
            resource_type=resource_type,
        )

    def test_team_and_workspace_webhooks_are_never_polled(self, stage: Stage) -> None:
        """No GET /events at registration nor in any cycle for them; their health is still
        judged; a project beside them is polled as before."""
        team = stage.fake.world.add_team(stage.workspace, "Platform")
        stage.fake.reset_records()
        on_team = self.higher_level(stage, team, "team")
        on_workspace = self.higher_level(stage, stage.workspace, "workspace")
        assert not [c for c in stage.fake.calls if c.path == "/events"]
        project = stage.project()
        stage.register(project)
        poller = stage.poller(force=True)
        reports = [poller.run_cycle() for _ in range(2)]
        assert [(r.polled, r.health_only) for r in reports] == [(1, 2), (1, 2)]
        polled = {c.query.get("resource") for c in stage.fake.calls if c.path == "/events"}
        assert polled == {project}
        for registration, kind in ((on_team, "team"), (on_workspace, "workspace")):
            found = current(stage, registration)
            assert found.resource_type == kind
            assert found.state == "active"
            assert found.asana["active"] is True
            assert PollStore(stage.redis).token(registration.resource_gid) is None

    def test_a_lost_team_webhook_is_recreated_without_events(self, stage: Stage) -> None:
        """Re-creation tells register the type: still no Events API call for the team."""
        team = stage.fake.world.add_team(stage.workspace, "Platform")
        registration = self.higher_level(stage, team, "team")
        assert registration.webhook_gid is not None
        stage.fake.delete_webhook_silently(registration.webhook_gid)
        stage.poller(force=True).run_cycle()
        found = current(stage, registration)
        assert found.state == "active"
        assert found.webhook_gid not in (None, registration.webhook_gid)
        assert not [c for c in stage.fake.calls if c.path == "/events"]

    def test_the_type_in_asanas_answer_wins(self, stage: Stage) -> None:
        """A caller that does not know the type: the webhook's record at Asana names it."""
        team = stage.fake.world.add_team(stage.workspace, "Platform")
        registration = register(
            stage.client,
            stage.registry,
            resource_gid=team,
            public_url=stage.settings.require_public_url(),
            filters=HIGHER_LEVEL_FILTERS,
        )
        assert registration.resource_type == "team"
        stage.fake.reset_records()
        stage.poller(force=True).run_cycle()
        assert not [c for c in stage.fake.calls if c.path == "/events"]
