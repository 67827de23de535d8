"""Fetch each closed batch's resource as Asana returns it now. I/O edge (Asana via the client).

One GET per batch, with the fields settings ask for; when several batches are ready at once,
``POST /batch`` with ten GETs per request (the budget counts each action, as Asana does).
404 becomes ``not_found`` (a deleted task, a story removed by consolidation) and 403
``forbidden``: answers, not failures. Failures come back as errors for the flush to handle (a
429 has already paused every process of that connection): it defers batches whose connection
has no room (a 429, a used budget), parks a refused connection's (a 401), and raises the rest
(5xx, timeouts) so RQ retries them with backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from asana_hooks.asana_client import AsanaClient, BatchAction
from asana_hooks.asana_errors import AsanaError, Forbidden, NotFound, RateLimited
from workers.model import ClosedBatch, Fetched
from workers.resources import opt_fields, resource_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """The fetch result for one batch: what to emit, or the error that stops it for now."""

    fetched: Fetched | None = None
    error: AsanaError | None = None


def rehydrate(
    client: AsanaClient,
    batches: Sequence[ClosedBatch],
    *,
    overrides: Mapping[str, str],
) -> dict[str, Outcome]:
    """Outcome per batch id. Deleted batches and types without a GET cost no request."""
    outcomes: dict[str, Outcome] = {}
    wanted: list[tuple[ClosedBatch, str, list[str]]] = []
    for batch in batches:
        path = resource_path(batch.resource_type, batch.gid)
        if batch.deleted:
            outcomes[batch.batch_id] = Outcome(Fetched("deleted"))
        elif path is None:
            outcomes[batch.batch_id] = Outcome(Fetched("ok"))
        else:
            wanted.append((batch, path, opt_fields(batch.resource_type, overrides)))
    if len(wanted) == 1:
        batch, path, fields = wanted[0]
        outcomes[batch.batch_id] = _answer(lambda: _get_one(client, path, fields))
    elif wanted:
        actions = [BatchAction.get(path, fields=fields) for _, path, fields in wanted]
        answer = _answer(lambda: _get_many(client, actions))
        for index, (batch, _, _) in enumerate(wanted):
            outcomes[batch.batch_id] = (
                answer.per_action[index] if isinstance(answer, _Many) else answer
            )
    return outcomes


@dataclass(frozen=True)
class _Many(Outcome):
    per_action: tuple[Outcome, ...] = ()


def _get_one(client: AsanaClient, path: str, fields: list[str]) -> Outcome:
    params = {"opt_fields": ",".join(fields)} if fields else None
    try:
        body = client.get(path, params)
    except NotFound:
        return Outcome(Fetched("not_found"))
    except Forbidden:
        return Outcome(Fetched("forbidden"))
    data = body.get("data")
    return Outcome(Fetched("ok", data if isinstance(data, dict) else None))


def _get_many(client: AsanaClient, actions: list[BatchAction]) -> _Many:
    results = client.batch(actions)
    per_action = []
    for action, result in zip(actions, results, strict=True):
        error = result.error(action.relative_path)
        if error is None:
            data = result.data
            per_action.append(Outcome(Fetched("ok", data if isinstance(data, dict) else None)))
        elif isinstance(error, NotFound):
            per_action.append(Outcome(Fetched("not_found")))
        elif isinstance(error, Forbidden):
            per_action.append(Outcome(Fetched("forbidden")))
        else:
            per_action.append(Outcome(error=error))
    return _Many(per_action=tuple(per_action))


def _answer(call: Callable[[], Outcome]) -> Outcome:
    """``call``'s outcome, or the error that stops it for now (the flush decides: a 429 or a
    full budget defers, a 401 parks, the rest is retried)."""
    try:
        return call()
    except RateLimited as exc:
        log.info("rehydrate.rate_limited retry_after=%.1f", exc.retry_after)
        return Outcome(error=exc)
    except AsanaError as exc:
        return Outcome(error=exc)
