"""A faithful fake Asana served over real HTTP on 127.0.0.1 (tests and ``--demo``).

It follows Asana's documentation for webhooks (handshake, signatures, batching, filters,
retries with backoff, deletion after 24 h, heartbeats every 8 h, 410), the Events API (sync
tokens, 412, 100-event pages, ``has_more``), the resource endpoints the project reads
(tasks, stories, projects, sections, users, workspaces, teams, portfolios, batch; project
listings by workspace, team and portfolio with ``archived``), webhook caps and rate limiting
(budget, concurrent reads and writes). Every
Asana-side duration is multiplied by ``time_scale``. It never touches Redis and sends
traffic only to 127.0.0.1 and the webhook targets it is given. This module does no I/O.

Python API::

    from asana_hooks.dev.fake_asana import FakeAsana
    with FakeAsana(token="test-token", time_scale=0.001) as fake:   # or fake.start()/stop()
        fake.api_url                      # "http://127.0.0.1:PORT/api/1.0"
        w = fake.world
        ws = w.add_workspace("Acme"); u = w.add_user("Greg", workspace=ws)
        p = w.add_project("Launch", workspace=ws); s = w.add_section(p, "To do")
        cf = w.add_custom_field(ws, "Note", type="text")    # text | number | enum
        t = w.add_task("Write docs", projects=[p], section=s, by=u)
        w.update_task(t, by=u, name="...", completed=True)  # one `changed` event per field
        w.set_custom_field(t, cf, "abc", by=u); story = w.add_comment(t, "hi", by=u)
        w.add_subtask(t, "child", by=u); w.move_task_to_section(t, s2, by=u)
        w.add_task_to_project(t, p2, by=u); w.remove_task_from_project(t, p2, by=u)
        w.delete_task(t, by=u); w.undelete_task(t, by=u)
        w.edit_comment(story, "..", by=u); w.delete_comment(story, by=u)
        w.remove_story(story)             # story consolidation: 404, no event
        w.hide(gid); w.unhide(gid)        # 403 for the token
        w.add_team / add_portfolio / add_project_to_portfolio / add_goal  (higher-level)
        team, projects = fake.seed_team(ws, "Core", projects=5)   # or w.seed_team(...)
        w.archive_project(p, archived=True, by=u)           # changed, field "archived"
        w.move_project(p, team=t2, by=u)   # removed (old team) / added (new) / changed "team"
        w.delete_project(p, by=u); w.undelete_project(p, by=u)   # 404 and silent while deleted
        w.remove_project_from_portfolio(folio, p, by=u)     # removed, parent: the portfolio
        FakeAsana(max_webhooks_per_resource=5, max_webhooks_per_token=20,
                  max_concurrent_writes=15)                 # knobs; 403 / 429 over them
        fake.knobs.drop_rate = 0.3        # see records.Knobs for every knob
        fake.wait_idle(timeout=5.0); fake.send_heartbeat(); fake.expire_sync_tokens()
        fake.delete_webhook_silently(gid); fake.add_token("other"); fake.reset_records()
        fake.oauth_url                    # "http://127.0.0.1:PORT/-/" (ASANA_OAUTH_URL)
        fake.oauth.register_app("client-id", "secret"); fake.oauth.approve_as = u
        fake.oauth.token_requests         # ["authorization_code", "refresh_token", ...]
        fake.oauth.revoke(refresh_token); fake.oauth.revoke_user(u)   # see .oauth
        fake.calls; fake.deliveries; fake.dropped; fake.webhooks; fake.timing

``fake.calls`` paths are relative to the API root (``/tasks/123``); ``fake.deliveries``
includes handshakes (``.handshake``), heartbeats (``.heartbeat``) and duplicate sends
(``.duplicate``); deliveries swallowed by ``drop_rate`` are in ``fake.dropped`` instead.

Control HTTP API (no auth; JSON bodies; errors answer 400 ``{"error": ...}``)::

    GET  /_fake/health                      {"ok": true}
    GET  /_fake/world                       workspaces, users, projects+sections, fields, tasks
    POST /_fake/seed                        demo world (idempotent) -> gids
    POST /_fake/tasks                       {name, project?, section?, notes?, assignee?,
                                             due_on?, parent?, by?} -> {"gid"}
    POST /_fake/tasks/{gid}/update          {name?, notes?, completed?, assignee?, due_on?,
                                             section?, custom_fields?: {field_gid: value}, by?}
    POST /_fake/tasks/{gid}/comment         {text, by?} -> {"gid"} (the story)
    POST /_fake/tasks/{gid}/delete          {by?}
    POST /_fake/stories/{gid}/remove        story consolidation (404 afterwards)
    POST /_fake/teams                       {workspace, name?, projects?: N, by?}
                                            -> {"gid", "projects": [gids]}
    POST /_fake/portfolios                  {workspace, name?} -> {"gid"}
    POST /_fake/projects                    {workspace, name?, team?, notes?, by?} -> {"gid"}
    POST /_fake/projects/{gid}/archive      {archived?: true, by?}
    POST /_fake/projects/{gid}/move         {team, by?}
    POST /_fake/projects/{gid}/delete       {by?}    POST /_fake/projects/{gid}/undelete {by?}
    POST /_fake/portfolios/{gid}/add-project     {project, by?}
    POST /_fake/portfolios/{gid}/remove-project  {project, by?}
    POST /_fake/objects/{gid}/hide          403 afterwards
    GET  /_fake/knobs   POST /_fake/knobs   {knob: value, ...} -> all knobs
    POST /_fake/heartbeat                   {webhook?} -> {"webhooks": [gids]}
    POST /_fake/expire-sync-tokens
    GET  /_fake/webhooks                    full webhook objects
    POST /_fake/webhooks/{gid}/delete       as if Asana deleted it
    GET  /_fake/calls?since=N   GET /_fake/deliveries?since=N   POST /_fake/reset-records

``by`` defaults to the first user. ``python -m asana_hooks.dev.fake_asana [--port P] [--token T]
[--time-scale X] [--no-seed]`` runs it standalone and prints its api_url (then the seeded
gids as JSON).
"""

from __future__ import annotations

from .records import CallRecord, DeliveryRecord, Knobs
from .server import FakeAsana
from .world import World, WorldError

__all__ = ["CallRecord", "DeliveryRecord", "FakeAsana", "Knobs", "World", "WorldError"]
