"""Drop what was already taken: repeated deliveries and repeated events. I/O edge (Redis, Lua).

Two levels, both keyed so that a retry of the same RQ job is never its own duplicate:

- A delivery: Asana resends a whole body it thinks failed. The job taking it holds a
  short-lived claim (``keys.delivery_claim``, its job id); once its events sit in their
  batches, the batching script records the delivery in the dedupe window with the job's
  tag (workers.window). Another job with the same digest is a duplicate; the same job
  retried (after a crash, or by ``failed replay``) finds its own claim or its own tag.
- An event (fingerprint from asana_hooks.events): first a short-lived claim
  (``keys.event_claim``, holding the job id), then, once the event sits in its batch, its
  done record in the window, written by the batching script in the same step. A job that
  fails releases its claims, so its retry is not taken for a duplicate; a job that is
  killed leaves claims its own retry recognises, and that expire by themselves.

Each claim is one script and one round trip, whatever the number of buckets it reads. For
48 h after the first claim of this layout (``keys.DEDUPE_LAYOUT_SINCE``) the keys of the
earlier one (``keys.delivery_seen``, ``keys.event_done``, kept 48 h) are read too, so what
was done before an upgrade stays done; nothing writes them any more. (The batch step needs
none: it only adds events its job still holds the claim of, and the claim looked.)
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from asana_hooks import keys, lua
from workers.window import Window, job_tag

EARLIER_LAYOUT_SECONDS = 48 * 3600
"""The earlier layout kept its marks 48 h: read them that long after this one started."""

CLAIM_TTL_SECONDS = 300
"""A processing claim lives five minutes: longer than any job, short enough to heal."""

_CLAIM = lua.load(__file__, "marks") + lua.load(__file__, "dedupe_claim")
_RELEASE = lua.load(__file__, "dedupe_release")


@dataclass(frozen=True)
class Claim:
    """What one job may process: ``claimed[i]`` for the i-th event of its delivery."""

    duplicate_delivery: bool
    claimed: tuple[bool, ...]

    @property
    def duplicates(self) -> int:
        return sum(1 for flag in self.claimed if not flag)


class Deduper:
    """Claims deliveries and events for one job, and releases them if the job fails."""

    def __init__(self, connection: redis.Redis, window: Window | None = None) -> None:
        self.window = window or Window()
        self._redis = connection
        self._layout_since: int | None = None
        self._claim = connection.register_script(_CLAIM)
        self._release = connection.register_script(_RELEASE)

    def claim(
        self,
        *,
        job_id: str,
        target_id: str | None,
        digest: str | None,
        fingerprints: list[str],
    ) -> Claim:
        span = self.window.span()
        legacy = self._reads_earlier_layout()
        script_keys: list[str | bytes] = []
        args: list[str | bytes | int] = [job_id, CLAIM_TTL_SECONDS, span.reads, int(legacy)]
        if digest:
            target = target_id or "-"
            mark = self.window.delivery(target, digest, span)
            script_keys.append(keys.delivery_claim(target, digest))
            if legacy:
                script_keys.append(keys.delivery_seen(target, digest))
            script_keys += mark.keys
            args += ["1", mark.record, job_tag(job_id)]
        else:
            args += ["0", "", ""]
        for fingerprint in fingerprints:
            mark = self.window.event(fingerprint, span)
            script_keys.append(keys.event_claim(fingerprint))
            if legacy:
                script_keys.append(keys.event_done(fingerprint))
            script_keys += mark.keys
            args.append(mark.record)
        result = self._claim(keys=script_keys, args=args)
        if result == -1:
            return Claim(duplicate_delivery=True, claimed=tuple(False for _ in fingerprints))
        return Claim(duplicate_delivery=False, claimed=tuple(bool(flag) for flag in result))

    def _reads_earlier_layout(self) -> bool:
        """True within EARLIER_LAYOUT_SECONDS of the first claim of this layout in this Redis
        (``keys.DEDUPE_LAYOUT_SINCE``, written once): the earlier keys may still be there."""
        if self._layout_since is None:
            now = int(self.window.now())
            self._redis.set(keys.DEDUPE_LAYOUT_SINCE, now, nx=True)
            since = self._redis.get(keys.DEDUPE_LAYOUT_SINCE)
            self._layout_since = int(since) if since is not None else now
        return self.window.now() < self._layout_since + EARLIER_LAYOUT_SECONDS

    def release(
        self,
        *,
        job_id: str,
        target_id: str | None,
        digest: str | None,
        fingerprints: list[str],
    ) -> int:
        """Give back this job's delivery and event claims (not its done records). Poller
        pages have no digest: only their events are deduplicated."""
        claim_keys = [keys.event_claim(fp) for fp in fingerprints]
        if digest:
            target = target_id or "-"
            claim_keys = [
                keys.delivery_claim(target, digest),
                keys.delivery_seen(target, digest),  # a job taken before an upgrade
                *claim_keys,
            ]
        return int(self._release(keys=claim_keys, args=[job_id]))
