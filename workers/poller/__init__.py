"""The fallback poller: Events API subscriptions and webhook health. I/O edge (Asana, Redis).

Asana's webhooks are at-most-once and cannot be replayed, and Asana deletes a webhook after
24 h of failed deliveries (../shared/reference/asana-webhooks.md). Each cycle, for every
resource a registered webhook watches, under that resource's lock (``store``):

1. health (``webhooks``): each of its webhooks is judged from Asana's object for it, found in
   the cycle's one listing (``listing``: ``GET /webhooks?workspace=`` in every workspace of the
   token's user, 100 webhooks a page, instead of one ``GET /webhooks/{gid}`` per webhook); one
   missing from the listing is confirmed by its own GET before it is called lost. Asana's
   delivery fields are stored beside ours, the state moves to ``failing`` / ``active`` /
   ``lost`` / ``deleted`` (``asana_hooks.health``), and a lost webhook is re-created when
   ``HOOKS_AUTO_RECREATE`` is on;
2. events (``loop``): ``GET /events`` from the stored sync token, following ``has_more``,
   for tasks, projects and goals only (a team, workspace or portfolio has no stream: its
   webhooks get step 1 alone);
   every page goes into the same ``process_delivery`` job as webhook deliveries (source
   ``poller``), so what a webhook already delivered is dropped there as a duplicate. The
   token is stored after each page is enqueued: a crash re-reads the page, which dedupe
   absorbs;
3. a 412 means events may be lost: on a stored token, since the last good poll; with no
   stored token (Redis flushed or restored, a first call that failed), since the webhook's
   creation or the last good poll, whichever is later (``asana_hooks.subscription``). The
   fresh token is stored together with ``resync_since`` and the gap is crawled (``resync``,
   planned by ``plan``). A crash during the crawl leaves ``resync_since`` behind, and the
   next cycle crawls again.

A resource's first token is taken by ``register`` before its webhook exists, so there is no
first-poll blind window. The gap while a webhook was missing needs no crawl of its own: the
Events API subscription is independent of the webhook and keeps running, so the poll right
after a re-creation recovers it event by event; if the token was lost meanwhile, the
re-creation marks the gap for a crawl from the last good poll. Every call goes through
``AsanaClient``, so polling shares the workers' budget and 429 pauses, in the budget's
``background`` lane (``asana_hooks.ratelimit``): it takes only what the workers' rehydration
leaves, and yields to it, so a poll never delays a change by more than one request's time.

Cost of an idle webhook per hour at the default 300 s interval: 12 Events API polls, plus its
share of 12 listings (ceil(N/100) pages per workspace for N webhooks) and of one
``GET /users/me`` an hour; about 12.1 requests over 500 webhooks (24 before the listing).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from asana_hooks.asana_clients import Clients
from asana_hooks.redis_conn import connect
from asana_hooks.settings import Settings
from workers.poller.loop import Poller

log = logging.getLogger(__name__)


def main(settings: Settings, *, once: bool = False) -> None:
    """`asana-hooks poll [--once]`: the process edge."""
    connection = connect(settings.redis_url, socket_timeout=5.0)
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        log.info("poller.stopping signal=%d", signum)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    clients = Clients(settings, connection, lane="background")
    try:
        Poller(settings, connection, clients, force=once).run(stop=stop, once=once)
    finally:
        clients.close()
