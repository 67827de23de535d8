"""Drop what was already taken: repeated deliveries and repeated events. I/O edge (Redis, Lua).

Two levels, both keyed so that a retry of the same RQ job is never its own duplicate:

- A delivery (``keys.delivery_seen``, 48 h): Asana resends a whole body it thinks failed.
  The key holds the id of the job that took it; another job with the same digest is a
  duplicate, the same job retried (after a crash, or by ``failed replay``) is not.
- An event (fingerprint from asana_hooks.events): first a short-lived claim
  (``keys.event_claim``, holding the job id), then, once the event sits in its batch, the
  done mark (``keys.event_done``, 48 h) written by the batching script in the same step.
  A job that fails releases its claims, so its retry is not taken for a duplicate; a job
  that is killed leaves claims its own retry recognises, and that expire by themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from asana_hooks import keys, lua

DONE_TTL_SECONDS = 48 * 3600
"""Keep delivery digests and processed-event marks 48 h (Asana retries for up to 24 h)."""

CLAIM_TTL_SECONDS = 300
"""A processing claim lives five minutes: longer than any job, short enough to heal."""

_CLAIM = lua.load(__file__, "dedupe_claim")
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

    def __init__(self, connection: redis.Redis) -> None:
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
        delivery = _delivery_key(target_id, digest)
        event_keys = [k for fp in fingerprints for k in (keys.event_claim(fp), keys.event_done(fp))]
        result = self._claim(
            keys=([delivery] if delivery else []) + event_keys,
            args=[job_id, CLAIM_TTL_SECONDS, DONE_TTL_SECONDS, 1 if delivery else 0],
        )
        if result == -1:
            return Claim(duplicate_delivery=True, claimed=tuple(False for _ in fingerprints))
        return Claim(duplicate_delivery=False, claimed=tuple(bool(flag) for flag in result))

    def release(
        self,
        *,
        job_id: str,
        target_id: str | None,
        digest: str | None,
        fingerprints: list[str],
    ) -> int:
        """Give back this job's delivery key and event claims (not its done marks)."""
        delivery = _delivery_key(target_id, digest)
        claim_keys = [keys.event_claim(fp) for fp in fingerprints]
        return int(self._release(keys=([delivery] if delivery else []) + claim_keys, args=[job_id]))


def _delivery_key(target_id: str | None, digest: str | None) -> str | None:
    """Poller pages have no digest: only their events are deduplicated."""
    if not digest:
        return None
    return keys.delivery_seen(target_id or "-", digest)
