"""Asana's refusals, and an unreachable receiver, as one or two lines that say what to do. Pure.

Every operator command that calls Asana turns an ``AsanaError`` into a ``Failure`` here, so
a bad token reads the same everywhere and never ends in a traceback.
"""

from __future__ import annotations

from asana_hooks.asana_errors import (
    AsanaError,
    AsanaUnavailable,
    BadToken,
    BudgetExhausted,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimited,
)
from asana_hooks.cli.context import EXIT_ASANA, EXIT_CONFIG, Failure

NGROK_HELP = (
    "Asana delivers to the webhook target from the internet and calls it during "
    "`webhooks create` for the handshake, so the receiver must already run and be "
    "reachable at HOOKS_PUBLIC_URL; Asana refuses localhost and private addresses (403) "
    "because it cannot reach them. On your machine: run `asana-hooks dev --tunnel` (with "
    "NGROK_AUTHTOKEN set) and run this command again in the same directory; or run your "
    "own `ngrok http 8000`, export HOOKS_PUBLIC_URL=<the https forwarding URL ngrok prints>, "
    "and run this command again."
)
"""The one paragraph that explains how to expose a local receiver."""

PAT_HELP = (
    "create a personal access token in Asana (My settings > Apps > Developer apps) "
    "and export it as ASANA_ACCESS_TOKEN"
)


def asana_failure(exc: AsanaError, *, doing: str) -> Failure:
    """The Failure to raise when Asana refused ``doing`` (e.g. 'creating the webhook')."""
    if isinstance(exc, BadToken):
        return Failure(
            f"Asana rejected ASANA_ACCESS_TOKEN (401) while {doing}: {PAT_HELP}", EXIT_ASANA
        )
    if isinstance(exc, RateLimited):
        return Failure(
            f"Asana's rate limit was hit while {doing}: try again in {exc.retry_after:.0f} s",
            EXIT_ASANA,
        )
    if isinstance(exc, BudgetExhausted):
        return Failure(
            f"the shared API budget (ASANA_RATE_LIMIT_PER_MINUTE) is used up; {doing} "
            "can be tried again in a minute",
            EXIT_ASANA,
        )
    if isinstance(exc, AsanaUnavailable):
        return Failure(
            f"Asana could not be reached while {doing} ({exc.message}): check ASANA_API_URL "
            "and the network, then try again",
            EXIT_ASANA,
        )
    if isinstance(exc, NotFound):
        return Failure(
            f"Asana answered 404 while {doing}: check the gid, and that the token's user "
            "can see it",
            EXIT_ASANA,
        )
    if isinstance(exc, Forbidden):
        hint = _forbidden_hint(exc.message)
        return Failure(f"Asana refused {doing} (403): {exc.message}. {hint}", EXIT_ASANA)
    if isinstance(exc, InvalidRequest):
        return Failure(f"Asana refused {doing} (400): {exc.message}", EXIT_ASANA)
    return Failure(f"Asana refused {doing} ({exc.status}): {exc.message}", EXIT_ASANA)


def unreachable_target(public_url: str, problem: str) -> Failure:
    return Failure(
        f"the receiver is not reachable at HOOKS_PUBLIC_URL ({public_url}/healthz: {problem}). "
        + NGROK_HELP,
        EXIT_CONFIG,
    )


def _forbidden_hint(message: str) -> str:
    lowered = message.lower()
    if "localhost" in lowered or "target" in lowered:
        return NGROK_HELP
    return "The token's user needs access to this resource."
