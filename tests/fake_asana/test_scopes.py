"""Teams, portfolios and project lifecycles in the fake, over real HTTP: project listings with
Asana's pagination, archived filter, lifecycle events reaching team / portfolio / workspace
webhooks, deleted projects, webhook caps, the 201 and list forms of webhooks, filters that can
never reach a project, and the concurrent-writes cap."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from asana_hooks.dev.fake_asana import FakeAsana

from .conftest import SCALE, TOKEN, WEBHOOK_FIELDS, Receiver, Seed, create_webhook, wait_for

PROJECT_FILTERS = [
    {"resource_type": "project", "action": action}
    for action in ("added", "removed", "deleted", "undeleted", "changed")
]


def all_pages(api: httpx.Client, path: str, **params: Any) -> list[list[str]]:
    """Follow ``next_page`` with limit=2; the gids of each page."""
    pages: list[list[str]] = []
    query: dict[str, Any] = {"limit": 2, **params}
    while True:
        response = api.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([item["gid"] for item in body["data"]])
        assert len(pages) < 50
        if body["next_page"] is None:
            return pages
        assert body["next_page"]["path"].startswith(path + "?")
        query = {**query, "offset": body["next_page"]["offset"]}


def flat(pages: list[list[str]]) -> list[str]:
    return [gid for page in pages for gid in page]


@dataclass
class Scopes:
    team: str
    other_team: str
    team_projects: list[str]
    other_project: str
    portfolio: str


@pytest.fixture
def scopes(fake: FakeAsana, seed: Seed) -> Scopes:
    team, projects = fake.seed_team(seed.ws, "Core", projects=5)
    other_team, (other_project,) = fake.seed_team(seed.ws, "Ops", projects=1)
    portfolio = fake.world.add_portfolio(seed.ws, "Roadmap")
    for project in projects[:3]:
        fake.world.add_project_to_portfolio(portfolio, project)
    return Scopes(team, other_team, projects, other_project, portfolio)


# ------------------------------------------------------------------------------- listings
def test_seed_team_makes_a_team_of_projects(fake: FakeAsana, seed: Seed, scopes: Scopes) -> None:
    assert len(scopes.team_projects) == 5
    for project in scopes.team_projects:
        entity = fake.world.get(project)
        assert entity is not None
        assert getattr(entity, "team", None) == scopes.team


def test_project_listings_page_with_limit_2(seed: Seed, scopes: Scopes, api: httpx.Client) -> None:
    everything = [seed.project, *scopes.team_projects, scopes.other_project]
    by_workspace = all_pages(api, "/projects", workspace=seed.ws)
    assert [len(p) for p in by_workspace] == [2, 2, 2, 1]
    assert flat(by_workspace) == everything
    assert flat(all_pages(api, f"/workspaces/{seed.ws}/projects")) == everything

    by_team = all_pages(api, "/projects", team=scopes.team)
    assert [len(p) for p in by_team] == [2, 2, 1]
    assert flat(by_team) == scopes.team_projects
    assert flat(all_pages(api, f"/teams/{scopes.team}/projects")) == scopes.team_projects
    both = all_pages(api, "/projects", workspace=seed.ws, team=scopes.other_team)
    assert flat(both) == [scopes.other_project]

    items = all_pages(api, f"/portfolios/{scopes.portfolio}/items")
    assert items == [scopes.team_projects[:2], scopes.team_projects[2:3]]


def test_listings_answer_compact_projects_and_honour_opt_fields(
    seed: Seed, scopes: Scopes, api: httpx.Client
) -> None:
    page = api.get(f"/teams/{scopes.team}/projects", params={"limit": 1}).json()
    assert page["data"] == [
        {"gid": scopes.team_projects[0], "resource_type": "project", "name": "Core 1"}
    ]
    rich = api.get(
        "/projects",
        params={"team": scopes.team, "limit": 1, "opt_fields": "archived,team.name,workspace"},
    ).json()["data"][0]
    assert rich == {
        "gid": scopes.team_projects[0],
        "archived": False,
        "team": {"gid": scopes.team, "name": "Core"},
        "workspace": {"gid": seed.ws, "resource_type": "workspace", "name": "Acme"},
    }


def test_pagination_errors(seed: Seed, api: httpx.Client) -> None:
    assert api.get("/projects", params={"workspace": seed.ws, "limit": 101}).status_code == 400
    assert api.get("/projects", params={"workspace": seed.ws, "limit": 0}).status_code == 400
    bad_offset = api.get("/projects", params={"workspace": seed.ws, "offset": "nope"})
    assert bad_offset.status_code == 400
    assert api.get("/projects").status_code == 400  # a workspace or a team is required


def test_archived_filter(fake: FakeAsana, seed: Seed, scopes: Scopes, api: httpx.Client) -> None:
    first, second, *rest = scopes.team_projects
    fake.world.archive_project(first)
    fake.world.archive_project(second, True)
    assert api.get(f"/projects/{first}").json()["data"]["archived"] is True
    assert api.get(f"/projects/{rest[0]}").json()["data"]["archived"] is False
    for path, params in (
        ("/projects", {"team": scopes.team}),
        (f"/teams/{scopes.team}/projects", {}),
    ):
        assert flat(all_pages(api, path, **params, archived="true")) == [first, second]
        assert flat(all_pages(api, path, **params, archived="false")) == rest
        assert flat(all_pages(api, path, **params)) == scopes.team_projects
    archived_in_ws = all_pages(api, "/projects", workspace=seed.ws, archived="true")
    assert flat(archived_in_ws) == [first, second]
    bad = api.get("/projects", params={"team": scopes.team, "archived": "maybe"})
    assert bad.status_code == 400
    fake.world.archive_project(first, archived=False)
    assert api.get(f"/projects/{first}").json()["data"]["archived"] is False
    assert flat(all_pages(api, "/projects", team=scopes.team, archived="true")) == [second]


def test_scope_objects_and_wrong_types(seed: Seed, scopes: Scopes, api: httpx.Client) -> None:
    team = api.get(f"/teams/{scopes.team}").json()["data"]
    assert team["gid"] == scopes.team
    assert team["resource_type"] == "team"
    assert team["name"] == "Core"
    assert team["workspace"]["gid"] == seed.ws
    folio = api.get(f"/portfolios/{scopes.portfolio}").json()["data"]
    assert (folio["resource_type"], folio["name"]) == ("portfolio", "Roadmap")
    workspace = api.get(f"/workspaces/{seed.ws}").json()["data"]
    assert (workspace["resource_type"], workspace["name"]) == ("workspace", "Acme")
    project = api.get(f"/projects/{scopes.team_projects[0]}").json()["data"]
    assert project["team"] == {"gid": scopes.team, "resource_type": "team", "name": "Core"}
    assert project["workspace"]["gid"] == seed.ws
    assert project["archived"] is False

    wrong = api.get(f"/teams/{scopes.team_projects[0]}")
    assert wrong.status_code == 404
    message = wrong.json()["errors"][0]["message"]
    assert message == f"team: Unknown object: {scopes.team_projects[0]}"
    assert api.get(f"/teams/{scopes.team_projects[0]}/projects").status_code == 404
    assert api.get(f"/portfolios/{scopes.team}/items").status_code == 404
    assert api.get("/projects", params={"team": seed.ws}).status_code == 404


# ------------------------------------------------------------------------ lifecycle events
def events_of(fake: FakeAsana, webhook: str) -> list[tuple[Any, ...]]:
    """(action, resource gid, parent gid, change field) of every event sent to ``webhook``."""
    out: list[tuple[Any, ...]] = []
    for record in fake.deliveries:
        if record.webhook_gid != webhook or record.handshake or record.heartbeat:
            continue
        if record.duplicate:
            continue
        for event in record.events:
            parent = event["parent"]["gid"] if event["parent"] else None
            change = event.get("change", {}).get("field")
            out.append((event["action"], event["resource"]["gid"], parent, change))
    return out


def test_lifecycle_events_reach_team_portfolio_and_workspace_webhooks(
    fake: FakeAsana, seed: Seed, scopes: Scopes, api: httpx.Client, receiver: Receiver
) -> None:
    a, b, folio, ws = scopes.team, scopes.other_team, scopes.portfolio, seed.ws
    hooks: dict[str, str] = {}
    for name, resource in (("a", a), ("b", b), ("folio", folio), ("ws", ws)):
        response = create_webhook(api, resource, f"{receiver.url}&scope={name}", PROJECT_FILTERS)
        assert response.status_code == 201, response.text
        hooks[name] = response.json()["data"]["gid"]
    w = fake.world
    p = w.add_project("Moving", ws, team=a)
    w.add_project_to_portfolio(folio, p)
    w.archive_project(p)
    w.move_project(p, team=b)
    w.delete_project(p)
    w.undelete_project(p)
    w.remove_project_from_portfolio(folio, p)
    w.add_task("tasks never reach higher-level webhooks", projects=[p])
    fake.wait_idle()

    added_a = ("added", p, a, None)
    to_folio = ("added", p, folio, None)
    archived = ("changed", p, None, "archived")
    team_changed = ("changed", p, None, "team")
    deleted, undeleted = ("deleted", p, None, None), ("undeleted", p, None, None)
    out_of_folio = ("removed", p, folio, None)
    assert events_of(fake, hooks["a"]) == [added_a, to_folio, archived, ("removed", p, a, None)]
    assert events_of(fake, hooks["b"]) == [
        ("added", p, b, None),
        team_changed,
        deleted,
        undeleted,
        out_of_folio,
    ]
    assert events_of(fake, hooks["folio"]) == [
        to_folio,
        archived,
        team_changed,
        deleted,
        undeleted,
        out_of_folio,
    ]
    assert events_of(fake, hooks["ws"]) == [
        added_a,
        to_folio,
        archived,
        team_changed,
        deleted,
        undeleted,
        out_of_folio,
    ]


def test_changed_team_names_the_new_team(
    fake: FakeAsana, seed: Seed, scopes: Scopes, api: httpx.Client, receiver: Receiver
) -> None:
    project = scopes.team_projects[0]
    gid = create_webhook(api, project, receiver.url).json()["data"]["gid"]
    fake.world.move_project(project, team=scopes.other_team)
    fake.wait_idle()
    events = [e for r in fake.deliveries if r.webhook_gid == gid for e in r.events]
    assert [(e["action"], e.get("change")) for e in events] == [
        (
            "changed",
            {
                "field": "team",
                "action": "changed",
                "new_value": {"gid": scopes.other_team, "resource_type": "team"},
            },
        )
    ]
    moved = api.get(f"/projects/{project}").json()["data"]
    assert moved["team"]["gid"] == scopes.other_team
    assert flat(all_pages(api, f"/teams/{scopes.other_team}/projects")) == [
        project,  # listings keep creation order
        scopes.other_project,
    ]
    assert project not in flat(all_pages(api, f"/teams/{scopes.team}/projects"))
    other_ws = fake.world.add_workspace("Elsewhere")
    foreign = fake.world.add_team(other_ws, "Foreign")
    with pytest.raises(LookupError):
        fake.world.move_project(project, team=foreign)


def test_a_deleted_project_404s_leaves_listings_and_its_webhooks_fall_silent(
    fake: FakeAsana, seed: Seed, scopes: Scopes, api: httpx.Client, receiver: Receiver
) -> None:
    project = scopes.team_projects[0]  # in the team and the portfolio
    task = fake.world.add_task("inside", projects=[project])
    hook = create_webhook(api, project, receiver.url).json()["data"]["gid"]
    fake.world.delete_project(project)
    fake.world.update_task(task, name="renamed while the project is deleted")
    fake.wait_idle()
    assert [e[0] for e in events_of(fake, hook)] == ["deleted"]

    missing = api.get(f"/projects/{project}")
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["message"] == f"project: Unknown object: {project}"
    assert project not in flat(all_pages(api, "/projects", workspace=seed.ws))
    assert project not in flat(all_pages(api, f"/teams/{scopes.team}/projects"))
    assert project not in flat(all_pages(api, f"/portfolios/{scopes.portfolio}/items"))
    assert hook in fake.webhooks  # Asana deletes it 72 h (scaled) later, not at once

    fake.world.undelete_project(project)
    fake.world.update_task(task, name="renamed again")
    fake.wait_idle()
    assert [e[0] for e in events_of(fake, hook)] == ["deleted", "undeleted", "changed"]
    assert api.get(f"/projects/{project}").status_code == 200
    assert project in flat(all_pages(api, f"/teams/{scopes.team}/projects"))
    assert project in flat(all_pages(api, f"/portfolios/{scopes.portfolio}/items"))


def test_mutations_without_a_change_emit_nothing(
    fake: FakeAsana, scopes: Scopes, api: httpx.Client, receiver: Receiver
) -> None:
    project = scopes.team_projects[0]
    hook = create_webhook(api, project, receiver.url).json()["data"]["gid"]
    w = fake.world
    w.archive_project(project, False)  # already unarchived
    w.move_project(project, team=scopes.team)  # already there
    w.undelete_project(project)  # not deleted
    w.remove_project_from_portfolio(scopes.portfolio, scopes.team_projects[4])  # not in it
    fake.wait_idle()
    assert events_of(fake, hook) == []


def test_control_routes_drive_project_lifecycles(
    fake: FakeAsana, seed: Seed, api: httpx.Client, receiver: Receiver
) -> None:
    hook = create_webhook(api, seed.ws, receiver.url, PROJECT_FILTERS).json()["data"]["gid"]
    with httpx.Client(base_url=fake.base_url + "/_fake", trust_env=False) as control:

        def post(path: str, body: dict[str, Any] | None = None) -> Any:
            response = control.post(path, json=body or {})
            assert response.status_code == 200, response.text
            return response.json()

        made_team = post("/teams", {"workspace": seed.ws, "name": "Core", "projects": 2})
        team = made_team["gid"]
        assert len(made_team["projects"]) == 2
        other = post("/teams", {"workspace": seed.ws, "name": "Ops"})["gid"]
        folio = post("/portfolios", {"workspace": seed.ws, "name": "Roadmap"})["gid"]
        project = post("/projects", {"workspace": seed.ws, "name": "New", "team": team})["gid"]
        post(f"/portfolios/{folio}/add-project", {"project": project})
        post(f"/projects/{project}/archive")
        post(f"/projects/{project}/move", {"team": other})
        world = control.get("/world").json()
        (row,) = [p for p in world["projects"] if p["gid"] == project]
        assert (row["team"], row["archived"], row["deleted"]) == (other, True, False)
        assert {"gid": folio, "name": "Roadmap", "projects": [project]} in world["portfolios"]
        post(f"/projects/{project}/archive", {"archived": False})
        post(f"/projects/{project}/delete")
        assert api.get(f"/projects/{project}").status_code == 404
        post(f"/projects/{project}/undelete")
        post(f"/portfolios/{folio}/remove-project", {"project": project})
        assert control.post(f"/projects/{project}/move", json={"team": "999"}).status_code == 400
        bad = control.post(f"/projects/{project}/archive", json={"archived": "yes"})
        assert bad.status_code == 400
    final = api.get(f"/projects/{project}").json()["data"]
    assert (final["archived"], final["team"]["gid"]) == (False, other)
    assert api.get(f"/portfolios/{folio}/items").json()["data"] == []
    fake.wait_idle()
    first, second = made_team["projects"]
    assert events_of(fake, hook) == [
        ("added", first, team, None),
        ("added", second, team, None),
        ("added", project, team, None),
        ("added", project, folio, None),
        ("changed", project, None, "archived"),
        ("changed", project, None, "team"),  # removed/added of a move reach the teams only
        ("changed", project, None, "archived"),
        ("deleted", project, None, None),
        ("undeleted", project, None, None),
        ("removed", project, folio, None),
    ]


# -------------------------------------------------------------------------------- webhooks
def test_201_shows_the_resource_without_resource_type_get_and_list_keep_it(
    seed: Seed, api: httpx.Client, receiver: Receiver
) -> None:
    created = create_webhook(api, seed.project, receiver.url)
    assert created.status_code == 201
    data = created.json()["data"]
    assert data["resource"] == {"gid": seed.project, "name": "Launch"}
    assert set(data) == WEBHOOK_FIELDS
    full = {"gid": seed.project, "resource_type": "project", "name": "Launch"}
    assert api.get(f"/webhooks/{data['gid']}").json()["data"]["resource"] == full
    listed = api.get("/webhooks", params={"workspace": seed.ws}).json()["data"]
    assert [w["resource"] for w in listed] == [full]


def test_get_webhooks_lists_full_objects_in_pages(
    fake: FakeAsana, seed: Seed, scopes: Scopes, api: httpx.Client, receiver: Receiver
) -> None:
    gids = []
    for project in scopes.team_projects:
        response = create_webhook(
            api, project, receiver.url, [{"resource_type": "task", "action": "added"}]
        )
        gids.append(response.json()["data"]["gid"])
    fake.wait_idle()
    pages = all_pages(api, "/webhooks", workspace=seed.ws)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert flat(pages) == gids
    listed = api.get("/webhooks", params={"workspace": seed.ws, "limit": 100}).json()["data"]
    for item in listed:
        one = api.get(f"/webhooks/{item['gid']}").json()["data"]
        assert set(item) == WEBHOOK_FIELDS
        assert item == one
        assert item["filters"] == [{"resource_type": "task", "action": "added"}]
        assert item["last_success_at"] is not None  # the first heartbeat went through
    assert api.get("/webhooks", params={"workspace": seed.ws, "limit": 101}).status_code == 400
    narrow = api.get(
        "/webhooks",
        params={"workspace": seed.ws, "resource": scopes.team_projects[1], "opt_fields": "target"},
    ).json()["data"]
    assert narrow == [{"gid": gids[1], "target": receiver.url}]


def test_caps_refuse_with_403(receiver: Receiver) -> None:
    with FakeAsana(
        token=TOKEN, time_scale=SCALE, max_webhooks_per_resource=2, max_webhooks_per_token=3
    ) as fake:
        w = fake.world
        ws = w.add_workspace("W")
        p, q, r = (w.add_project(name, ws) for name in "PQR")
        fake.add_token("other-token")
        headers = {"Authorization": f"Bearer {TOKEN}"}
        other_headers = {"Authorization": "Bearer other-token"}
        with (
            httpx.Client(base_url=fake.api_url, headers=headers, trust_env=False) as api,
            httpx.Client(base_url=fake.api_url, headers=other_headers, trust_env=False) as other,
        ):
            first = create_webhook(api, p, receiver.url + "&n=1")
            assert first.status_code == 201
            assert create_webhook(other, p, receiver.url + "&n=2").status_code == 201
            handshakes = sum(d.handshake for d in fake.deliveries)
            per_resource = create_webhook(api, p, receiver.url + "&n=3")
            assert per_resource.status_code == 403
            message = per_resource.json()["errors"][0]["message"]
            assert message == f"resource: {p} has reached the limit of 2 webhooks."
            assert sum(d.handshake for d in fake.deliveries) == handshakes  # refused first

            assert create_webhook(api, q, receiver.url).status_code == 201
            assert create_webhook(api, r, receiver.url).status_code == 201
            per_token = create_webhook(api, r, receiver.url + "&n=4")
            assert per_token.status_code == 403
            assert per_token.json()["errors"][0]["message"] == (
                "You have reached the limit of 3 webhooks for this app and user."
            )
            assert len(fake.webhooks) == 4
            # the other token has its own per-token count, but the resource cap is shared
            assert create_webhook(other, q, receiver.url + "&n=5").status_code == 201
            assert create_webhook(other, q, receiver.url + "&n=6").status_code == 403

            assert api.delete(f"/webhooks/{first.json()['data']['gid']}").status_code == 200
            assert create_webhook(api, r, receiver.url + "&n=7").status_code == 201
        fake.knobs.max_webhooks_per_token = 10000
        assert fake.knobs.to_json()["max_webhooks_per_resource"] == 2


def test_default_caps_are_asanas() -> None:
    knobs = FakeAsana().knobs
    assert (knobs.max_webhooks_per_resource, knobs.max_webhooks_per_token) == (1000, 10000)
    assert knobs.max_concurrent_writes == 15


@pytest.mark.parametrize(
    "resource_type",
    ["workspace", "team", "portfolio", "goal", "team_membership", "workspace_membership"],
)
def test_project_webhook_refuses_filters_that_never_reach_a_project(
    resource_type: str, seed: Seed, api: httpx.Client, receiver: Receiver
) -> None:
    filters = [{"resource_type": resource_type, "action": "added"}]
    response = create_webhook(api, seed.project, receiver.url, filters)
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"].startswith("Invalid filter")
    assert receiver.received == []  # refused before any handshake
    ok = create_webhook(api, seed.project, receiver.url, [{"resource_type": "task"}])
    assert ok.status_code == 201
    gid = ok.json()["data"]["gid"]
    updated = api.put(f"/webhooks/{gid}", json={"data": {"filters": filters}})
    assert updated.status_code == 400
    assert updated.json()["errors"][0]["message"].startswith("Invalid filter")


def test_higher_level_rules_unchanged(seed: Seed, api: httpx.Client, receiver: Receiver) -> None:
    team = api.get(f"/workspaces/{seed.ws}").json()["data"]["gid"]
    assert create_webhook(api, team, receiver.url).status_code == 400  # filters required
    task_filter = [{"resource_type": "task", "action": "added"}]
    assert create_webhook(api, team, receiver.url, task_filter).status_code == 400
    assert create_webhook(api, team, receiver.url, PROJECT_FILTERS).status_code == 201


# ------------------------------------------------------------------------ concurrent writes
def test_concurrent_writes_are_capped(fake: FakeAsana, seed: Seed, api: httpx.Client) -> None:
    fake.knobs.max_concurrent_writes = 2
    fake.knobs.api_latency = 0.4  # every answer holds its slot this long
    statuses: list[int] = []
    lock = threading.Lock()

    def write() -> None:
        response = api.post("/tasks", json={"data": {"name": "x", "workspace": seed.ws}})
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=write) for _ in range(3)]
    for thread in threads:
        thread.start()
    wait_for(lambda: fake.limiter.writes_in_flight(TOKEN) == 2)
    read = api.get(f"/projects/{seed.project}")  # reads have their own cap
    for thread in threads:
        thread.join()
    assert read.status_code == 200
    assert sorted(statuses) == [201, 201, 429]
    rejected = [c for c in fake.calls if c.status == 429]
    assert len(rejected) == 1
    assert rejected[0].response_headers["retry-after"]
    assert fake.limiter.writes_in_flight(TOKEN) == 0
