"""What can go wrong when we call Asana, as one family of exceptions, and which answer is
which (``error_for``). Pure.

Each carries its data as attributes. ``retryable`` says whether trying again later may
succeed (RQ's Retry handles those); the others are answers, not accidents.
"""

from __future__ import annotations

from asana_hooks.errors import HooksError


class AsanaError(HooksError):
    """Asana refused a request, or could not be reached."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.path = path

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, path={self.path!r})"


class InvalidRequest(AsanaError):
    """400: Asana says the request is wrong (its message says why)."""


class BadToken(AsanaError):
    """401: the access token is missing, revoked or wrong. Every caller stops."""


class Forbidden(AsanaError):
    """403: the token may not see this object, or Asana refuses the action."""


def is_duplicate(exc: AsanaError) -> bool:
    """Asana's 403 "Duplicated webhook": it already has one for this resource and target."""
    return isinstance(exc, Forbidden) and "duplicated webhook" in exc.message.lower()


class NotFound(AsanaError):
    """404: the object does not exist (deleted, or a story removed by consolidation)."""


class SyncTokenExpired(AsanaError):
    """412 from the Events API: the sync token is invalid or too old; ``sync`` is a fresh one."""

    def __init__(self, message: str, *, sync: str, path: str = "") -> None:
        super().__init__(message, status=412, path=path)
        self.sync = sync


class RateLimited(AsanaError):
    """429: over the budget; nobody may call Asana for ``retry_after`` seconds."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float, path: str = "") -> None:
        super().__init__(message, status=429, path=path)
        self.retry_after = retry_after


class AsanaUnavailable(AsanaError):
    """5xx, a timeout or a refused connection: worth retrying later."""

    retryable = True


class BudgetExhausted(AsanaError):
    """Our own shared budget has no room within the wait we allow; retry later, after
    ``retry_after`` seconds (when the budget expects room)."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float = 1.0, path: str = "") -> None:
        super().__init__(message, path=path)
        self.retry_after = retry_after


DEFAULT_RETRY_AFTER_SECONDS = 30.0
"""Pause used when a 429 comes without a readable Retry-After."""


def error_for(status: int, body: object, *, path: str, retry_after: float | None) -> AsanaError:
    """Map one non-2xx answer to our exception family. Pure."""
    message = _message(body) or f"HTTP {status}"
    if status == 400:
        return InvalidRequest(message, status=status, path=path)
    if status == 401:
        return BadToken(
            f"Asana rejected the access token (401): {message}. Check ASANA_ACCESS_TOKEN.",
            status=status,
            path=path,
        )
    if status == 402 or status == 403:
        return Forbidden(message, status=status, path=path)
    if status == 404:
        return NotFound(message, status=status, path=path)
    if status == 412:
        sync = body.get("sync") if isinstance(body, dict) else None
        return SyncTokenExpired(message, sync=str(sync or ""), path=path)
    if status == 429:
        wait = retry_after if retry_after is not None else DEFAULT_RETRY_AFTER_SECONDS
        return RateLimited(message, retry_after=wait, path=path)
    if status >= 500:
        return AsanaUnavailable(message, status=status, path=path)
    return AsanaError(message, status=status, path=path)


def _message(body: object) -> str:
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message", ""))[:500]
    return ""
