"""Resume the work parked for a connection once it is connected again. I/O edge (Redis, Asana).

``workers.jobs.resume_connection`` runs this (asana_hooks.parked_work asks for it). Each parked
owner is flushed in turn, oldest first, as the flush job that parked it would have been, its
resources' leases taken again first, so a resource's entries keep their order. A connection
still refused parks its batches again and the resume stops there: the next time it is
connected, the next resume goes on.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from asana_hooks import parked_work
from workers.flush import flush, gid_of
from workers.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResumeResult:
    """What one resume job did (kept as the RQ job's result)."""

    owners: int = 0
    emitted: int = 0
    still_refused: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resume(runtime: Runtime, connection_id: str) -> ResumeResult:
    owners = emitted = 0
    for owner in parked_work.owners(runtime.redis, connection_id):
        parked = runtime.batcher.owned(owner)
        runtime.batcher.hold_resources([(gid_of(batch_id), batch_id) for batch_id in parked])
        result = flush(runtime, job_id=owner, take_due=False, defer=False)
        owners += 1
        emitted += result.emitted
        if result.state == "parked" and parked_work.connection_of(owner) == connection_id:
            log.warning("resume.still_refused connection=%s emitted=%d", connection_id, emitted)
            return ResumeResult(owners, emitted, still_refused=True)
    log.info("resume.done connection=%s owners=%d emitted=%d", connection_id, owners, emitted)
    return ResumeResult(owners, emitted)
